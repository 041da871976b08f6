//! [`Fd`]: an open KVM file (system, VM or vCPU) and the ways to issue commands on it.

use crate::errno::Errno;
use crate::mem::{GuardedBuf, unmapped_addr};
use crate::sys;
use kvmport_core::abi::KVMIO;
use kvmport_core::abi::ioctl::*;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Commands whose argument is one fixed-size struct (the size in the command number) holding no
/// pointer the kernel follows: the kernel reads and writes at most that many bytes at `arg`.
/// [`Fd::ioctl_read`], [`Fd::ioctl_write`] and [`Fd::ioctl_rw`] accept only these.
const PLAIN: &[u32] = &[
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_SREGS2,
    KVM_SET_SREGS2,
    KVM_GET_FPU,
    KVM_SET_FPU,
    KVM_GET_MP_STATE,
    KVM_SET_MP_STATE,
    KVM_GET_VCPU_EVENTS,
    KVM_SET_VCPU_EVENTS,
    KVM_GET_DEBUGREGS,
    KVM_SET_DEBUGREGS,
    KVM_GET_XCRS,
    KVM_SET_XCRS,
    KVM_GET_XSAVE,
    KVM_SET_XSAVE,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_INTERRUPT,
    KVM_TRANSLATE,
    KVM_SET_GUEST_DEBUG,
    KVM_X86_SETUP_MCE,
    KVM_X86_SET_MCE,
    KVM_X86_GET_MCE_CAP_SUPPORTED,
    KVM_ENABLE_CAP,
    KVM_IOEVENTFD,
    KVM_IRQFD,
    KVM_SET_IDENTITY_MAP_ADDR,
    KVM_IRQ_LINE,
    KVM_IRQ_LINE_STATUS,
    KVM_GET_IRQCHIP,
    KVM_SET_IRQCHIP,
    KVM_CREATE_PIT2,
    KVM_GET_PIT2,
    KVM_SET_PIT2,
    KVM_GET_PIT,
    KVM_SET_PIT,
    KVM_GET_CLOCK,
    KVM_SET_CLOCK,
    KVM_SIGNAL_MSI,
    KVM_REGISTER_COALESCED_MMIO,
    KVM_UNREGISTER_COALESCED_MMIO,
];

/// Commands whose argument is a header followed by a variable-length array (or a buffer sized
/// by a capability) and holds no pointer the kernel follows: the kernel only accesses memory
/// forward from `arg`. [`Fd::ioctl_buf`] accepts these and the [`PLAIN`] ones.
const FLEX: &[u32] = &[
    KVM_GET_MSR_INDEX_LIST,
    KVM_GET_MSR_FEATURE_INDEX_LIST,
    KVM_GET_SUPPORTED_CPUID,
    KVM_GET_EMULATED_CPUID,
    KVM_GET_SUPPORTED_HV_CPUID,
    KVM_SET_CPUID,
    KVM_SET_CPUID2,
    KVM_GET_CPUID2,
    KVM_GET_MSRS,
    KVM_SET_MSRS,
    KVM_GET_XSAVE2,
    KVM_SET_SIGNAL_MASK,
    KVM_SET_GSI_ROUTING,
    KVM_SET_PMU_EVENT_FILTER,
    KVM_GET_NESTED_STATE,
    KVM_SET_NESTED_STATE,
];

/// An argument address that is never valid, for hostile-input tests: the kernel cannot access
/// memory through it, so any command may be issued with it safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPtr {
    /// Address 0.
    Null,
    /// The start of a reserved `PROT_NONE` area (see [`crate::mem::unmapped_addr`]).
    Unmapped,
}

impl BadPtr {
    /// The address.
    pub fn addr(self) -> u64 {
        match self {
            BadPtr::Null => 0,
            BadPtr::Unmapped => unmapped_addr(),
        }
    }
}

/// An open KVM file: the system fd (`/dev/kvm`), a VM fd or a vCPU fd. Closed on drop.
#[derive(Debug)]
pub struct Fd {
    fd: OwnedFd,
}

impl Fd {
    /// Wraps an open KVM file.
    pub fn new(fd: OwnedFd) -> Fd {
        Fd { fd }
    }

    /// The file descriptor number.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Unwraps the owned descriptor (a [`sys::Transport`] is not told of its close).
    pub fn into_owned(self) -> OwnedFd {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so the descriptor is moved out exactly once.
        unsafe { std::ptr::read(&me.fd) }
    }

    /// Issues `cmd` (a Linux command number) with argument `arg`, by this OS's rule
    /// ([`crate::sys`]). Returns the command's non-negative result.
    ///
    /// # Safety
    /// If the command makes the kernel access memory through `arg` (or through pointers stored
    /// where `arg` points), that memory must be valid for every access the command can make,
    /// or inaccessible so that the access fails with `EFAULT`.
    pub unsafe fn ioctl_raw(&self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        // SAFETY: forwarded to the caller.
        unsafe { sys::ioctl(self.raw(), cmd, arg) }
    }

    /// Issues a KVM command that takes an integer argument (`_IO(KVMIO, nr)`, e.g.
    /// `KVM_CREATE_VCPU`, `KVM_CHECK_EXTENSION`, `KVM_RUN`).
    ///
    /// # Panics
    /// If `cmd` is not an `_IO(KVMIO, ...)` command: such a command could treat `val` as a
    /// pointer.
    pub fn ioctl_val(&self, cmd: u32, val: u64) -> Result<i64, Errno> {
        assert!(
            ioc_type(cmd) == KVMIO && ioc_dir(cmd) == IOC_NONE,
            "ioctl_val: {cmd:#x} is not an _IO(KVMIO, nr) command"
        );
        // SAFETY: `_IO(KVMIO, nr)` commands take an integer; none dereferences it.
        unsafe { self.ioctl_raw(cmd, val) }
    }

    /// Issues any command with an argument address the kernel cannot access.
    pub fn ioctl_bad_ptr(&self, cmd: u32, p: BadPtr) -> Result<i64, Errno> {
        // SAFETY: the address is NULL or a PROT_NONE reservation: every kernel access through it
        // faults, and as an integer it is harmless.
        unsafe { self.ioctl_raw(cmd, p.addr()) }
    }

    fn check_plain<T>(cmd: u32) {
        assert!(
            PLAIN.contains(&cmd),
            "{cmd:#x} is not on the fixed-size command allow-list"
        );
        assert_eq!(
            ioc_size(cmd) as usize,
            size_of::<T>(),
            "argument size does not match command {cmd:#x}"
        );
    }

    /// Issues a fixed-size command that fills a `T` and returns it (`KVM_GET_REGS`, ...).
    ///
    /// # Panics
    /// If `cmd` is not on the fixed-size allow-list or its size is not `size_of::<T>()`.
    pub fn ioctl_read<T: FromBytes + IntoBytes>(&self, cmd: u32) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        self.ioctl_rw(cmd, &mut v)?;
        Ok(v)
    }

    /// Issues a fixed-size command that reads a `T` (`KVM_SET_REGS`, `KVM_ENABLE_CAP`, ...).
    ///
    /// # Panics
    /// If `cmd` is not on the fixed-size allow-list, its size is not `size_of::<T>()`, or its
    /// direction says the kernel writes the argument back.
    pub fn ioctl_write<T: IntoBytes + Immutable>(&self, cmd: u32, v: &T) -> Result<i64, Errno> {
        Self::check_plain::<T>(cmd);
        assert_eq!(ioc_dir(cmd), IOC_WRITE, "{cmd:#x} writes its argument back");
        // SAFETY: the command reads at most `size_of::<T>()` bytes at `v` and follows no
        // pointer (allow-list and size checked above); it does not write (direction checked).
        unsafe { self.ioctl_raw(cmd, v.as_bytes().as_ptr() as u64) }
    }

    /// Issues a fixed-size command that reads and/or writes a `T` in place.
    ///
    /// # Panics
    /// If `cmd` is not on the fixed-size allow-list or its size is not `size_of::<T>()`.
    pub fn ioctl_rw<T: FromBytes + IntoBytes>(&self, cmd: u32, v: &mut T) -> Result<i64, Errno> {
        Self::check_plain::<T>(cmd);
        // SAFETY: the command accesses at most `size_of::<T>()` bytes at `v` and follows no
        // pointer (allow-list and size checked above); any bytes are a valid `T` (`FromBytes`).
        unsafe { self.ioctl_raw(cmd, v.as_mut_bytes().as_mut_ptr() as u64) }
    }

    /// Issues a flexible-array (or fixed-size) command whose argument is `buf`, starting `off`
    /// bytes into it. Whatever counts the buffer holds, the kernel cannot write past its end
    /// (the guard page makes that fail with `EFAULT`).
    ///
    /// # Panics
    /// If `cmd` is on neither allow-list, or `off` is beyond the buffer.
    pub fn ioctl_buf_at(&self, cmd: u32, buf: &mut GuardedBuf, off: usize) -> Result<i64, Errno> {
        assert!(
            FLEX.contains(&cmd) || PLAIN.contains(&cmd),
            "{cmd:#x} is not on the buffer command allow-lists"
        );
        assert!(off <= buf.len(), "offset beyond the buffer");
        // SAFETY: the command only accesses memory forward from its argument and follows no
        // pointer (allow-lists); from `buf.addr() + off` forward lies the buffer, then the guard
        // page, so every access either hits the buffer (plain bytes, accessed only through raw
        // pointers) or faults.
        unsafe { self.ioctl_raw(cmd, buf.addr() + off as u64) }
    }

    /// [`Fd::ioctl_buf_at`] with the argument at the start of `buf`.
    pub fn ioctl_buf(&self, cmd: u32, buf: &mut GuardedBuf) -> Result<i64, Errno> {
        self.ioctl_buf_at(cmd, buf, 0)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if let Some(t) = sys::transport() {
            t.close(self.raw());
        }
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}
