//! kvmport's Linux glue: the [`kvmport_core::Os`] port implemented over Linux kernel services,
//! and the entry points of `kvmport.ko`.
//!
//! The module is two objects: `kbuild/kvmport_main.c`, which does only what must be C (module
//! init/exit, the misc device, file-operation tables, anonymous-inode fds, the `kvm_run` mmap
//! fault handler, and `kp_*` wrappers of kernel macros and inline functions), and this crate,
//! compiled with the kernel's code model and mitigation flags into `kvmport_rs.o` by
//! `cargo xtask linux-module`. [`ffi`] declares the C services; [`os`] builds the `Os` on them;
//! [`entry`] holds the `extern "C"` functions the C side calls.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod entry;
pub mod ffi;
pub mod os;

#[cfg(target_os = "none")]
mod kernel_rt;

/// The platform `kvmport.ko` instantiates: Linux services and the AMD SVM backend.
pub struct LinuxPlatform;

impl kvmport_core::Platform for LinuxPlatform {
    type Os = os::LinuxOs;
    type Arch = kvmport_arch_x86::Svm;
}
