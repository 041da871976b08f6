//! Harness memory: a "kernel" arena and a page pool below 4 GiB, and the "user" range above.
//!
//! Everything the module gets from the harness kernel (malloc(9), files, devices, pages,
//! threads) lives below 4 GiB; user memory is `[USER_MIN, USER_MAX)`, where the test
//! program's own heap, stack and mappings are. copyin/copyout accept only the user range and
//! copy with `process_vm_readv`/`process_vm_writev`, so an unmapped or `PROT_NONE` user
//! address gives `EFAULT` instead of a crash, as on FreeBSD.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Where the module is loaded.
pub const MODULE_BASE: u64 = 0x1000_0000;
/// The kernel arena (malloc(9) and every harness kernel object).
pub const ARENA_BASE: u64 = 0x2000_0000;
const ARENA_SIZE: u64 = 0x2000_0000;
/// The page pool (kmem_malloc), a shared memfd so user mappings can alias its pages
/// (`POOL_BASE` to 0x5000_0000; the kernel stacks follow at 0x6000_0000).
pub const POOL_BASE: u64 = 0x4000_0000;
const POOL_PAGES: u64 = 65536;
/// The fake physical address of the pool's first page.
pub const PA_BASE: u64 = 0x1_0000_0000;
/// The user range.
pub const USER_MIN: u64 = 0x1_0000_0000;
/// End of the user range (FreeBSD's `VM_MAXUSER_ADDRESS` with 4-level paging).
pub const USER_MAX: u64 = 0x0000_8000_0000_0000;
const PAGE: u64 = 4096;

struct Arena {
    next: u64,
    free: BTreeMap<u32, Vec<u64>>,
    /// Live allocations: address -> (size class, owner tag).
    live: BTreeMap<u64, (u32, &'static str)>,
}

struct Pool {
    fd: i32,
    free: Vec<u64>,
    next: u64,
    live: BTreeMap<u64, u64>,
}

static ARENA: Mutex<Option<Arena>> = Mutex::new(None);
static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Maps the arena and the pool. Once per process.
pub fn init() {
    // SAFETY: fixed mappings at addresses nothing else uses (NOREPLACE fails otherwise).
    unsafe {
        let a = libc::mmap(
            ARENA_BASE as *mut libc::c_void,
            ARENA_SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        assert_eq!(a as u64, ARENA_BASE, "arena mapping");
        let fd = libc::memfd_create(c"kvmport-harness-pages".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create");
        assert_eq!(libc::ftruncate(fd, (POOL_PAGES * PAGE) as i64), 0);
        let p = libc::mmap(
            POOL_BASE as *mut libc::c_void,
            (POOL_PAGES * PAGE) as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd,
            0,
        );
        assert_eq!(p as u64, POOL_BASE, "pool mapping");
        *POOL.lock().unwrap() = Some(Pool {
            fd,
            free: Vec::new(),
            next: 0,
            live: BTreeMap::new(),
        });
    }
    *ARENA.lock().unwrap() = Some(Arena {
        next: ARENA_BASE,
        free: BTreeMap::new(),
        live: BTreeMap::new(),
    });
}

/// Allocates `size` bytes in the kernel arena, zeroed, naturally aligned for power-of-two
/// sizes (as malloc(9)'s UMA zones are), tagged with its owner for the leak report.
pub fn kalloc(size: usize, tag: &'static str) -> u64 {
    let class = (size.max(16)).next_power_of_two();
    let class32 = u32::try_from(class).expect("allocation size");
    let mut g = ARENA.lock().unwrap();
    let a = g.as_mut().expect("arena");
    let addr = match a.free.get_mut(&class32).and_then(Vec::pop) {
        Some(p) => p,
        None => {
            let p = a.next.div_ceil(class as u64) * class as u64;
            assert!(
                p + class as u64 <= ARENA_BASE + ARENA_SIZE,
                "kernel arena exhausted"
            );
            a.next = p + class as u64;
            p
        }
    };
    a.live.insert(addr, (class32, tag));
    drop(g);
    // SAFETY: the block is inside the arena and now owned by the caller.
    unsafe { std::ptr::write_bytes(addr as *mut u8, 0, class) };
    addr
}

/// Frees an arena block; returns its tag, or `None` if `addr` is not a live block.
pub fn kfree(addr: u64) -> Option<&'static str> {
    let mut g = ARENA.lock().unwrap();
    let a = g.as_mut()?;
    let (class, tag) = a.live.remove(&addr)?;
    a.free.entry(class).or_default().push(addr);
    Some(tag)
}

/// Allocates `pages` contiguous pool pages (only 1 is needed by kvmport; more are bumped).
pub fn page_alloc(pages: u64) -> Option<u64> {
    let mut g = POOL.lock().unwrap();
    let p = g.as_mut()?;
    let idx = if pages == 1 { p.free.pop() } else { None };
    let idx = match idx {
        Some(i) => i,
        None => {
            if p.next + pages > POOL_PAGES {
                return None;
            }
            p.next += pages;
            p.next - pages
        }
    };
    p.live.insert(idx, pages);
    let va = POOL_BASE + idx * PAGE;
    drop(g);
    // SAFETY: pool pages now owned by the caller.
    unsafe { std::ptr::write_bytes(va as *mut u8, 0, (pages * PAGE) as usize) };
    Some(va)
}

/// Frees pool pages; `false` if `va`/`pages` do not match a live allocation.
pub fn page_free(va: u64, pages: u64) -> bool {
    let mut g = POOL.lock().unwrap();
    let Some(p) = g.as_mut() else { return false };
    if va < POOL_BASE || (va - POOL_BASE) % PAGE != 0 {
        return false;
    }
    let idx = (va - POOL_BASE) / PAGE;
    if p.live.get(&idx) != Some(&pages) {
        return false;
    }
    p.live.remove(&idx);
    for i in 0..pages {
        p.free.push(idx + i);
    }
    true
}

/// Live pool allocations.
pub fn pages_live() -> usize {
    POOL.lock().unwrap().as_ref().map_or(0, |p| p.live.len())
}

/// The fake physical address of a kernel virtual address (pool pages alias through it; other
/// kernel memory gets a distinct, non-mappable range).
pub fn kextract(va: u64) -> u64 {
    if (POOL_BASE..POOL_BASE + POOL_PAGES * PAGE).contains(&va) {
        PA_BASE + (va - POOL_BASE)
    } else if (ARENA_BASE..ARENA_BASE + ARENA_SIZE).contains(&va) {
        0x8_0000_0000 + (va - ARENA_BASE)
    } else {
        0
    }
}

/// The pool file and offset backing physical address `pa`.
pub fn pa_to_pool(pa: u64) -> Option<(i32, u64)> {
    let off = pa.checked_sub(PA_BASE)?;
    if off >= POOL_PAGES * PAGE || off % PAGE != 0 {
        return None;
    }
    let fd = POOL.lock().unwrap().as_ref()?.fd;
    Some((fd, off))
}

/// Whether `[addr, addr + len)` is in the user range.
pub fn user_range(addr: u64, len: u64) -> bool {
    addr >= USER_MIN && addr.checked_add(len).is_some_and(|e| e <= USER_MAX)
}

/// copyin: 0 or EFAULT (14).
pub fn copyin(uaddr: u64, kaddr: u64, len: usize) -> i32 {
    if len == 0 {
        return 0;
    }
    if !user_range(uaddr, len as u64) {
        return 14;
    }
    let local = libc::iovec {
        iov_base: kaddr as *mut libc::c_void,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: uaddr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: reads our own process's memory into the module's kernel buffer of `len` bytes;
    // the kernel reports unmapped or unreadable user pages as a short count or EFAULT.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == len as isize { 0 } else { 14 }
}

/// copyout: 0 or EFAULT (14).
pub fn copyout(kaddr: u64, uaddr: u64, len: usize) -> i32 {
    if len == 0 {
        return 0;
    }
    if !user_range(uaddr, len as u64) {
        return 14;
    }
    let local = libc::iovec {
        iov_base: kaddr as *mut libc::c_void,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: uaddr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: as in `copyin`, writing.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == len as isize { 0 } else { 14 }
}
