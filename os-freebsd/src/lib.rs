//! kvmport's freebsd glue: the `Os` port for freebsd and the kernel entry points.
//!
//! Status: the crate exists and builds as `no_std` for `x86_64-unknown-none`; it has no glue
//! code yet. It will become a FreeBSD 14 kernel module, `kvmport.ko` (`make_dev_s`, the `{linux_cmd, arg, ret}` wrapper ioctl, `falloc_noinstall`/`finit`/`finstall` fds),
//! instantiating [`kvmport_core::System`] with its own [`kvmport_core::Os`].
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub use kvmport_core as core_crate;
