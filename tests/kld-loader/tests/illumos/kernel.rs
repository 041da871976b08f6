//! The illumos kernel functions the `kvm` module imports, implemented by the harness after
//! their documented semantics (mod_install(9F), ddi_create_minor_node(9F), ddi_copyin(9F),
//! kmem_alloc(9F), ddi_umem_alloc(9F), devmap_umem_setup(9F), ddi_devmap_segmap(9F),
//! mutex(9F), cmn_err(9F), `sys/hma.h`, `sys/kfpu.h`, `sys/x_call.h`), over the harness's
//! memory and simulated CPUs. Each one checks its contract (sizes given back to kmem_free,
//! mutexes held before exit, preemption disabled around KFPU_NO_STATE, ...) and records a
//! problem when the module breaks it.

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvmport_kld_loader::load::Target;

use crate::{cpu, mem};

/// The driver's major number in the simulated kernel.
pub const MAJOR: u32 = 0x99;
/// `DATAMODEL_LP64` (`sys/model.h`), part of an ioctl's `mode`.
pub const DATAMODEL_LP64: i32 = 0x0020_0000;
const FKIOCTL: i32 = 0x8000_0000_u32 as i32;
const T_PREEMPT: u64 = 42;
const KFPU_NO_STATE: u32 = 1;
const AS_A_HAT: u64 = 16;

/// A devmap handle: what devmap_umem_setup recorded, and the driver's private data.
#[derive(Debug, Clone, Default)]
pub struct Dhp {
    /// `devmap_callback_ctl` the driver gave.
    pub callbacks: u64,
    /// The umem cookie mapped.
    pub cookie: u64,
    /// Offset of this handle in the device.
    pub off: u64,
    /// `*pvtp` from devmap_map / devmap_dup.
    pub pvt: u64,
    /// Set up by devmap_umem_setup.
    pub set: bool,
}

/// A user mapping made through ddi_devmap_segmap.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Length in bytes.
    pub len: u64,
    /// The handles, one per page.
    pub dhps: Vec<u64>,
}

/// The harness kernel's state.
#[derive(Default)]
pub struct Kernel {
    kmem: BTreeMap<u64, usize>,
    /// umem cookies: cookie -> (va, pages).
    umem: BTreeMap<u64, (u64, u64)>,
    locks: BTreeMap<u64, (bool, bool)>,
    /// Live condition variables (cv_init without cv_destroy) -> cv_broadcast calls.
    cvs: BTreeMap<u64, usize>,
    cpusets: BTreeMap<u64, ()>,
    /// Minor nodes by name: (minor, node type).
    pub nodes: BTreeMap<String, (u32, String)>,
    /// HMA registrations.
    pub hma: BTreeMap<u64, String>,
    /// Every name hma_register was called with.
    pub hma_names: Vec<String>,
    /// The module's modlinkage after mod_install.
    pub installed: Option<u64>,
    /// The dev_ops of the installed driver.
    pub dev_ops: u64,
    /// The attached instance's dip.
    pub dip: u64,
    /// devmap handles.
    pub dhps: BTreeMap<u64, Dhp>,
    /// User mappings.
    pub mappings: BTreeMap<u64, Mapping>,
    /// Contract violations seen.
    pub problems: Vec<String>,
    /// Console output.
    pub console: Vec<String>,
    /// xc_sync calls, and function runs per CPU.
    pub xcalls: (usize, [usize; cpu::NCPU]),
    /// poke_cpu calls.
    pub pokes: usize,
    /// The one harness thread.
    pub thread: u64,
    /// `struct cpu` of each simulated CPU.
    pub cpus: Vec<u64>,
    fpu: bool,
    /// Open files the module reached through getf: `file_t` address -> record.
    pub files: BTreeMap<u64, File>,
    /// getf calls not yet ended by releasef, by descriptor.
    getf_active: BTreeMap<i32, usize>,
    /// The next minor the eventfd device gives an eventfd.
    eventfd_minor: u32,
    /// ddi_umem_lock cookies: cookie -> (user address, length, shadow list, its pages).
    ulocks: BTreeMap<u64, (u64, u64, u64, Vec<u64>)>,
    /// `page_t`s of locked user pages -> frame number.
    upages: BTreeMap<u64, u64>,
    /// The harness thread's held signals (`t_hold`, three words) and pending signals.
    pub sig_hold: [u32; 3],
    /// Pending signals (set by cases).
    pub sig_pending: [u32; 3],
    /// `t_hold` when the current system call entered the kernel.
    entry_hold: Option<[u32; 3]>,
    /// The test process's `struct as` and its hat.
    user_as: u64,
    user_hat: u64,
    /// Data symbols (name -> address).
    pub data: BTreeMap<&'static str, u64>,
    kas_hat: u64,
}

/// The harness kernel.
pub static K: Mutex<Option<Kernel>> = Mutex::new(None);
static NEXT_CPU: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on the kernel state (never while calling into the module).
pub fn k<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    let mut g = K.lock().unwrap_or_else(|e| e.into_inner());
    f(g.as_mut().expect("harness kernel not initialised"))
}

fn problem(msg: String) {
    k(|k| k.problems.push(msg));
}

/// Sets up the kernel state and its data symbols.
pub fn init() {
    let thread = mem::kalloc(0x400, "thread");
    let cpus = (0..cpu::NCPU)
        .map(|i| {
            let c = mem::kalloc(0x100, "cpu");
            // SAFETY: a fresh arena block; cpu_id is the first member.
            unsafe { (c as *mut i32).write(i as i32) };
            c
        })
        .collect();
    let mut kern = Kernel {
        thread,
        cpus,
        ..Kernel::default()
    };
    let maxn = mem::kalloc(8, "data");
    // SAFETY: fresh arena blocks.
    unsafe { (maxn as *mut i32).write(cpu::NCPU as i32) };
    let freq = mem::kalloc(8, "data");
    // SAFETY: as above.
    unsafe { (freq as *mut u64).write(2_000_000_000) };
    let kas = mem::kalloc(0x100, "data");
    let hat = mem::kalloc(0x40, "data");
    // SAFETY: as above; `a_hat` of the kernel's `struct as`.
    unsafe { ((kas + AS_A_HAT) as *mut u64).write(hat) };
    kern.kas_hat = hat;
    let user_as = mem::kalloc(0x100, "data");
    let user_hat = mem::kalloc(0x40, "data");
    // SAFETY: as above; `a_hat` of the process's `struct as`.
    unsafe { ((user_as + AS_A_HAT) as *mut u64).write(user_hat) };
    kern.user_as = user_as;
    kern.user_hat = user_hat;
    kern.data.insert("max_ncpus", maxn);
    kern.data.insert("cpu_freq_hz", freq);
    kern.data.insert("kas", kas);
    kern.data.insert("mod_driverops", mem::kalloc(0x40, "data"));
    let cred = mem::kalloc(0x40, "data");
    let kcred = mem::kalloc(8, "data");
    // SAFETY: fresh arena blocks; `kcred` is a `cred_t *` variable.
    unsafe { (kcred as *mut u64).write(cred) };
    kern.data.insert("kcred", kcred);
    *K.lock().unwrap() = Some(kern);
}

/// A thread entering the kernel (a system call or the module loader): picks the next
/// simulated CPU. On drop, checks that the module left preemption enabled and the FPU free.
pub struct Entry;

impl Entry {
    /// Enters.
    pub fn new() -> Entry {
        let td = k(|k| k.thread);
        let c = NEXT_CPU.fetch_add(1, Ordering::Relaxed) % cpu::NCPU;
        cpu::switch_to(c, td);
        k(|k| k.entry_hold = Some(k.sig_hold));
        Entry
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let p = t_preempt();
        if p != 0 {
            problem(format!("returned to user space with t_preempt {p}"));
            set_t_preempt(0);
        }
        if k(|k| std::mem::take(&mut k.fpu)) {
            problem("returned to user space inside kernel_fpu_begin".into());
        }
        let (at_entry, now) = k(|k| (k.entry_hold.take(), k.sig_hold));
        if at_entry.is_some_and(|h| h != now) {
            problem(format!(
                "returned to user space with the signal mask changed: {at_entry:x?} -> {now:x?}"
            ));
        }
        let open = k(|k| std::mem::take(&mut k.getf_active));
        if !open.is_empty() {
            problem(format!("returned to user space with getf not released: {open:?}"));
        }
    }
}

fn t_preempt() -> i8 {
    let td = k(|k| k.thread);
    // SAFETY: t_preempt of the harness thread blob.
    unsafe { ((td + T_PREEMPT) as *const i8).read_volatile() }
}

fn set_t_preempt(v: i8) {
    let td = k(|k| k.thread);
    // SAFETY: as above.
    unsafe { ((td + T_PREEMPT) as *mut i8).write_volatile(v) };
}

fn cstr(p: u64) -> String {
    if p == 0 {
        return "(null)".into();
    }
    // SAFETY: the module passes NUL-terminated strings.
    unsafe { CStr::from_ptr(p as *const c_char) }
        .to_string_lossy()
        .into_owned()
}

fn format(fmt: u64, args: &[u64]) -> String {
    let f = cstr(fmt);
    let mut out = String::new();
    let mut a = args.iter().copied();
    let mut it = f.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('s') => out.push_str(&cstr(a.next().unwrap_or(0))),
            Some('d') => out.push_str(&(a.next().unwrap_or(0) as i32).to_string()),
            Some('%') => out.push('%'),
            o => out.push_str(&format!("%{}", o.unwrap_or(' '))),
        }
    }
    out
}

// ------------------------------------------------------------ module linkage

extern "C" fn mod_install(ml: u64) -> i32 {
    // SAFETY: the module's modlinkage: ml_rev @0, ml_linkage[0] @8; modldrv: drv_modops @0,
    // drv_dev_ops @16; dev_ops: devo_rev @0, devo_cb_ops @56; cb_ops: cb_flag @112,
    // cb_rev @116.
    let (rev, drv) = unsafe { ((ml as *const i32).read(), ((ml + 8) as *const u64).read()) };
    if rev != 1 || drv == 0 {
        problem(format!("mod_install: ml_rev {rev}, linkage {drv:#x}"));
        return 22;
    }
    // SAFETY: as above.
    let (ops, devops) = unsafe { ((drv as *const u64).read(), ((drv + 16) as *const u64).read()) };
    let driverops = k(|k| k.data["mod_driverops"]);
    if ops != driverops || devops == 0 {
        problem("mod_install: modldrv is not a driver linkage".into());
        return 22;
    }
    // SAFETY: as above.
    let (drev, cb) = unsafe {
        (
            (devops as *const i32).read(),
            ((devops + 56) as *const u64).read(),
        )
    };
    // SAFETY: as above.
    let (flag, cbrev) = unsafe {
        (
            ((cb + 112) as *const i32).read(),
            ((cb + 116) as *const i32).read(),
        )
    };
    if drev != 4 || cbrev != 1 || flag & 0x120 != 0x120 {
        problem(format!(
            "mod_install: devo_rev {drev}, cb_rev {cbrev}, cb_flag {flag:#x}"
        ));
        return 22;
    }
    k(|k| {
        k.installed = Some(ml);
        k.dev_ops = devops;
    });
    0
}

extern "C" fn mod_remove(ml: u64) -> i32 {
    if k(|k| k.installed) != Some(ml) {
        problem("mod_remove of a linkage not installed".into());
        return 22;
    }
    if k(|k| k.dip) != 0 {
        // The framework detaches every instance first; failure keeps the module.
        let (devops, dip) = k(|k| (k.dev_ops, k.dip));
        // SAFETY: devo_detach @40 of the module's dev_ops.
        let detach = unsafe { ((devops + 40) as *const u64).read() };
        let r = crate::kstack::call_int(detach, &[dip, 0]);
        if r != 0 {
            return 16; // EBUSY
        }
        if k(|k| !k.nodes.is_empty()) {
            problem("detach succeeded but left minor nodes".into());
        }
        k(|k| k.dip = 0);
        mem::kfree(dip);
    }
    k(|k| k.installed = None);
    0
}

extern "C" fn mod_info(_ml: u64, _mi: u64) -> i32 {
    1
}

extern "C" fn nodev() -> i32 {
    6
}
extern "C" fn nulldev() -> i32 {
    0
}
extern "C" fn ddi_quiesce_not_needed(_dip: u64) -> i32 {
    0
}

/// Attaches instance 0 of the installed driver (what `add_drv`/the first open does).
pub fn attach() -> Result<(), String> {
    let devops = k(|k| k.dev_ops);
    if devops == 0 {
        return Err("no driver installed".into());
    }
    let dip = mem::kalloc(0x100, "dip");
    k(|k| k.dip = dip);
    // SAFETY: devo_attach @32 of the module's dev_ops.
    let attach = unsafe { ((devops + 32) as *const u64).read() };
    let r = crate::kstack::call_int(attach, &[dip, 0]);
    if r != 0 {
        k(|k| k.dip = 0);
        mem::kfree(dip);
        return Err(format!("attach returned {r}"));
    }
    Ok(())
}

extern "C" fn ddi_create_minor_node(
    dip: u64,
    name: u64,
    spec: i32,
    minor: u32,
    nodetype: u64,
    _flag: i32,
) -> i32 {
    if dip != k(|k| k.dip) || spec != 0x2000 {
        problem("ddi_create_minor_node: not our dip or not S_IFCHR".into());
        return -1;
    }
    let name = cstr(name);
    let nt = cstr(nodetype);
    k(|k| match k.nodes.insert(name, (minor, nt)) {
        None => 0,
        Some(_) => -1,
    })
}

extern "C" fn ddi_remove_minor_node(dip: u64, name: u64) {
    if dip != k(|k| k.dip) {
        problem("ddi_remove_minor_node: not our dip".into());
    }
    k(|k| {
        if name == 0 {
            k.nodes.clear();
        } else {
            k.nodes.remove(&cstr(name));
        }
    });
}

extern "C" fn ddi_get_pid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

// ------------------------------------------------------------ copies

fn kernel_buffer(addr: u64, len: usize) -> bool {
    len == 0 || !mem::user_range(addr, len as u64)
}

extern "C" fn ddi_copyin(u: u64, kbuf: u64, len: usize, flags: i32) -> i32 {
    if !kernel_buffer(kbuf, len) {
        problem(format!("ddi_copyin into user address {kbuf:#x}"));
    }
    if flags & FKIOCTL != 0 {
        if !kernel_buffer(u, len) {
            return -1;
        }
        // SAFETY: both kernel buffers of `len` bytes (FKIOCTL: the caller is the kernel).
        unsafe { std::ptr::copy(u as *const u8, kbuf as *mut u8, len) };
        return 0;
    }
    if mem::copyin(u, kbuf, len) == 0 { 0 } else { -1 }
}

extern "C" fn ddi_copyout(kbuf: u64, u: u64, len: usize, flags: i32) -> i32 {
    if !kernel_buffer(kbuf, len) {
        problem(format!("ddi_copyout from user address {kbuf:#x}"));
    }
    if flags & FKIOCTL != 0 {
        if !kernel_buffer(u, len) {
            return -1;
        }
        // SAFETY: as in ddi_copyin.
        unsafe { std::ptr::copy(kbuf as *const u8, u as *mut u8, len) };
        return 0;
    }
    if mem::copyout(kbuf, u, len) == 0 { 0 } else { -1 }
}

// ------------------------------------------------------------ memory

extern "C" fn kmem_alloc(size: usize, _flag: i32) -> u64 {
    let p = mem::kalloc(size.max(1), "kmem");
    // kmem_alloc(9F) does not zero: fill with junk so reliance on zeroing shows.
    // SAFETY: the block just allocated.
    unsafe { std::ptr::write_bytes(p as *mut u8, 0xa5, size) };
    k(|k| k.kmem.insert(p, size));
    p
}

extern "C" fn kmem_free(p: u64, size: usize) {
    match k(|k| k.kmem.remove(&p)) {
        Some(s) if s == size => {
            mem::kfree(p);
        }
        Some(s) => problem(format!(
            "kmem_free({p:#x}, {size}) of a {s}-byte allocation"
        )),
        None => problem(format!("kmem_free({p:#x}) of memory kmem_alloc did not return")),
    }
}

extern "C" fn ddi_umem_alloc(size: usize, _flag: i32, cookiep: u64) -> u64 {
    let pages = (size as u64).div_ceil(4096);
    let Some(va) = mem::page_alloc(pages) else {
        return 0;
    };
    let c = mem::kalloc(32, "umem cookie");
    k(|k| k.umem.insert(c, (va, pages)));
    // SAFETY: the module's out-pointer.
    unsafe { (cookiep as *mut u64).write(c) };
    va
}

extern "C" fn ddi_umem_free(c: u64) {
    let mapped = k(|k| k.dhps.values().filter(|d| d.cookie == c).count());
    if mapped != 0 {
        problem(format!(
            "ddi_umem_free of a cookie {mapped} live mapping(s) still use"
        ));
    }
    match k(|k| k.umem.remove(&c)) {
        Some((va, pages)) => {
            if !mem::page_free(va, pages) {
                problem("ddi_umem_free: pages do not match".into());
            }
            mem::kfree(c);
        }
        None => problem("ddi_umem_free of an unknown cookie".into()),
    }
}

/// The frame the harness gives a user page (user memory is the test program's own: a fake
/// physical address above the pool's, page for page).
fn user_pfn(va: u64) -> u64 {
    (0x10_0000_0000 + (va & !0xfff)) >> 12
}

/// `hat_getpfnum(hat, va)`: for the kernel's hat (`kas.a_hat`), the frame of a kernel page;
/// for the process's hat, the frame of a user page that is locked (translations of unlocked
/// user pages may go at any time: `PFN_INVALID`).
pub extern "C" fn hat_getpfnum(hat: u64, va: u64) -> u64 {
    let (kas_hat, user_hat) = k(|k| (k.kas_hat, k.user_hat));
    if hat == user_hat {
        let locked = k(|k| {
            k.ulocks
                .values()
                .any(|(a, l, _, _)| va >= *a && va < a + l)
        });
        return if locked { user_pfn(va) } else { u64::MAX };
    }
    if hat != kas_hat {
        problem("hat_getpfnum with a hat that is neither kas.a_hat nor the process's".into());
    }
    mem::kextract(va) >> 12
}

/// ddi_umem_lock(9F) over the test program's memory: flags `DDI_UMEMLOCK_READ` (1) and/or
/// `DDI_UMEMLOCK_WRITE` (2) only (`LONGTERM` needs umem_lockmemory's callback: `EINVAL`),
/// page-aligned address and length (`EINVAL`); every page must be readable, and writable
/// for a write lock (`EFAULT`). The cookie is laid out as `sys/ddidevmap.h` says: `size`
/// @0, `cvaddr` @8, `type` @24 (`UMEM_LOCKED`), `pparray` @32 (one `page_t` per page),
/// `asp` @48 (the process's `struct as`). May block.
pub extern "C" fn ddi_umem_lock(addr: u64, len: usize, flags: i32, cookiep: u64) -> i32 {
    may_block("ddi_umem_lock");
    // SAFETY: the module's out-pointer (NULL on every error, as umem_lockmemory does).
    unsafe { (cookiep as *mut u64).write(0) };
    let len = len as u64;
    if flags & !3 != 0 || flags & 3 == 0 || addr & 0xfff != 0 || len & 0xfff != 0 || len == 0 {
        return 22;
    }
    if !mem::user_range(addr, len) {
        return 14;
    }
    for page in (addr..addr + len).step_by(4096) {
        let mut b = 0u8;
        if mem::copyin(page, (&raw mut b) as u64, 1) != 0 {
            return 14;
        }
        // A write lock breaks copy-on-write: the page must be writable (the byte is put back
        // unchanged; the harness is single-threaded).
        if flags & 2 != 0 && mem::copyout((&raw const b) as u64, page, 1) != 0 {
            return 14;
        }
    }
    let n = (len / 4096) as usize;
    let array = mem::kalloc(n * 8, "umem shadow list");
    let pages: Vec<u64> = (0..n as u64)
        .map(|i| {
            let pp = mem::kalloc(0x80, "page_t");
            k(|k| k.upages.insert(pp, user_pfn(addr + i * 4096)));
            // SAFETY: the shadow list block of `n` entries.
            unsafe { ((array + i * 8) as *mut u64).write(pp) };
            pp
        })
        .collect();
    let c = mem::kalloc(0x80, "umem lock cookie");
    let user_as = k(|k| k.user_as);
    // SAFETY: a fresh 128-byte block; the module's out-pointer.
    unsafe {
        std::ptr::write_bytes(c as *mut u8, 0, 0x80);
        (c as *mut u64).write(len);
        ((c + 8) as *mut u64).write(addr);
        ((c + 24) as *mut u32).write(0x400);
        ((c + 32) as *mut u64).write(array);
        ((c + 48) as *mut u64).write(user_as);
        (cookiep as *mut u64).write(c);
    }
    k(|k| k.ulocks.insert(c, (addr, len, array, pages)));
    0
}

/// ddi_umem_unlock(9F): a cookie of ddi_umem_lock, once.
pub extern "C" fn ddi_umem_unlock(c: u64) {
    let Some((_, _, array, pages)) = k(|k| k.ulocks.remove(&c)) else {
        problem(format!("ddi_umem_unlock({c:#x}) of a cookie ddi_umem_lock did not return"));
        return;
    };
    for pp in pages {
        k(|k| k.upages.remove(&pp));
        mem::kfree(pp);
    }
    mem::kfree(array);
    mem::kfree(c);
}

/// `page_pptonum(pp)`: the frame of a locked user page.
pub extern "C" fn page_pptonum(pp: u64) -> u64 {
    k(|k| k.upages.get(&pp).copied()).unwrap_or_else(|| {
        problem(format!("page_pptonum({pp:#x}) of a page that is not locked"));
        u64::MAX
    })
}

// ------------------------------------------------------------ locks

extern "C" fn mutex_init(m: u64, _name: u64, ty: i32, arg: u64) {
    if ty != 4 {
        problem(format!("mutex_init type {ty} (DDI drivers use MUTEX_DRIVER)"));
    }
    let spin = arg > 10;
    if arg != 0 && !spin {
        problem(format!("mutex_init with interrupt priority {arg} at or below LOCK_LEVEL"));
    }
    k(|k| {
        if k.locks.insert(m, (false, spin)).is_some() {
            k.problems.push("mutex_init of a live mutex".into());
        }
    });
}
extern "C" fn mutex_destroy(m: u64) {
    k(|k| match k.locks.remove(&m) {
        Some((false, _)) => {}
        Some((true, _)) => k.problems.push("mutex_destroy of a held mutex".into()),
        None => k.problems.push("mutex_destroy of an unknown mutex".into()),
    });
}
extern "C" fn mutex_enter(m: u64) {
    k(|k| match k.locks.get_mut(&m) {
        Some((held, _)) if !*held => *held = true,
        Some(_) => k.problems.push("mutex_enter of a held mutex (deadlock)".into()),
        None => k.problems.push("mutex_enter of an unknown mutex".into()),
    });
}
extern "C" fn mutex_exit(m: u64) {
    k(|k| match k.locks.get_mut(&m) {
        Some((held, _)) if *held => *held = false,
        _ => k.problems.push("mutex_exit of a mutex not held".into()),
    });
}

/// condvar(9F) `cv_init`: `CV_DRIVER` (1) only, on a condition variable not already live.
extern "C" fn cv_init(cv: u64, _name: u64, ty: i32, _arg: u64) {
    if ty != 1 {
        problem(format!("cv_init type {ty} (DDI drivers use CV_DRIVER)"));
    }
    k(|k| {
        if k.cvs.insert(cv, 0).is_some() {
            k.problems.push("cv_init of a live condition variable".into());
        }
    });
}
/// `cv_destroy`: of a live condition variable.
extern "C" fn cv_destroy(cv: u64) {
    if k(|k| k.cvs.remove(&cv)).is_none() {
        problem("cv_destroy of an unknown condition variable".into());
    }
}
/// `cv_broadcast`: wakes every waiter (the harness has one thread, so none can be waiting).
extern "C" fn cv_broadcast(cv: u64) {
    k(|k| match k.cvs.get_mut(&cv) {
        Some(n) => *n += 1,
        None => k.problems.push("cv_broadcast of an unknown condition variable".into()),
    });
}
/// `cv_wait_sig(cv, m)`: with `m` held, drops it, sleeps until woken or a signal arrives,
/// retakes it; 0 when a signal ended the wait. The harness's one thread has nobody to wake
/// it, so a wait without a deliverable signal would sleep forever: that is reported as a
/// problem and ends as if a signal had arrived.
extern "C" fn cv_wait_sig(cv: u64, m: u64) -> i32 {
    let ok = k(|k| k.cvs.contains_key(&cv) && matches!(k.locks.get(&m), Some((true, _))));
    if !ok {
        problem("cv_wait_sig on an unknown condition variable or without its mutex".into());
        return 0;
    }
    if issig(0) == 0 {
        problem("cv_wait_sig with no signal pending: the single harness thread would sleep forever".into());
    }
    0
}

// ------------------------------------------------------------ messages

extern "C" fn cmn_err(level: i32, fmt: u64, a: u64, b: u64, c: u64, d: u64) {
    let s = format(fmt, &[a, b, c, d]);
    let tag = match level {
        0 => "",
        1 => "NOTICE: ",
        2 => "WARNING: ",
        _ => "PANIC: ",
    };
    k(|k| k.console.push(format!("{tag}{s}")));
}

extern "C" fn panic(fmt: u64, a: u64, b: u64, c: u64, d: u64, e: u64) -> ! {
    eprintln!("panic: {}", format(fmt, &[a, b, c, d, e]));
    std::process::abort()
}

// ------------------------------------------------------------ CPUs, threads

extern "C" fn curcpup() -> u64 {
    k(|k| k.cpus[cpu::CUR_CPU.load(Ordering::Relaxed)])
}
extern "C" fn threadp() -> u64 {
    k(|k| k.thread)
}
extern "C" fn kpreempt(asyncspl: i32) {
    if asyncspl != -1 || t_preempt() != 0 {
        problem(format!(
            "kpreempt({asyncspl}) with t_preempt {}",
            t_preempt()
        ));
    }
}
extern "C" fn poke_cpu(c: i32) {
    if c < 0 || c as usize >= cpu::NCPU {
        problem(format!("poke_cpu({c})"));
    }
    k(|k| k.pokes += 1);
}
extern "C" fn cpuset_alloc(_km: i32) -> u64 {
    let s = mem::kalloc(64, "cpuset");
    k(|k| k.cpusets.insert(s, ()));
    s
}
extern "C" fn cpuset_free(s: u64) {
    if k(|k| k.cpusets.remove(&s)).is_none() {
        problem("cpuset_free of an unknown set".into());
    }
    mem::kfree(s);
}
extern "C" fn cpuset_all(s: u64) {
    // SAFETY: a set from cpuset_alloc (64 bytes): one bit per CPU.
    unsafe { (s as *mut u64).write((1u64 << cpu::NCPU) - 1) };
}
extern "C" fn xc_sync(a1: u64, a2: u64, a3: u64, set: u64, func: u64) {
    if !k(|k| k.cpusets.contains_key(&set)) {
        problem("xc_sync with a set cpuset_alloc did not return".into());
        return;
    }
    // SAFETY: the set's bits.
    let bits = unsafe { (set as *const u64).read() };
    let me = cpu::CUR_CPU.load(Ordering::Relaxed);
    let td = k(|k| k.thread);
    k(|k| k.xcalls.0 += 1);
    for c in 0..cpu::NCPU {
        if bits & (1 << c) == 0 {
            continue;
        }
        cpu::switch_to(c, td);
        // The module's xc_func_t, `int (*)(xc_arg_t, xc_arg_t, xc_arg_t)`, runs with
        // preemption disabled on each CPU.
        set_t_preempt(t_preempt() + 1);
        crate::kstack::call(func, &[a1, a2, a3]);
        set_t_preempt(t_preempt() - 1);
        k(|k| k.xcalls.1[c] += 1);
    }
    cpu::switch_to(me, td);
}
extern "C" fn kernel_fpu_begin(kfpu: u64, flags: u32) {
    if kfpu != 0 || flags != KFPU_NO_STATE || t_preempt() <= 0 {
        problem(format!(
            "kernel_fpu_begin({kfpu:#x}, {flags}) with t_preempt {}",
            t_preempt()
        ));
    }
    if k(|k| std::mem::replace(&mut k.fpu, true)) {
        problem("kernel_fpu_begin nested".into());
    }
}
extern "C" fn kernel_fpu_end(_kfpu: u64, _flags: u32) {
    if !k(|k| std::mem::replace(&mut k.fpu, false)) {
        problem("kernel_fpu_end without kernel_fpu_begin".into());
    }
}
/// `issig(JUSTLOOKING)`: whether a signal is pending that the thread does not hold.
extern "C" fn issig(why: i32) -> i32 {
    if why != 0 {
        problem(format!("issig({why}): the module may only look (JUSTLOOKING)"));
    }
    k(|k| {
        let deliverable = k
            .sig_pending
            .iter()
            .zip(k.sig_hold)
            .any(|(p, h)| p & !h != 0);
        i32::from(deliverable)
    })
}

/// `SIGKILL` (9) and `SIGSTOP` (23) can never be held (`CANTMASK0`).
const CANTMASK0: u32 = (1 << 8) | (1 << 22);

/// `lwp_sigmask(how, bits0, bits1, bits2, bits3)`: `SIG_BLOCK` (1), `SIG_UNBLOCK` (2) or
/// `SIG_SETMASK` (3) on the calling thread's held signals (`bits3` unused; SIGKILL and SIGSTOP
/// never held); returns the previous words 0 and 1 as an `rval_t` (word 0 low).
extern "C" fn lwp_sigmask(how: i32, b0: u32, b1: u32, b2: u32, _b3: u32) -> i64 {
    let bits = [b0 & !CANTMASK0, b1, b2];
    k(|k| {
        let old = k.sig_hold;
        for (h, b) in k.sig_hold.iter_mut().zip(bits) {
            match how {
                1 => *h |= b,
                2 => *h &= !b,
                3 => *h = b,
                _ => {}
            }
        }
        if !(1..=3).contains(&how) {
            k.problems.push(format!("lwp_sigmask with how {how}"));
        }
        (u64::from(old[0]) | (u64::from(old[1]) << 32)) as i64
    })
}
extern "C" fn gethrtime() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

// ------------------------------------------------------------ HMA

/// The host-save page HMA points every CPU's `VM_HSAVE_PA` at (a fake physical address).
pub const HMA_HSAVE: u64 = 0x7_7700_0000;

extern "C" fn hma_register(name: u64) -> u64 {
    let name = cstr(name);
    let first = k(|k| {
        k.hma_names.push(name.clone());
        k.hma.is_empty()
    });
    if first {
        // HMA enables SVM on every CPU for its registered hypervisors.
        for c in 0..cpu::NCPU {
            let efer = cpu::msr_read(c, cpu::MSR_EFER);
            cpu::msr_set(c, cpu::MSR_EFER, efer | cpu::EFER_SVME);
            cpu::msr_set(c, cpu::MSR_VM_HSAVE_PA, HMA_HSAVE + c as u64 * 4096);
        }
    }
    let reg = mem::kalloc(32, "hma registration");
    k(|k| k.hma.insert(reg, name));
    reg
}

extern "C" fn hma_unregister(reg: u64) {
    if k(|k| k.hma.remove(&reg)).is_none() {
        problem("hma_unregister of an unknown registration".into());
        return;
    }
    mem::kfree(reg);
}

// ------------------------------------------------------------ devmap

/// `devmap_callback_ctl`: devmap_map @8, devmap_access @16, devmap_dup @24, devmap_unmap @32.
fn callback(ctl: u64, off: u64) -> u64 {
    if ctl == 0 {
        return 0;
    }
    // SAFETY: the module's devmap_callback_ctl.
    unsafe { ((ctl + off) as *const u64).read() }
}

#[allow(clippy::too_many_arguments)]
extern "C" fn devmap_umem_setup(
    dhp: u64,
    dip: u64,
    callbacks: u64,
    cookie: u64,
    off: i64,
    len: usize,
    _maxprot: u32,
    _flags: u32,
    _acc: u64,
) -> i32 {
    if dip != k(|k| k.dip) {
        problem("devmap_umem_setup with a dip that is not ours".into());
    }
    let Some((_, pages)) = k(|k| k.umem.get(&cookie).copied()) else {
        problem("devmap_umem_setup with an unknown cookie".into());
        return 22;
    };
    if off < 0 || off as u64 + len as u64 > pages * 4096 || len == 0 {
        return 22;
    }
    if callbacks != 0 {
        // SAFETY: devmap_rev @0 of the module's devmap_callback_ctl.
        let rev = unsafe { (callbacks as *const i32).read() };
        if rev != 1 {
            problem(format!("devmap_callback_ctl revision {rev}"));
        }
    }
    k(|k| match k.dhps.get_mut(&dhp) {
        Some(d) => {
            d.callbacks = callbacks;
            d.cookie = cookie;
            d.set = true;
            0
        }
        None => {
            k.problems.push("devmap_umem_setup with an unknown handle".into());
            22
        }
    })
}

extern "C" fn devmap_default_access(
    dhp: u64,
    _pvt: u64,
    _off: i64,
    _len: usize,
    _ty: u32,
    _rw: u32,
) -> i32 {
    if k(|k| k.dhps.get(&dhp).is_some_and(|d| d.set)) {
        0
    } else {
        problem("devmap_default_access on a handle not set up".into());
        22
    }
}

/// `ddi_devmap_segmap(9F)`: asks the driver's devmap(9E) for each piece of the range (one
/// page at a time here, as the driver answers), runs `devmap_map`, resolves the first fault
/// of each page through `devmap_access` (a failing fault becomes a page whose every access
/// raises SIGBUS), and maps the umem pages into the process.
#[allow(clippy::too_many_arguments)]
extern "C" fn ddi_devmap_segmap(
    dev: u64,
    off: i64,
    _as: u64,
    addrp: u64,
    len: i64,
    prot: u32,
    _maxprot: u32,
    flags: u32,
    _cred: u64,
) -> i32 {
    let devops = k(|k| k.dev_ops);
    // SAFETY: devo_cb_ops @56, cb_devmap @64 of cb_ops.
    let devmap = unsafe { ((((devops + 56) as *const u64).read() + 64) as *const u64).read() };
    let len = (len as u64).div_ceil(4096) * 4096;
    let mut dhps = Vec::new();
    let mut backing = Vec::new();
    let undo = |dhps: &[u64]| {
        for d in dhps {
            let (pvt, ctl) = k(|k| k.dhps.get(d).map_or((0, 0), |x| (x.pvt, x.callbacks)));
            let unmap = callback(ctl, 32);
            if unmap != 0 {
                crate::kstack::call(unmap, &[*d, pvt, 0, 4096, 0, 0, 0, 0]);
            }
            k(|k| k.dhps.remove(d));
            mem::kfree(*d);
        }
    };
    let mut at = 0u64;
    while at < len {
        let dhp = mem::kalloc(64, "devmap handle");
        let o = off as u64 + at;
        k(|k| {
            k.dhps.insert(
                dhp,
                Dhp {
                    off: o,
                    ..Dhp::default()
                },
            )
        });
        let maplen = mem::kalloc(8, "maplen");
        // The module's devmap(9E) entry point.
        let r = crate::kstack::call_int(devmap, &[dev, dhp, o, len - at, maplen, 0]);
        // SAFETY: the arena word.
        let ml = unsafe { (maplen as *const u64).read() };
        mem::kfree(maplen);
        let d = k(|k| k.dhps.get(&dhp).cloned()).unwrap_or_default();
        if r != 0 || !d.set || ml != 4096 {
            k(|k| k.dhps.remove(&dhp));
            mem::kfree(dhp);
            undo(&dhps);
            return if r != 0 { r } else { 22 };
        }
        dhps.push(dhp);
        let map = callback(d.callbacks, 8);
        let mut pvt = 0u64;
        if map != 0 {
            let pv = mem::kalloc(8, "pvtp");
            // The module's devmap_map(9E).
            let r = crate::kstack::call_int(map, &[dhp, dev, flags as u64, o, 4096, pv]);
            // SAFETY: the arena word.
            pvt = unsafe { (pv as *const u64).read() };
            mem::kfree(pv);
            if r != 0 {
                k(|k| k.dhps.remove(&dhp));
                dhps.pop();
                mem::kfree(dhp);
                undo(&dhps);
                return r;
            }
            k(|k| {
                if let Some(x) = k.dhps.get_mut(&dhp) {
                    x.pvt = pvt;
                }
            });
        }
        let access = callback(d.callbacks, 16);
        let ok = if access == 0 {
            true
        } else {
            // The module's devmap_access(9E) for the first fault (F_INVAL, S_READ).
            crate::kstack::call_int(access, &[dhp, pvt, o, 4096, 0, 1]) == 0
        };
        let va = k(|k| k.umem.get(&d.cookie).map(|x| x.0)).unwrap_or(0);
        backing.push(if ok {
            mem::pa_to_pool(mem::kextract(va))
        } else {
            Some((empty_file(), 0))
        });
        at += 4096;
    }
    // SAFETY: a fresh reservation, then each page replaced by a shared mapping of its pool
    // page (or of an empty file: SIGBUS).
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            undo(&dhps);
            return 12;
        }
        let mut p = 0;
        if prot & 1 != 0 {
            p |= libc::PROT_READ;
        }
        if prot & 2 != 0 {
            p |= libc::PROT_WRITE;
        }
        for (i, b) in backing.iter().enumerate() {
            let Some((fd, foff)) = b else {
                libc::munmap(base, len as usize);
                undo(&dhps);
                return 22;
            };
            let at = (base as u64 + i as u64 * 4096) as *mut libc::c_void;
            let m = libc::mmap(
                at,
                4096,
                p,
                libc::MAP_SHARED | libc::MAP_FIXED,
                *fd,
                *foff as i64,
            );
            if m == libc::MAP_FAILED {
                libc::munmap(base, len as usize);
                undo(&dhps);
                return 12;
            }
        }
        (addrp as *mut u64).write(base as u64);
        k(|k| k.mappings.insert(base as u64, Mapping { len, dhps }));
    }
    0
}

/// An empty file: its pages fault with SIGBUS.
fn empty_file() -> i32 {
    static FD: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    // SAFETY: a new, empty memfd kept for the process's lifetime.
    *FD.get_or_init(|| unsafe {
        libc::memfd_create(c"kvmport-harness-beyond".as_ptr(), libc::MFD_CLOEXEC)
    })
}

/// munmap of a devmap mapping: each handle's `devmap_unmap(9E)`, whole (no remaining pieces).
pub fn unmap(addr: u64, len: usize) {
    let m = k(|k| k.mappings.remove(&addr));
    // SAFETY: the caller's mapping.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    let Some(m) = m else { return };
    if m.len != (len as u64).div_ceil(4096) * 4096 {
        problem("partial munmap of a device mapping".into());
    }
    let _e = Entry::new();
    for d in m.dhps {
        let x = k(|k| k.dhps.remove(&d)).unwrap_or_default();
        let unmap = callback(x.callbacks, 32);
        if unmap != 0 {
            // The module's devmap_unmap(9E): the whole handle goes, no new pieces.
            crate::kstack::call(unmap, &[d, x.pvt, x.off, 4096, 0, 0, 0, 0]);
        }
        mem::kfree(d);
    }
}

// ------------------------------------------------------------ files, the eventfd device

/// The eventfd driver's major number (`ddi_name_to_major("eventfd")`).
pub const EVENTFD_MAJOR: u32 = 0x9a;
/// `DDI_MAJOR_T_NONE`.
const MAJOR_NONE: u32 = u32::MAX;
/// `file_t` (`sys/file.h`, LP64): `f_tlock` @0, `f_flag` @8, `f_vnode` @16, `f_count` @48.
const F_FLAG: u64 = 8;
const F_VNODE: u64 = 16;
const F_COUNT: u64 = 48;
/// `vnode_t`: `v_type` @40, `v_rdev` @48 (the public fields of `sys/vnode.h`).
const V_TYPE: u64 = 40;
const V_RDEV: u64 = 48;
/// `enum vtype`.
const VREG: i32 = 1;
const VDIR: i32 = 2;
const VBLK: i32 = 3;
const VCHR: i32 = 4;
const VFIFO: i32 = 6;
const VSOCK: i32 = 9;
/// `uio_t` (`sys/uio.h`, LP64): `uio_iov` @0, `uio_iovcnt` @8, `uio_loffset` @16,
/// `uio_segflg` @24, `uio_fmode` @28, `uio_resid` @40; `iovec_t` {base @0, len @8}.
const UIO_SYSSPACE: i32 = 1;
const FNDELAY: u16 = 0x04;
const FNONBLOCK: u16 = 0x80;
/// `EVENTFD_VALMAX` (`sys/eventfd.h`): the largest counter value.
pub const EVENTFD_VALMAX: u64 = u64::MAX - 1;

/// What a harness file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A file of the module's own device (a `/dev/kvm` clone).
    Kvm,
    /// A file of the eventfd device: one cloned minor per eventfd.
    EventFd,
    /// Anything else (a pipe, a regular file, another device).
    Other,
}

/// An open file (`file_t`) as the harness kernel keeps it. A host descriptor of the test
/// program stands for the user's descriptor; the record keeps a duplicate of it (`dup`), so
/// the open file lives as long as the `file_t` does, as on illumos: the user's close drops
/// the descriptor's reference, the last `closef` closes the file (and, for the eventfd
/// device, its minor: its close(9E)). The eventfd device keeps its counter in the host
/// eventfd, so user space reads what the module signalled.
#[derive(Debug)]
pub struct File {
    /// The user's descriptor the file was found under.
    pub fd: i32,
    /// Whether that descriptor still counts as a reference (`f_count`).
    pub user_ref: bool,
    /// The harness's duplicate of the host descriptor.
    pub dup: i32,
    /// The vnode.
    pub vnode: u64,
    /// What it is.
    pub kind: FileKind,
    /// Successful 8-byte writes to the eventfd device.
    pub writes: u64,
}

fn rd_i32(a: u64) -> i32 {
    // SAFETY: callers read harness-allocated kernel objects.
    unsafe { (a as *const i32).read() }
}

fn wr_i32(a: u64, v: i32) {
    // SAFETY: as above.
    unsafe { (a as *mut i32).write(v) }
}

/// The count of a file.
pub fn f_count(fp: u64) -> i32 {
    rd_i32(fp + F_COUNT)
}

/// Whether host descriptors `a` and `b` are the same open file: `kcmp(KCMP_FILE)`, else (no
/// kcmp) the same inode and, for eventfds, the same `eventfd-id`.
fn same_file(a: i32, b: i32) -> bool {
    // SAFETY: kcmp compares two of our own descriptors; no memory is passed.
    let r = unsafe {
        let pid = libc::getpid();
        libc::syscall(libc::SYS_kcmp, pid, pid, 0, a, b)
    };
    if r >= 0 {
        return r == 0;
    }
    let id = |fd: i32| {
        // SAFETY: fstat into a zeroed local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return None;
        }
        let efd = fdinfo(fd, "eventfd-id:");
        Some((st.st_dev, st.st_ino, efd))
    };
    id(a).is_some_and(|x| Some(x) == id(b))
}

/// A field of `/proc/self/fdinfo/<fd>`.
fn fdinfo(fd: i32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

/// The counter of a host eventfd, read without consuming it.
pub fn eventfd_value(fd: i32) -> Option<u64> {
    u64::from_str_radix(&fdinfo(fd, "eventfd-count:")?, 16).ok()
}

fn host_fd_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only asks about the descriptor.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Frees a file whose count reached 0.
fn file_free(fp: u64) {
    let Some(f) = k(|k| k.files.remove(&fp)) else {
        return;
    };
    // SAFETY: our duplicate.
    unsafe { libc::close(f.dup) };
    k(|k| {
        if let Some((true, _)) = k.locks.remove(&fp) {
            k.problems.push("file freed with f_tlock held".into());
        }
    });
    mem::kfree(f.vnode);
    mem::kfree(fp);
}

/// Drops one reference of `fp` (closef's count arithmetic); frees it at 0.
fn file_unref(fp: u64) {
    let n = f_count(fp);
    if n <= 0 {
        problem(format!("closef of a file with f_count {n}"));
        return;
    }
    wr_i32(fp + F_COUNT, n - 1);
    if n == 1 {
        if k(|k| k.files.get(&fp).is_some_and(|f| f.user_ref)) {
            problem("the module dropped a reference it did not hold (f_count 0, fd open)".into());
        }
        file_free(fp);
    }
}

/// Notices user closes (the test program closes host descriptors behind the harness's back):
/// a file whose descriptor no longer names it loses that reference.
pub fn sync_files() {
    let stale: Vec<u64> = k(|k| {
        k.files
            .iter()
            .filter(|(_, f)| f.user_ref)
            .filter(|(_, f)| !(host_fd_open(f.fd) && same_file(f.fd, f.dup)))
            .map(|(fp, _)| *fp)
            .collect()
    });
    for fp in stale {
        k(|k| {
            if let Some(f) = k.files.get_mut(&fp) {
                f.user_ref = false;
            }
        });
        file_unref(fp);
    }
}

/// References the module holds on files (beyond the user's descriptors).
pub fn module_file_refs() -> usize {
    let fps: Vec<(u64, bool)> = k(|k| k.files.iter().map(|(fp, f)| (*fp, f.user_ref)).collect());
    fps.iter()
        .map(|(fp, user)| (f_count(*fp) - i32::from(*user)).max(0) as usize)
        .sum()
}

fn file_new(fd: i32) -> u64 {
    let (kind, vtype, rdev) = if let Some(dev) = crate::dev_of(fd) {
        (FileKind::Kvm, VCHR, dev)
    } else if std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventfd]")
    {
        let minor = k(|k| {
            k.eventfd_minor += 1;
            k.eventfd_minor
        });
        (
            FileKind::EventFd,
            VCHR,
            (u64::from(EVENTFD_MAJOR) << 32) | u64::from(minor),
        )
    } else {
        // SAFETY: fstat into a zeroed local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::fstat(fd, &mut st) };
        let t = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => VREG,
            libc::S_IFDIR => VDIR,
            libc::S_IFBLK => VBLK,
            libc::S_IFCHR => VCHR,
            libc::S_IFIFO => VFIFO,
            libc::S_IFSOCK => VSOCK,
            _ => 0,
        };
        (FileKind::Other, t, st.st_rdev)
    };
    // SAFETY: duplicates a descriptor the test program holds.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    let fp = mem::kalloc(64, "file_t");
    let vp = mem::kalloc(0x100, "vnode");
    // SAFETY: fresh arena blocks of those sizes.
    unsafe {
        std::ptr::write_bytes(fp as *mut u8, 0, 64);
        std::ptr::write_bytes(vp as *mut u8, 0, 0x100);
        ((fp + F_FLAG) as *mut u16).write(3); // FREAD|FWRITE
        ((fp + F_VNODE) as *mut u64).write(vp);
        ((vp + V_TYPE) as *mut i32).write(vtype);
        ((vp + V_RDEV) as *mut u64).write(rdev);
    }
    wr_i32(fp + F_COUNT, 1);
    k(|k| {
        // f_tlock, initialised by the kernel (an adaptive mutex).
        k.locks.insert(fp, (false, false));
        k.files.insert(
            fp,
            File {
                fd,
                user_ref: true,
                dup,
                vnode: vp,
                kind,
                writes: 0,
            },
        )
    });
    fp
}

/// `getf(fd)`: the calling process's open file, held until `releasef(fd)`; NULL if `fd` is
/// not open. The same open file gives the same `file_t`.
pub extern "C" fn getf(fd: i32) -> u64 {
    if !host_fd_open(fd) {
        return 0;
    }
    sync_files();
    let found = k(|k| {
        k.files
            .iter()
            .find(|(_, f)| f.user_ref && f.fd == fd)
            .map(|(fp, _)| *fp)
    });
    let fp = found.unwrap_or_else(|| file_new(fd));
    k(|k| *k.getf_active.entry(fd).or_insert(0) += 1);
    fp
}

/// `releasef(fd)`: ends a `getf(fd)`.
pub extern "C" fn releasef(fd: i32) {
    let ok = k(|k| match k.getf_active.get_mut(&fd) {
        Some(n) => {
            *n -= 1;
            if *n == 0 {
                k.getf_active.remove(&fd);
            }
            true
        }
        None => false,
    });
    if !ok {
        problem(format!("releasef({fd}) without getf"));
    }
}

/// Whether the caller may block: preemption enabled and no spin mutex held.
fn may_block(what: &str) -> bool {
    let spin = k(|k| k.locks.values().any(|(held, spin)| *held && *spin));
    let p = t_preempt();
    if spin || p != 0 {
        problem(format!(
            "{what} (may block) with t_preempt {p}{}",
            if spin { " and a spin mutex held" } else { "" }
        ));
        return false;
    }
    true
}

/// `closef(fp)`: drops a reference; the last one closes the file. The caller must not hold
/// `f_tlock` and must be able to block.
extern "C" fn closef(fp: u64) -> i32 {
    if !k(|k| k.files.contains_key(&fp)) {
        problem(format!("closef({fp:#x}) of an unknown file"));
        return 9;
    }
    may_block("closef");
    if k(|k| k.locks.get(&fp).is_some_and(|l| l.0)) {
        problem("closef with f_tlock held".into());
        return 0;
    }
    file_unref(fp);
    0
}

/// `fop_write` (`VOP_WRITE`) on a vnode: specfs hands a character device's uio to its
/// write(9E). The eventfd device's write(9E), as eventfd(3C)/eventfd.c document it: fewer
/// than 8 bytes left is `EINVAL`; 8 bytes are moved out of the uio (which advances); a value
/// above `EVENTFD_VALMAX` is `EINVAL`; if adding it would pass `EVENTFD_VALMAX`, the write
/// fails with `EAGAIN` when the uio's `uio_fmode` has `FNONBLOCK`/`FNDELAY` and otherwise
/// waits for a reader (here a contract problem: the module must not wait); else the value is
/// added. The module's own device has no write(9E) (`nodev`, `ENXIO`).
extern "C" fn fop_write(vp: u64, uio: u64, _ioflag: i32, cr: u64, _ct: u64) -> i32 {
    let f = k(|k| {
        k.files
            .iter()
            .find(|(_, f)| f.vnode == vp)
            .map(|(fp, f)| (*fp, f.kind, f.dup))
    });
    let Some((fp, kind, dup)) = f else {
        problem(format!("fop_write on an unknown vnode {vp:#x}"));
        return 22;
    };
    may_block("fop_write");
    if f_count(fp) <= 0 {
        problem("fop_write on a closed file".into());
        return 9;
    }
    if cr == 0 {
        problem("fop_write without credentials".into());
    }
    match kind {
        FileKind::Kvm => return 6,
        FileKind::Other => return 22,
        FileKind::EventFd => {}
    }
    // SAFETY: the module's uio_t and its iovec array (checked below to be kernel memory).
    let (iov, iovcnt, segflg, fmode, resid) = unsafe {
        (
            (uio as *const u64).read(),
            ((uio + 8) as *const i32).read(),
            ((uio + 24) as *const i32).read(),
            ((uio + 28) as *const u16).read(),
            ((uio + 40) as *const i64).read(),
        )
    };
    if segflg != UIO_SYSSPACE || iovcnt != 1 || !kernel_buffer(iov, 16) {
        problem(format!(
            "fop_write uio: segflg {segflg}, iovcnt {iovcnt}, iov {iov:#x} (want one kernel iovec)"
        ));
        return 14;
    }
    if resid < 8 {
        return 22;
    }
    // SAFETY: the iovec (kernel memory, checked above).
    let (base, len) = unsafe { ((iov as *const u64).read(), ((iov + 8) as *const u64).read()) };
    if len < 8 || !kernel_buffer(base, 8) || base == 0 {
        problem(format!("fop_write iovec {base:#x}/{len} is not 8 kernel bytes"));
        return 14;
    }
    // uiomove(&val, 8, UIO_WRITE, uio).
    // SAFETY: 8 kernel bytes (checked above); then the uio and iovec advance.
    let val = unsafe {
        let v = (base as *const u64).read_unaligned();
        (iov as *mut u64).write(base + 8);
        ((iov + 8) as *mut u64).write(len - 8);
        ((uio + 16) as *mut i64).write(((uio + 16) as *const i64).read() + 8);
        ((uio + 40) as *mut i64).write(resid - 8);
        v
    };
    if val > EVENTFD_VALMAX {
        return 22;
    }
    let Some(now) = eventfd_value(dup) else {
        problem("the host eventfd's counter cannot be read (no eventfd-count in fdinfo)".into());
        return 5;
    };
    if val > EVENTFD_VALMAX - now {
        if fmode & (FNDELAY | FNONBLOCK) == 0 {
            problem("a blocking eventfd write would wait for a reader".into());
        }
        return 11; // EAGAIN
    }
    if val == 0 {
        return 0;
    }
    // SAFETY: adds `val` to our host eventfd (it fits: checked above, so this never waits).
    let n = unsafe { libc::write(dup, (&raw const val).cast(), 8) };
    if n != 8 {
        problem(format!("host eventfd write: {}", std::io::Error::last_os_error()));
        return 5;
    }
    k(|k| {
        if let Some(f) = k.files.get_mut(&fp) {
            f.writes += 1;
        }
    });
    0
}

/// Writes `val` to the file `fp` through `fop_write` with a `UIO_SYSSPACE` uio of `resid`
/// bytes and `uio_fmode` `fmode`, as a kernel caller would (the harness's own checks).
pub fn write_u64(fp: u64, val: u64, fmode: u16, resid: i64) -> i32 {
    let buf = mem::kalloc(8, "write buffer");
    let iov = mem::kalloc(16, "iovec");
    let uio = mem::kalloc(48, "uio");
    // SAFETY: fresh arena blocks of those sizes, laid out as `sys/uio.h` says.
    unsafe {
        (buf as *mut u64).write(val);
        (iov as *mut [u64; 2]).write([buf, 8]);
        std::ptr::write_bytes(uio as *mut u8, 0, 48);
        (uio as *mut u64).write(iov);
        ((uio + 8) as *mut i32).write(1);
        ((uio + 24) as *mut i32).write(UIO_SYSSPACE);
        ((uio + 28) as *mut u16).write(fmode);
        ((uio + 32) as *mut i64).write(i64::MAX);
        ((uio + 40) as *mut i64).write(resid);
    }
    // SAFETY: reads `f_vnode` of a live harness file.
    let vp = unsafe { ((fp + F_VNODE) as *const u64).read() };
    let cred = k(|k| k.data["kcred"]);
    let r = fop_write(vp, uio, 0, cred, 0);
    for a in [buf, iov, uio] {
        mem::kfree(a);
    }
    r
}

/// ddi_name_to_major(9F): the drivers this kernel knows.
extern "C" fn ddi_name_to_major(name: u64) -> u32 {
    match cstr(name).as_str() {
        "kvm" => MAJOR,
        "eventfd" => EVENTFD_MAJOR,
        _ => MAJOR_NONE,
    }
}

/// Binds an import of the module, or `None` for a symbol this harness does not provide.
pub fn resolve(name: &str) -> Option<Target> {
    if let Some(a) = k(|k| k.data.get(name).copied()) {
        return Some(Target::Data(a));
    }
    let f: u64 = match name {
        "memcpy" => libc::memcpy as *const () as u64,
        "memmove" => libc::memmove as *const () as u64,
        "memset" => libc::memset as *const () as u64,
        "memcmp" | "bcmp" => libc::memcmp as *const () as u64,
        "mod_install" => mod_install as *const () as u64,
        "mod_remove" => mod_remove as *const () as u64,
        "mod_info" => mod_info as *const () as u64,
        "nodev" => nodev as *const () as u64,
        "nulldev" | "nochpoll" | "ddi_prop_op" => nulldev as *const () as u64,
        "ddi_quiesce_not_needed" => ddi_quiesce_not_needed as *const () as u64,
        "ddi_create_minor_node" => ddi_create_minor_node as *const () as u64,
        "ddi_remove_minor_node" => ddi_remove_minor_node as *const () as u64,
        "ddi_get_pid" => ddi_get_pid as *const () as u64,
        "ddi_copyin" => ddi_copyin as *const () as u64,
        "ddi_copyout" => ddi_copyout as *const () as u64,
        "kmem_alloc" => kmem_alloc as *const () as u64,
        "kmem_free" => kmem_free as *const () as u64,
        "ddi_umem_alloc" => ddi_umem_alloc as *const () as u64,
        "ddi_umem_free" => ddi_umem_free as *const () as u64,
        "hat_getpfnum" => hat_getpfnum as *const () as u64,
        "devmap_umem_setup" => devmap_umem_setup as *const () as u64,
        "ddi_devmap_segmap" => ddi_devmap_segmap as *const () as u64,
        "devmap_default_access" => devmap_default_access as *const () as u64,
        "mutex_init" => mutex_init as *const () as u64,
        "cv_init" => cv_init as *const () as u64,
        "cv_destroy" => cv_destroy as *const () as u64,
        "cv_broadcast" => cv_broadcast as *const () as u64,
        "cv_wait_sig" => cv_wait_sig as *const () as u64,
        "mutex_destroy" => mutex_destroy as *const () as u64,
        "mutex_enter" => mutex_enter as *const () as u64,
        "mutex_exit" => mutex_exit as *const () as u64,
        "cmn_err" => cmn_err as *const () as u64,
        "panic" => panic as *const () as u64,
        "curcpup" => curcpup as *const () as u64,
        "threadp" => threadp as *const () as u64,
        "kpreempt" => kpreempt as *const () as u64,
        "poke_cpu" => poke_cpu as *const () as u64,
        "cpuset_alloc" => cpuset_alloc as *const () as u64,
        "cpuset_free" => cpuset_free as *const () as u64,
        "cpuset_all" => cpuset_all as *const () as u64,
        "xc_sync" => xc_sync as *const () as u64,
        "kernel_fpu_begin" => kernel_fpu_begin as *const () as u64,
        "kernel_fpu_end" => kernel_fpu_end as *const () as u64,
        "issig" => issig as *const () as u64,
        "gethrtime" => gethrtime as *const () as u64,
        "hma_register" => hma_register as *const () as u64,
        "hma_unregister" => hma_unregister as *const () as u64,
        "getf" => getf as *const () as u64,
        "releasef" => releasef as *const () as u64,
        "closef" => closef as *const () as u64,
        "fop_write" => fop_write as *const () as u64,
        "ddi_name_to_major" => ddi_name_to_major as *const () as u64,
        "ddi_umem_lock" => ddi_umem_lock as *const () as u64,
        "ddi_umem_unlock" => ddi_umem_unlock as *const () as u64,
        "page_pptonum" => page_pptonum as *const () as u64,
        "lwp_sigmask" => lwp_sigmask as *const () as u64,
        _ => return None,
    };
    Some(Target::Func(f))
}

/// Kernel objects the module owns right now, by kind (for the leak checks).
pub fn outstanding() -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    sync_files();
    let held = module_file_refs();
    m.insert("file reference".into(), held);
    k(|k| {
        m.insert("kmem".into(), k.kmem.len());
        m.insert("umem".into(), k.umem.len());
        m.insert("mutex".into(), k.locks.len());
        m.insert("condition variable".into(), k.cvs.len());
        m.insert("cpuset".into(), k.cpusets.len());
        m.insert("devmap handle".into(), k.dhps.len());
        m.insert("minor node".into(), k.nodes.len());
        m.insert("hma registration".into(), k.hma.len());
        m.insert("locked user memory".into(), k.ulocks.len());
    });
    m
}
