/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the rtdp selftests (on top of kvm_util).
 */
#ifndef SELFTEST_RTDP_UTIL_H
#define SELFTEST_RTDP_UTIL_H

#include "kvm_util.h"
#include "test_util.h"
#include "ucall_common.h"

/* Run @vcpu until its next ucall, which must be @want; report guest asserts. */
static inline void rtdp_expect_ucall(struct kvm_vcpu *vcpu, u64 want)
{
	struct ucall uc;
	u64 cmd;

	vcpu_run(vcpu);
	cmd = get_ucall(vcpu, &uc);
	if (cmd == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(cmd == want, "ucall %lu, want %lu (exit reason %s)", cmd, want,
		    exit_reason_str(vcpu->run->exit_reason));
}

#endif /* SELFTEST_RTDP_UTIL_H */
