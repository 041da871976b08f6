// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * kvmport.ko: the C part of the Linux glue. Everything that decides anything is Rust
 * (kvmport-core, kvmport-arch-x86, kvmport-os-linux); this file only does what must be C:
 * module init/exit, the misc device, file-operation tables, anonymous-inode fds, the vCPU
 * mmap fault handler, and thin wrappers (kp_*) around kernel macros and inline functions
 * for the Rust side's Os implementation.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/anon_inodes.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/eventfd.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/smp.h>
#include <linux/file.h>
#include <linux/wait.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/timekeeping.h>
#include <linux/signal.h>
#include <linux/io.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <asm/tsc.h>
#include <linux/highmem.h>
#include <linux/mmu_notifier.h>
#include <asm/fpu/api.h>

#include "kvmport_glue.h"

MODULE_LICENSE("Dual MIT/GPL");
MODULE_DESCRIPTION("kvmport: a portable KVM-compatible hypervisor");

static char *devname = "kvm";
module_param(devname, charp, 0444);
MODULE_PARM_DESC(devname, "device node name (default kvm; use another when kvm is loaded)");

static const struct file_operations kp_vm_fops;
static const struct file_operations kp_vcpu_fops;

/* Turns a new object from Rust into an fd, or releases it if no fd can be made. */
static long kp_install(void *obj, int kind)
{
	char name[32];
	int fd;

	if (kind == KP_NEW_VM) {
		fd = anon_inode_getfd("kvm-vm", &kp_vm_fops, obj, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			kvmport_rs_vm_release(obj);
		return fd;
	}
	snprintf(name, sizeof(name), "kvm-vcpu:%u", kvmport_rs_vcpu_id(obj));
	fd = anon_inode_getfd(name, &kp_vcpu_fops, obj, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		kvmport_rs_vcpu_release(obj);
	return fd;
}

static long kp_dev_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	void *obj = NULL;
	int kind = KP_VALUE;
	long r = kvmport_rs_sys_ioctl(cmd, arg, &obj, &kind);

	if (r >= 0 && kind != KP_VALUE)
		return kp_install(obj, kind);
	return r;
}

static long kp_vm_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	void *obj = NULL;
	int kind = KP_VALUE;
	long r = kvmport_rs_vm_ioctl(f->private_data, cmd, arg, &obj, &kind);

	if (r >= 0 && kind != KP_VALUE)
		return kp_install(obj, kind);
	return r;
}

static int kp_vm_release(struct inode *inode, struct file *f)
{
	kvmport_rs_vm_release(f->private_data);
	return 0;
}

static long kp_vcpu_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	return kvmport_rs_vcpu_ioctl(f->private_data, cmd, arg);
}

static int kp_vcpu_release(struct inode *inode, struct file *f)
{
	kvmport_rs_vcpu_release(f->private_data);
	return 0;
}

static vm_fault_t kp_vcpu_fault(struct vm_fault *vmf)
{
	void *va = kvmport_rs_vcpu_page(vmf->vma->vm_file->private_data, vmf->pgoff);
	struct page *page;

	if (!va)
		return VM_FAULT_SIGBUS;
	page = virt_to_page(va);
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct kp_vcpu_vm_ops = {
	.fault = kp_vcpu_fault,
};

static int kp_vcpu_mmap(struct file *f, struct vm_area_struct *vma)
{
	vma->vm_ops = &kp_vcpu_vm_ops;
	return 0;
}

static const struct file_operations kp_dev_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kp_dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static const struct file_operations kp_vm_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kp_vm_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = kp_vm_release,
	.llseek = noop_llseek,
};

static const struct file_operations kp_vcpu_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kp_vcpu_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = kp_vcpu_mmap,
	.release = kp_vcpu_release,
	.llseek = noop_llseek,
};

static struct miscdevice kp_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.fops = &kp_dev_fops,
};

static enum cpuhp_state kp_hp_state;

/* CPU hotplug: the backend is enabled on a CPU coming online and disabled on one going
 * offline. AP_ONLINE_DYN callbacks run on that CPU; the backend wants preemption off. */
static int kp_cpu_up(unsigned int cpu)
{
	int r;

	preempt_disable();
	r = kvmport_rs_cpu_online(cpu);
	preempt_enable();
	return r;
}

static int kp_cpu_down(unsigned int cpu)
{
	preempt_disable();
	kvmport_rs_cpu_offline(cpu);
	preempt_enable();
	return 0;
}

static int __init kp_init(void)
{
	int r;

	/* Enable on the online CPUs and register for later ones with hotplug held off, so no
	 * CPU is missed or enabled twice. */
	cpus_read_lock();
	r = kvmport_rs_init();
	if (!r) {
		r = cpuhp_setup_state_nocalls_cpuslocked(CPUHP_AP_ONLINE_DYN, "kvmport:online",
							  kp_cpu_up, kp_cpu_down);
		if (r < 0) {
			kvmport_rs_exit();
		} else {
			kp_hp_state = r;
			r = 0;
		}
	}
	cpus_read_unlock();
	if (r)
		return r;
	kp_misc.name = devname;
	r = misc_register(&kp_misc);
	if (r) {
		pr_err("kvmport: cannot register /dev/%s (%d); try devname=kvmport\n", devname, r);
		cpuhp_remove_state_nocalls(kp_hp_state);
		kvmport_rs_exit();
		return r;
	}
	pr_info("kvmport: /dev/%s ready\n", devname);
	return 0;
}

static void __exit kp_exit(void)
{
	misc_deregister(&kp_misc);
	cpuhp_remove_state_nocalls(kp_hp_state);
	kvmport_rs_exit();
}

module_init(kp_init);
module_exit(kp_exit);

/* ---------------------------------------------------------------------------------------
 * Services for the Rust Os implementation (os-linux/src/ffi.rs declares them).
 */

void *kp_kmalloc(size_t size) { return kmalloc(size, GFP_KERNEL_ACCOUNT); }
void kp_kfree(void *p) { kfree(p); }
void *kp_krealloc(void *p, size_t size) { return krealloc(p, size, GFP_KERNEL_ACCOUNT); }

void *kp_page_zalloc(void) { return (void *)get_zeroed_page(GFP_KERNEL_ACCOUNT); }
void kp_page_free(void *va) { free_page((unsigned long)va); }
u64 kp_virt_to_phys(void *va) { return (u64)virt_to_phys(va); }
/* kmalloc memory is in the direct map; anything else (vmalloc) gets ~0. */
u64 kp_heap_virt_to_phys(const void *va)
{
	return virt_addr_valid(va) ? (u64)virt_to_phys((void *)va) : ~0ULL;
}

int kp_access_ok(unsigned long addr, unsigned long len) { return access_ok((void __user *)addr, len); }
int kp_copy_from_user(void *dst, unsigned long src, unsigned long n)
{
	return copy_from_user(dst, (const void __user *)src, n) ? -EFAULT : 0;
}
int kp_copy_to_user(unsigned long dst, const void *src, unsigned long n)
{
	return copy_to_user((void __user *)dst, src, n) ? -EFAULT : 0;
}

/*
 * Pins the user page containing addr; returns 0 and the page and its physical address. A page
 * pinned for writing is marked dirty now, in the caller's context with no lock held, so that
 * the dirtying unpin (below) normally finds it dirty and need not take the page lock: the
 * unpin may run from an MMU notifier called with that page locked (writeback, truncation).
 */
int kp_pin_user_page(unsigned long addr, int write, void **page_out, u64 *pa_out)
{
	struct page *page;
	int n = pin_user_pages_fast(addr & PAGE_MASK, 1, write ? FOLL_WRITE : 0, &page);

	if (n != 1)
		return n < 0 ? n : -EFAULT;
	if (write)
		set_page_dirty_lock(page);
	*page_out = page;
	*pa_out = (u64)page_to_phys(page);
	return 0;
}
/* Unpins; a page pinned for writing may have been written by the guest: mark it dirty. */
void kp_unpin_user_page(void *page, int dirty)
{
	struct page *p = page;

	unpin_user_pages_dirty_lock(&p, 1, dirty);
}

/*
 * MMU notifiers of a VM: the creating process's address space tells the VM (Rust, through an
 * opaque `*const dyn UserMmListener` stored in `listener`) before it unmaps or changes user
 * memory, and when it has finished. Two subscriptions, because a start that can fail with
 * -EAGAIN (not blockable) must not come with an invalidate_range_end in the same ops
 * (include/linux/mmu_notifier.h; the kernel calls every end after any failed start):
 * - `inval`: invalidate_range_start (tear down; may return -EAGAIN) and release;
 * - `done`: invalidate_range_end only, which never fails. It follows each start round once,
 *   also after a failed one, so the VM counts invalidations in progress exactly.
 */
struct kp_mmn {
	struct mmu_notifier inval;
	struct mmu_notifier done;
	struct mm_struct *mm;
	void *listener[2];
};

static int kp_mmn_invalidate_range_start(struct mmu_notifier *mn,
					 const struct mmu_notifier_range *range)
{
	struct kp_mmn *k = container_of(mn, struct kp_mmn, inval);

	return kvmport_rs_mm_invalidate(k->listener, range->start, range->end,
					mmu_notifier_range_blockable(range));
}

static void kp_mmn_invalidate_range_end(struct mmu_notifier *mn,
					const struct mmu_notifier_range *range)
{
	struct kp_mmn *k = container_of(mn, struct kp_mmn, done);

	kvmport_rs_mm_invalidate_end(k->listener, range->start, range->end);
}

/* The address space is going away (exit_mmap) or `inval` is unregistered: drop everything. */
static void kp_mmn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct kp_mmn *k = container_of(mn, struct kp_mmn, inval);

	kvmport_rs_mm_invalidate(k->listener, 0, ULONG_MAX, 1);
	kvmport_rs_mm_invalidate_end(k->listener, 0, ULONG_MAX);
}

static const struct mmu_notifier_ops kp_mmn_inval_ops = {
	.invalidate_range_start = kp_mmn_invalidate_range_start,
	.release = kp_mmn_release,
};

static const struct mmu_notifier_ops kp_mmn_done_ops = {
	.invalidate_range_end = kp_mmn_invalidate_range_end,
};

/* A notifier pair not yet registered; *listener_out is where Rust stores its listener. */
void *kp_mmn_new(void **listener_out)
{
	struct kp_mmn *k = kzalloc(sizeof(*k), GFP_KERNEL_ACCOUNT);

	if (!k)
		return NULL;
	k->inval.ops = &kp_mmn_inval_ops;
	k->done.ops = &kp_mmn_done_ops;
	*listener_out = k->listener;
	return k;
}

/*
 * Registers both on current->mm (each registration holds an mm_count reference until its
 * unregister); on failure nothing stays registered and the pair is freed. `done` goes first,
 * so that every start `inval` sees is followed by an end `done` sees.
 */
int kp_mmn_register(void *p)
{
	struct kp_mmn *k = p;
	int r = -EINVAL;

	k->mm = current->mm;
	if (k->mm)
		r = mmu_notifier_register(&k->done, k->mm);
	if (!r) {
		r = mmu_notifier_register(&k->inval, k->mm);
		if (r)
			mmu_notifier_unregister(&k->done, k->mm);
	}
	if (r)
		kfree(k);
	return r;
}

/* Unregisters (`inval` first: calling release if the mm has not, then waiting for running
 * callbacks through SRCU) and frees. Sleeps; never from a notifier callback. */
void kp_mmn_unregister(void *p)
{
	struct kp_mmn *k = p;

	mmu_notifier_unregister(&k->inval, k->mm);
	mmu_notifier_unregister(&k->done, k->mm);
	kfree(k);
}

/* Copies between a pinned user page and a kernel buffer (the caller checked the range). */
void kp_held_copy(void *page, unsigned int off, void *buf, unsigned int len, int to_page)
{
	void *va = kmap_local_page(page);

	if (to_page) {
		memcpy(va + off, buf, len);
		set_page_dirty_lock(page);
	} else {
		memcpy(buf, va + off, len);
	}
	kunmap_local(va);
}

void *kp_mutex_new(void)
{
	struct mutex *m = kmalloc(sizeof(*m), GFP_KERNEL_ACCOUNT);

	if (m)
		mutex_init(m);
	return m;
}
void kp_mutex_free(void *m) { mutex_destroy(m); kfree(m); }
void kp_mutex_lock(void *m) { mutex_lock(m); }
void kp_mutex_unlock(void *m) { mutex_unlock(m); }
int kp_mutex_trylock(void *m) { return mutex_trylock(m); }

void *kp_spin_new(void)
{
	spinlock_t *s = kmalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);

	if (s)
		spin_lock_init(s);
	return s;
}
void kp_spin_free(void *s) { kfree(s); }
void kp_spin_lock(void *s) { spin_lock(s); }
void kp_spin_unlock(void *s) { spin_unlock(s); }
int kp_spin_trylock(void *s) { return spin_trylock(s); }

unsigned int kp_cpu_current(void) { return raw_smp_processor_id(); }
unsigned int kp_cpu_count(void) { return nr_cpu_ids; }

struct kp_each {
	int (*fn)(void *ctx, unsigned int cpu);
	void *ctx;
	atomic_t err;
};

static void kp_each_one(void *data)
{
	struct kp_each *e = data;
	int r = e->fn(e->ctx, smp_processor_id());

	if (r)
		atomic_cmpxchg(&e->err, 0, r);
}

int kp_on_each_cpu(int (*fn)(void *ctx, unsigned int cpu), void *ctx)
{
	struct kp_each e = { .fn = fn, .ctx = ctx, .err = ATOMIC_INIT(0) };

	on_each_cpu(kp_each_one, &e, 1);
	return atomic_read(&e.err);
}

static void kp_nothing(void *unused) { }
void kp_cpu_kick(unsigned int cpu)
{
	if (cpu != raw_smp_processor_id() && cpu < nr_cpu_ids)
		smp_call_function_single(cpu, kp_nothing, NULL, 0);
}

void kp_preempt_disable(void) { preempt_disable(); }
void kp_preempt_enable(void) { preempt_enable(); }
/* The FPU registers for the guest: the task's own state is saved first and restored on the
 * way back to user space. No x87/MXCSR initialisation is needed: XRSTOR loads everything. */
void kp_fpu_begin(void) { kernel_fpu_begin_mask(0); }
void kp_fpu_end(void) { kernel_fpu_end(); }

int kp_signal_pending(void) { return signal_pending(current); }
int kp_need_resched(void) { return need_resched(); }
void kp_cond_resched(void) { cond_resched(); }
u64 kp_sigmask_swap(u64 mask)
{
	sigset_t new_set, old_set;

	memcpy(&new_set, &mask, sizeof(mask));
	sigdelsetmask(&new_set, sigmask(SIGKILL) | sigmask(SIGSTOP));
	sigprocmask(SIG_SETMASK, &new_set, &old_set);
	memcpy(&mask, &old_set, sizeof(mask));
	return mask;
}
u64 kp_mm_id(void) { return (u64)(unsigned long)current->mm; }

u64 kp_time_ns(void) { return ktime_get_ns(); }
u64 kp_tsc_khz(void) { return tsc_khz; }

/* Returns the eventfd context, or NULL with *err set to -EBADF/-EINVAL. */
void *kp_eventfd_get(int fd, int *err)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);

	if (IS_ERR(ctx)) {
		*err = PTR_ERR(ctx);
		return NULL;
	}
	return ctx;
}
void kp_eventfd_signal(void *ctx) { eventfd_signal(ctx); }
void kp_eventfd_put(void *ctx) { eventfd_ctx_put(ctx); }

void *kp_waitq_new(void)
{
	wait_queue_head_t *wq = kmalloc(sizeof(*wq), GFP_KERNEL_ACCOUNT);

	if (wq)
		init_waitqueue_head(wq);
	return wq;
}
void kp_waitq_free(void *wq) { kfree(wq); }
int kp_waitq_wait(void *wq, int (*done)(void *ctx), void *ctx)
{
	return wait_event_interruptible(*(wait_queue_head_t *)wq, done(ctx)) ? -EINTR : 0;
}
/* 1: done() became true, 0: the timeout passed, -EINTR: a signal. */
int kp_waitq_wait_timeout(void *wq, int (*done)(void *ctx), void *ctx, s64 timeout_ns)
{
	long r = wait_event_interruptible_hrtimeout(*(wait_queue_head_t *)wq, done(ctx),
						    ns_to_ktime(timeout_ns));

	if (r == -ETIME)
		return 0;
	return r ? -EINTR : 1;
}
void kp_waitq_wake(void *wq) { wake_up_all((wait_queue_head_t *)wq); }

void kp_log(int level, const char *msg, size_t len)
{
	switch (level) {
	case 0: pr_err("%.*s\n", (int)len, msg); break;
	case 1: pr_warn("%.*s\n", (int)len, msg); break;
	case 2: pr_info("%.*s\n", (int)len, msg); break;
	default: pr_debug("%.*s\n", (int)len, msg); break;
	}
}

void __noreturn kp_bug(const char *msg, size_t len)
{
	pr_emerg("kvmport: Rust panic: %.*s\n", (int)len, msg);
	BUG();
}
