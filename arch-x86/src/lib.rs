//! kvmport's x86-64 backends: AMD SVM and Intel VMX.
//!
//! Status: hardware feature detection ([`cpuid`]). The SVM backend (per-CPU enable, VMCB, nested
//! paging, world switch, exit handling) is the next piece of work; VMX follows it with the same
//! file skeleton. Nothing here implements [`kvmport_core::Arch`] yet.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cpuid;
