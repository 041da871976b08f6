//! `cargo xtask illumos`: builds the `kvm` driver module for illumos amd64, checks it against
//! krtld's rules and runs the user-space loader harness (docs/illumos.md; the harness needs a
//! Linux x86-64 host).
//!
//! The crate (kvmport-os-illumos with the core and the x86 backend) is compiled exactly as
//! the FreeBSD module is (one fat-LTO object with `-Zbuild-std`, kernel code model, static
//! relocation model, PLT libcalls, no red zone, soft-float from the target): illumos builds
//! its own modules with `-mcmodel=kernel -mno-red-zone` and krtld applies the same static
//! relocation types. The crate object is linked with lld (`-r`, ET_REL, RELA only, which is
//! all krtld accepts), like illumos's `ld -r -ztype=kmod`.

use std::fs;
use std::path::{Path, PathBuf};

use kvmport_kld_loader::{check, elf::Elf, illumos::Illumos};

use crate::freebsd::build_module_object;
use crate::{Result, cargo, run, step, target_dir, workspace_root};

/// Merges input sections into the four sections illumos modules have.
const LDSCRIPT: &str = "SECTIONS
{
  .text   : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.* .data.rel.ro .data.rel.ro.*) }
  .data   : { *(.data .data.*) }
  .bss    : { *(.bss .bss.*) }
}
";

/// The driver configuration file installed as `/kernel/drv/kvm.conf`.
pub const KVM_CONF: &str = "# kvmport: KVM for illumos (a pseudo device, one instance).
name=\"kvm\" parent=\"pseudo\" instance=0;
";

/// `cargo xtask illumos`: build, check, harness.
pub fn run_cmd(_args: &[String]) -> Result {
    let module = build()?;
    step("check the kvm module against illumos krtld's rules", || {
        check_module(&module)
    })?;
    harness(&module)
}

/// Builds `target/illumos/kvm` (and `kvm.conf` beside it) and returns the module's path.
pub fn build() -> Result<PathBuf> {
    let out = target_dir().join("illumos");
    let module = out.join("kvm");
    build_module_object(
        "kvmport-os-illumos",
        &out,
        LDSCRIPT,
        &module,
        "the kvm module",
    )?;
    fs::write(out.join("kvm.conf"), KVM_CONF).map_err(|e| e.to_string())?;
    println!(
        "built {} and {}",
        module.display(),
        out.join("kvm.conf").display()
    );
    Ok(module)
}

/// Prints the module's sections, relocation types and imports; fails on what illumos's
/// krtld would refuse.
pub fn check_module(module: &Path) -> Result {
    let data = fs::read(module).map_err(|e| format!("{}: {e}", module.display()))?;
    let elf = Elf::parse(data).map_err(|e| format!("{}: {e}", module.display()))?;
    let report = check::check(&elf, &Illumos);
    println!("{report}");
    if report.ok() {
        Ok(())
    } else {
        Err(format!("{} would be refused by modload", module.display()))
    }
}

/// Runs the loader's rule tests, then the illumos loader harness on `module`, and requires
/// the harness's final line to show no failure and no leak.
fn harness(module: &Path) -> Result {
    step(
        "loader rule tests (cargo test -p kvmport-kld-loader --test rules)",
        || {
            run(cargo().current_dir(workspace_root()).args([
                "test",
                "--quiet",
                "-p",
                "kvmport-kld-loader",
                "--test",
                "rules",
            ]))
        },
    )?;
    let mut line = String::new();
    step(
        "loader harness (cargo test -p kvmport-kld-loader --test illumos)",
        || {
            let out = cargo()
                .current_dir(workspace_root())
                .args([
                    "test",
                    "--quiet",
                    "-p",
                    "kvmport-kld-loader",
                    "--test",
                    "illumos",
                    "--",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("KVMPORT_ILLUMOS_MODULE", module)
                .output()
                .map_err(|e| format!("cargo test: {e}"))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{text}");
            line = text
                .lines()
                .rfind(|l| l.starts_with("illumos harness: "))
                .unwrap_or_default()
                .to_string();
            if !out.status.success() {
                return Err("the harness failed".into());
            }
            if line.is_empty() {
                return Err("the harness printed no result line".into());
            }
            Ok(())
        },
    )?;
    println!("{line}");
    Ok(())
}
