//! kvmport's developer harness: `cargo xtask <command>`.
//!
//! Commands:
//! - `setup`: installs what the build and tests need (rustup targets and components, Debian
//!   packages) when missing.
//! - `build-targets`: builds every kernel-side crate for the target it runs on, and type-checks
//!   the client crate for FreeBSD and illumos.
//! - `linux-module [KVER]`: builds `kvmport.ko` for Debian's 6.12 kernel (see docs/linux.md).
//! - `freebsd`: builds `kvmport.ko` for FreeBSD 14, checks it against the kernel linker's rules
//!   and runs the user-space loader harness (see docs/freebsd.md).
//! - `illumos`: builds the `kvm` driver module for illumos amd64, checks it against krtld's
//!   rules and runs the user-space loader harness (see docs/illumos.md).
//! - `hostsuite`: runs the conformance suite against this machine's `/dev/kvm` and checks its
//!   failures against the host module's documented differences.
//! - `vmtest`: boots Debian's 6.12 kernel under QEMU/TCG with an AMD SVM CPU, loads kvm_amd
//!   and runs the suite against it (the reference).
//! - `bench`: instructions per KVM operation, kvmport against kvm_amd in one deterministic
//!   VM, plus host benchmarks of the core (see docs/bench.md).
//! - `test`: the README's test command: format and lint checks, the host tests (including the
//!   ABI layout check), `build-targets`, `hostsuite`, `vmtest --kvmport --smp 2 --fuzz 60
//!   --guest-fuzz 40` and `vmtest --kvmport --smp 1 --demo --guest-fuzz 30`.

mod bench;
mod cpio;
mod freebsd;
mod illumos;
mod linux_module;
mod suite;
mod vmtest;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Kernel-side crates and the targets each must build for.
const KERNEL_BUILDS: &[(&str, &str)] = &[
    ("kvmport-core", "x86_64-unknown-none"),
    ("kvmport-core", "aarch64-unknown-none-softfloat"),
    ("kvmport-core", "powerpc64le-unknown-linux-gnu"),
    ("kvmport-core", "s390x-unknown-linux-gnu"),
    ("kvmport-arch-x86", "x86_64-unknown-none"),
    ("kvmport-arch-arm64", "aarch64-unknown-none-softfloat"),
    ("kvmport-arch-ppc", "powerpc64le-unknown-linux-gnu"),
    ("kvmport-arch-s390x", "s390x-unknown-linux-gnu"),
    ("kvmport-os-linux", "x86_64-unknown-none"),
    ("kvmport-os-freebsd", "x86_64-unknown-none"),
    ("kvmport-os-illumos", "x86_64-unknown-none"),
];

/// User-space crates that must type-check for the other kernels kvmport serves.
const CHECK_BUILDS: &[(&str, &str)] = &[
    ("kvmport-client", "x86_64-unknown-freebsd"),
    ("kvmport-client", "x86_64-unknown-illumos"),
];

/// Debian packages the tests need: libclang and clang for the ABI layout check (bindgen, and
/// clang for cross-compiled probes), and the arm64, ppc64el and s390x kernel headers it checks
/// the other architectures' structs against.
const APT_PACKAGES: &[&str] = &[
    "libclang-dev",
    "clang",
    "linux-libc-dev-arm64-cross",
    "linux-libc-dev-ppc64el-cross",
    "linux-libc-dev-s390x-cross",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build-targets") => build_targets(),
        Some("test") => test(),
        Some("vmtest") => vmtest::run(&args[1..]),
        Some("demo") => demo(),
        Some("bench") => bench::run(&args[1..]),
        Some("hostsuite") => suite::host_suite(),
        Some("linux-module") => linux_module::run_cmd(&args[1..]),
        Some("freebsd") => freebsd::run_cmd(&args[1..]),
        Some("illumos") => illumos::run_cmd(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|build-targets|test|demo|hostsuite|linux-module [KVER]|freebsd|illumos|vmtest [--help]|bench [--help]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of the `xtask` crate).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// Runs a step, printing its name before and its duration after.
fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    eprintln!("==> {name}");
    let t = Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    match &r {
        Ok(()) => eprintln!("<== {name}: ok ({secs:.1} s)"),
        Err(e) => eprintln!("<== {name}: FAILED ({secs:.1} s): {e}"),
    }
    r
}

fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}

/// Totals of cargo's `test result:` lines.
#[derive(Default, Debug)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test ...`, echoing its output and adding up its results.
fn run_tests(cmd: &mut Command, tally: &mut Tally) -> Result {
    use std::io::{BufRead, BufReader};
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| format!("{shown}: {e}"))?;
            println!("{line}");
            tally.add_line(&line);
        }
    }
    let status = child.wait().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn setup() -> Result {
    step("rustup targets and components", || {
        let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
        let missing: Vec<&str> = KERNEL_BUILDS
            .iter()
            .chain(CHECK_BUILDS)
            .map(|(_, t)| *t)
            .filter(|t| !installed.lines().any(|l| l.trim() == *t))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            run(Command::new("rustup")
                .args(["target", "add"])
                .args(&missing))?;
        }
        run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
    })?;
    step("Debian packages", || {
        let have = |p: &str| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        };
        let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !have(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("installing {missing:?} with apt-get");
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })
}

fn build_targets() -> Result {
    for (krate, target) in KERNEL_BUILDS {
        step(&format!("build {krate} for {target}"), || {
            run(cargo().args(["build", "--quiet", "-p", krate, "--target", target]))
        })?;
    }
    for (krate, target) in CHECK_BUILDS {
        step(&format!("check {krate} for {target}"), || {
            run(cargo().args(["check", "--quiet", "-p", krate, "--target", target]))
        })?;
    }
    Ok(())
}

/// `cargo xtask demo`: the README's main job. Installs what is missing, boots the test VM
/// (QEMU/TCG with an AMD SVM CPU), loads kvm_amd and runs the suite (the reference), then loads
/// kvmport.ko, runs `kvm-demo` (a 64-bit guest greeting through port I/O) and the suite against
/// it, and prints both summaries.
fn demo() -> Result {
    eprintln!(
        "kvmport demo: set up, build kvmport.ko and the suite, boot a QEMU VM with an AMD SVM \
         CPU, run kvm_amd (reference) and kvmport; about 5 minutes on a fresh clone"
    );
    setup()?;
    vmtest::run(&["--kvmport", "--smp", "2", "--demo"].map(String::from))
}

fn test() -> Result {
    setup()?;
    step("cargo fmt --check", || {
        run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("cargo clippy", || {
        run(cargo().args([
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    let mut host = Tally::default();
    step("cargo test (host)", || {
        // The headers are installed by `setup`, so a skipped cross-architecture check is an error.
        let mut cmd = cargo();
        cmd.args(["test", "--workspace"])
            .env("KVMPORT_ABI_REQUIRE_CROSS", "1");
        run_tests(&mut cmd, &mut host)
    })?;
    build_targets()?;
    for krate in [
        "kvmport-os-linux",
        "kvmport-os-freebsd",
        "kvmport-os-illumos",
    ] {
        step(
            &format!("cargo clippy ({krate} on the kernel target)"),
            || {
                run(cargo().args([
                    "clippy",
                    "--quiet",
                    "-p",
                    krate,
                    "--target",
                    "x86_64-unknown-none",
                    "--",
                    "-D",
                    "warnings",
                ]))
            },
        )?;
    }
    freebsd::run_cmd(&[])?;
    illumos::run_cmd(&[])?;
    suite::host_suite()?;
    // Two boots: two vCPUs with 60 s of ioctl fuzzing and 40 s of random guest code, and one
    // vCPU with the demo and 30 s of random guest code.
    let vm_args = [
        "--kvmport",
        "--smp",
        "2",
        "--fuzz",
        "60",
        "--guest-fuzz",
        "40",
    ];
    vmtest::run(&vm_args.map(String::from))?;
    let vm_args = ["--kvmport", "--smp", "1", "--demo", "--guest-fuzz", "30"];
    vmtest::run(&vm_args.map(String::from))?;
    println!(
        "host tests: {} passed, {} failed, {} skipped",
        host.passed, host.failed, host.ignored
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_adds_cargo_result_lines() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 14 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.06s");
        t.add_line(
            "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 14 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (17, 1, 2));
    }
}
