//! The FreeBSD 14 kernel functions `kvmport.ko` imports, implemented by the harness after their
//! documented semantics (the man pages malloc(9), make_dev(9), devfs_set_cdevpriv(9),
//! copy(9), sx(9), mutex(9), smp_rendezvous(9), sglist(9), and `sys/file.h`), over the
//! harness's memory ([`crate::mem`]) and simulated CPUs ([`crate::cpu`]). Each one also
//! checks its contract (right malloc type, lock held before unlock, ...) and records a
//! problem when the module breaks it.

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvmport_kld_loader::load::Target;

use crate::cpu;
use crate::mem;

/// Simulated `__FreeBSD_version` (14.1).
pub const FREEBSD_VERSION: i32 = 1_401_000;
const M_ZERO: i32 = 0x100;
const M_VERSION: u64 = 2_020_110_501;
const D_VERSION: i32 = 0x5c48_c353;
const D_INIT: u32 = 0x8000_0000;
/// Where the harness keeps a process's vmspace in its `struct proc` blob (its own choice: the
/// module reaches the vmspace only through `vmspace_acquire_ref`).
const P_VMSPACE_OFFSET: u64 = 0x208;
/// `td_retval[0]`, as the module declares it (kpi/v14.rs).
/// `td_retval[0]`.
pub const TD_RETVAL_OFFSET: u64 = 0x448;

/// What a harness `struct file` is.
#[derive(Debug, Clone)]
pub enum FileKind {
    /// An open of a device (devfs): the cdev and its cdevpriv (data, destructor).
    Cdev {
        cdev: u64,
        priv_: Option<(u64, u64)>,
    },
    /// Made by the module with falloc_noinstall + finit.
    Module,
    /// A host eventfd (a dup of it).
    Eventfd(i32),
    /// Any other host file.
    Other,
}

/// A device made by make_dev_s.
#[derive(Debug, Clone)]
pub struct Dev {
    /// The `struct cdev`.
    pub cdev: u64,
    /// Its `struct cdevsw`.
    pub devsw: u64,
}

/// An sglist: capacity, (physical address, length) segments, references.
#[derive(Debug, Clone, Default)]
struct SgList {
    max: usize,
    segs: Vec<(u64, u64)>,
    refs: usize,
}

/// A mapping made by vm_mmap_object.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    len: u64,
    obj: u64,
}

/// The harness kernel's state.
#[derive(Default)]
pub struct Kernel {
    /// malloc types registered by malloc_init: type -> live allocations.
    pub types: BTreeMap<u64, usize>,
    mallocs: BTreeMap<u64, u64>,
    /// Devices by name.
    pub devs: BTreeMap<String, Dev>,
    /// Files: `struct file` -> kind.
    pub files: BTreeMap<u64, FileKind>,
    /// This process's descriptor table (host fd -> file).
    pub fdtab: BTreeMap<i32, u64>,
    locks: BTreeMap<u64, bool>,
    sglists: BTreeMap<u64, SgList>,
    objects: BTreeMap<u64, (u64, u64, usize)>,
    /// eventfd objects: (inode, host fd, references).
    eventfds: BTreeMap<u64, (u64, i32, usize)>,
    held: BTreeMap<u64, u64>,
    mappings: BTreeMap<u64, Mapping>,
    /// Contract violations seen.
    pub problems: Vec<String>,
    /// The Linux ioctl handler the module registered: (record, func, low, high).
    pub linux_handler: Option<(u64, u64, i32, i32)>,
    procs: BTreeMap<i32, u64>,
    /// The one harness thread.
    pub thread: u64,
    /// The file whose operation is running (devfs's `td_fpop`).
    pub cur_file: u64,
    sigmask: [u32; 4],
    /// Calls of smp_rendezvous, and of its action on each CPU.
    pub rendezvous: (usize, [usize; cpu::NCPU]),
    /// IPIs sent.
    pub ipis: usize,
    /// Data symbols (name -> address).
    pub data: BTreeMap<&'static str, u64>,
    /// Console output.
    pub console: Vec<String>,
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
    let thread = mem::kalloc(0x1000, "thread");
    let mut kern = Kernel {
        thread,
        ..Kernel::default()
    };
    let cap = mem::kalloc(16, "data");
    let maxid = mem::kalloc(8, "data");
    // SAFETY: fresh arena blocks.
    unsafe { (maxid as *mut u32).write(cpu::NCPU as u32 - 1) };
    let ncpus = mem::kalloc(8, "data");
    // SAFETY: as above.
    unsafe { (ncpus as *mut u32).write(cpu::NCPU as u32) };
    let tsc = mem::kalloc(8, "data");
    // SAFETY: as above.
    unsafe { (tsc as *mut u64).write(2_000_000_000) };
    kern.data.insert("cap_no_rights", cap);
    kern.data.insert("mp_maxid", maxid);
    kern.data.insert("mp_ncpus", ncpus);
    kern.data.insert("tsc_freq", tsc);
    *K.lock().unwrap() = Some(kern);
}

/// A thread entering the kernel (a system call or the module loader): picks the next
/// simulated CPU, makes the calling process's `struct proc` current, points `%gs` at the CPU.
/// On drop, checks that the module left no critical section open.
pub struct Entry;

impl Entry {
    /// Enters.
    pub fn new() -> Entry {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let td = k(|k| {
            let proc_ = *k.procs.entry(pid).or_insert_with(|| {
                let p = mem::kalloc(0x1000, "proc");
                let vms = mem::kalloc(0x100, "proc");
                // SAFETY: fresh arena blocks; p_vmspace as the module reads it.
                unsafe { ((p + P_VMSPACE_OFFSET) as *mut u64).write(vms) };
                p
            });
            // SAFETY: td_proc at offset 8 of the harness thread.
            unsafe { ((k.thread + 8) as *mut u64).write(proc_) };
            k.thread
        });
        let cpu = NEXT_CPU.fetch_add(1, Ordering::Relaxed) % cpu::NCPU;
        cpu::switch_to(cpu, td);
        Entry
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let c = cpu::CRIT.swap(0, Ordering::Relaxed);
        if c != 0 {
            problem(format!(
                "returned to user space inside {c} critical section(s)"
            ));
        }
    }
}

/// The current thread.
pub fn curthread() -> u64 {
    k(|k| k.thread)
}

/// The vm_map of the calling process (its vmspace).
pub fn curmap() -> u64 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    k(|k| k.procs.get(&pid).copied()).map_or(0, |p| {
        // SAFETY: the proc blob made by Entry.
        unsafe { ((p + P_VMSPACE_OFFSET) as *const u64).read() }
    })
}

fn cstr(p: u64) -> String {
    if p == 0 {
        return "(null)".into();
    }
    // SAFETY: the module passes NUL-terminated strings (from its rodata).
    unsafe { CStr::from_ptr(p as *const c_char) }
        .to_string_lossy()
        .into_owned()
}

/// printf(9)'s formatting for the conversions the module uses: %s, %.*s, %d, %u, %x, %p, %%.
pub fn format(fmt: u64, args: &[u64]) -> String {
    let f = cstr(fmt);
    let mut out = String::new();
    let mut a = args.iter().copied();
    let mut it = f.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            if it.peek() == Some(&'*') {
                it.next();
                prec = Some(a.next().unwrap_or(0) as usize);
            }
        }
        match it.next() {
            Some('s') => {
                let p = a.next().unwrap_or(0);
                match prec {
                    // SAFETY: "%.*s" prints exactly `n` bytes at `p`.
                    Some(n) => out.push_str(&String::from_utf8_lossy(unsafe {
                        std::slice::from_raw_parts(p as *const u8, n)
                    })),
                    None => out.push_str(&cstr(p)),
                }
            }
            Some('d') => out.push_str(&(a.next().unwrap_or(0) as i32).to_string()),
            Some('u') => out.push_str(&(a.next().unwrap_or(0) as u32).to_string()),
            Some('x') => out.push_str(&format!("{:x}", a.next().unwrap_or(0) as u32)),
            Some('p') => out.push_str(&format!("{:#x}", a.next().unwrap_or(0))),
            Some('%') => out.push('%'),
            other => out.push_str(&format!("%{}", other.unwrap_or(' '))),
        }
    }
    out
}

// ------------------------------------------------------------ module-facing functions

extern "C" fn printf(fmt: u64, a: u64, b: u64, c: u64, d: u64, e: u64) -> i32 {
    let s = format(fmt, &[a, b, c, d, e]);
    let n = s.len() as i32;
    k(|k| k.console.push(s.trim_end().to_string()));
    n
}

extern "C" fn panic(fmt: u64, a: u64, b: u64, c: u64, d: u64, e: u64) -> ! {
    let s = format(fmt, &[a, b, c, d, e]);
    eprintln!("panic: {s}");
    std::process::abort()
}

extern "C" fn malloc_init(ty: u64) {
    // SAFETY: `ty` is the module's struct malloc_type; ks_version at offset 8.
    let ver = unsafe { ((ty + 8) as *const u64).read() };
    if ver != M_VERSION {
        problem(format!("malloc_init: ks_version {ver} != M_VERSION"));
    }
    k(|k| {
        if k.types.insert(ty, 0).is_some() {
            k.problems.push("malloc_init: type registered twice".into());
        }
    });
}

extern "C" fn malloc_uninit(ty: u64) {
    k(|k| match k.types.remove(&ty) {
        Some(0) => {}
        Some(n) => k
            .problems
            .push(format!("malloc_uninit: {n} allocations leaked")),
        None => k
            .problems
            .push("malloc_uninit of an unregistered type".into()),
    });
}

extern "C" fn malloc(size: usize, ty: u64, flags: i32) -> u64 {
    let known = k(|k| k.types.contains_key(&ty));
    if !known {
        problem("malloc with an unregistered malloc type".into());
    }
    let p = mem::kalloc(size, "malloc");
    if flags & M_ZERO == 0 {
        // malloc(9) does not zero: fill with junk so reliance on zeroing shows.
        // SAFETY: the block just allocated, at least `size` bytes.
        unsafe { std::ptr::write_bytes(p as *mut u8, 0xa5, size) };
    }
    k(|k| {
        k.mallocs.insert(p, ty);
        if let Some(n) = k.types.get_mut(&ty) {
            *n += 1;
        }
    });
    p
}

extern "C" fn free(p: u64, ty: u64) {
    if p == 0 {
        return;
    }
    let owner = k(|k| k.mallocs.remove(&p));
    match owner {
        Some(t) if t == ty => {
            k(|k| {
                if let Some(n) = k.types.get_mut(&ty) {
                    *n -= 1;
                }
            });
            mem::kfree(p);
        }
        Some(_) => problem(format!("free({p:#x}) with the wrong malloc type")),
        None => problem(format!("free({p:#x}) of memory malloc did not return")),
    }
}

extern "C" fn kmem_malloc(size: usize, _flags: i32) -> u64 {
    let pages = (size as u64).div_ceil(4096);
    mem::page_alloc(pages).unwrap_or(0)
}

extern "C" fn kmem_free(va: u64, size: usize) {
    if !mem::page_free(va, (size as u64).div_ceil(4096)) {
        problem(format!(
            "kmem_free({va:#x}, {size}) does not match an allocation"
        ));
    }
}

extern "C" fn pmap_kextract(va: u64) -> u64 {
    mem::kextract(va)
}

/// The kernel side of a copy must be kernel memory (the arena, the pool or a kernel stack).
fn check_kernel_buffer(what: &str, kaddr: u64, len: usize) {
    if len != 0 && mem::user_range(kaddr, len as u64) {
        problem(format!(
            "{what} with a user address {kaddr:#x} as its kernel buffer"
        ));
    }
}

extern "C" fn copyin(u: u64, kaddr: u64, len: usize) -> i32 {
    check_kernel_buffer("copyin", kaddr, len);
    mem::copyin(u, kaddr, len)
}

extern "C" fn copyout(kaddr: u64, u: u64, len: usize) -> i32 {
    check_kernel_buffer("copyout", kaddr, len);
    mem::copyout(kaddr, u, len)
}

extern "C" fn make_dev_args_init_impl(args: u64, sz: usize) {
    if sz != 64 {
        problem(format!("make_dev_args_init: size {sz} != 64"));
    }
    // SAFETY: the module's make_dev_args of `sz` bytes.
    unsafe {
        std::ptr::write_bytes(args as *mut u8, 0, sz);
        (args as *mut u64).write(sz as u64);
    }
}

extern "C" fn make_dev_s(args: u64, out: u64, fmt: u64, a: u64, b: u64, c: u64) -> i32 {
    // SAFETY: the module's make_dev_args (64 bytes): mda_size @0, mda_devsw @16.
    let (size, devsw) = unsafe {
        (
            (args as *const u64).read(),
            ((args + 16) as *const u64).read(),
        )
    };
    if size != 64 || devsw == 0 {
        return 22;
    }
    // SAFETY: the cdevsw: d_version @0, d_flags @4.
    let ver = unsafe { (devsw as *const i32).read() };
    if ver != D_VERSION {
        problem(format!("make_dev_s: d_version {ver:#x}"));
        return 22;
    }
    let name = format(fmt, &[a, b, c]);
    let cdev = mem::kalloc(0x100, "cdev");
    let dup = k(|k| {
        if k.devs.contains_key(&name) {
            return true;
        }
        k.devs.insert(name.clone(), Dev { cdev, devsw });
        false
    });
    if dup {
        mem::kfree(cdev);
        return 17;
    }
    // SAFETY: the kernel marks the switch initialised; `out` is the module's cdev pointer.
    unsafe {
        let f = (devsw + 4) as *mut u32;
        f.write(f.read() | D_INIT);
        (out as *mut u64).write(cdev);
    }
    0
}

extern "C" fn destroy_dev(cdev: u64) {
    let open = k(|k| {
        let name = k
            .devs
            .iter()
            .find(|(_, d)| d.cdev == cdev)
            .map(|(n, _)| n.clone());
        match name {
            Some(n) => {
                k.devs.remove(&n);
                k.files
                    .values()
                    .filter(|f| matches!(f, FileKind::Cdev { cdev: c, .. } if *c == cdev))
                    .count()
            }
            None => {
                k.problems.push("destroy_dev of an unknown device".into());
                0
            }
        }
    });
    if open != 0 {
        problem(format!("destroy_dev with {open} open file(s)"));
    }
    mem::kfree(cdev);
}

extern "C" fn devfs_set_cdevpriv(p: u64, dtor: u64) -> i32 {
    k(|k| {
        let cur = k.cur_file;
        match k.files.get_mut(&cur) {
            Some(FileKind::Cdev { priv_, .. }) => {
                if priv_.is_some() {
                    16 // EBUSY
                } else {
                    *priv_ = Some((p, dtor));
                    0
                }
            }
            _ => 2, // ENOENT: no devfs file operation in progress
        }
    })
}

extern "C" fn devfs_get_cdevpriv(out: u64) -> i32 {
    let r = k(|k| match k.files.get(&k.cur_file) {
        Some(FileKind::Cdev {
            priv_: Some((p, _)),
            ..
        }) => Some(*p),
        _ => None,
    });
    match r {
        Some(p) => {
            // SAFETY: the module's out-pointer.
            unsafe { (out as *mut u64).write(p) };
            0
        }
        None => 9, // EBADF
    }
}

/// Allocates a `struct file` (f_count 1). A devfs file gets `DTYPE_VNODE` and a vnode
/// (`v_type` VCHR, `v_rdev` the cdev), as devfs makes them.
pub fn file_new(kind: FileKind) -> u64 {
    let fp = mem::kalloc(0x80, "file");
    // SAFETY: a fresh file blob; f_count @4.
    unsafe { ((fp + 4) as *mut u32).write(1) };
    if let FileKind::Cdev { cdev, .. } = kind {
        let vp = mem::kalloc(0x100, "vnode");
        // SAFETY: fresh blobs: v_type @0, v_rdev @56; f_vnode @24, f_type @40.
        unsafe {
            (vp as *mut u8).write(4);
            ((vp + 56) as *mut u64).write(cdev);
            ((fp + 24) as *mut u64).write(vp);
            ((fp + 40) as *mut i16).write(1);
        }
    }
    k(|k| k.files.insert(fp, kind));
    fp
}

extern "C" fn falloc_noinstall(_td: u64, out: u64) -> i32 {
    let fp = file_new(FileKind::Module);
    // SAFETY: the module's out-pointer.
    unsafe { (out as *mut u64).write(fp) };
    0
}

extern "C" fn finit(fp: u64, flag: u32, ty: i16, data: u64, ops: u64) {
    // SAFETY: a harness file: f_flag @0, f_data @8, f_ops @16, f_type @40.
    unsafe {
        (fp as *mut u32).write(flag);
        ((fp + 8) as *mut u64).write(data);
        ((fp + 16) as *mut u64).write(ops);
        ((fp + 40) as *mut i16).write(ty);
    }
}

/// Opens a host descriptor to stand for a kernel file in this process's table.
fn host_fd() -> i32 {
    // SAFETY: opens /dev/null; the descriptor is handed to the client, which closes it.
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }
}

extern "C" fn finstall(_td: u64, fp: u64, out: u64, _flags: i32, _caps: u64) -> i32 {
    let fd = host_fd();
    if fd < 0 {
        return 24; // EMFILE
    }
    // SAFETY: the table's reference on the file (f_count @4), and the module's out-pointer.
    unsafe {
        let c = (fp + 4) as *mut u32;
        c.write(c.read() + 1);
        (out as *mut i32).write(fd);
    }
    k(|k| k.fdtab.insert(fd, fp));
    0
}

/// The last reference of a file went: run its close and free it.
pub extern "C" fn fdrop_last(fp: u64, td: u64) -> i32 {
    let kind = k(|k| k.files.remove(&fp));
    let r = match kind {
        Some(FileKind::Cdev { cdev, priv_ }) => {
            // SAFETY: f_vnode @24 of the file blob, made by file_new.
            mem::kfree(unsafe { ((fp + 24) as *const u64).read() });
            if let Some((p, dtor)) = priv_ {
                // The module's cdevpriv destructor, called once at the last close.
                crate::kstack::call(dtor, &[p]);
            }
            let devsw = k(|k| k.devs.values().find(|d| d.cdev == cdev).map(|d| d.devsw));
            match devsw {
                Some(sw) => {
                    // SAFETY: d_close @32 of the module's cdevsw.
                    let close = unsafe { ((sw + 32) as *const u64).read() };
                    if close != 0 {
                        // The module's d_close with its documented arguments.
                        crate::kstack::call_int(close, &[cdev, 3, 0x2000, td])
                    } else {
                        0
                    }
                }
                None => 0,
            }
        }
        Some(FileKind::Module) => {
            // SAFETY: f_ops @16; fo_close @56 of the module's fileops.
            let close = unsafe { (((fp + 16) as *const u64).read() + 56) as *const u64 };
            // SAFETY: as above.
            let close = unsafe { close.read() };
            // The module's fo_close for its own file, once.
            crate::kstack::call_int(close, &[fp, td])
        }
        Some(FileKind::Eventfd(fd)) => {
            // SAFETY: our dup of the eventfd.
            unsafe { libc::close(fd) };
            0
        }
        Some(FileKind::Other) => 0,
        None => {
            problem(format!("_fdrop of an unknown file {fp:#x}"));
            return 0;
        }
    };
    mem::kfree(fp);
    r
}

/// `fdrop` as `sys/file.h` defines it.
pub fn fdrop(fp: u64, td: u64) -> i32 {
    // SAFETY: f_count @4 of a live file.
    let last = unsafe {
        let c = (fp + 4) as *mut u32;
        let v = c.read();
        c.write(v - 1);
        v == 1
    };
    if last { fdrop_last(fp, td) } else { 0 }
}

extern "C" fn _fdrop(fp: u64, td: u64) -> i32 {
    fdrop_last(fp, td)
}

fn is_eventfd(fd: i32) -> Option<bool> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    Some(link.to_string_lossy() == "anon_inode:[eventfd]")
}

extern "C" fn fget(_td: u64, fd: i32, _rights: u64, out: u64) -> i32 {
    let fp = k(|k| k.fdtab.get(&fd).copied());
    let fp = match fp {
        Some(fp) => {
            // SAFETY: f_count @4 of a live file: fget's reference.
            unsafe {
                let c = (fp + 4) as *mut u32;
                c.write(c.read() + 1);
            }
            fp
        }
        None => match is_eventfd(fd) {
            Some(true) => {
                // SAFETY: duplicates a host eventfd the process holds.
                let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
                file_new(FileKind::Eventfd(d))
            }
            Some(false) => file_new(FileKind::Other),
            None => return 9, // EBADF
        },
    };
    // SAFETY: the module's out-pointer.
    unsafe { (out as *mut u64).write(fp) };
    0
}

/// The identity of a host eventfd (its inode): one `struct eventfd` per eventfd, as the
/// kernel's `f_data`.
fn eventfd_ino(fd: i32) -> Option<u64> {
    // SAFETY: fstat into a local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

extern "C" fn eventfd_get(fp: u64) -> u64 {
    let fd = k(|k| match k.files.get(&fp) {
        Some(FileKind::Eventfd(fd)) => Some(*fd),
        _ => None,
    });
    let Some(ino) = fd.and_then(eventfd_ino) else {
        return 0;
    };
    let found = k(|k| {
        let e = k.eventfds.iter_mut().find(|(_, e)| e.0 == ino)?;
        e.1.2 += 1;
        Some(*e.0)
    });
    if let Some(efd) = found {
        return efd;
    }
    // SAFETY: duplicates our dup of the eventfd for the new object.
    let d = unsafe { libc::fcntl(fd.unwrap_or(-1), libc::F_DUPFD_CLOEXEC, 100) };
    let efd = mem::kalloc(16, "eventfd");
    k(|k| k.eventfds.insert(efd, (ino, d, 1)));
    efd
}

extern "C" fn eventfd_put(efd: u64) {
    let gone = k(|k| match k.eventfds.get_mut(&efd) {
        Some(e) => {
            e.2 -= 1;
            if e.2 == 0 {
                let fd = e.1;
                k.eventfds.remove(&efd);
                Some(Some(fd))
            } else {
                Some(None)
            }
        }
        None => None,
    });
    match gone {
        Some(Some(fd)) => {
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            mem::kfree(efd);
        }
        Some(None) => {}
        None => problem("eventfd_put of an unknown eventfd".into()),
    }
}

extern "C" fn eventfd_signal(efd: u64) {
    if let Some(fd) = k(|k| k.eventfds.get(&efd).map(|e| e.1)) {
        let one = 1u64;
        // SAFETY: writes 8 bytes to our eventfd.
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    } else {
        problem("eventfd_signal of an unknown eventfd".into());
    }
}

fn lock_init(addr: u64, what: &str) {
    k(|k| {
        if k.locks.insert(addr, false).is_some() {
            k.problems.push(format!("{what}: initialised twice"));
        }
    });
}
fn lock_destroy(addr: u64, what: &str) {
    k(|k| match k.locks.remove(&addr) {
        Some(false) => {}
        Some(true) => k.problems.push(format!("{what}: destroyed while held")),
        None => k
            .problems
            .push(format!("{what}: destroy of an unknown lock")),
    });
}
fn lock_set(addr: u64, take: bool, what: &str) {
    k(|k| match k.locks.get_mut(&addr) {
        Some(h) if *h != take => *h = take,
        Some(_) if take => k.problems.push(format!("{what}: taken twice (deadlock)")),
        Some(_) => k.problems.push(format!("{what}: released but not held")),
        None => k.problems.push(format!("{what}: unknown lock")),
    });
}

extern "C" fn sx_init_flags(sx: u64, _name: u64, _opts: i32) {
    lock_init(sx, "sx");
}
extern "C" fn sx_destroy(sx: u64) {
    lock_destroy(sx, "sx");
}
extern "C" fn _sx_xlock(sx: u64, _opts: i32, _f: u64, _l: i32) -> i32 {
    if cpu::CRIT.load(Ordering::Relaxed) != 0 {
        problem("sx_xlock inside a critical section".into());
    }
    lock_set(sx, true, "sx");
    0
}
extern "C" fn _sx_xunlock(sx: u64, _f: u64, _l: i32) {
    lock_set(sx, false, "sx");
}
extern "C" fn _mtx_init(c: u64, _name: u64, _ty: u64, _opts: i32) {
    lock_init(c, "mtx");
}
extern "C" fn _mtx_destroy(c: u64) {
    lock_destroy(c, "mtx");
}
extern "C" fn mtx_lock(c: u64, _o: i32, _f: u64, _l: i32) {
    lock_set(c, true, "mtx");
}
extern "C" fn mtx_unlock(c: u64, _o: i32, _f: u64, _l: i32) {
    lock_set(c, false, "mtx");
}
extern "C" fn mtx_lock_spin(c: u64, _o: i32, _f: u64, _l: i32) {
    cpu::CRIT.fetch_add(1, Ordering::Relaxed);
    lock_set(c, true, "spin mtx");
}
extern "C" fn mtx_unlock_spin(c: u64, _o: i32, _f: u64, _l: i32) {
    lock_set(c, false, "spin mtx");
    cpu::CRIT.fetch_sub(1, Ordering::Relaxed);
}
extern "C" fn _sleep(
    _chan: u64,
    _lock: u64,
    _pri: i32,
    _wmesg: u64,
    _sbt: i64,
    _pr: i64,
    _fl: i32,
) -> i32 {
    // One host thread: nobody could wake the sleeper, so it is interrupted (EINTR).
    4
}
extern "C" fn wakeup(_chan: u64) {}

extern "C" fn smp_rendezvous(setup: u64, action: u64, teardown: u64, arg: u64) {
    if cpu::CRIT.load(Ordering::Relaxed) != 0 {
        problem("smp_rendezvous inside a critical section".into());
    }
    let home = cpu::CUR_CPU.load(Ordering::Relaxed);
    let td = curthread();
    k(|k| k.rendezvous.0 += 1);
    for f in [setup, action, teardown] {
        if f == 0 {
            continue;
        }
        for c in 0..cpu::NCPU {
            cpu::switch_to(c, td);
            cpu::CRIT.fetch_add(1, Ordering::Relaxed);
            // A module function of type `void (*)(void *)`.
            crate::kstack::call(f, &[arg]);
            cpu::CRIT.fetch_sub(1, Ordering::Relaxed);
            if f == action {
                k(|k| k.rendezvous.1[c] += 1);
            }
        }
    }
    cpu::switch_to(home, td);
}

extern "C" fn ipi_cpu(c: i32, _ipi: u32) {
    if c < 0 || c as usize >= cpu::NCPU {
        problem(format!("ipi_cpu({c})"));
    }
    k(|k| k.ipis += 1);
}
/// `fpu_kern_enter(9)`: only the `FPU_KERN_NOCTX` form with a null context is valid for
/// kvmport; the harness's simulated CPUs have no FPU state to save.
extern "C" fn fpu_kern_enter(_td: *mut u8, ctx: *mut u8, flags: u32) -> i32 {
    if !ctx.is_null() || flags != 0x0004 {
        problem(format!("fpu_kern_enter(ctx {ctx:?}, flags {flags:#x})"));
    }
    0
}
extern "C" fn fpu_kern_leave(_td: *mut u8, ctx: *mut u8) -> i32 {
    if !ctx.is_null() {
        problem(format!("fpu_kern_leave(ctx {ctx:?})"));
    }
    0
}
extern "C" fn critical_enter_kbi() {
    cpu::CRIT.fetch_add(1, Ordering::Relaxed);
}
extern "C" fn critical_exit_kbi() {
    if cpu::CRIT.fetch_sub(1, Ordering::Relaxed) == 0 {
        cpu::CRIT.store(0, Ordering::Relaxed);
        problem("critical_exit without critical_enter".into());
    }
}
extern "C" fn sig_intr() -> i32 {
    // SAFETY: reads this thread's pending signals and mask into locals.
    unsafe {
        let mut pend: libc::sigset_t = std::mem::zeroed();
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pend);
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        for s in 1..65 {
            if libc::sigismember(&pend, s) == 1 && libc::sigismember(&mask, s) != 1 {
                return 4;
            }
        }
    }
    0
}
extern "C" fn should_yield() -> i32 {
    0
}
extern "C" fn maybe_yield() {}
extern "C" fn kern_sigprocmask(_td: u64, how: i32, set: u64, oset: u64, _flags: i32) -> i32 {
    k(|k| {
        if oset != 0 {
            // SAFETY: the module's sigset_t (16 bytes).
            unsafe { (oset as *mut [u32; 4]).write(k.sigmask) };
        }
        if set != 0 {
            // SAFETY: as above.
            let s = unsafe { (set as *const [u32; 4]).read() };
            match how {
                1 => (0..4).for_each(|i| k.sigmask[i] |= s[i]),
                2 => (0..4).for_each(|i| k.sigmask[i] &= !s[i]),
                3 => k.sigmask = s,
                _ => return 22,
            }
        }
        0
    })
}
extern "C" fn nanouptime(ts: u64) {
    // SAFETY: the module's struct timespec (same layout as the host's).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts as *mut libc::timespec) };
}

/// Mirrors an sglist's reference count into its public `sg_refs` field (offset 8).
fn sg_set_refs(sg: u64, refs: usize) {
    // SAFETY: the sglist blob made by sglist_alloc.
    unsafe { ((sg + 8) as *mut u32).write(refs as u32) };
}

extern "C" fn sglist_alloc(nsegs: i32, _flags: i32) -> u64 {
    let sg = mem::kalloc(32, "sglist");
    sg_set_refs(sg, 1);
    k(|k| {
        k.sglists.insert(
            sg,
            SgList {
                max: nsegs.max(0) as usize,
                segs: Vec::new(),
                refs: 1,
            },
        )
    });
    sg
}
extern "C" fn sglist_append_phys(sg: u64, pa: u64, len: usize) -> i32 {
    k(|k| match k.sglists.get_mut(&sg) {
        Some(l) if l.segs.len() < l.max => {
            l.segs.push((pa, len as u64));
            0
        }
        Some(_) => 27, // EFBIG
        None => {
            k.problems
                .push("sglist_append_phys on an unknown sglist".into());
            22
        }
    })
}
fn sglist_rele(sg: u64) {
    let gone = k(|k| match k.sglists.get_mut(&sg) {
        Some(e) => {
            e.refs -= 1;
            sg_set_refs(sg, e.refs);
            if e.refs == 0 {
                k.sglists.remove(&sg);
                true
            } else {
                false
            }
        }
        None => {
            k.problems.push("sglist_free of an unknown sglist".into());
            false
        }
    });
    if gone {
        mem::kfree(sg);
    }
}
extern "C" fn sglist_free(sg: u64) {
    sglist_rele(sg);
}

const OBJT_SG: u8 = 6;
extern "C" fn vm_pager_allocate(
    ty: u8,
    handle: u64,
    size: i64,
    _prot: u8,
    off: i64,
    _cred: u64,
) -> u64 {
    if ty != OBJT_SG {
        problem(format!(
            "vm_pager_allocate of type {ty} (only OBJT_SG is modelled)"
        ));
        return 0;
    }
    let total = k(|k| {
        k.sglists
            .get(&handle)
            .map(|l| l.segs.iter().map(|x| x.1).sum::<u64>())
    });
    let Some(total) = total else {
        problem("vm_pager_allocate with an unknown sglist".into());
        return 0;
    };
    // The SG pager refuses an object larger than its list.
    if size < 0 || off < 0 || (size as u64) > total {
        return 0;
    }
    let obj = mem::kalloc(64, "vm_object");
    k(|k| {
        if let Some(e) = k.sglists.get_mut(&handle) {
            e.refs += 1;
            sg_set_refs(handle, e.refs);
        }
        k.objects.insert(obj, (handle, size as u64, 1));
    });
    obj
}
extern "C" fn vm_object_deallocate(obj: u64) {
    let sg = k(|k| match k.objects.get_mut(&obj) {
        Some(e) => {
            e.2 -= 1;
            if e.2 == 0 {
                let sg = e.0;
                k.objects.remove(&obj);
                Some(sg)
            } else {
                None
            }
        }
        None => {
            k.problems
                .push("vm_object_deallocate of an unknown object".into());
            None
        }
    });
    if let Some(sg) = sg {
        sglist_rele(sg);
        mem::kfree(obj);
    }
}
extern "C" fn vm_mmap_object(
    map: u64,
    addr: u64,
    size: usize,
    prot: u8,
    _maxprot: u8,
    _flags: i32,
    obj: u64,
    foff: i64,
    _wc: i32,
    _td: u64,
) -> i32 {
    if map != curmap() {
        problem("vm_mmap_object into another map".into());
        return 22;
    }
    let Some((sg, osize, _)) = k(|k| k.objects.get(&obj).copied()) else {
        problem("vm_mmap_object of an unknown object".into());
        return 22;
    };
    let segs = k(|k| k.sglists.get(&sg).map(|e| e.segs.clone())).unwrap_or_default();
    let len = (size as u64).div_ceil(4096) * 4096;
    // Each page: the pool page behind its physical address, or, beyond the object, a page
    // of an empty file, where an access raises SIGBUS (vm_fault: out of bounds).
    let mut pas = Vec::new();
    for i in 0..len / 4096 {
        let pgoff = foff as u64 / 4096 + i;
        if (pgoff + 1) * 4096 > osize {
            pas.push((empty_file(), 0));
            continue;
        }
        // Page `pgoff` of the object is the page at that offset into the list.
        let mut at = pgoff * 4096;
        let mut pa = None;
        for (spa, slen) in &segs {
            if at < *slen {
                pa = Some(spa + at);
                break;
            }
            at -= slen;
        }
        match pa.and_then(mem::pa_to_pool) {
            Some(x) => pas.push(x),
            None => return 22,
        }
    }
    // SAFETY: a fresh reservation at an address the host picks (in the user range), then
    // each page replaced by a shared mapping of the pool page behind its physical address.
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
            return 12;
        }
        let mut p = 0;
        if prot & 1 != 0 {
            p |= libc::PROT_READ;
        }
        if prot & 2 != 0 {
            p |= libc::PROT_WRITE;
        }
        for (i, (fd, off)) in pas.iter().enumerate() {
            let at = (base as u64 + i as u64 * 4096) as *mut libc::c_void;
            let m = libc::mmap(
                at,
                4096,
                p,
                libc::MAP_SHARED | libc::MAP_FIXED,
                *fd,
                *off as i64,
            );
            if m == libc::MAP_FAILED {
                libc::munmap(base, len as usize);
                return 12;
            }
        }
        (addr as *mut u64).write(base as u64);
        k(|k| k.mappings.insert(base as u64, Mapping { len, obj }));
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

/// munmap of a mapping made through vm_mmap_object: releases its object reference.
pub fn unmap(addr: u64, len: usize) {
    let m = k(|k| k.mappings.remove(&addr));
    // SAFETY: the caller's mapping.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    if let Some(m) = m {
        if m.len != (len as u64).div_ceil(4096) * 4096 {
            problem("partial munmap of a device mapping".into());
        }
        let _e = Entry::new();
        vm_object_deallocate(m.obj);
    }
}

extern "C" fn vm_fault_quick_hold_pages(
    map: u64,
    addr: u64,
    len: u64,
    _prot: u8,
    ma: u64,
    max: i32,
) -> i32 {
    if map != curmap() || len != 4096 || max < 1 || !mem::user_range(addr, len) {
        return -1;
    }
    let mut b = 0u8;
    if mem::copyin(addr, (&raw mut b) as u64, 1) != 0 {
        return -1;
    }
    let m = mem::kalloc(64, "vm_page");
    // SAFETY: a fresh vm_page blob; phys_addr @48; the module's out array.
    unsafe {
        ((m + 48) as *mut u64).write(0x10_0000_0000 + addr);
        (ma as *mut u64).write(m);
    }
    k(|k| k.held.insert(m, addr));
    1
}
static VMSPACE_REFS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn vmspace_acquire_ref(p: u64) -> u64 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if k(|k| k.procs.get(&pid).copied()) != Some(p) {
        problem("vmspace_acquire_ref of a process that is not the caller's".into());
        return 0;
    }
    VMSPACE_REFS.fetch_add(1, Ordering::Relaxed);
    curmap()
}

extern "C" fn vmspace_free(vm: u64) {
    if vm != curmap() || VMSPACE_REFS.fetch_sub(1, Ordering::Relaxed) == 0 {
        problem("vmspace_free without a reference".into());
    }
}

extern "C" fn vm_page_unhold_pages(ma: u64, n: i32) {
    for i in 0..n.max(0) as u64 {
        // SAFETY: the module's array of `n` page pointers.
        let m = unsafe { ((ma + i * 8) as *const u64).read() };
        if k(|k| k.held.remove(&m)).is_some() {
            mem::kfree(m);
        } else {
            problem("vm_page_unhold_pages of a page not held".into());
        }
    }
}

extern "C" fn linux_ioctl_register_handler(h: u64) -> i32 {
    // SAFETY: the module's struct linux_ioctl_handler { func, low, high }.
    let (f, lo, hi) = unsafe {
        (
            (h as *const u64).read(),
            ((h + 8) as *const i32).read(),
            ((h + 12) as *const i32).read(),
        )
    };
    k(|k| k.linux_handler = Some((h, f, lo, hi)));
    0
}
extern "C" fn linux_ioctl_unregister_handler(h: u64) -> i32 {
    k(|k| match k.linux_handler {
        Some((r, ..)) if r == h => {
            k.linux_handler = None;
            0
        }
        _ => {
            k.problems
                .push("linux_ioctl_unregister_handler of an unknown handler".into());
            22
        }
    })
}

/// Whether the simulated kernel has the Linux emulation module loaded.
pub static LINUX_LOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
/// The loaded files `linker_file_foreach` walks: the kernel, kvmport, and the emulation.
const LINKER_FILES: [u64; 3] = [0x1000, 0x2000, 0x3000];

extern "C" fn linker_file_foreach(pred: u64, ctx: u64) -> i32 {
    let n = if LINUX_LOADED.load(Ordering::Relaxed) {
        3
    } else {
        2
    };
    for lf in &LINKER_FILES[..n] {
        // The module's predicate, `int (*)(linker_file_t, void *)`.
        let r = crate::kstack::call_int(pred, &[*lf, ctx]);
        if r != 0 {
            return r;
        }
    }
    0
}

extern "C" fn linker_file_lookup_symbol(file: u64, name: u64, deps: i32) -> u64 {
    if deps != 0 {
        problem("linker_file_lookup_symbol with deps during a file walk".into());
    }
    if file != LINKER_FILES[2] {
        return 0;
    }
    match cstr(name).as_str() {
        "linux_ioctl_register_handler" => linux_ioctl_register_handler as *const () as u64,
        "linux_ioctl_unregister_handler" => linux_ioctl_unregister_handler as *const () as u64,
        _ => 0,
    }
}

extern "C" fn module_register_init(data: u64) {
    crate::module::register_and_load(data);
}

/// Binds an import of the module, or `None` for a symbol this harness does not provide.
pub fn resolve(name: &str) -> Option<Target> {
    if let Some(a) = k(|k| k.data.get(name).copied()) {
        return Some(Target::Data(a));
    }
    let f: u64 = match name {
        "printf" => printf as *const () as u64,
        "panic" => panic as *const () as u64,
        "memcpy" => libc::memcpy as *const () as u64,
        "memmove" => libc::memmove as *const () as u64,
        "memset" => libc::memset as *const () as u64,
        "memcmp" | "bcmp" => libc::memcmp as *const () as u64,
        "malloc_init" => malloc_init as *const () as u64,
        "malloc_uninit" => malloc_uninit as *const () as u64,
        "malloc" => malloc as *const () as u64,
        "free" => free as *const () as u64,
        "kmem_malloc" => kmem_malloc as *const () as u64,
        "kmem_free" => kmem_free as *const () as u64,
        "pmap_kextract" => pmap_kextract as *const () as u64,
        "copyin" => copyin as *const () as u64,
        "copyout" => copyout as *const () as u64,
        "make_dev_args_init_impl" => make_dev_args_init_impl as *const () as u64,
        "make_dev_s" => make_dev_s as *const () as u64,
        "destroy_dev" => destroy_dev as *const () as u64,
        "devfs_set_cdevpriv" => devfs_set_cdevpriv as *const () as u64,
        "devfs_get_cdevpriv" => devfs_get_cdevpriv as *const () as u64,
        "falloc_noinstall" => falloc_noinstall as *const () as u64,
        "finit" => finit as *const () as u64,
        "finstall" => finstall as *const () as u64,
        "_fdrop" => _fdrop as *const () as u64,
        "fget" => fget as *const () as u64,
        "eventfd_get" => eventfd_get as *const () as u64,
        "eventfd_put" => eventfd_put as *const () as u64,
        "eventfd_signal" => eventfd_signal as *const () as u64,
        "sx_init_flags" => sx_init_flags as *const () as u64,
        "sx_destroy" => sx_destroy as *const () as u64,
        "_sx_xlock" => _sx_xlock as *const () as u64,
        "_sx_xunlock" => _sx_xunlock as *const () as u64,
        "_mtx_init" => _mtx_init as *const () as u64,
        "_mtx_destroy" => _mtx_destroy as *const () as u64,
        "__mtx_lock_flags" => mtx_lock as *const () as u64,
        "__mtx_unlock_flags" => mtx_unlock as *const () as u64,
        "__mtx_lock_spin_flags" => mtx_lock_spin as *const () as u64,
        "__mtx_unlock_spin_flags" => mtx_unlock_spin as *const () as u64,
        "_sleep" => _sleep as *const () as u64,
        "wakeup" => wakeup as *const () as u64,
        "smp_rendezvous" => smp_rendezvous as *const () as u64,
        "ipi_cpu" => ipi_cpu as *const () as u64,
        "critical_enter_KBI" => critical_enter_kbi as *const () as u64,
        "fpu_kern_enter" => fpu_kern_enter as *const () as u64,
        "fpu_kern_leave" => fpu_kern_leave as *const () as u64,
        "critical_exit_KBI" => critical_exit_kbi as *const () as u64,
        "sig_intr" => sig_intr as *const () as u64,
        "should_yield" => should_yield as *const () as u64,
        "maybe_yield" => maybe_yield as *const () as u64,
        "kern_sigprocmask" => kern_sigprocmask as *const () as u64,
        "nanouptime" => nanouptime as *const () as u64,
        "sglist_alloc" => sglist_alloc as *const () as u64,
        "sglist_append_phys" => sglist_append_phys as *const () as u64,
        "sglist_free" => sglist_free as *const () as u64,
        "vm_pager_allocate" => vm_pager_allocate as *const () as u64,
        "vm_object_deallocate" => vm_object_deallocate as *const () as u64,
        "vm_mmap_object" => vm_mmap_object as *const () as u64,
        "vm_fault_quick_hold_pages" => vm_fault_quick_hold_pages as *const () as u64,
        "vm_page_unhold_pages" => vm_page_unhold_pages as *const () as u64,
        "vmspace_acquire_ref" => vmspace_acquire_ref as *const () as u64,
        "vmspace_free" => vmspace_free as *const () as u64,
        "linux_ioctl_register_handler" => linux_ioctl_register_handler as *const () as u64,
        "linux_ioctl_unregister_handler" => linux_ioctl_unregister_handler as *const () as u64,
        "module_register_init" => module_register_init as *const () as u64,
        "linker_file_foreach" => linker_file_foreach as *const () as u64,
        "linker_file_lookup_symbol" => linker_file_lookup_symbol as *const () as u64,
        _ => return None,
    };
    Some(Target::Func(f))
}

/// Kernel objects the module owns right now, by kind (for the leak checks).
pub fn outstanding() -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    k(|k| {
        let mallocs = k.mallocs.len();
        m.insert("malloc".into(), mallocs);
        m.insert("file".into(), k.files.len());
        m.insert("lock".into(), k.locks.len());
        m.insert("sglist".into(), k.sglists.len());
        m.insert("vm_object".into(), k.objects.len());
        m.insert("eventfd".into(), k.eventfds.len());
        m.insert("held page".into(), k.held.len());
        m.insert("device".into(), k.devs.len());
    });
    m.insert("kmem page".into(), mem::pages_live());
    m
}
