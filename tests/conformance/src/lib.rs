//! The conformance suite's cases as a library, so that other runners can drive them: the
//! `kvm-conformance` binary, and the FreeBSD loader harness (`tests/kld-loader`), which runs
//! the cases that need no guest execution against `kvmport.ko` loaded in user space.

pub mod cases;
pub mod guest;
pub mod harness;
pub mod judge;
