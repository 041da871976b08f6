//! A small typed user-space client for the KVM ABI.
//!
//! The client talks to a KVM device node (`/dev/kvm` or any path serving the same ABI) and
//! knows the one thing that differs between operating systems: how a command reaches the
//! driver (see [`sys`]).
//!
//! * Linux and illumos: `ioctl(fd, linux_cmd, arg)` directly.
//! * FreeBSD: every command travels inside one wrapper ioctl, [`sys::KvmportIoctl`].
//! * Creating a VM or vCPU fd: on Linux and FreeBSD the command returns it; on illumos
//!   (cloned minors) the client opens the device again and binds the new object to that fd
//!   with [`sys::KVMPORT_CLONE`] ([`sys::create`]). [`sys::OsRule`] names the three rules.
//! * Any OS, with a [`sys::Transport`] installed: that OS's path (FreeBSD or illumos) through
//!   the transport instead of this process's kernel (the loader harnesses serve the modules'
//!   entry points this way).
//!
//! Everything else (command numbers, struct layouts, `mmap` of the vCPU fd) is the Linux KVM
//! ABI from [`kvmport_core::abi`]. The client never uses the core's implementation.
//!
//! Soundness: a command that makes the kernel write through a pointer can corrupt memory if the
//! pointer is wrong, so the safe methods only pass pointers the kernel can use without harm:
//! a value of exactly the command's size for commands on a fixed allow-list ([`Fd::ioctl_read`]
//! and friends), a [`GuardedBuf`] whose end touches an inaccessible page (flexible-array
//! commands), a [`BadPtr`] that faults, or [`GuestMem`] that is only ever accessed through raw
//! pointers. [`Fd::ioctl_raw`] is the unchecked escape hatch.

pub mod errno;
pub mod fd;
pub mod flex;
pub mod kvm;
pub mod mem;
pub mod run;
pub mod sys;

pub use errno::Errno;
pub use fd::{BadPtr, Fd};
pub use flex::{CpuidBuf, FlexBuf, FlexHeader, IrqRoutingBuf, MsrListBuf, MsrsBuf};
pub use kvm::{Kvm, Vcpu, Vm};
pub use mem::{GuardedBuf, GuestMem, page_size};
pub use run::RunMap;
