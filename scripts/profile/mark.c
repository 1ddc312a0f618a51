// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_mark: executes the marker instruction once, so that the insn-count
 * QEMU plugin writes a snapshot of its counts. A multi-byte NOP with a
 * displacement no compiler emits; on a QEMU without the plugin it is a NOP.
 */
int main(void)
{
	asm volatile(".byte 0x0f, 0x1f, 0x84, 0x00, 0x50, 0x44, 0x54, 0x52");
	return 0;
}
