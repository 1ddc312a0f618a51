// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: holds back RCU grace periods on request, so that tests
 * can see how much memory the TDP MMU leaves waiting for one.
 *
 * Writing N to /sys/kernel/debug/rtdp_rcu_hold stays inside an RCU read-side
 * critical section for N milliseconds (at most 10000) before write()
 * returns; no grace period that starts meanwhile can end before it does.
 * The section busy-waits: the writing task keeps its CPU for that long.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kstrtox.h>
#include <linux/module.h>
#include <linux/rcupdate.h>

#define MAX_HOLD_MS	10000

static struct dentry *hold_file;

static ssize_t hold_write(struct file *file, const char __user *buf, size_t len,
			  loff_t *ppos)
{
	unsigned int ms, i;
	int ret;

	ret = kstrtouint_from_user(buf, len, 0, &ms);
	if (ret)
		return ret;
	if (ms > MAX_HOLD_MS)
		return -EINVAL;

	rcu_read_lock();
	for (i = 0; i < ms; i++)
		mdelay(1);
	rcu_read_unlock();
	return len;
}

static const struct file_operations hold_fops = {
	.owner = THIS_MODULE,
	.write = hold_write,
};

static int __init hold_init(void)
{
	hold_file = debugfs_create_file("rtdp_rcu_hold", 0200, NULL, NULL, &hold_fops);
	return 0;
}

static void __exit hold_exit(void)
{
	debugfs_remove(hold_file);
}

module_init(hold_init);
module_exit(hold_exit);
MODULE_DESCRIPTION("rtdp test hook: hold back RCU grace periods");
MODULE_LICENSE("GPL");
