//! The FreeBSD loader harness: loads `kvmport.ko` into this process the way FreeBSD 14's
//! kernel linker would, serves its imports with harness implementations of those kernel
//! functions, delivers MOD_LOAD, runs every conformance case that needs no guest execution
//! through the module's own entry points (via the client crate's FreeBSD path), plus a few
//! FreeBSD-specific cases, then MOD_UNLOAD, and requires that nothing is left allocated.
//!
//! The module is `$KVMPORT_FREEBSD_KO`, else `target/freebsd/kvmport.ko` (built by `cargo
//! xtask freebsd`). Without it the harness says so and passes, unless
//! `$KVMPORT_REQUIRE_KO` is set. The last line is
//! `freebsd harness: N passed, N failed, N leaked allocations`.
//!
//! The harness needs a Linux x86-64 host (`arch_prctl`, `memfd_create`, `process_vm_readv`);
//! elsewhere it says so and passes.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("harness.rs");

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    println!("freebsd harness: needs a Linux x86-64 host; nothing to load");
}
