//! The illumos loader harness: loads the `kvm` driver module into this process the way
//! illumos's krtld would, serves its imports with harness implementations of the DDI
//! functions it uses, calls `_init` (whose `mod_install` makes the harness attach the
//! driver), runs every conformance case that needs no guest execution through the driver's
//! own entry points (via the client crate's illumos path), plus illumos-specific cases, then
//! `_fini` (detach, `mod_remove`), and requires that nothing is left allocated.
//!
//! The module is `$KVMPORT_ILLUMOS_MODULE`, else `target/illumos/kvm` (built by `cargo xtask
//! illumos`). Without it the harness says so and passes, unless `$KVMPORT_REQUIRE_KO` is set.
//! The last line is `illumos harness: N passed, N failed, N leaked allocations`.
//!
//! Memory, kernel stacks and simulated CPUs are the FreeBSD harness's (`../freebsd/`).

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("harness.rs");

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    println!("illumos harness: needs a Linux x86-64 host; nothing to load");
}
