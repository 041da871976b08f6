//! Counters shared between the supervising parent and the fuzzing children (one anonymous
//! shared mapping, updated with relaxed atomics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The kinds of fd the fuzzer issues ioctls on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The device node itself (`/dev/kvm`).
    Sys = 0,
    /// A VM fd from `KVM_CREATE_VM`.
    Vm = 1,
    /// A vCPU fd from `KVM_CREATE_VCPU`.
    Vcpu = 2,
    /// Anything else KVM hands out (device, stats and guest_memfd fds) and eventfds.
    Other = 3,
}

/// Names of [`Kind`] for the summary, in order.
pub const KIND_NAMES: [&str; 4] = ["sys", "vm", "vcpu", "other"];

/// The shared counters.
#[repr(C)]
pub struct Stats {
    /// ioctls issued, per [`Kind`].
    pub ioctls: [AtomicU64; 4],
    /// `KVM_RUN` calls among them.
    pub runs: AtomicU64,
    /// `mmap` calls on KVM fds.
    pub mmaps: AtomicU64,
    /// Grandchildren forked to use inherited fds.
    pub forks: AtomicU64,
    /// Bit `e` is set once an ioctl failed with errno `e` (0..4096).
    pub errnos: [AtomicU64; 64],
    /// Bumped by the child on every step; the parent watches it for hangs.
    pub heartbeat: AtomicU64,
}

impl Stats {
    /// Maps zeroed counters shared with future children.
    pub fn new_shared() -> &'static Stats {
        let len = std::mem::size_of::<Stats>();
        // SAFETY: a fresh shared anonymous mapping, zero-filled, which is a valid `Stats`
        // (atomics are plain integers); it is never unmapped, so `'static` holds.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap of the shared counters failed");
            &*p.cast::<Stats>()
        }
    }

    /// Records one ioctl on an fd of `kind` and its result.
    pub fn ioctl(&self, kind: Kind, ret: i64, errno: i32) {
        self.ioctls[kind as usize].fetch_add(1, Relaxed);
        if ret < 0 && (0..4096).contains(&errno) {
            let e = errno as usize;
            self.errnos[e / 64].fetch_or(1 << (e % 64), Relaxed);
        }
    }

    /// Total ioctls.
    pub fn total(&self) -> u64 {
        self.ioctls.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// How many distinct errnos were seen.
    pub fn distinct_errnos(&self) -> u32 {
        self.errnos
            .iter()
            .map(|w| w.load(Relaxed).count_ones())
            .sum()
    }

    /// `sys A, vm B, vcpu C, other D`.
    pub fn per_kind(&self) -> String {
        KIND_NAMES
            .iter()
            .zip(&self.ioctls)
            .map(|(n, c)| format!("{n} {}", c.load(Relaxed)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
