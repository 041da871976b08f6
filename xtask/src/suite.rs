//! Running `kvm-conformance` against this machine's `/dev/kvm` and judging its output with
//! [`kvmport_conformance::judge`] (the per-case results, the summary line and the documented
//! differences of a reference KVM).

use std::path::Path;

pub use kvmport_conformance::judge::{Outcome, Report, judge, known_differences, parse_summary};

/// The vendor module behind this machine's `/dev/kvm`, if one is loaded.
fn host_kvm_module() -> Option<&'static str> {
    ["kvm_amd", "kvm_intel", "kvm_pvm"]
        .into_iter()
        .find(|m| Path::new("/sys/module").join(m).exists())
}

/// `cargo xtask hostsuite`: runs the conformance suite against this machine's `/dev/kvm`, a
/// real Linux KVM, and fails on any failure its vendor module's documented differences
/// (`tests/conformance/known-differences/<module>.txt`) do not explain. Without `/dev/kvm`
/// it says so and succeeds.
pub fn host_suite() -> Result<(), String> {
    let dev = Path::new("/dev/kvm");
    if !dev.exists() {
        println!("host suite: skipped: this machine has no /dev/kvm");
        return Ok(());
    }
    let module = host_kvm_module().unwrap_or("unknown");
    super::step("build kvm-conformance", || {
        super::run(super::cargo().args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "kvmport-conformance",
        ]))
    })?;
    let root = crate::workspace_root();
    let exe = crate::target_dir().join("release/kvm-conformance");
    let mut text = String::new();
    super::step(
        &format!("kvm-conformance against /dev/kvm ({module})"),
        || {
            let out = std::process::Command::new(&exe)
                .args(["--device", "/dev/kvm"])
                .output()
                .map_err(|e| format!("{}: {e}", exe.display()))?;
            text = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok(())
        },
    )?;
    let report = Report::parse(&text);
    for (name, outcome) in &report.cases {
        if let Outcome::Fail(why) = outcome {
            println!("FAIL {name}: {why}");
        }
    }
    let known_file = root
        .join("tests/conformance/known-differences")
        .join(format!("{module}.txt"));
    let known = known_differences(&known_file)?;
    let (lines, good) = judge(&report, &known);
    for l in lines {
        println!("{l}");
    }
    let [p, f, s] = report.summary.unwrap_or_default();
    println!("host /dev/kvm ({module}): {p} passed, {f} failed, {s} skipped");
    if good {
        Ok(())
    } else {
        Err("the suite differs from this host's KVM in ways docs do not explain".to_string())
    }
}
