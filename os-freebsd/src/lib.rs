//! kvmport's FreeBSD glue: the [`kvmport_core::Os`] port over FreeBSD 14 kernel services and
//! the entry points of `kvmport.ko`, a pure-Rust kernel module (no C).
//!
//! [`kpi`] declares the kernel interfaces used, one module per release line; [`os`] builds
//! the `Os` on them; [`entry`] holds the module metadata, the `/dev/kvm` cdevsw and the
//! `fileops` of VM and vCPU files; `linux` hooks the Linux emulation's ioctl path; `rt` (kernel
//! target only) is the allocator over malloc(9) and the panic handler. `cargo xtask freebsd`
//! builds it into an ET_REL `kvmport.ko` and runs it in the user-space loader harness
//! (`tests/kld-loader`). See docs/freebsd.md.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

extern crate alloc;

pub mod entry;
pub mod kpi;
mod linux;
pub mod os;

#[cfg(target_os = "none")]
mod rt;

/// The platform `kvmport.ko` instantiates: FreeBSD services and the AMD SVM backend.
pub struct FreeBsdPlatform;

impl kvmport_core::Platform for FreeBsdPlatform {
    type Os = os::FreeBsdOs;
    type Arch = kvmport_arch_x86::Svm;
}
