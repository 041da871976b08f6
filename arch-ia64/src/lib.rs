//! kvmport's IA-64 (Itanium) backend placeholder.
//!
//! No compiler can build this crate for IA-64: LLVM has no IA-64 backend, so rustc has no
//! IA-64 target at all. It builds for the host only, holds no backend code, and exists so the
//! layout names every architecture KVM once served. See README.md.
#![no_std]
