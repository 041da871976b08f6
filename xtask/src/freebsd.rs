//! `cargo xtask freebsd`: builds `kvmport.ko` for FreeBSD 14 amd64, checks it against
//! `link_elf_obj`'s rules and runs the user-space loader harness (docs/freebsd.md; the
//! harness needs a Linux x86-64 host).
//!
//! The crate (kvmport-os-freebsd with the core and the x86 backend) is compiled like the
//! Linux module's Rust object (`-Zbuild-std`, one fat-LTO object) with the flags FreeBSD's
//! `kmod.mk` uses for amd64 (kernel code model, no red zone, soft-float from the target,
//! frame pointers) plus a static relocation model and PLT libcalls (no GOT: the kernel linker
//! rejects GOTPCREL). The crate object alone is linked with lld (`-r`, ET_REL) through a
//! script that merges input sections as `ldscript.kmod.amd64` does; `memcpy` and friends stay
//! imports from the kernel, so a soft-float or 128-bit helper would show up as an import the
//! check lists and the harness refuses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kvmport_kld_loader::{check, elf::Elf, freebsd::FreeBsd14};

use crate::{Result, cargo, run, step, target_dir, workspace_root};

/// Rust flags for the FreeBSD kernel object.
pub(crate) const FREEBSD_RUSTFLAGS: &[&str] = &[
    "-Ccode-model=kernel",
    "-Crelocation-model=static",
    "-Crelro-level=off",
    "-Cno-redzone=yes",
    "-Zplt=yes",
    "-Cforce-frame-pointers=yes",
    "-Cforce-unwind-tables=n",
    "-Zfunction-sections=n",
];

/// Merges input sections into the output sections `link_elf_obj` loads; linker sets and
/// everything else keep their own names.
const LDSCRIPT: &str = "SECTIONS
{
  .text   : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.* .data.rel.ro .data.rel.ro.*) }
  .data   : { *(.data .data.*) }
  .bss    : { *(.bss .bss.*) }
}
";

/// `cargo xtask freebsd`: build, check, harness.
pub fn run_cmd(_args: &[String]) -> Result {
    let ko = build()?;
    step("check kvmport.ko against FreeBSD 14's loader rules", || {
        check_ko(&ko)
    })?;
    harness(&ko)
}

/// Finds lld: `ld.lld` on the PATH, else the toolchain's `rust-lld`.
pub(crate) fn lld() -> Result<(PathBuf, bool)> {
    if Command::new("ld.lld").arg("--version").output().is_ok() {
        return Ok((PathBuf::from("ld.lld"), false));
    }
    let sysroot = crate::output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host = crate::output(Command::new("rustc").args(["--print", "host-tuple"]))?;
    let p = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/rust-lld");
    if p.exists() {
        Ok((p, true))
    } else {
        Err("neither ld.lld nor rust-lld found".into())
    }
}

/// Builds `krate` (a glue crate: `kvmport-os-freebsd`, `kvmport-os-illumos`) for the kernel
/// target as a static library under `out/cargo`, takes its one object out of the archive and
/// links it with `lld -r` and `ldscript` into `module`, without debug and toolchain sections.
/// `what` names the module in the step lines.
pub(crate) fn build_module_object(
    krate: &str,
    out: &Path,
    ldscript: &str,
    module: &Path,
    what: &str,
) -> Result {
    let cargo_dir = out.join("cargo");
    let lib_name = krate.replace('-', "_");
    step(&format!("Rust object (core + arch-x86 + {krate})"), || {
        run(cargo()
            .current_dir(workspace_root())
            .args([
                "rustc",
                "--quiet",
                "-p",
                krate,
                "--profile",
                "kernel",
                "--target",
                "x86_64-unknown-none",
                "--crate-type",
                "staticlib",
                "-Zbuild-std=core,alloc",
            ])
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &cargo_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", FREEBSD_RUSTFLAGS.join("\u{1f}")))
    })?;
    step(&format!("link {what} (lld -r)"), || {
        let lib = cargo_dir.join(format!("x86_64-unknown-none/kernel/lib{lib_name}.a"));
        let obj_dir = out.join("obj");
        fs::create_dir_all(&obj_dir).map_err(|e| format!("{}: {e}", obj_dir.display()))?;
        let obj = crate::linux_module::extract_crate_object(&lib, &obj_dir, &lib_name)?;
        let script = out.join("ldscript.kmod");
        fs::write(&script, ldscript).map_err(|e| e.to_string())?;
        let (lld, flavor) = lld()?;
        let mut cmd = Command::new(lld);
        if flavor {
            cmd.args(["-flavor", "gnu"]);
        }
        run(cmd
            .args(["-m", "elf_x86_64", "-r", "-T"])
            .arg(&script)
            .arg("-o")
            .arg(module)
            .arg(&obj))?;
        run(Command::new("llvm-objcopy")
            .args([
                "--strip-debug",
                "--remove-section=.comment",
                "--remove-section=.llvmbc",
                "--remove-section=.llvmcmd",
                "--remove-section=.note.GNU-stack",
            ])
            .arg(module))
    })
}

/// Builds `target/freebsd/kvmport.ko` and returns its path.
pub fn build() -> Result<PathBuf> {
    let out = target_dir().join("freebsd");
    let ko = out.join("kvmport.ko");
    build_module_object("kvmport-os-freebsd", &out, LDSCRIPT, &ko, "kvmport.ko")?;
    println!("built {}", ko.display());
    Ok(ko)
}

/// Prints the module's sections, linker sets, relocation types and imports; fails on what
/// FreeBSD 14's `link_elf_obj` would refuse.
pub fn check_ko(ko: &std::path::Path) -> Result {
    let data = fs::read(ko).map_err(|e| format!("{}: {e}", ko.display()))?;
    let elf = Elf::parse(data).map_err(|e| format!("{}: {e}", ko.display()))?;
    let report = check::check(&elf, &FreeBsd14);
    println!("{report}");
    if report.ok() {
        Ok(())
    } else {
        Err(format!("{} would be refused by kldload", ko.display()))
    }
}

/// Runs the loader's rule tests, then the loader harness on `ko`, and requires the harness's
/// final line to show no failure and no leak.
fn harness(ko: &std::path::Path) -> Result {
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
        "loader harness (cargo test -p kvmport-kld-loader --test freebsd)",
        || {
            let out = cargo()
                .current_dir(workspace_root())
                .args([
                    "test",
                    "--quiet",
                    "-p",
                    "kvmport-kld-loader",
                    "--test",
                    "freebsd",
                    "--",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("KVMPORT_FREEBSD_KO", ko)
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
                .rfind(|l| l.starts_with("freebsd harness: "))
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
