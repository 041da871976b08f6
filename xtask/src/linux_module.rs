//! `cargo xtask linux-module`: builds `kvmport.ko` for Debian's 6.12 kernel.
//!
//! The Rust side (kvmport-os-linux with the core and the x86 backend) is compiled with the
//! kernel's code model and mitigation flags, `-Zbuild-std` (so `core`/`alloc` get the same
//! flags), fat LTO into one object, which kbuild links beside the C shim as a `_shipped`
//! object. The result is checked: no objtool or modpost warnings, and only relocation types
//! the module loader applies.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo, run, step, target_dir, workspace_root};

/// The kernel's Rust flags for x86-64 with this config (the headers' `Makefile` and
/// `arch/x86/Makefile`): kernel code model, static relocations, no red zone, retpoline and
/// return thunks for objtool, IBT landing pads, no jump tables, the 16-byte call padding, and
/// PLT calls so that libcalls never go through the GOT (which the loader cannot relocate).
const KERNEL_RUSTFLAGS: &[&str] = &[
    "-Ccode-model=kernel",
    "-Crelocation-model=static",
    "-Cno-redzone=yes",
    "-Zretpoline-external-thunk",
    "-Zfunction-return=thunk-extern",
    "-Zplt=yes",
    "-Zcf-protection=branch",
    "-Cjump-tables=no",
    "-Zpatchable-function-entry=16,16",
    "-Zmin-function-alignment=16",
    "-Cforce-unwind-tables=n",
    "-Zfunction-sections=n",
];

/// Relocation types `arch/x86/kernel/module.c` applies.
const LOADER_RELOCS: &[&str] = &[
    "R_X86_64_NONE",
    "R_X86_64_64",
    "R_X86_64_32",
    "R_X86_64_32S",
    "R_X86_64_PC32",
    "R_X86_64_PLT32",
    "R_X86_64_PC64",
];

/// `cargo xtask linux-module [KVER]`.
pub fn run_cmd(args: &[String]) -> Result {
    let kver = match args.first() {
        Some(k) => k.clone(),
        None => crate::vmtest::newest_kver()?,
    };
    let ko = build(&kver)?;
    println!("built {}", ko.display());
    Ok(())
}

/// Builds `kvmport.ko` against `linux-headers-<kver>` and returns its path.
pub fn build(kver: &str) -> Result<PathBuf> {
    let headers = PathBuf::from(format!("/usr/src/linux-headers-{kver}"));
    step(&format!("kernel headers {kver}"), || {
        if headers.join("Makefile").exists() {
            return Ok(());
        }
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .arg(format!("linux-headers-{kver}"))
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })?;
    step("rust-src (for -Zbuild-std)", || {
        run(Command::new("rustup").args(["component", "add", "rust-src"]))
    })?;

    let out = target_dir().join("linux-module");
    let cargo_dir = out.join("cargo");
    step("Rust object (core + arch-x86 + os-linux)", || {
        run(cargo()
            .current_dir(workspace_root())
            .args([
                "rustc",
                "--quiet",
                "-p",
                "kvmport-os-linux",
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
            .env("CARGO_ENCODED_RUSTFLAGS", KERNEL_RUSTFLAGS.join("\u{1f}")))
    })?;

    let kdir = out.join(kver);
    step("kbuild", || {
        let lib = cargo_dir.join("x86_64-unknown-none/kernel/libkvmport_os_linux.a");
        fs::create_dir_all(&kdir).map_err(|e| format!("{}: {e}", kdir.display()))?;
        let obj = extract_crate_object(&lib, &kdir, "kvmport_os_linux")?;
        fs::copy(&obj, kdir.join("kvmport_rs.o_shipped")).map_err(|e| e.to_string())?;
        // modpost wants a .cmd file per object, even a prebuilt one.
        fs::write(
            kdir.join(".kvmport_rs.o.cmd"),
            "savedcmd_kvmport_rs.o := rustc\n",
        )
        .map_err(|e| e.to_string())?;
        let src = workspace_root().join("os-linux/kbuild");
        for f in ["Kbuild", "kvmport_main.c", "kvmport_glue.h"] {
            fs::copy(src.join(f), kdir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        }
        let log = Command::new("make")
            .arg("-C")
            .arg(&headers)
            .arg(format!("M={}", kdir.display()))
            .args(["-j2", "modules"])
            .output()
            .map_err(|e| format!("make: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&log.stdout),
            String::from_utf8_lossy(&log.stderr)
        );
        fs::write(kdir.join("build.log"), &text).map_err(|e| e.to_string())?;
        let warnings: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("warning") || l.contains("WARNING") || l.contains("error"))
            .collect();
        if !log.status.success() || !warnings.is_empty() {
            return Err(format!("kbuild failed or warned:\n{}", warnings.join("\n")));
        }
        Ok(())
    })?;

    let ko = kdir.join("kvmport.ko");
    step("relocation types", || check_relocations(&ko))?;
    Ok(ko)
}

/// Extracts the LTO'd crate object `<prefix>*.o` (everything but compiler_builtins) from the
/// staticlib.
pub(crate) fn extract_crate_object(lib: &Path, dir: &Path, prefix: &str) -> Result<PathBuf> {
    let list = crate::output(Command::new("ar").arg("t").arg(lib))?;
    let name = list
        .lines()
        .find(|n| n.starts_with(prefix) && n.ends_with(".o"))
        .ok_or_else(|| format!("no {prefix} object in {}", lib.display()))?
        .to_string();
    run(Command::new("ar")
        .current_dir(dir)
        .arg("x")
        .arg(lib)
        .arg(&name))?;
    Ok(dir.join(name))
}

/// Fails on any relocation type the module loader does not apply (GOTPCREL and friends make
/// `insmod` fail with "Unknown rela relocation").
fn check_relocations(ko: &Path) -> Result {
    let text = crate::output(Command::new("readelf").arg("-rW").arg(ko))?;
    let mut bad: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|t| t.starts_with("R_X86_64") && !LOADER_RELOCS.contains(t))
        .map(str::to_string)
        .collect();
    bad.sort();
    bad.dedup();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "relocation types the loader rejects: {}",
            bad.join(", ")
        ))
    }
}
