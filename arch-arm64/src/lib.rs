//! kvmport's AArch64 (EL2, VHE or nVHE) backend.
//!
//! Status: the crate exists, builds as `no_std` for `aarch64-unknown-none-softfloat` and has no backend code yet;
//! the ABI structs it will serve live in `kvmport_core::abi::arm64`. It does not implement
//! [`kvmport_core::Arch`].
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// The ABI types this backend serves (re-exported for the backend's own use).
pub use kvmport_core::abi::arm64 as abi;
