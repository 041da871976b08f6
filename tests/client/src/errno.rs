//! [`Errno`]: the error number of a failed KVM command.

use core::fmt;
use std::io;

/// The error number of a failed KVM command, in this OS's numbering (the value `errno` holds
/// after a failed `ioctl`). On FreeBSD the wrapper ioctl reports Linux numbers, which the client
/// translates (see [`crate::sys`]), so the same constant always means the same failure.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Every error number the client can name, with its name.
const NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::ENOEXEC, "ENOEXEC"),
    (libc::EBADF, "EBADF"),
    (libc::ECHILD, "ECHILD"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EXDEV, "EXDEV"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ESPIPE, "ESPIPE"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ERANGE, "ERANGE"),
    (libc::EDEADLK, "EDEADLK"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::EOVERFLOW, "EOVERFLOW"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
];

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// No such entry (a memslot without a dirty bitmap, an unknown ioeventfd).
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// Interrupted (a signal, or `immediate_exit`).
    pub const EINTR: Errno = Errno(libc::EINTR);
    /// I/O error; KVM's answer to a VM or vCPU fd used from another process.
    pub const EIO: Errno = Errno(libc::EIO);
    /// No such device or address (a feature whose object does not exist).
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    /// A count is too large, or too small for the data.
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    /// Bad file descriptor.
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// Try again.
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    /// Bad address.
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    /// Already exists.
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    /// No such device.
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// Inappropriate ioctl for device.
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    /// No space left.
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    /// Result out of range.
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);

    /// The error number of the last failed libc call on this thread.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name (`"EINVAL"`), or `None` for a number the client does not know.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(v, _)| *v == self.0).map(|(_, n)| *n)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Errno::EINVAL.to_string(), "EINVAL");
        assert_eq!(Errno::E2BIG.to_string(), "E2BIG");
        assert_eq!(Errno(100_000).to_string(), "errno 100000");
    }
}
