/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * The boundary between kvmport_main.c and the Rust object: the Rust entry points the C side
 * calls, and the kp_* services the Rust side calls (os-linux/src/ffi.rs declares the same
 * functions; keep the two in step).
 */
#ifndef KVMPORT_GLUE_H
#define KVMPORT_GLUE_H

#include <linux/types.h>

/* Object kinds a Rust entry point returns through *kind. */
#define KP_VALUE 0
#define KP_NEW_VM 1
#define KP_NEW_VCPU 2

/* Rust entry points (os-linux/src/entry.rs). */
int kvmport_rs_init(void);
void kvmport_rs_exit(void);
long kvmport_rs_sys_ioctl(unsigned int cmd, unsigned long arg, void **obj, int *kind);
long kvmport_rs_vm_ioctl(void *vm, unsigned int cmd, unsigned long arg, void **obj, int *kind);
long kvmport_rs_vcpu_ioctl(void *vcpu, unsigned int cmd, unsigned long arg);
void kvmport_rs_vm_release(void *vm);
void kvmport_rs_vcpu_release(void *vcpu);
unsigned int kvmport_rs_vcpu_id(void *vcpu);
void *kvmport_rs_vcpu_page(void *vcpu, unsigned long pgoff);
int kvmport_rs_cpu_online(unsigned int cpu);
void kvmport_rs_cpu_offline(unsigned int cpu);
int kvmport_rs_mm_invalidate(void *listener, unsigned long start, unsigned long end,
			     int blockable);
void kvmport_rs_mm_invalidate_end(void *listener, unsigned long start, unsigned long end);

/* Services for the Rust Os implementation (kvmport_main.c). */
void *kp_kmalloc(size_t size);
void kp_kfree(void *p);
void *kp_krealloc(void *p, size_t size);
void *kp_page_zalloc(void);
void kp_page_free(void *va);
u64 kp_virt_to_phys(void *va);
u64 kp_heap_virt_to_phys(const void *va);
int kp_access_ok(unsigned long addr, unsigned long len);
int kp_copy_from_user(void *dst, unsigned long src, unsigned long n);
int kp_copy_to_user(unsigned long dst, const void *src, unsigned long n);
int kp_pin_user_page(unsigned long addr, int write, void **page_out, u64 *pa_out);
void kp_unpin_user_page(void *page, int dirty);
void *kp_mmn_new(void **listener_out);
int kp_mmn_register(void *k);
void kp_mmn_unregister(void *k);
void *kp_mutex_new(void);
void kp_mutex_free(void *m);
void kp_mutex_lock(void *m);
void kp_mutex_unlock(void *m);
int kp_mutex_trylock(void *m);
void *kp_spin_new(void);
void kp_spin_free(void *s);
void kp_spin_lock(void *s);
void kp_spin_unlock(void *s);
int kp_spin_trylock(void *s);
unsigned int kp_cpu_current(void);
unsigned int kp_cpu_count(void);
int kp_on_each_cpu(int (*fn)(void *ctx, unsigned int cpu), void *ctx);
void kp_cpu_kick(unsigned int cpu);
void kp_preempt_disable(void);
void kp_preempt_enable(void);
void kp_fpu_begin(void);
void kp_fpu_end(void);
void kp_held_copy(void *page, unsigned int off, void *buf, unsigned int len, int to_page);
int kp_signal_pending(void);
int kp_need_resched(void);
void kp_cond_resched(void);
u64 kp_sigmask_swap(u64 mask);
u64 kp_mm_id(void);
u64 kp_time_ns(void);
u64 kp_tsc_khz(void);
void *kp_eventfd_get(int fd, int *err);
void kp_eventfd_signal(void *ctx);
void kp_eventfd_put(void *ctx);
void *kp_waitq_new(void);
void kp_waitq_free(void *wq);
int kp_waitq_wait(void *wq, int (*done)(void *ctx), void *ctx);
int kp_waitq_wait_timeout(void *wq, int (*done)(void *ctx), void *ctx, s64 timeout_ns);
void kp_waitq_wake(void *wq);
void kp_log(int level, const char *msg, size_t len);
void __noreturn kp_bug(const char *msg, size_t len);

#endif /* KVMPORT_GLUE_H */
