//! kvmport's linux glue: the `Os` port for linux and the kernel entry points.
//!
//! Status: the crate exists and builds as `no_std` for `x86_64-unknown-none`; it has no glue
//! code yet. It will become a Linux kbuild module, `kvmport.ko` (misc device `/dev/kvm`, anonymous-inode fds, MMU notifiers),
//! instantiating [`kvmport_core::System`] with its own [`kvmport_core::Os`].
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub use kvmport_core as core_crate;
