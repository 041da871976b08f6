//! The C services of `kbuild/kvmport_main.c` (each a thin wrapper of a kernel function,
//! macro or inline). Return conventions follow the kernel: 0 or a negative errno.

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

#[allow(
    missing_docs,
    reason = "each declaration mirrors a kp_* function of kvmport_main.c"
)]
unsafe extern "C" {
    pub fn kp_kmalloc(size: usize) -> *mut c_void;
    pub fn kp_kfree(p: *mut c_void);
    pub fn kp_krealloc(p: *mut c_void, size: usize) -> *mut c_void;

    pub fn kp_page_zalloc() -> *mut c_void;
    pub fn kp_page_free(va: *mut c_void);
    pub fn kp_virt_to_phys(va: *mut c_void) -> u64;
    pub fn kp_heap_virt_to_phys(va: *const c_void) -> u64;

    pub fn kp_access_ok(addr: c_ulong, len: c_ulong) -> c_int;
    pub fn kp_copy_from_user(dst: *mut c_void, src: c_ulong, n: c_ulong) -> c_int;
    pub fn kp_copy_to_user(dst: c_ulong, src: *const c_void, n: c_ulong) -> c_int;
    pub fn kp_pin_user_page(
        addr: c_ulong,
        write: c_int,
        page: *mut *mut c_void,
        pa: *mut u64,
    ) -> c_int;
    pub fn kp_unpin_user_page(page: *mut c_void, dirty: c_int);
    pub fn kp_mmn_new(listener_out: *mut *mut c_void) -> *mut c_void;
    pub fn kp_mmn_register(k: *mut c_void) -> c_int;
    pub fn kp_mmn_unregister(k: *mut c_void);

    pub fn kp_mutex_new() -> *mut c_void;
    pub fn kp_mutex_free(m: *mut c_void);
    pub fn kp_mutex_lock(m: *mut c_void);
    pub fn kp_mutex_unlock(m: *mut c_void);
    pub fn kp_mutex_trylock(m: *mut c_void) -> c_int;
    pub fn kp_spin_new() -> *mut c_void;
    pub fn kp_spin_free(s: *mut c_void);
    pub fn kp_spin_lock(s: *mut c_void);
    pub fn kp_spin_unlock(s: *mut c_void);
    pub fn kp_spin_trylock(s: *mut c_void) -> c_int;

    pub fn kp_cpu_current() -> c_uint;
    pub fn kp_cpu_count() -> c_uint;
    pub fn kp_on_each_cpu(
        f: unsafe extern "C" fn(ctx: *mut c_void, cpu: c_uint) -> c_int,
        ctx: *mut c_void,
    ) -> c_int;
    pub fn kp_cpu_kick(cpu: c_uint);
    pub fn kp_preempt_disable();
    pub fn kp_preempt_enable();
    pub fn kp_fpu_begin();
    pub fn kp_fpu_end();
    pub fn kp_held_copy(
        page: *mut c_void,
        off: c_uint,
        buf: *mut c_void,
        len: c_uint,
        to_page: c_int,
    );

    pub fn kp_signal_pending() -> c_int;
    pub fn kp_need_resched() -> c_int;
    pub fn kp_cond_resched();
    pub fn kp_sigmask_swap(mask: u64) -> u64;
    pub fn kp_mm_id() -> u64;
    pub fn kp_time_ns() -> u64;
    pub fn kp_tsc_khz() -> u64;

    pub fn kp_eventfd_get(fd: c_int, err: *mut c_int) -> *mut c_void;
    pub fn kp_eventfd_signal(ctx: *mut c_void);
    pub fn kp_eventfd_put(ctx: *mut c_void);

    pub fn kp_waitq_new() -> *mut c_void;
    pub fn kp_waitq_free(wq: *mut c_void);
    pub fn kp_waitq_wait(
        wq: *mut c_void,
        done: unsafe extern "C" fn(ctx: *mut c_void) -> c_int,
        ctx: *mut c_void,
    ) -> c_int;
    pub fn kp_waitq_wait_timeout(
        wq: *mut c_void,
        done: unsafe extern "C" fn(ctx: *mut c_void) -> c_int,
        ctx: *mut c_void,
        timeout_ns: i64,
    ) -> c_int;
    pub fn kp_waitq_wake(wq: *mut c_void);

    pub fn kp_log(level: c_int, msg: *const c_char, len: usize);
    pub fn kp_bug(msg: *const c_char, len: usize) -> !;
}

/// Converts a kernel return value (0 or a negative errno) into a `KResult`.
pub fn to_result(r: c_long) -> kvmport_core::KResult<()> {
    if r >= 0 {
        return Ok(());
    }
    let n = i32::try_from(-r).unwrap_or(i32::MAX);
    Err(kvmport_core::Errno::from_raw(n).unwrap_or(kvmport_core::Errno::EIO))
}
