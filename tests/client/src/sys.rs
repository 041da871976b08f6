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
//! everywhere; only FreeBSD uses them.

use crate::errno::Errno;
use std::os::fd::RawFd;

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

cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "illumos"))] {
        /// Issues `linux_cmd` on `fd`: a direct `ioctl(2)` with the Linux number.
        ///
        /// # Safety
        /// If the command makes the kernel access memory through `arg` (or through pointers
        /// stored where `arg` points), that memory must be valid for the accesses the command
        /// makes, or be inaccessible so that the access fails with `EFAULT`.
        pub unsafe fn ioctl(fd: RawFd, linux_cmd: u32, arg: u64) -> Result<i64, Errno> {
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
            let mut req = KvmportIoctl { linux_cmd, pad: 0, arg, ret: 0 };
            // SAFETY: `req` is a live, writable `KvmportIoctl`, which is all the wrapper
            // command itself reads and writes; what the driver does through `arg` is covered
            // by the caller's guarantee.
            let r = unsafe {
                libc::ioctl(fd, libc::c_ulong::from(KVMPORT_IOCTL), &mut req as *mut KvmportIoctl)
            };
            if r < 0 {
                Err(Errno::last())
            } else if req.ret < 0 {
                // CAST: -ret is a Linux error number in 1..=4095.
                Err(errno_from_linux(req.ret.unsigned_abs() as i32))
            } else {
                Ok(req.ret)
            }
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
