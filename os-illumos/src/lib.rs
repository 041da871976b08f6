//! kvmport's illumos glue: the [`kvmport_core::Os`] port over illumos DDI services and the
//! `kvm` driver's entry points, a pure-Rust kernel module (no C).
//!
//! [`ddi`] declares the kernel interfaces used (written by the project, each fact with its
//! source); [`os`] builds the `Os` on them; [`entry`] holds `_init/_fini/_info`, the module
//! linkage, attach/detach, the cloning open, ioctl with Linux command numbers and the
//! devmap/segmap of a vCPU's pages; `rt` (kernel target only) is the allocator over
//! kmem_alloc(9F) and the panic handler. `cargo xtask illumos` builds it into an ET_REL module
//! object (`target/illumos/kvm`) and runs it in the user-space loader harness
//! (`tests/kld-loader`). See docs/illumos.md.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

extern crate alloc;

pub mod ddi;
pub mod entry;
pub mod os;

#[cfg(target_os = "none")]
mod rt;

/// The platform the `kvm` driver instantiates: illumos services and the AMD SVM backend.
pub struct IllumosPlatform;

impl kvmport_core::Platform for IllumosPlatform {
    type Os = os::IllumosOs;
    type Arch = kvmport_arch_x86::Svm;
}
