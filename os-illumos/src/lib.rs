//! kvmport's illumos glue: the `Os` port for illumos and the kernel entry points.
//!
//! Status: the crate exists and builds as `no_std` for `x86_64-unknown-none`; it has no glue
//! code yet. It will become an illumos driver (`_init/_fini/_info`, `cb_ops`, devmap of `kvm_run`, HMA registration),
//! instantiating [`kvmport_core::System`] with its own [`kvmport_core::Os`].
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub use kvmport_core as core_crate;
