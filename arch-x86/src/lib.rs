//! kvmport's x86-64 backends: AMD SVM and Intel VMX.
//!
//! Status: [`Svm`] implements [`kvmport_core::Arch`] up to, but not including, the world
//! switch: probing and per-CPU enablement, capabilities, the x86 system and VM commands, and
//! every vCPU state command with KVM's validation. `KVM_RUN` fails with `ENOSYS` until the
//! VMCB/`VMRUN`/exit-handling and nested-paging work lands. VMX follows with the same file
//! skeleton.
//!
//! Layout: [`hw`] (CPUID/MSR/TSC access behind the [`Hw`] trait, so host tests can use a
//! fake), [`cpuid`] (SVM feature decoding), [`cpuid_table`] (the guest-visible CPUID),
//! [`state`] (vCPU state and validation rules), [`msr`] (the MSR policy), [`svm`] (the
//! backend), and the pure pieces of MMIO emulation without decode assists: [`decode`] (the
//! x86 instruction decoder), [`walk`] (guest page walks, segment arithmetic, instruction
//! fetch) and [`emulate`] (MMIO access plans and their completion, string port I/O
//! registers), and [`irqchip`] (the in-kernel PIC, IOAPIC and local APICs of
//! `KVM_CREATE_IRQCHIP`).
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cpuid;
pub mod cpuid_table;
pub mod crwrite;
pub mod decode;
pub mod emulate;
pub mod hw;
pub mod irqchip;
pub mod msr;
pub mod state;
pub mod svm;
pub mod vmrun;
pub mod walk;

pub use hw::{Hw, RealHw};
pub use svm::{Svm, SvmVm};
