//! kvmport's portable core: the KVM user-space ABI, the VM/vCPU object model, memslots, the
//! ioctl dispatchers and the run loop, written once for every kernel and CPU.
//!
//! The core talks to a kernel only through the [`Os`] trait and to a CPU only through the
//! [`Arch`] trait. An OS glue crate picks one of each by implementing [`Platform`], creates
//! one [`System`] at module load, and forwards each file operation to the matching object:
//! `/dev/kvm` to [`System`], a VM fd to [`Vm`], a vCPU fd to [`VcpuFile`].
#![no_std]
#![deny(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod arch;
pub mod errno;
pub mod fam;
pub mod ioevent;
pub mod kalloc;
pub mod memslot;
pub mod os;
pub mod system;
pub mod user;
pub mod vcpu;
pub mod vm;

pub use arch::Arch;
pub use errno::{Errno, KResult};
pub use kalloc::KArc;
pub use os::Os;
pub use system::{Outcome, System};
pub use vcpu::{Vcpu, VcpuFile};
pub use vm::Vm;

/// The pairing of one kernel port with one CPU backend that an OS glue crate instantiates.
pub trait Platform: Sized + Send + Sync + 'static {
    /// The kernel port.
    type Os: Os;
    /// The CPU backend.
    type Arch: Arch<Self::Os>;
}

/// The backend's per-VM state type of platform `P`.
pub type ArchVm<P> = <<P as Platform>::Arch as Arch<<P as Platform>::Os>>::Vm;
/// The backend's per-vCPU state type of platform `P`.
pub type ArchVcpu<P> = <<P as Platform>::Arch as Arch<<P as Platform>::Os>>::Vcpu;
/// The sleeping lock type of platform `P`.
pub type Mutex<P, T> = <<P as Platform>::Os as Os>::Mutex<T>;
