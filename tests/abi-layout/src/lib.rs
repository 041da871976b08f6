//! ABI layout checks (tests only): the host's `<linux/kvm.h>` as seen by
//! bindgen and by a compiled C probe, for `tests/layout.rs`.
//!
//! `build.rs` writes both; see there for how.

/// bindgen's view of `<linux/kvm.h>` (types `kvm_*`, constants `KVM_*`).
#[allow(
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

/// Output of the C probes: tab-separated lines
/// `V arch key value` (a value), `D arch key error` (a probe line that did
/// not compile), `H name` (an ioctl macro of the host header), `C name` (a
/// `KVM_CAP_*` of the host header), `U arch reason` (cross probe skipped).
pub const PROBE: &str = include_str!(concat!(env!("OUT_DIR"), "/probe.txt"));
