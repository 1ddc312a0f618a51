// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: tries to register a second TDP MMU provider while
 * kvm_rtdp is registered.  kvm.ko must refuse it (-EBUSY), and with
 * bad_size=1 refuse an ops table of another layout (-EINVAL); the error is
 * returned from init so that insmod reports it.
 */
#include <linux/module.h>
#include <asm/kvm_tdp_mmu_provider.h>

static bool bad_size;
module_param(bad_size, bool, 0444);
MODULE_PARM_DESC(bad_size, "Register with a wrong struct size");

static struct kvm_tdp_mmu_ops second_ops = {
	.size = sizeof(struct kvm_tdp_mmu_ops),
	.owner = THIS_MODULE,
	.name = "kvm_rtdp_second",
};

static int __init second_init(void)
{
	if (bad_size)
		second_ops.size--;
	return kvm_tdp_mmu_register_provider(&second_ops);
}

static void __exit second_exit(void)
{
	kvm_tdp_mmu_unregister_provider(&second_ops);
}

module_init(second_init);
module_exit(second_exit);
MODULE_DESCRIPTION("rtdp test: a second TDP MMU provider must be refused");
MODULE_LICENSE("GPL");
