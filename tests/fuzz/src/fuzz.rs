//! The fuzzing loop that runs in a forked child: a pool of KVM fds and a stream of random,
//! mutated and deliberately hostile operations on them.

use crate::cmds;
use crate::mem::{PAGE, Region, hole};
use crate::rng::Rng;
use crate::stats::{Kind, Stats};
use kvmport_core::abi::ioctl::*;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// At most this many system fds, VM fds, vCPU fds, other fds and live mappings.
const MAX_SYS: usize = 3;
const MAX_VMS: usize = 3;
const MAX_VCPUS: usize = 8;
const MAX_OTHER: usize = 12;
const MAX_MAPS: usize = 16;
/// Size of the argument arena.
const ARENA: usize = 1 << 20;
/// Where ioctl arguments usually start: within the first half of the arena, so that a kernel
/// write past the struct still lands in the arena or on its guard page.
const ARENA_HOT: usize = ARENA / 2;
/// Guest memory regions (memslot backing), in bytes.
const GUEST_SIZES: [usize; 4] = [64 << 10, 256 << 10, 1 << 20, 2 << 20];
/// Length of the unmapped hole.
const HOLE: usize = 16 << 20;
/// A kernel address (start of the x86-64 direct map).
const KERNEL: u64 = 0xffff_8000_0000_0000;
/// `SIGALRM`'s bit in a `sigset_t`.
const SIGALRM_BIT: u64 = 1 << (libc::SIGALRM - 1);

/// What the fuzzer puts in guest memory. Except with `Random`, guest memory never holds long
/// runs of zero bytes (remapped or discarded regions are refilled at once, and the mostly zero
/// argument arena is never a memslot): QEMU 10.0's TCG was seen to crash (SIGSEGV in
/// `tcg_optimize`) translating such runs for a nested guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GuestCode {
    /// Random bytes with x86 instruction snippets sprinkled in (the default).
    Random,
    /// Only whole instruction snippets, back to back.
    Snippets,
    /// Only `hlt`; argument structs are never placed in guest memory.
    Hlt,
}

impl GuestCode {
    /// Parses `random`, `snippets` or `hlt`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "random" => Some(GuestCode::Random),
            "snippets" => Some(GuestCode::Snippets),
            "hlt" => Some(GuestCode::Hlt),
            _ => None,
        }
    }
}

/// What the fuzzer leaves out (for hosts whose emulator cannot take everything).
#[derive(Clone, Copy, Default, Debug)]
pub struct Limits {
    /// Never set vCPU register state (the `SET_*` commands of [`cmds::STATE_SETTERS`], the
    /// flat real-mode setup, `kvm_run` bytes).
    pub no_state: bool,
    /// Never issue `KVM_RUN`.
    pub no_run: bool,
    /// When non-zero, only the [`cmds::STATE_SETTERS`] whose bit (by index) is set are issued:
    /// for narrowing down which state a misbehaving run needs.
    pub state_allow: u64,
}

/// A vCPU fd and its `kvm_run` mapping.
struct Vcpu {
    fd: i32,
    /// The VM fd it was created from (-1 once that is closed).
    vm: i32,
    /// The `kvm_run` mapping, or null.
    run: *mut u8,
    run_len: usize,
}

/// An ioctl argument.
enum Arg {
    /// Passed by value.
    Val(u64),
    /// Placed in memory, passed by address.
    Buf(Vec<u8>),
}

/// Little-endian field writers for argument buffers.
trait Put {
    fn put32(&mut self, off: usize, v: u32);
    fn put64(&mut self, off: usize, v: u64);
}

impl Put for Vec<u8> {
    fn put32(&mut self, off: usize, v: u32) {
        if let Some(s) = self.get_mut(off..off + 4) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn put64(&mut self, off: usize, v: u64) {
        if let Some(s) = self.get_mut(off..off + 8) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
}

fn get32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Installs the no-op `SIGALRM` handler (without `SA_RESTART`, so it interrupts `KVM_RUN`) and
/// ignores `SIGPIPE` and `SIGIO`.
pub fn install_signals() {
    // SAFETY: plain sigaction calls; the handler does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGIO, libc::SIG_IGN);
    }
}

/// Arms (`usec` > 0, repeating) or disarms (0) `ITIMER_REAL`.
fn itimer(usec: u64) {
    let tv = libc::timeval {
        tv_sec: (usec / 1_000_000) as _,
        tv_usec: (usec % 1_000_000) as _,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: a valid itimerval.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
}

fn close(fd: i32) {
    // SAFETY: closes an fd this process owns and forgets it.
    unsafe { libc::close(fd) };
}

fn munmap(p: *mut u8, len: usize) {
    // SAFETY: unmaps a mapping this process made and forgets it.
    unsafe { libc::munmap(p.cast(), len) };
}

/// The fuzzer's state in one child.
pub struct Fuzzer {
    rng: Rng,
    code: GuestCode,
    limits: Limits,
    stats: &'static Stats,
    device: CString,
    sys: Vec<i32>,
    vms: Vec<i32>,
    vcpus: Vec<Vcpu>,
    other: Vec<i32>,
    eventfds: Vec<i32>,
    maps: Vec<(*mut u8, usize)>,
    arena: Region,
    guest: Vec<Region>,
    hole: u64,
    mmap_size: usize,
    /// Saved `GET` outputs, keyed by the `SET` they feed.
    corpus: HashMap<u32, Vec<u8>>,
    /// MSR indices from `KVM_GET_MSR_INDEX_LIST`.
    msrs: Vec<u32>,
    /// A non-blocking pipe used to make the kernel touch mappings (a fault there is an
    /// `EFAULT`, not a signal).
    pipe: [i32; 2],
}

impl Fuzzer {
    /// Sets up memory and opens the device. `None` if the device cannot be opened.
    pub fn new(
        device: &str,
        seed: u64,
        code: GuestCode,
        limits: Limits,
        stats: &'static Stats,
    ) -> Option<Self> {
        let mut pipe = [-1; 2];
        // SAFETY: `pipe` has room for two fds.
        unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        let mut f = Fuzzer {
            rng: Rng::new(seed),
            code,
            limits,
            stats,
            device: CString::new(device).ok()?,
            sys: Vec::new(),
            vms: Vec::new(),
            vcpus: Vec::new(),
            other: Vec::new(),
            eventfds: Vec::new(),
            maps: Vec::new(),
            arena: Region::new(ARENA),
            guest: GUEST_SIZES.iter().map(|&n| Region::new(n)).collect(),
            hole: hole(HOLE),
            mmap_size: 3 * PAGE,
            corpus: HashMap::new(),
            msrs: Vec::new(),
            pipe,
        };
        for (i, &len) in GUEST_SIZES.iter().enumerate() {
            f.scribble_guest(i, 0, len);
        }
        let fd = f.open_sys()?;
        let r = f.ioctl(Kind::Sys, fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if r > 0 {
            f.mmap_size = (r as usize).min(64 * PAGE);
        }
        // Seed the corpus: the MSR list and the supported CPUID.
        let mut b = vec![0u8; 4 + 4 * 1024];
        b.put32(0, 1024);
        f.arena.write(0, &b);
        if f.ioctl(Kind::Sys, fd, KVM_GET_MSR_INDEX_LIST, f.arena.addr(0)) >= 0 {
            let out = f.arena.read(0, b.len());
            let n = (get32(&out, 0) as usize).min(1024);
            f.msrs = (0..n).map(|i| get32(&out, 4 + 4 * i)).collect();
        }
        let mut b = vec![0u8; 8 + 40 * 256];
        b.put32(0, 256);
        f.arena.write(0, &b);
        if f.ioctl(Kind::Sys, fd, KVM_GET_SUPPORTED_CPUID, f.arena.addr(0)) >= 0 {
            let n = (get32(&f.arena.read(0, 4), 0) as usize).min(256);
            f.corpus.insert(KVM_SET_CPUID2, f.arena.read(0, 8 + 40 * n));
        }
        Some(f)
    }

    /// Runs steps until `until`.
    pub fn run_until(&mut self, until: Instant) {
        while Instant::now() < until {
            for _ in 0..16 {
                self.step();
            }
        }
    }

    /// Issues one ioctl and records it.
    fn ioctl(&self, kind: Kind, fd: i32, cmd: u32, arg: u64) -> i64 {
        self.stats.heartbeat.fetch_add(1, Relaxed);
        // SAFETY: every pointer argument the fuzzer builds points into its own guarded
        // regions, at NULL, into kernel space or into an unmapped hole (see `place`), so the
        // kernel can only write into memory that holds nothing the fuzzer relies on.
        let r = unsafe { libc::ioctl(fd, cmd as _, arg) };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        self.stats.ioctl(kind, i64::from(r), errno);
        i64::from(r)
    }

    fn open_sys(&mut self) -> Option<i32> {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(self.device.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        self.sys.push(fd);
        Some(fd)
    }

    /// Fills `len` bytes of guest region `i` from `off` with noise and instruction snippets.
    fn scribble_guest(&mut self, i: usize, off: usize, len: usize) {
        let mut buf = vec![0xf4u8; len];
        match self.code {
            GuestCode::Random => self.rng.fill(&mut buf),
            GuestCode::Hlt => {
                self.guest[i].write(off, &buf);
                return;
            }
            GuestCode::Snippets => {
                let mut at = 0;
                while at < len {
                    let s = self.rng.pick(cmds::GUEST_SNIPPETS);
                    let n = s.len().min(len - at);
                    buf[at..at + n].copy_from_slice(&s[..n]);
                    at += n;
                }
                self.guest[i].write(off, &buf);
                return;
            }
        }
        for _ in 0..len / 16 {
            let s = self.rng.pick(cmds::GUEST_SNIPPETS);
            let at = self.rng.index(len);
            let n = s.len().min(len - at);
            buf[at..at + n].copy_from_slice(&s[..n]);
        }
        self.guest[i].write(off, &buf);
    }

    // -----------------------------------------------------------------------------------------
    // Pools

    fn any_sys(&mut self) -> i32 {
        if self.sys.is_empty() {
            return self.open_sys().unwrap_or(-1);
        }
        let i = self.rng.index(self.sys.len());
        self.sys[i]
    }

    fn any_vm(&mut self) -> i32 {
        if self.vms.is_empty() || (self.vms.len() < MAX_VMS && self.rng.chance(1, 50)) {
            self.create_vm();
        }
        if self.vms.is_empty() {
            return -1;
        }
        let i = self.rng.index(self.vms.len());
        self.vms[i]
    }

    fn any_vcpu(&mut self) -> Option<usize> {
        if self.vcpus.is_empty() || (self.vcpus.len() < MAX_VCPUS && self.rng.chance(1, 50)) {
            self.create_vcpu();
        }
        if self.vcpus.is_empty() {
            return None;
        }
        Some(self.rng.index(self.vcpus.len()))
    }

    fn create_vm(&mut self) {
        let sys = self.any_sys();
        let ty = self.vm_type();
        let r = self.ioctl(Kind::Sys, sys, KVM_CREATE_VM, ty);
        self.adopt(KVM_CREATE_VM, sys, r, None);
    }

    fn create_vcpu(&mut self) {
        let vm = self.any_vm();
        let id = self.vcpu_id();
        let r = self.ioctl(Kind::Vm, vm, KVM_CREATE_VCPU, id);
        self.adopt(KVM_CREATE_VCPU, vm, r, None);
    }

    /// Takes over an fd a command returned (or closes it when the pool is full).
    fn adopt(&mut self, cmd: u32, on: i32, r: i64, buf: Option<u64>) {
        let fd = match cmd {
            KVM_CREATE_DEVICE => match buf {
                Some(a) if r == 0 && a >= self.arena.addr(0) && a + 8 <= self.arena.end() => get32(
                    &self.arena.read((a - self.arena.addr(0)) as usize + 4, 4),
                    0,
                )
                    as i64,
                _ => return,
            },
            _ => r,
        };
        if fd <= 2 || fd > i64::from(i32::MAX) {
            return;
        }
        let fd = fd as i32;
        if fd == self.pipe[0] || fd == self.pipe[1] {
            return;
        }
        match cmd {
            KVM_CREATE_VM if self.vms.len() < MAX_VMS => self.vms.push(fd),
            KVM_CREATE_VCPU if self.vcpus.len() < MAX_VCPUS => {
                let len = self.mmap_size;
                // SAFETY: maps the vCPU fd; the mapping is ours and only accessed through
                // `Region`-style bounds checks below.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd,
                        0,
                    )
                };
                let run = if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                };
                let vm = if self.vms.contains(&on) { on } else { -1 };
                self.vcpus.push(Vcpu {
                    fd,
                    vm,
                    run,
                    run_len: len,
                });
            }
            KVM_GET_STATS_FD | KVM_CREATE_GUEST_MEMFD | KVM_CREATE_DEVICE
                if self.other.len() < MAX_OTHER =>
            {
                self.other.push(fd)
            }
            KVM_CREATE_VM
            | KVM_CREATE_VCPU
            | KVM_GET_STATS_FD
            | KVM_CREATE_GUEST_MEMFD
            | KVM_CREATE_DEVICE => close(fd),
            _ => {}
        }
    }

    /// Closes a random fd of a random kind (a VM fd possibly while its vCPUs live on).
    fn close_something(&mut self) {
        match self.rng.below(5) {
            0 if self.sys.len() > 1 => {
                let i = self.rng.index(self.sys.len());
                close(self.sys.swap_remove(i));
            }
            1 if !self.vms.is_empty() => {
                let i = self.rng.index(self.vms.len());
                let fd = self.vms.swap_remove(i);
                for v in &mut self.vcpus {
                    if v.vm == fd {
                        v.vm = -1;
                    }
                }
                close(fd);
            }
            2 | 3 if !self.vcpus.is_empty() => {
                let i = self.rng.index(self.vcpus.len());
                let v = self.vcpus.swap_remove(i);
                close(v.fd);
                if !v.run.is_null() {
                    // Sometimes keep the mapping past the fd (it pins the vCPU file).
                    if self.rng.chance(1, 2) && self.maps.len() < MAX_MAPS {
                        self.maps.push((v.run, v.run_len));
                    } else {
                        munmap(v.run, v.run_len);
                    }
                }
            }
            _ if !self.other.is_empty() => {
                let i = self.rng.index(self.other.len());
                close(self.other.swap_remove(i));
            }
            _ => {
                if let Some(fd) = self.eventfds.pop() {
                    close(fd);
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Values

    fn vm_type(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => 0,
            6 => self.rng.below(6),
            7 => 1 << self.rng.below(64),
            _ => self.rng.value(),
        }
    }

    fn vcpu_id(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => self.rng.below(4),
            6 => self.rng.pick(&[254, 255, 256, 1023, 1024, 4095, 4096]),
            _ => self.rng.value(),
        }
    }

    fn cap(&mut self) -> u64 {
        if self.rng.chance(7, 8) {
            self.rng.below(260)
        } else {
            self.rng.value()
        }
    }

    fn slot_id(&mut self) -> u32 {
        match self.rng.below(10) {
            0..=4 => self.rng.below(4) as u32,
            5 => self.rng.below(40) as u32,
            6 => self.rng.pick(&[509, 510, 511, 512, 32767, 32768]),
            7 => 0x1_0000 | self.rng.below(3) as u32,
            _ => self.rng.value() as u32,
        }
    }

    /// An fd for a field that wants an eventfd (or something else, hostilely).
    fn evfd(&mut self) -> u32 {
        if self.eventfds.is_empty() || self.rng.chance(1, 10) {
            // SAFETY: creates a new eventfd.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd >= 0 {
                if self.eventfds.len() >= 4 {
                    close(self.eventfds.remove(0));
                }
                self.eventfds.push(fd);
            }
        }
        match self.rng.below(10) {
            0 if !self.vms.is_empty() => self.vms[0] as u32,
            1 if !self.other.is_empty() => self.other[self.rng.index(self.other.len())] as u32,
            2 => self.rng.value() as u32,
            _ if !self.eventfds.is_empty() => {
                self.eventfds[self.rng.index(self.eventfds.len())] as u32
            }
            _ => u32::MAX,
        }
    }

    /// An address for the kernel to write output through (a struct's embedded pointer).
    fn out_ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => self
                .arena
                .addr(ARENA_HOT + self.rng.index(ARENA_HOT / 2) / 8 * 8),
            6 => 0,
            7 => KERNEL + (self.rng.below(1 << 30) & !7),
            8 => self.hole + self.rng.below(HOLE as u64),
            _ => self.arena.end() - self.rng.below(64),
        }
    }

    /// A guest physical address.
    fn gpa(&mut self, size: u64) -> u64 {
        match self.rng.below(10) {
            0 | 1 => 0,
            2 => 0x1_0000_0000u64.saturating_sub(size), // ends at 4 GiB: the reset vector
            3 => self
                .rng
                .pick(&[0xf_0000, 0x10_0000, 0xfec0_0000, 0xfee0_0000]),
            4..=6 => self.rng.below(1 << 20) * PAGE as u64,
            7 => self.rng.below(1 << 40) & !(PAGE as u64 - 1),
            _ => self.rng.value(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Arguments

    /// Flips bits, overwrites bytes and drops boundary values into `b`.
    fn mutate(&mut self, b: &mut [u8]) {
        if b.is_empty() {
            return;
        }
        for _ in 0..=self.rng.below(4) {
            let i = self.rng.index(b.len());
            match self.rng.below(4) {
                0 => b[i] ^= 1 << self.rng.below(8),
                1 => b[i] = self.rng.next() as u8,
                2 => {
                    let i = i & !3;
                    let v = self.rng.count().to_le_bytes();
                    let n = 4.min(b.len() - i);
                    b[i..i + n].copy_from_slice(&v[..n]);
                }
                _ => {
                    let i = i & !7;
                    let v = self.rng.value().to_le_bytes();
                    let n = 8.min(b.len() - i);
                    b[i..i + n].copy_from_slice(&v[..n]);
                }
            }
        }
    }

    /// Puts `data` somewhere and returns the address to pass: usually the arena, sometimes
    /// ending exactly at (or running into) its guard page, NULL, a kernel address, the
    /// unmapped hole, a misaligned address or guest memory.
    fn place(&mut self, data: &[u8]) -> u64 {
        match self.rng.below(100) {
            0..=71 => {
                let off = self.rng.index(ARENA_HOT / 8) * 8;
                self.arena.write(off, data);
                self.arena.addr(off)
            }
            72..=81 => {
                let cut = if self.rng.chance(1, 2) {
                    0
                } else {
                    self.rng.index(data.len().min(64) + 1)
                };
                let n = (data.len() - cut).min(ARENA);
                let off = ARENA - n;
                self.arena.write(off, &data[..n]);
                self.arena.addr(off)
            }
            82..=85 => 0,
            86..=89 => KERNEL + (self.rng.below(1 << 40) & !7),
            90..=93 => self.hole + self.rng.below(HOLE as u64),
            _ if self.code == GuestCode::Hlt => {
                let off = self.rng.index(ARENA_HOT / 8) * 8 + 1 + self.rng.index(7);
                self.arena.write(off, data);
                self.arena.addr(off)
            }
            94..=96 => {
                let off = self.rng.index(ARENA_HOT / 8) * 8 + 1 + self.rng.index(7);
                self.arena.write(off, data);
                self.arena.addr(off)
            }
            _ => {
                let g = self.rng.index(self.guest.len());
                let off = self.rng.index(self.guest[g].len / 2);
                self.guest[g].write(off, data);
                self.guest[g].addr(off)
            }
        }
    }

    /// A `kvm_userspace_memory_region(2)` (or legacy `kvm_memory_region`): mostly real,
    /// fuzzer-owned guest memory at interesting guest addresses; sometimes unmapped or
    /// kernel memory, deletions and boundary sizes KVM must reject.
    fn memslot(&mut self, cmd: u32) -> Vec<u8> {
        let mut b = vec![0u8; (ioc_size(cmd) as usize).max(32)];
        let g = self.rng.index(self.guest.len());
        let (glen, gaddr) = (self.guest[g].len as u64, self.guest[g].addr(0));
        let (uaddr, size) = match self.rng.below(12) {
            0..=5 => {
                let off = self.rng.below(glen / PAGE as u64) * PAGE as u64;
                let left = glen - off;
                let size = if self.rng.chance(1, 2) {
                    left
                } else {
                    (1 + self.rng.below(left / PAGE as u64)) * PAGE as u64
                };
                (gaddr + off, size)
            }
            6 => (gaddr, 0), // delete
            7 => (
                self.hole,
                (1 + self.rng.below(HOLE as u64 / PAGE as u64)) * PAGE as u64,
            ),
            8 => (KERNEL, glen),
            9 if self.code == GuestCode::Random => {
                (self.arena.addr(0), ARENA as u64 + PAGE as u64) // runs onto the guard
            }
            9 => (gaddr, glen + PAGE as u64), // runs onto the guard
            10 => (gaddr + self.rng.below(PAGE as u64), glen),
            _ => {
                // Sizes KVM must reject (too large or unaligned); none it would accept and
                // then allocate huge metadata for.
                let s = self
                    .rng
                    .pick(&[1, 0xfff, 0x1001, 1 << 43, 1 << 52, !0xfff, u64::MAX]);
                (gaddr, s)
            }
        };
        let flags = match self.rng.below(8) {
            0..=2 => 0,
            3 => 1,
            4 => 2,
            5 => 4,
            6 => self.rng.below(8) as u32,
            _ => self.rng.value() as u32,
        };
        let slot = self.slot_id();
        let gpa = self.gpa(size);
        b.put32(0, slot);
        b.put32(4, flags);
        b.put64(8, gpa);
        b.put64(16, size);
        b.put64(24, uaddr);
        if cmd == KVM_SET_USER_MEMORY_REGION2 {
            let off = if self.rng.chance(1, 2) {
                0
            } else {
                self.rng.value() & !0xfff
            };
            b.put64(32, off);
            let fd = match self.other.len() {
                0 => self.rng.value() as u32,
                n => self.other[self.rng.index(n)] as u32,
            };
            b.put32(40, fd);
        }
        b.truncate(ioc_size(cmd) as usize);
        b
    }

    /// A buffer for pointer command `cmd`.
    fn buf_for(&mut self, cmd: u32) -> Vec<u8> {
        let size = ioc_size(cmd) as usize;
        if let Some(saved) = self.corpus.get(&cmd)
            && self.rng.chance(2, 3)
        {
            let mut b = saved.clone();
            if self.rng.chance(2, 3) {
                self.mutate(&mut b);
            }
            return b;
        }
        let mut b = vec![0u8; size.max(8)];
        if self.rng.chance(1, 4) {
            self.rng.fill(&mut b);
        }
        match cmd {
            KVM_SET_USER_MEMORY_REGION | KVM_SET_USER_MEMORY_REGION2 | KVM_SET_MEMORY_REGION => {
                return self.memslot(cmd);
            }
            KVM_GET_SUPPORTED_CPUID
            | KVM_GET_EMULATED_CPUID
            | KVM_GET_CPUID2
            | KVM_GET_SUPPORTED_HV_CPUID
            | KVM_SET_CPUID2
            | KVM_SET_CPUID => {
                let n = self.rng.count();
                let entry = if cmd == KVM_SET_CPUID { 24 } else { 40 };
                b = vec![0u8; 8 + entry * (n as usize).min(300)];
                if cmd == KVM_SET_CPUID2 || cmd == KVM_SET_CPUID {
                    self.rng.fill(&mut b);
                }
                b.put32(0, n);
                b.put32(4, 0);
            }
            KVM_GET_MSR_INDEX_LIST | KVM_GET_MSR_FEATURE_INDEX_LIST => {
                let n = self.rng.count();
                b = vec![0u8; 4 + 4 * (n as usize).min(2048)];
                b.put32(0, n);
            }
            KVM_GET_MSRS | KVM_SET_MSRS => {
                let n = if self.rng.chance(3, 4) {
                    self.rng.below(8) as u32
                } else {
                    self.rng.count()
                };
                let real = (n as usize).min(300);
                b = vec![0u8; 8 + 16 * real];
                b.put32(0, n);
                for i in 0..real {
                    let idx = match self.rng.below(4) {
                        0 | 1 if !self.msrs.is_empty() => {
                            self.msrs[self.rng.index(self.msrs.len())]
                        }
                        2 => self.rng.pick(&[
                            0x10,
                            0x1b,
                            0x3a,
                            0x48,
                            0x174,
                            0x1d9,
                            0x277,
                            0x6e0,
                            0x800,
                            0x80b,
                            0x830,
                            0xc000_0080,
                            0xc000_0081,
                            0xc000_0100,
                            0xc001_0114,
                            0xc001_0117,
                            0x4000_0000,
                            0x4b56_4d00,
                        ]),
                        _ => self.rng.value() as u32,
                    };
                    b.put32(8 + 16 * i, idx);
                    let v = self.rng.value();
                    b.put64(16 + 16 * i, v);
                }
            }
            KVM_ENABLE_CAP => {
                let cap = self.cap() as u32;
                b.put32(0, cap);
                let fl = if self.rng.chance(7, 8) {
                    0
                } else {
                    self.rng.value() as u32
                };
                b.put32(4, fl);
                for i in 0..4 {
                    let v = if self.rng.chance(1, 2) {
                        self.rng.below(4)
                    } else {
                        self.rng.value()
                    };
                    b.put64(8 + 8 * i, v);
                }
            }
            KVM_GET_DIRTY_LOG => {
                let s = self.slot_id();
                b.put32(0, s);
                let p = self.out_ptr();
                b.put64(8, p);
            }
            KVM_CLEAR_DIRTY_LOG => {
                let s = self.slot_id();
                b.put32(0, s);
                let n = self.rng.pick(&[0, 1, 63, 64, 65, 128, 256, 512]) as u32;
                b.put32(
                    4,
                    if self.rng.chance(1, 4) {
                        self.rng.count()
                    } else {
                        n
                    },
                );
                let first = self.rng.pick(&[0, 1, 64, 128, 256, 1 << 20, u64::MAX - 63]);
                b.put64(8, first);
                let p = self.out_ptr();
                b.put64(16, p);
            }
            KVM_IOEVENTFD => {
                let v = self.rng.value();
                b.put64(0, v);
                let a = self.rng.pick(&[0x80, 0xcf8, 0x3f8, 0xe0_0000, 0xfee0_0000]);
                let a = if self.rng.chance(1, 3) {
                    self.rng.value()
                } else {
                    a
                };
                b.put64(8, a);
                let len = self.rng.pick(&[0, 1, 2, 4, 8, 3, 16]);
                b.put32(16, len);
                let fd = self.evfd();
                b.put32(20, fd);
                let fl = if self.rng.chance(3, 4) {
                    self.rng.below(16)
                } else {
                    self.rng.value()
                };
                b.put32(24, fl as u32);
            }
            KVM_IRQFD => {
                let fd = self.evfd();
                b.put32(0, fd);
                let gsi = self.rng.pick(&[0, 1, 4, 8, 23, 24, 1023, 4096]);
                b.put32(4, gsi);
                let fl = self.rng.below(4) as u32;
                b.put32(8, fl);
                let rfd = self.evfd();
                b.put32(12, rfd);
            }
            KVM_SET_GSI_ROUTING => {
                let n = if self.rng.chance(3, 4) {
                    self.rng.below(32) as u32
                } else {
                    self.rng.count()
                };
                let real = (n as usize).min(128);
                b = vec![0u8; 8 + 64 * real];
                b.put32(0, n);
                for i in 0..real {
                    let e = 8 + 64 * i;
                    let gsi = self.rng.below(32) as u32;
                    b.put32(e, gsi);
                    let t = self.rng.pick(&[1, 1, 2, 2, 3, 4, 5, 0, 99]);
                    b.put32(e + 4, t);
                    let f = self.rng.below(2) as u32;
                    b.put32(e + 8, f);
                    let a = self.rng.below(3) as u32;
                    b.put32(e + 16, a);
                    let p = self.rng.below(24) as u32;
                    b.put32(e + 20, if t == 2 { 0xfee0_0000 } else { p });
                    let d = self.rng.value() as u32;
                    b.put32(e + 24, d);
                }
            }
            KVM_SET_SIGNAL_MASK => {
                let len = self
                    .rng
                    .pick(&[8, 8, 8, 0, 4, 16, 128, 0x8000_0000, u32::MAX]);
                b = vec![0u8; 4 + 16];
                b.put32(0, len);
                // Never block SIGALRM during KVM_RUN: it is what ends the runs.
                let set = self.rng.next() & !SIGALRM_BIT;
                b.put64(4, set);
            }
            KVM_CREATE_DEVICE => {
                let t = if self.rng.chance(3, 4) {
                    self.rng.below(16)
                } else {
                    self.rng.value()
                };
                b.put32(0, t as u32);
                b.put32(4, 0);
                let f = self.rng.below(2) as u32;
                b.put32(8, f);
            }
            KVM_SET_DEVICE_ATTR | KVM_GET_DEVICE_ATTR | KVM_HAS_DEVICE_ATTR => {
                b.put32(0, 0);
                let g = self.rng.below(8) as u32;
                b.put32(4, g);
                let a = if self.rng.chance(1, 2) {
                    self.rng.below(8)
                } else {
                    self.rng.value()
                };
                b.put64(8, a);
                let p = self.out_ptr();
                b.put64(16, p);
            }
            KVM_GET_ONE_REG | KVM_SET_ONE_REG => {
                let id = self.rng.value();
                b.put64(0, id);
                let p = self.out_ptr();
                b.put64(8, p);
            }
            KVM_SET_GUEST_DEBUG => {
                let c = self
                    .rng
                    .pick(&[0, 1, 3, 0x10001, 0x20001, 0x30003, 0x40001]);
                b.put32(0, c);
                for i in 0..8 {
                    let v = self.rng.value();
                    b.put64(8 + 8 * i, v);
                }
            }
            KVM_SET_MP_STATE => {
                let s = self.rng.below(12) as u32;
                b.put32(0, s);
            }
            KVM_CREATE_GUEST_MEMFD => {
                let s = if self.rng.chance(3, 4) {
                    self.rng.below(512) * PAGE as u64
                } else {
                    self.rng.value()
                };
                b.put64(0, s);
                let f = if self.rng.chance(3, 4) {
                    0
                } else {
                    self.rng.value()
                };
                b.put64(8, f);
            }
            KVM_SET_MEMORY_ATTRIBUTES => {
                let a = self.rng.below(1 << 20) * PAGE as u64;
                b.put64(0, a);
                let s = self.rng.below(512) * PAGE as u64;
                b.put64(8, s);
                let at = self.rng.pick(&[0, 8, 8, 1, u64::MAX]);
                b.put64(16, at);
            }
            KVM_X86_SET_MSR_FILTER => {
                let f = self.rng.below(2) as u32;
                b.put32(0, f);
                for i in 0..16.min(self.rng.index(5)) {
                    let r = 8 + 24 * i;
                    let fl = self.rng.below(4) as u32;
                    b.put32(r, fl);
                    let n = self
                        .rng
                        .pick(&[0, 1, 64, 0x2000, 0x4000, 0x10000, u32::MAX]);
                    b.put32(r + 4, n);
                    let base = self
                        .rng
                        .pick(&[0, 0x1b, 0xc000_0000, 0xc001_0000, 0x4000_0000]);
                    b.put32(r + 8, base);
                    let p = self.out_ptr();
                    b.put64(r + 16, p);
                }
            }
            KVM_SET_PMU_EVENT_FILTER => {
                let n = self.rng.count();
                let real = (n as usize).min(300);
                b = vec![0u8; 32 + 8 * real];
                let a = self.rng.below(3) as u32;
                b.put32(0, a);
                b.put32(4, n);
                let fx = self.rng.below(8) as u32;
                b.put32(8, fx);
                let fl = self.rng.below(2) as u32;
                b.put32(12, fl);
                for i in 0..real {
                    let v = self.rng.value();
                    b.put64(32 + 8 * i, v);
                }
            }
            KVM_GET_NESTED_STATE => {
                let s = self.rng.pick(&[0, 128, 4096, 8192 + 128, 16384, u32::MAX]);
                b = vec![0u8; (s as usize).clamp(128, 16384 + 128)];
                b.put32(4, s);
            }
            KVM_IRQ_LINE | KVM_IRQ_LINE_STATUS => {
                let irq = if self.rng.chance(3, 4) {
                    self.rng.below(32)
                } else {
                    self.rng.value()
                };
                b.put32(0, irq as u32);
                let l = self.rng.below(2) as u32;
                b.put32(4, l);
            }
            KVM_SIGNAL_MSI => {
                let a = 0xfee0_0000 | (self.rng.below(256) << 12);
                b.put32(0, a as u32);
                let d = self.rng.value() as u32;
                b.put32(8, d);
            }
            KVM_TRANSLATE => {
                let a = self.rng.value();
                b.put64(0, a);
            }
            KVM_INTERRUPT => {
                let irq = if self.rng.chance(3, 4) {
                    self.rng.below(256)
                } else {
                    self.rng.value()
                };
                b.put32(0, irq as u32);
            }
            _ => {}
        }
        if self.rng.chance(1, 6) {
            self.mutate(&mut b);
        }
        b
    }

    /// The argument for `cmd`.
    fn arg_for(&mut self, cmd: u32) -> Arg {
        if ioc_dir(cmd) != IOC_NONE || cmd == KVM_REINJECT_CONTROL {
            return Arg::Buf(self.buf_for(cmd));
        }
        let v = match cmd {
            KVM_CREATE_VM => self.vm_type(),
            KVM_CREATE_VCPU => self.vcpu_id(),
            KVM_CHECK_EXTENSION => self.cap(),
            KVM_SET_TSS_ADDR => match self.rng.below(4) {
                0 => 0xfffb_d000,
                1 => self.gpa(PAGE as u64 * 3),
                _ => self.rng.value(),
            },
            KVM_SET_TSC_KHZ => self
                .rng
                .pick(&[0, 1, 1000, 1_000_000, 2_500_000, 4_000_000_000]),
            KVM_SET_BOOT_CPU_ID => self.rng.below(8),
            _ if self.rng.chance(2, 3) => 0,
            _ => {
                if self.rng.chance(1, 2) {
                    let mut b = vec![0u8; 64];
                    self.rng.fill(&mut b);
                    return Arg::Buf(b);
                }
                self.rng.value()
            }
        };
        Arg::Val(v)
    }

    /// Issues `cmd` on `fd` with a generated argument, and learns from the result.
    fn issue(&mut self, kind: Kind, fd: i32, cmd: u32) {
        let setter = cmds::STATE_SETTERS.iter().position(|&c| c == cmd);
        let refused = setter.is_some_and(|i| {
            self.limits.no_state
                || (self.limits.state_allow != 0 && self.limits.state_allow & (1 << i) == 0)
        });
        if refused || (self.limits.no_run && cmd == KVM_RUN) {
            return;
        }
        let (arg, placed) = match self.arg_for(cmd) {
            Arg::Val(v) => (v, None),
            Arg::Buf(b) => {
                let a = self.place(&b);
                (a, Some((a, b.len())))
            }
        };
        let r = self.ioctl(kind, fd, cmd, arg);
        if r < 0 {
            return;
        }
        self.adopt(cmd, fd, r, placed.map(|p| p.0));
        if let (Some(set), Some((a, len))) = (cmds::replay_target(cmd), placed)
            && a >= self.arena.addr(0)
            && a < self.arena.end()
        {
            let off = (a - self.arena.addr(0)) as usize;
            let mut n = len;
            if matches!(
                cmd,
                KVM_GET_CPUID2 | KVM_GET_SUPPORTED_CPUID | KVM_GET_EMULATED_CPUID
            ) {
                n = 8 + 40 * (get32(&self.arena.read(off, 4), 0) as usize).min(256);
            } else if cmd == KVM_GET_MSRS {
                n = 8 + 16 * (get32(&self.arena.read(off, 4), 0) as usize).min(300);
            }
            let out = self.arena.read(off, n.min(16384));
            self.corpus.insert(set, out);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Steps

    /// One random operation.
    pub fn step(&mut self) {
        match self.rng.below(100) {
            0 => {
                if self.sys.len() < MAX_SYS {
                    self.open_sys();
                } else {
                    self.close_something();
                }
            }
            1 | 2 => {
                if self.vms.len() < MAX_VMS {
                    self.create_vm();
                } else {
                    self.close_something();
                }
            }
            3..=5 => {
                if self.vcpus.len() < MAX_VCPUS {
                    self.create_vcpu();
                } else {
                    self.close_something();
                }
            }
            6 | 7 => self.close_something(),
            8..=13 => {
                let vm = self.any_vm();
                let cmd = if self.rng.chance(1, 4) {
                    KVM_SET_USER_MEMORY_REGION2
                } else {
                    KVM_SET_USER_MEMORY_REGION
                };
                self.issue(Kind::Vm, vm, cmd);
            }
            14..=27 => self.run(),
            28..=30 => self.mmap_op(),
            31 => self.guest_memory_op(),
            32 => self.other_fd_op(),
            33 if self.rng.chance(1, 4) => self.fork_op(),
            _ => self.random_ioctl(),
        }
    }

    /// An ioctl on a random fd: its own commands mostly, others' sometimes, random numbers.
    fn random_ioctl(&mut self) {
        let (kind, fd, own) = match self.rng.below(20) {
            0 | 1 => (Kind::Sys, self.any_sys(), cmds::SYS),
            2..=7 => (Kind::Vm, self.any_vm(), cmds::VM),
            8..=17 => match self.any_vcpu() {
                Some(i) => (Kind::Vcpu, self.vcpus[i].fd, cmds::VCPU),
                None => (Kind::Sys, self.any_sys(), cmds::SYS),
            },
            _ if !self.other.is_empty() || !self.eventfds.is_empty() => {
                let all: Vec<i32> = self.other.iter().chain(&self.eventfds).copied().collect();
                (Kind::Other, all[self.rng.index(all.len())], cmds::OTHER)
            }
            _ => (Kind::Sys, self.any_sys(), cmds::SYS),
        };
        let cmd = match self.rng.below(20) {
            0..=14 => self.rng.pick(own),
            15 | 16 => {
                let t = self
                    .rng
                    .pick(&[cmds::SYS, cmds::VM, cmds::VCPU, cmds::OTHER]);
                self.rng.pick(t)
            }
            17 => self.rng.pick(cmds::FOREIGN),
            _ => {
                let ty = if self.rng.chance(3, 4) {
                    0xae
                } else {
                    self.rng.below(256) as u32
                };
                ioc(
                    self.rng.below(4) as u32,
                    ty,
                    self.rng.below(256) as u32,
                    self.rng.below(0x4000) as usize,
                )
            }
        };
        self.issue(kind, fd, cmd);
    }

    /// Points slot 0 of the vCPU's VM at guest region 0 and gives the vCPU a flat real-mode
    /// state there, so that the next `KVM_RUN` executes the region's bytes.
    fn sane_state(&mut self, i: usize) {
        let (fd, vm) = (self.vcpus[i].fd, self.vcpus[i].vm);
        if vm >= 0 {
            let mut b = vec![0u8; 32];
            b.put64(16, self.guest[0].len as u64);
            b.put64(24, self.guest[0].addr(0));
            self.arena.write(0, &b);
            self.ioctl(Kind::Vm, vm, KVM_SET_USER_MEMORY_REGION, self.arena.addr(0));
        }
        let n = ioc_size(KVM_GET_SREGS) as usize;
        if self.ioctl(Kind::Vcpu, fd, KVM_GET_SREGS, self.arena.addr(0)) == 0 {
            let mut s = self.arena.read(0, n);
            s.put64(0, 0); // cs.base
            s[12] = 0; // cs.selector
            s[13] = 0;
            self.arena.write(0, &s);
            self.ioctl(Kind::Vcpu, fd, KVM_SET_SREGS, self.arena.addr(0));
        }
        let mut r = vec![0u8; ioc_size(KVM_SET_REGS) as usize];
        self.rng.fill(&mut r[..128]);
        let rip = self.rng.below(self.guest[0].len as u64 - 16);
        r.put64(128, rip);
        r.put64(136, 2);
        self.arena.write(0, &r);
        self.ioctl(Kind::Vcpu, fd, KVM_SET_REGS, self.arena.addr(0));
    }

    /// `KVM_RUN` on a random vCPU, bounded by a repeating `SIGALRM`.
    fn run(&mut self) {
        self.run_with(true);
    }

    /// [`Fuzzer::run`]; `touch` false while guest memory is not writable by the fuzzer.
    fn run_with(&mut self, touch: bool) {
        if self.limits.no_run {
            return;
        }
        let Some(i) = self.any_vcpu() else { return };
        if touch && self.rng.chance(1, 3) {
            let g = self.rng.index(self.guest.len());
            let off = self.rng.index(self.guest[g].len - PAGE);
            self.scribble_guest(g, off, PAGE);
        }
        if touch && !self.limits.no_state && self.rng.chance(1, 3) {
            self.sane_state(i);
        }
        let v = &self.vcpus[i];
        let (fd, run, run_len) = (v.fd, v.run, v.run_len);
        if !run.is_null() {
            let ie = match self.rng.below(8) {
                0 => 1,
                1 => self.rng.next() as u8,
                _ => 0,
            };
            // SAFETY: `run` is a live read-write mapping of at least one page.
            unsafe { *run.add(1) = ie };
            if !self.limits.no_state && self.rng.chance(1, 8) {
                let off = self.rng.index(run_len.min(PAGE));
                // SAFETY: as above; any byte value is acceptable to the kernel's checks.
                unsafe { *run.add(off) = self.rng.next() as u8 };
            }
        }
        let arg = if self.rng.chance(1, 20) {
            self.rng.value()
        } else {
            0
        };
        itimer(1000 + self.rng.below(9000));
        self.ioctl(Kind::Vcpu, fd, KVM_RUN, arg);
        itimer(0);
        self.stats.runs.fetch_add(1, Relaxed);
    }

    /// `mmap` of a KVM fd at a random offset, length and protection; the kernel then touches
    /// the mapping (through a pipe, so a fault is an `EFAULT`, not a `SIGBUS`).
    fn mmap_op(&mut self) {
        if self.maps.len() >= MAX_MAPS || self.rng.chance(1, 4) {
            if !self.maps.is_empty() {
                let i = self.rng.index(self.maps.len());
                let (p, len) = self.maps.swap_remove(i);
                munmap(p, len);
            }
            return;
        }
        let fd = match self.rng.below(8) {
            0 => self.any_sys(),
            1 => self.any_vm(),
            2 if !self.other.is_empty() => self.other[self.rng.index(self.other.len())],
            _ => match self.any_vcpu() {
                Some(i) => self.vcpus[i].fd,
                None => return,
            },
        };
        let len = match self.rng.below(6) {
            0 => self.mmap_size,
            1 => PAGE,
            2 => 2 * PAGE,
            3 => 65 * PAGE,
            4 => self.mmap_size + PAGE,
            _ => (1 + self.rng.index(256)) * PAGE,
        };
        let off = self.rng.pick(&[0u64, 0, 1, 2, 3, 63, 64, 65, 1 << 20]) + self.rng.below(2);
        let prot = self.rng.pick(&[
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ,
            libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::PROT_NONE,
        ]);
        let flags = if self.rng.chance(7, 8) {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        self.stats.mmaps.fetch_add(1, Relaxed);
        // SAFETY: a new mapping of a KVM fd at an address of the kernel's choosing; it is
        // only ever accessed by the kernel (pipe reads and writes) and unmapped later.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                fd,
                (off * PAGE as u64) as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return;
        }
        let p = p.cast::<u8>();
        let n = len.min(2 * PAGE);
        let mut sink = [0u8; 2 * PAGE];
        // SAFETY: the kernel reads the mapping (EFAULT where it cannot), then we drain the
        // pipe into a local buffer; then the kernel writes into the mapping from the pipe.
        unsafe {
            libc::write(self.pipe[1], p.cast(), n);
            libc::read(self.pipe[0], sink.as_mut_ptr().cast(), sink.len());
            libc::write(self.pipe[1], sink.as_ptr().cast(), 64);
            libc::read(self.pipe[0], p.cast(), 64);
            libc::read(self.pipe[0], sink.as_mut_ptr().cast(), sink.len());
        }
        if self.rng.chance(1, 2) {
            munmap(p, len);
        } else {
            self.maps.push((p, len));
        }
    }

    /// Changes guest memory behind KVM's back: new noise, a remap, discarded pages, or a
    /// read-only or inaccessible spell.
    fn guest_memory_op(&mut self) {
        let g = self.rng.index(self.guest.len());
        match self.rng.below(6) {
            0 | 1 => {
                let len = self.guest[g].len;
                self.scribble_guest(g, 0, len);
            }
            2 | 3 => {
                if self.rng.chance(1, 2) {
                    self.guest[g].remap();
                } else {
                    self.guest[g].discard();
                }
                if self.code != GuestCode::Random {
                    // Fresh pages are zeros, which decode as long runs of `add [bx+si], al`.
                    let len = self.guest[g].len;
                    self.scribble_guest(g, 0, len);
                }
            }
            4 => {
                self.guest[g].set_prot(libc::PROT_READ);
                self.run_with(false);
                self.guest[g].set_prot(libc::PROT_READ | libc::PROT_WRITE);
            }
            _ => {
                self.guest[g].set_prot(libc::PROT_NONE);
                self.run_with(false);
                self.guest[g].set_prot(libc::PROT_READ | libc::PROT_WRITE);
            }
        }
    }

    /// Stats fds: reads at random offsets; eventfds: a signal.
    fn other_fd_op(&mut self) {
        let vm = self.any_vm();
        if self.rng.chance(1, 2) {
            let r = self.ioctl(Kind::Vm, vm, KVM_GET_STATS_FD, 0);
            self.adopt(KVM_GET_STATS_FD, vm, r, None);
        }
        if self.other.is_empty() {
            return;
        }
        let fd = self.other[self.rng.index(self.other.len())];
        let off = self.rng.pick(&[0u64, 8, 24, 64, 4096, 1 << 20]) + self.rng.below(64);
        let n = self.rng.index(8192);
        let dst = self.place(&[]);
        // SAFETY: `dst` points into our guarded regions or at memory the kernel fails on.
        unsafe { libc::pread(fd, dst as *mut libc::c_void, n, off as libc::off_t) };
        if let Some(&e) = self.eventfds.first() {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a local.
            unsafe { libc::write(e, one.as_ptr().cast(), 8) };
        }
    }

    /// Forks a grandchild that uses the inherited fds (KVM must refuse a foreign mm) for a
    /// few steps.
    fn fork_op(&mut self) {
        self.stats.forks.fetch_add(1, Relaxed);
        // SAFETY: the fuzzing child is single-threaded.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return;
        }
        if pid == 0 {
            self.rng = Rng::new(self.rng.next());
            for _ in 0..20 {
                match self.rng.below(3) {
                    0 => self.run(),
                    _ => self.random_ioctl(),
                }
            }
            // SAFETY: ends the grandchild without running exit handlers.
            unsafe { libc::_exit(0) };
        }
        let t0 = Instant::now();
        loop {
            let mut st = 0;
            // SAFETY: reaps our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r != 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
