// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: a software external page table for
 * KVM_X86_SW_PROTECTED_VM VMs, standing in for the TDX module's Secure EPT
 * behind the ops of asm/kvm_tdp_mmu_provider.h, so that a provider's
 * freeze, propagate, unfreeze protocol runs under QEMU.
 *
 * It keeps, per VM, the leaves it was told of (gfn -> SPTE) and checks every
 * change against them: a change must come from the value the last one left
 * (a leaf is installed where there is none, changed or removed where there
 * is one), at 4 KiB.  Anything else is a protocol violation, counted and
 * logged.  Installs can be refused, as busy (-EBUSY) every busy_every-th
 * and as failed (-EIO) every fail_every-th; a refused change leaves the
 * table as it was.  When a VM is destroyed, leaves still here are leaks.
 *
 * debugfs kvm_rtdp_sw_external/: "stats" (counts since load), "leaves"
 * (per VM, "vm kvm-<pid>" then "GFN SPTE" in hex, in gfn order) and
 * "check": reading it compares, per VM and with the VM's mmu_lock held for
 * write, the table with the mirrored leaves of the VM's page tables as
 * kvm.ko's own iterator reads them (kvm_tdp_mmu_walk_leaves()), every
 * bit but the Accessed and Dirty bits the CPU sets in the mirror, and
 * counts SPTEs left frozen; a VM's line is "vm kvm-<pid> leaves N
 * differences D frozen F".  It can be read while the VM runs.  The module
 * must stay loaded until the leaves' grace periods are over: exit waits
 * with rcu_barrier().
 */
#include <linux/debugfs.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include <asm/kvm_tdp_mmu_provider.h>

static unsigned int busy_every;
module_param(busy_every, uint, 0644);
MODULE_PARM_DESC(busy_every, "Refuse every Nth install as busy (0: never)");

static unsigned int fail_every;
module_param(fail_every, uint, 0644);
MODULE_PARM_DESC(fail_every, "Refuse every Nth install as failed (0: never)");

/* One VM's external table. */
struct swx_vm {
	struct kvm *kvm;
	struct rcu_head rcu;
	/* gfn -> struct swx_leaf; changes under xa_lock. */
	struct xarray leaves;
};

struct swx_leaf {
	u64 spte;
	/* A dump may be reading it: freed after a grace period. */
	struct rcu_head rcu;
};

/* struct kvm * -> struct swx_vm, created at the VM's first change. */
static DEFINE_XARRAY(swx_vms);

/*
 * Held to erase a VM from swx_vms, which its destruction does: the struct
 * kvm of a VM found in swx_vms stays alive while it is held.
 */
static DEFINE_MUTEX(swx_vms_lock);

static atomic64_t stat_changes, stat_busy, stat_failed, stat_violations, stat_leaked,
	stat_vms, stat_checks, stat_check_differences;
static atomic_t installs;

/* kvm_rtdp's mark of a mirrored leaf, and the SPTE bits of spte.h it needs. */
#define SWX_MIRRORED	BIT_ULL(56)
#define SWX_FROZEN	(BIT_ULL(63) | 0x1a0ULL)
#define SWX_AD		(BIT_ULL(5) | BIT_ULL(6))

/* Present in the sense of SPTE_MMU_PRESENT_MASK. */
static bool swx_present(u64 spte)
{
	return spte & BIT_ULL(11);
}

static struct swx_vm *swx_vm_get(struct kvm *kvm)
{
	struct swx_vm *vm = xa_load(&swx_vms, (unsigned long)kvm), *old;

	if (vm)
		return vm;
	vm = kzalloc_obj(*vm, GFP_ATOMIC);
	if (!vm)
		return NULL;
	vm->kvm = kvm;
	xa_init(&vm->leaves);
	old = xa_cmpxchg(&swx_vms, (unsigned long)kvm, NULL, vm, GFP_ATOMIC);
	if (old) {
		kfree(vm);
		return xa_is_err(old) ? NULL : old;
	}
	atomic64_inc(&stat_vms);
	return vm;
}

static void swx_violation(struct kvm *kvm, gfn_t gfn, u64 old, u64 new, int level, u64 had)
{
	atomic64_inc(&stat_violations);
	pr_err_ratelimited("%s gfn %llx level %d: change %llx -> %llx, but the external table has %llx\n",
			   kvm->stats_id, gfn, level, old, new, had);
}

static int swx_set_spte(struct kvm *kvm, gfn_t gfn, u64 old, u64 new, int level)
{
	struct swx_leaf *leaf, *gone = NULL;
	struct swx_vm *vm;
	int r = 0;
	u64 had;

	if (level != PG_LEVEL_4K) {
		swx_violation(kvm, gfn, old, new, level, 0);
		return -EINVAL;
	}
	if (!swx_present(old) && swx_present(new)) {
		unsigned int n = atomic_inc_return(&installs);

		if (busy_every && !(n % busy_every)) {
			atomic64_inc(&stat_busy);
			return -EBUSY;
		}
		if (fail_every && !(n % fail_every)) {
			atomic64_inc(&stat_failed);
			return -EIO;
		}
	}

	vm = swx_vm_get(kvm);
	if (!vm)
		return -ENOMEM;
	leaf = swx_present(new) ? kmalloc_obj(*leaf, GFP_ATOMIC) : NULL;
	if (swx_present(new) && !leaf)
		return -ENOMEM;

	xa_lock(&vm->leaves);
	gone = xa_load(&vm->leaves, gfn);
	had = gone ? gone->spte : 0;
	if (swx_present(old) ? !gone || gone->spte != old : !!gone) {
		swx_violation(kvm, gfn, old, new, level, had);
		gone = NULL;
		r = -EINVAL;
	} else if (leaf) {
		leaf->spte = new;
		if (xa_err(__xa_store(&vm->leaves, gfn, leaf, GFP_ATOMIC))) {
			gone = NULL;
			r = -ENOMEM;
		} else {
			leaf = NULL;
		}
	} else {
		__xa_erase(&vm->leaves, gfn);
	}
	xa_unlock(&vm->leaves);

	kfree(leaf);
	if (gone)
		kfree_rcu(gone, rcu);
	if (!r)
		atomic64_inc(&stat_changes);
	return r;
}

static void swx_vm_destroy(struct kvm *kvm)
{
	struct swx_leaf *leaf;
	unsigned long gfn, n = 0;
	struct swx_vm *vm;

	mutex_lock(&swx_vms_lock);
	vm = xa_erase(&swx_vms, (unsigned long)kvm);
	mutex_unlock(&swx_vms_lock);
	if (!vm)
		return;
	xa_for_each(&vm->leaves, gfn, leaf) {
		if (!n++)
			pr_err("%s destroyed with gfn %lx (%llx) in the external table\n",
			       kvm->stats_id, gfn, leaf->spte);
		kfree_rcu(leaf, rcu);
	}
	xa_destroy(&vm->leaves);
	atomic64_add(n, &stat_leaked);
	kfree_rcu(vm, rcu);
}

static int swx_stats_show(struct seq_file *m, void *unused)
{
	seq_printf(m, "changes %lld\nbusy %lld\nfailed %lld\nviolations %lld\nleaked %lld\nvms %lld\n",
		   atomic64_read(&stat_changes), atomic64_read(&stat_busy),
		   atomic64_read(&stat_failed), atomic64_read(&stat_violations),
		   atomic64_read(&stat_leaked), atomic64_read(&stat_vms));
	seq_printf(m, "checks %lld\ncheck_differences %lld\n", atomic64_read(&stat_checks),
		   atomic64_read(&stat_check_differences));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(swx_stats);

static int swx_leaves_show(struct seq_file *m, void *unused)
{
	struct swx_leaf *leaf;
	struct swx_vm *vm;
	unsigned long i, gfn;

	/* The VMs stay alive; leaves are freed only after a grace period. */
	mutex_lock(&swx_vms_lock);
	rcu_read_lock();
	xa_for_each(&swx_vms, i, vm) {
		seq_printf(m, "vm %s\n", vm->kvm->stats_id);
		xa_for_each(&vm->leaves, gfn, leaf)
			seq_printf(m, "%lx %llx\n", gfn, READ_ONCE(leaf->spte));
	}
	rcu_read_unlock();
	mutex_unlock(&swx_vms_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(swx_leaves);

/*
 * A leaf of the table that a check found equal to a mirrored leaf; cleared
 * before the check drops mmu_lock.  A gfn mirrored twice (two roots, two
 * address spaces) matches once: the table has one leaf for it.
 */
#define SWX_MATCHED XA_MARK_1

struct swx_check {
	struct kvm_tdp_mmu_leaf_walk walk;
	struct swx_vm *vm;
	/* Leaves of the table a mirrored leaf matched, and mirrored leaves that differ. */
	unsigned long matched, differences, frozen;
};

static int swx_check_leaf(struct kvm_tdp_mmu_leaf_walk *walk, int as_id, gfn_t gfn, int level,
			  u64 spte)
{
	struct swx_check *c = container_of(walk, struct swx_check, walk);
	struct swx_leaf *leaf;

	if (spte == SWX_FROZEN) {
		c->frozen++;
		pr_err_ratelimited("%s gfn %llx level %d: SPTE frozen with mmu_lock held for write\n",
				   c->vm->kvm->stats_id, gfn, level);
		return 0;
	}
	if (!swx_present(spte) || !(spte & SWX_MIRRORED))
		return 0;
	leaf = xa_load(&c->vm->leaves, gfn);
	if (level == PG_LEVEL_4K && leaf && !((leaf->spte ^ spte) & ~SWX_AD)) {
		if (!xa_get_mark(&c->vm->leaves, gfn, SWX_MATCHED)) {
			xa_set_mark(&c->vm->leaves, gfn, SWX_MATCHED);
			c->matched++;
		}
		return 0;
	}
	c->differences++;
	pr_err_ratelimited("%s gfn %llx level %d: mirror %llx, external table %llx\n",
			   c->vm->kvm->stats_id, gfn, level, spte, leaf ? leaf->spte : 0);
	return 0;
}

/*
 * Compare @vm's table with its mirror.  mmu_lock held for write stops every
 * change of a mirrored leaf and of the table (both are made with it held),
 * and leaves no SPTE frozen.
 */
static void swx_check_vm(struct seq_file *m, struct swx_vm *vm)
{
	struct swx_check c = { .walk.leaf = swx_check_leaf, .vm = vm };
	unsigned long gfn, external = 0;
	struct swx_leaf *leaf;

	write_lock(&vm->kvm->mmu_lock);
	kvm_tdp_mmu_walk_leaves(vm->kvm, &c.walk);
	xa_for_each(&vm->leaves, gfn, leaf)
		external++;
	xa_for_each_marked(&vm->leaves, gfn, leaf, SWX_MATCHED)
		xa_clear_mark(&vm->leaves, gfn, SWX_MATCHED);
	write_unlock(&vm->kvm->mmu_lock);

	/*
	 * Leaves of the table that no mirrored leaf matched: each leaf is
	 * matched at most once, so this cannot wrap and cancel differences.
	 */
	if (WARN_ON_ONCE(c.matched > external))
		c.differences += c.matched;
	else
		c.differences += external - c.matched;
	atomic64_inc(&stat_checks);
	atomic64_add(c.differences + c.frozen, &stat_check_differences);
	seq_printf(m, "vm %s leaves %lu differences %lu frozen %lu\n", vm->kvm->stats_id,
		   external, c.differences, c.frozen);
}

static int swx_check_show(struct seq_file *m, void *unused)
{
	struct swx_vm *vm;
	unsigned long i;

	mutex_lock(&swx_vms_lock);
	xa_for_each(&swx_vms, i, vm)
		swx_check_vm(m, vm);
	mutex_unlock(&swx_vms_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(swx_check);

static const struct kvm_tdp_mmu_external_ops swx_ops = {
	.size = sizeof(struct kvm_tdp_mmu_external_ops),
	.owner = THIS_MODULE,
	.name = "kvm_rtdp_sw_external",
	.set_spte = swx_set_spte,
	.vm_destroy = swx_vm_destroy,
};

static struct dentry *swx_dir;

static int __init swx_init(void)
{
	int r;

	swx_dir = debugfs_create_dir("kvm_rtdp_sw_external", NULL);
	debugfs_create_file("stats", 0444, swx_dir, NULL, &swx_stats_fops);
	debugfs_create_file("leaves", 0444, swx_dir, NULL, &swx_leaves_fops);
	debugfs_create_file("check", 0444, swx_dir, NULL, &swx_check_fops);
	r = kvm_tdp_mmu_register_sw_external(&swx_ops);
	if (r)
		debugfs_remove_recursive(swx_dir);
	return r;
}

static void __exit swx_exit(void)
{
	kvm_tdp_mmu_unregister_sw_external(&swx_ops);
	debugfs_remove_recursive(swx_dir);
	rcu_barrier();
}

module_init(swx_init);
module_exit(swx_exit);
MODULE_DESCRIPTION("rtdp test: a software external page table for software-protected VMs");
MODULE_LICENSE("GPL");
