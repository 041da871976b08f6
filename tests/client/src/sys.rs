//! How a KVM command reaches the driver on each OS.
//!
//! * **Linux**: `/dev/kvm` is Linux KVM itself (or kvmport's module); `ioctl(fd, linux_cmd, arg)`.
//! * **illumos**: the driver's `ioctl(9E)` receives the raw command number and the raw user
//!   argument, so Linux numbers pass unchanged; `ioctl(fd, linux_cmd, arg)`.
//! * **FreeBSD**: `sys_ioctl()` reinterprets the direction and size bits of a command before the
//!   driver sees it (and `ioctl(2)` cannot return a positive value), so every command travels
//!   inside one wrapper command, [`KVMPORT_IOCTL`], whose argument is a [`KvmportIoctl`]. The
//!   driver dispatches on `linux_cmd` exactly as Linux would, does its own copyin/copyout through
//!   `arg`, and stores the Linux result in `ret`: the value (for example a new fd) when it is
//!   `>= 0`, else minus a *Linux* error number, which [`errno_from_linux`] translates.
//!
//! The wrapper's layout and number are defined on every OS so that they can be checked
//! everywhere; only FreeBSD uses them, and so does a [`Transport`]: a stand-in for the kernel's
//! `open`/`ioctl`/`mmap`/`close` on KVM files (the FreeBSD loader harness runs `kvmport.ko` in
//! user space and serves the client through one). With a transport installed, every command
//! takes the FreeBSD path through it, whatever the host OS.

use crate::errno::Errno;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::sync::OnceLock;

/// How KVM commands and new KVM files reach the driver on an OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsRule {
    /// Linux: `ioctl(fd, linux_cmd, arg)`; creating commands return a new fd.
    Linux,
    /// FreeBSD: every command inside the wrapper [`KVMPORT_IOCTL`]; creating commands return
    /// a new fd (in `ret`).
    FreeBsd,
    /// illumos: `ioctl(fd, linux_cmd, arg)`; creating commands through cloned minors: open
    /// the device again and issue [`KVMPORT_CLONE`] on the new fd (see [`create`]).
    Illumos,
}

impl OsRule {
    /// The rule of the OS this client was compiled for.
    pub const fn native() -> OsRule {
        if cfg!(target_os = "freebsd") {
            OsRule::FreeBsd
        } else if cfg!(target_os = "illumos") {
            OsRule::Illumos
        } else {
            OsRule::Linux
        }
    }
}

/// The rule in force: the installed transport's, else this OS's.
pub fn rule() -> OsRule {
    transport().map_or(OsRule::native(), |t| t.rule())
}

/// The system calls on KVM files, served by something other than this process's kernel
/// (the FreeBSD and illumos loader harnesses). It behaves as that OS's system calls would.
pub trait Transport: Sync {
    /// Which OS's rule the transport serves (default: FreeBSD's).
    fn rule(&self) -> OsRule {
        OsRule::FreeBsd
    }

    /// illumos `ioctl(fd, cmd, arg)`: the driver gets the raw command and argument; the
    /// result is the driver's `*rvalp`. Only transports with [`OsRule::Illumos`] implement it.
    ///
    /// # Safety
    /// As [`ioctl`].
    unsafe fn ioctl_value(&self, _fd: RawFd, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
        Err(Errno(libc::ENOTTY))
    }

    /// `fstat(fd).st_rdev`: the device number of an open device file.
    fn rdev(&self, _fd: RawFd) -> io::Result<u64> {
        Err(io::Error::from_raw_os_error(libc::ENOTSUP))
    }

    /// `open(path, O_RDWR | O_CLOEXEC)`: a new descriptor the transport owns the meaning of.
    fn open(&self, path: &Path) -> io::Result<OwnedFd>;

    /// FreeBSD `ioctl(fd, cmd, arg)` with a BSD-encoded `cmd`: the transport copies the
    /// argument in and out by the command's direction and size bits, as `sys_ioctl` does.
    ///
    /// # Safety
    /// `arg` must be valid for the accesses `cmd`'s encoding implies.
    unsafe fn ioctl(&self, fd: RawFd, cmd: u32, arg: *mut u8) -> Result<(), Errno>;

    /// `mmap(NULL, len, prot, flags, fd, off)`.
    ///
    /// # Safety
    /// As `mmap(2)`: the new mapping must not alias anything the caller relies on.
    unsafe fn mmap(
        &self,
        fd: RawFd,
        len: usize,
        prot: i32,
        flags: i32,
        off: i64,
    ) -> io::Result<*mut u8>;

    /// `munmap(addr, len)` of a mapping made by [`Transport::mmap`].
    ///
    /// # Safety
    /// As `munmap(2)`: nothing may use the mapping afterwards.
    unsafe fn munmap(&self, addr: *mut u8, len: usize);

    /// The descriptor `fd` is being closed (called before the process's own `close`).
    fn close(&self, fd: RawFd);
}

static TRANSPORT: OnceLock<&'static dyn Transport> = OnceLock::new();

/// Installs `t` for the rest of the process (and its forked children). Returns `false` if a
/// transport was already installed.
pub fn set_transport(t: &'static dyn Transport) -> bool {
    TRANSPORT.set(t).is_ok()
}

/// The installed transport, if any.
pub fn transport() -> Option<&'static dyn Transport> {
    TRANSPORT.get().copied()
}

/// Issues `linux_cmd` inside the wrapper command: `issue` performs the FreeBSD `ioctl(fd,
/// KVMPORT_IOCTL, req)`; the Linux result comes back in `req.ret`.
fn wrapped(
    linux_cmd: u32,
    arg: u64,
    issue: impl FnOnce(*mut KvmportIoctl) -> Result<(), Errno>,
) -> Result<i64, Errno> {
    let mut req = KvmportIoctl {
        linux_cmd,
        pad: 0,
        arg,
        ret: 0,
    };
    issue(&mut req)?;
    if req.ret < 0 {
        // CAST: -ret is a Linux error number in 1..=4095.
        Err(errno_from_linux(req.ret.unsigned_abs() as i32))
    } else {
        Ok(req.ret)
    }
}

/// `munmap(addr, len)` of a mapping from [`mmap`], through the transport if one is installed.
///
/// # Safety
/// As `munmap(2)`.
pub unsafe fn munmap(addr: *mut u8, len: usize) {
    if let Some(t) = transport() {
        // SAFETY: forwarded to the caller.
        return unsafe { t.munmap(addr, len) };
    }
    // SAFETY: forwarded to the caller.
    unsafe { libc::munmap(addr.cast(), len) };
}

/// `mmap(NULL, len, prot, flags, fd, off)` of a KVM file, through the transport if one is
/// installed.
///
/// # Safety
/// As `mmap(2)`.
pub unsafe fn mmap(fd: RawFd, len: usize, prot: i32, flags: i32, off: i64) -> io::Result<*mut u8> {
    if let Some(t) = transport() {
        // SAFETY: forwarded to the caller.
        return unsafe { t.mmap(fd, len, prot, flags, off) };
    }
    // SAFETY: forwarded to the caller.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            fd,
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// The argument of the FreeBSD wrapper ioctl [`KVMPORT_IOCTL`]: one Linux KVM command.
///
/// The kernel copies it in, runs `linux_cmd` with `arg` on the fd the wrapper was issued on,
/// and copies it back out with the result in `ret`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmportIoctl {
    /// The Linux command number, e.g. `KVM_GET_REGS` (`0x8090ae81`).
    pub linux_cmd: u32,
    /// Zero.
    pub pad: u32,
    /// The Linux argument: an integer, or a user address the driver copies from or to.
    pub arg: u64,
    /// Set by the driver: the Linux return value (`>= 0`, such as a new fd for `KVM_CREATE_VM`
    /// and `KVM_CREATE_VCPU`), or `-errno` with a Linux error number.
    pub ret: i64,
}

const _: () = assert!(core::mem::size_of::<KvmportIoctl>() == 24);

/// BSD `IOC_INOUT`: the argument is copied in and copied back out.
pub const BSD_IOC_INOUT: u32 = 0xC000_0000;
/// BSD `IOCPARM_MASK`: the 13-bit parameter-length field.
pub const BSD_IOCPARM_MASK: u32 = 0x1fff;
/// The ioctl group of the FreeBSD wrapper command: `'k'`.
pub const KVMPORT_IOCTL_GROUP: u8 = b'k';

/// BSD `_IOWR(group, nr, size)`: `IOC_INOUT | ((size & IOCPARM_MASK) << 16) | (group << 8) | nr`.
pub const fn bsd_iowr(group: u8, nr: u8, size: usize) -> u32 {
    BSD_IOC_INOUT | (((size as u32) & BSD_IOCPARM_MASK) << 16) | ((group as u32) << 8) | nr as u32
}

/// The FreeBSD wrapper command, `_IOWR('k', 1, struct kvmport_ioctl)` = `0xc0186b01`.
pub const KVMPORT_IOCTL: u32 = bsd_iowr(KVMPORT_IOCTL_GROUP, 1, size_of::<KvmportIoctl>());

const _: () = assert!(KVMPORT_IOCTL == 0xC018_6B01);

/// Translates a Linux error number (as carried in [`KvmportIoctl::ret`]) to this OS's numbering.
///
/// Linux and the BSDs share the numbers 1 to 34 except `EAGAIN` (11) and `EDEADLK` (35 on
/// Linux, 11 on FreeBSD); the few higher numbers KVM returns are mapped by name. Unknown
/// numbers pass unchanged.
pub fn errno_from_linux(linux: i32) -> Errno {
    const MAP: &[(i32, i32)] = &[
        (11, libc::EAGAIN),
        (35, libc::EDEADLK),
        (36, libc::ENAMETOOLONG),
        (38, libc::ENOSYS),
        (75, libc::EOVERFLOW),
        (95, libc::EOPNOTSUPP),
        (110, libc::ETIMEDOUT),
    ];
    match MAP.iter().find(|(l, _)| *l == linux) {
        Some((_, native)) => Errno(*native),
        None => Errno(linux),
    }
}

/// Issues `linux_cmd` through the transport, by its rule.
///
/// # Safety
/// As [`ioctl`].
unsafe fn via_transport(
    t: &dyn Transport,
    fd: RawFd,
    linux_cmd: u32,
    arg: u64,
) -> Result<i64, Errno> {
    match t.rule() {
        // SAFETY: forwarded to the caller.
        OsRule::Illumos | OsRule::Linux => unsafe { t.ioctl_value(fd, linux_cmd, arg) },
        // SAFETY: the transport copies exactly the 24-byte request in and out; what the
        // driver does through `arg` is covered by the caller's guarantee.
        OsRule::FreeBsd => wrapped(linux_cmd, arg, |req| unsafe {
            t.ioctl(fd, KVMPORT_IOCTL, req.cast())
        }),
    }
}

/// The illumos clone command's argument (`struct kvmport_clone`): run `linux_cmd` (a creating
/// command) with `arg` on the file whose device number is `src_dev`, and bind what it makes
/// to the fd the command is issued on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmportClone {
    /// `KVM_CREATE_VM` or `KVM_CREATE_VCPU`.
    pub linux_cmd: u32,
    /// Zero.
    pub pad: u32,
    /// `st_rdev` of the system or VM fd the command is meant for.
    pub src_dev: u64,
    /// The command's argument.
    pub arg: u64,
}

const _: () = assert!(core::mem::size_of::<KvmportClone>() == 24);

/// The illumos clone command, `_IOW('k', 0x10, struct kvmport_clone)` in Linux's encoding.
pub const KVMPORT_CLONE: u32 = (1 << 30) | (24 << 16) | ((b'k' as u32) << 8) | 0x10;

const _: () = assert!(KVMPORT_CLONE == 0x4018_6B10);

/// Opens the KVM device at `path` (read-write, close-on-exec), through the transport if one
/// is installed.
pub fn open(path: &Path) -> io::Result<OwnedFd> {
    if let Some(t) = transport() {
        return t.open(path);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    Ok(OwnedFd::from(f))
}

/// The device number of the open device file `fd`.
pub fn rdev(fd: RawFd) -> io::Result<u64> {
    if let Some(t) = transport() {
        return t.rdev(fd);
    }
    // SAFETY: an all-zero `stat` is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes the live local.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // CAST: `dev_t` is an unsigned integer of at most 64 bits on every supported OS.
    Ok(st.st_rdev as u64)
}

/// Runs a command that makes a new KVM file (`KVM_CREATE_VM` on a system fd,
/// `KVM_CREATE_VCPU` on a VM fd) and returns the new fd, by the OS's rule: on Linux and
/// FreeBSD the command returns it; on illumos (cloned minors) the device at `path` is opened
/// again and [`KVMPORT_CLONE`] on the new fd binds the object the command made to it.
pub fn create(fd: RawFd, path: &Path, linux_cmd: u32, arg: u64) -> Result<OwnedFd, Errno> {
    if rule() != OsRule::Illumos {
        // SAFETY: the creating commands take an integer argument.
        let ret = unsafe { ioctl(fd, linux_cmd, arg)? };
        let raw = i32::try_from(ret).map_err(|_| Errno::ERANGE)?;
        if raw < 0 {
            return Err(Errno::ERANGE);
        }
        // SAFETY: the kernel just installed `raw` in this process's fd table for the caller,
        // and nothing else owns it.
        return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
    }
    let src_dev = rdev(fd).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EBADF)))?;
    let new = open(path).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::ENXIO)))?;
    let new = crate::Fd::new(new);
    let req = KvmportClone {
        linux_cmd,
        pad: 0,
        src_dev,
        arg,
    };
    // SAFETY: the clone command reads exactly the 24-byte request, a live local.
    unsafe { ioctl(new.raw(), KVMPORT_CLONE, (&raw const req) as u64)? };
    Ok(new.into_owned())
}

cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "illumos"))] {
        /// Issues `linux_cmd` on `fd`: a direct `ioctl(2)` with the Linux number.
        ///
        /// # Safety
        /// If the command makes the kernel access memory through `arg` (or through pointers
        /// stored where `arg` points), that memory must be valid for the accesses the command
        /// makes, or be inaccessible so that the access fails with `EFAULT`.
        pub unsafe fn ioctl(fd: RawFd, linux_cmd: u32, arg: u64) -> Result<i64, Errno> {
            if let Some(t) = transport() {
                // SAFETY: forwarded to the caller.
                return unsafe { via_transport(t, fd, linux_cmd, arg) };
            }
            // CAST: the request type is `c_ulong` or `c_int` depending on the libc; the kernel
            // takes the low 32 bits either way.
            // SAFETY: the caller guarantees that `arg` is harmless for `linux_cmd`; `fd` is
            // just a number to the kernel.
            let r = unsafe { libc::ioctl(fd, linux_cmd as _, arg as libc::c_ulong) };
            if r < 0 { Err(Errno::last()) } else { Ok(i64::from(r)) }
        }
    } else if #[cfg(target_os = "freebsd")] {
        /// Issues `linux_cmd` on `fd` through the wrapper command [`KVMPORT_IOCTL`].
        ///
        /// # Safety
        /// If the command makes the kernel access memory through `arg` (or through pointers
        /// stored where `arg` points), that memory must be valid for the accesses the command
        /// makes, or be inaccessible so that the access fails with `EFAULT`.
        pub unsafe fn ioctl(fd: RawFd, linux_cmd: u32, arg: u64) -> Result<i64, Errno> {
            if let Some(t) = transport() {
                // SAFETY: forwarded to the caller.
                return unsafe { via_transport(t, fd, linux_cmd, arg) };
            }
            wrapped(linux_cmd, arg, |req| {
                // SAFETY: `req` is a live, writable `KvmportIoctl`, which is all the wrapper
                // command itself reads and writes (or the transport's, which does the same);
                // what the driver does through `arg` is covered by the caller's guarantee.
                unsafe {
                    if libc::ioctl(fd, libc::c_ulong::from(KVMPORT_IOCTL), req) < 0 {
                        return Err(Errno::last());
                    }
                }
                Ok(())
            })
        }
    } else {
        compile_error!("kvmport-client supports Linux, FreeBSD and illumos");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_number() {
        assert_eq!(KVMPORT_IOCTL, 0xc018_6b01);
        assert_eq!(core::mem::offset_of!(KvmportIoctl, arg), 8);
        assert_eq!(core::mem::offset_of!(KvmportIoctl, ret), 16);
    }

    #[test]
    fn linux_errnos() {
        assert_eq!(errno_from_linux(22), Errno::EINVAL);
        assert_eq!(errno_from_linux(11), Errno::EAGAIN);
        assert_eq!(errno_from_linux(95), Errno::EOPNOTSUPP);
    }
}
