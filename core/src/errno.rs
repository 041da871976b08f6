//! Error numbers, in the Linux numbering that the KVM ABI speaks.
//!
//! Core code reports every failure as an [`Errno`] holding the positive Linux value. The
//! FreeBSD and illumos glue translate the few values that differ on their kernels (for example
//! `EAGAIN` and `EOPNOTSUPP`) at the syscall boundary.

use core::fmt;

/// A positive Linux error number.
///
/// # Invariants
/// The value is one of the constants defined on this type, all in `1..=4095`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

/// The result type of every fallible operation in the core.
pub type KResult<T> = Result<T, Errno>;

macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $val:expr;)*) => {
        impl Errno {
            $($(#[$doc])* pub const $name: Errno = Errno($val);)*

            /// The `Errno` with positive value `v`, if it is one the core names.
            pub const fn from_raw(v: i32) -> Option<Errno> {
                match v {
                    $($val => Some(Errno::$name),)*
                    _ => None,
                }
            }

            /// The symbolic name of this error number.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($val => stringify!($name),)*
                    _ => "E?",
                }
            }
        }
    };
}

errnos! {
    /// Operation not permitted.
    EPERM = 1;
    /// No such entry (for example a memslot without a dirty bitmap).
    ENOENT = 2;
    /// Interrupted by a signal.
    EINTR = 4;
    /// I/O error; also "VM used from another process".
    EIO = 5;
    /// No such device or address (a feature whose object does not exist).
    ENXIO = 6;
    /// Argument list (a count) too long.
    E2BIG = 7;
    /// Bad file descriptor.
    EBADF = 9;
    /// Try again.
    EAGAIN = 11;
    /// Out of memory.
    ENOMEM = 12;
    /// Bad address.
    EFAULT = 14;
    /// Device or resource busy.
    EBUSY = 16;
    /// Already exists.
    EEXIST = 17;
    /// No such device (the hardware extension is absent).
    ENODEV = 19;
    /// Invalid argument.
    EINVAL = 22;
    /// Inappropriate ioctl for device.
    ENOTTY = 25;
    /// No space left (a bounded table is full).
    ENOSPC = 28;
    /// Result out of range.
    ERANGE = 34;
    /// Function not implemented.
    ENOSYS = 38;
    /// Operation not supported.
    EOPNOTSUPP = 95;
}

impl Errno {
    /// The positive error number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The value an ioctl handler returns for this error: the negated number.
    pub const fn to_ret(self) -> i64 {
        -(self.0 as i64)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_returns() {
        assert_eq!(Errno::EINVAL.raw(), 22);
        assert_eq!(Errno::EINVAL.to_ret(), -22);
        assert_eq!(Errno::E2BIG.name(), "E2BIG");
        assert_eq!(alloc::format!("{:?}", Errno::EFAULT), "EFAULT(14)");
        assert_eq!(Errno::from_raw(14), Some(Errno::EFAULT));
        assert_eq!(Errno::from_raw(3), None);
    }
}
