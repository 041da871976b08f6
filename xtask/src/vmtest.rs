//! `cargo xtask vmtest`: runs the conformance suite inside a QEMU guest.
//!
//! The guest is a stock Debian `linux-image-6.12.*-amd64-unsigned` kernel booted in
//! `qemu-system-x86_64 -accel tcg -cpu EPYC`, which offers SVM with nested paging. Its initramfs
//! (written by [`crate::cpio`]) holds busybox, the KVM modules from the same kernel package, the
//! static suite binary and an `/init` that works through a list of runs: for each run it loads
//! that run's modules, runs the suite against that run's device node between
//! `VMTEST-SUITE-BEGIN <label>` and `VMTEST-SUITE-END <label> rc=N` markers, and unloads the
//! modules again. Kernel modules are only ever loaded inside the guest.
//!
//! Everything downloaded or generated lives in `target/vmtest/`: the kernel `.deb`, the
//! extracted kernel and modules (`kernel-<version>/`), `KVER`, `initramfs.cpio`, the raw
//! serial logs (`serial-<UTC time>.log`) and the latest case lines of each run
//! (`results-<label>.txt`).

use crate::suite::parse_summary;
use crate::{target_dir, workspace_root};
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cpio::Archive;
use crate::{Result, cargo, output, run as run_cmd, step};

/// Command-line help for `cargo xtask vmtest`.
const USAGE: &str = "\
usage: cargo xtask vmtest [--smp N] [--kvmport] [--keep] [--timeout SECS] [--suite PATH] [-- SUITE-ARGS...]
  --smp N         guest vCPUs (default 1)
  --kvmport       also build kvmport.ko and run the suite against it in the same boot: it must
                  load, finish the suite without kernel warnings and unload; differences from
                  the reference are listed case by case
  --strict        with --kvmport: also fail on a difference in a case that runs no guest code
  --fuzz SECS     after each run's suite, fuzz its device with kvm-fuzz for SECS seconds
  --fuzz-args A   kvm-fuzz arguments besides device and duration (default
                  \"--guest-code hlt\"; the kvm_amd run adds --no-state, see docs/linux.md,
                  \"QEMU TCG: EFER.LME before CR4.PAE\")
  --no-reference  with --kvmport: skip the kvm_amd run
  --append ARGS   extra guest kernel command-line arguments (e.g. ignore_loglevel)
  --monitor SOCK  serve QEMU's human monitor on this Unix socket (to inspect a hung guest)
  --demo          with --kvmport: run kvm-demo (a 64-bit guest greeting through port I/O)
                  against kvmport before its suite
  --guest-fuzz S  after each run's suite, run random guest code (real and long mode) with
                  kvm-guestfuzz for S seconds; every run must end in an explained exit (with
                  a QEMU that has QEMU issue 3195, kvm-guestfuzz gets --avoid-qemu-3195)
  --guest-fuzz-args A  extra kvm-guestfuzz arguments (e.g. \"--modes long --verbose\")
  --qemu-log PATH QEMU's own log of CPU resets and guest errors (-d cpu_reset,guest_errors;
                  $KVMPORT_QEMU_LOG_ITEMS overrides the -d items)
  --keep          keep the unpacked kernel package (when unpacking) and superseded kernels
  --timeout SECS  wall-clock limit for the guest (default 600)
  $KVMPORT_QEMU   the QEMU binary to run (default qemu-system-x86_64 from PATH)
  $KVMPORT_QEMU_HAS_3195  1 or 0: whether that QEMU has QEMU issue 3195, when its version
                  does not say (default: from the version; see --guest-fuzz)
  --suite PATH    run this static binary instead of building kvmport-conformance
  -- ARGS         extra arguments for the suite, e.g. a FILTER";

/// One suite run inside the guest.
struct GuestRun {
    /// Short name used in the markers, e.g. `reference`.
    label: &'static str,
    /// Name used in the host's result lines, e.g. `reference (kvm_amd)`.
    title: &'static str,
    /// The device node the suite is pointed at.
    device: &'static str,
    /// Modules from `/mods` to `insmod`, in order (unloaded in reverse order afterwards). A
    /// module may carry parameters after colons: `kvm-amd:npt=0:nested=0`.
    modules: &'static [&'static str],
    /// Suite cases this run leaves out (`kvm-conformance --skip`), each for a stated reason.
    skip: &'static [&'static str],
    /// kvm-fuzz arguments this run adds to `--fuzz-args`.
    fuzz_extra: &'static str,
    /// Judged case by case against the reference run (differences allowed only in cases that
    /// run guest code) instead of having to pass every case.
    compare: bool,
}

/// The reference: upstream kvm_amd.
const REFERENCE_RUN: GuestRun = GuestRun {
    label: "reference",
    title: "reference (kvm_amd)",
    device: "/dev/kvm",
    modules: &["irqbypass", "kvm", "ccp", "kvm-amd"],
    // kvm_amd gives QEMU's TCG SVM a guest EFER.LME with paging and PAE off; the #VMEXIT
    // then leaves the guest's CR0 in the host (docs/linux.md, "QEMU TCG: LME before PAE")
    // and the test VM dies. kvmport hides LME in that state.
    // And QEMU's TCG reports a guest's INT3 only to the INTn intercept, never to the #BP
    // exception intercept kvm_amd uses for software breakpoints: kvm_amd's guest takes the
    // #BP itself (measured: SHUTDOWN with an empty IDT). kvmport intercepts both.
    skip: &["run.sregs.lme_before_pae", "run.debug.sw_breakpoint"],
    // For the same reason: fuzzed register state reaches that state within a minute.
    fuzz_extra: "--no-state",
    compare: false,
};

/// Our module, after the reference's modules are unloaded (so `/dev/kvm` and SVM are free).
const KVMPORT_RUN: GuestRun = GuestRun {
    label: "kvmport",
    title: "kvmport",
    device: "/dev/kvm",
    modules: &["kvmport"],
    skip: &[],
    fuzz_extra: "",
    compare: true,
};

/// The default runs of one boot: the reference only.
const GUEST_RUNS: &[&GuestRun] = &[&REFERENCE_RUN];

/// Modules taken from the Debian kernel package.
const KERNEL_MODULES: &[&str] = &["irqbypass", "kvm", "ccp", "kvm-amd"];

/// The Rust target the suite is built for: static, so the initramfs needs no libc.
pub(crate) const SUITE_TARGET: &str = "x86_64-unknown-linux-musl";

/// The kernel series the guest runs.
const KERNEL_SERIES: &str = "6.12";

/// The QEMU major version the harness needs (TCG's SVM emulation was validated with 10.0).
const QEMU_MIN_MAJOR: u32 = 10;

/// Lines that mean the guest kernel found a problem.
const BAD_PATTERNS: &[&str] = &[
    "Oops",
    "BUG:",
    "WARNING:",
    "Kernel panic",
    "general protection fault",
    "Call Trace",
];

/// Lines that match [`BAD_PATTERNS`] but are harmless: the boot-time notices about CPU
/// vulnerability mitigations (e.g. `Speculative Return Stack Overflow: WARNING: See
/// https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html ...` on the EPYC model).
/// Also the kernel's one-line notes about a user-space fault of a fuzzer process
/// (`traps: kvm-fuzz[PID] general protection fault ip:...`): the fuzzer's children run with
/// mutated state on purpose, and the fuzzer counts its own crashes.
const BENIGN_PATTERNS: &[&str] = &["/admin-guide/hw-vuln/", "traps: kvm-fuzz["];

/// The guest's `/init`. It reads `/etc/vmtest/runs` (one `label device module...` per line) and
/// `/etc/vmtest/suite-args`.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# /init of the kvmport vmtest initramfs, written by `cargo xtask vmtest`.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
up() { cut -d' ' -f1 /proc/uptime; }
echo "VMTEST-INIT uptime=$(up) kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
grep -qw svm /proc/cpuinfo || echo "VMTEST-NOTE the guest CPU has no svm"
SUITE_ARGS=$(cat /etc/vmtest/suite-args)
FUZZ_SECS=$(cat /etc/vmtest/fuzz-seconds)
FUZZ_ARGS=$(cat /etc/vmtest/fuzz-args)
GUEST_FUZZ_SECS=$(cat /etc/vmtest/guest-fuzz-seconds)
slab() { grep -E '^(Slab|SUnreclaim):' /proc/meminfo | tr -s ' ' | tr '\n' ' '; }
fails=0
while read -r label dev mods; do
  case "$label" in ''|'#'*) continue;; esac
  loaded=""
  ok=1
  echo "VMTEST-SLAB $label before-load $(slab)"
  for spec in $mods; do
    m=${spec%%:*}
    args=""
    [ "$m" != "$spec" ] && args=$(echo "${spec#*:}" | tr ':' ' ')
    insmod "/mods/$m.ko" $args </dev/null
    rc=$?
    echo "VMTEST-INSMOD $label $m rc=$rc"
    if [ $rc -ne 0 ]; then ok=0; break; fi
    loaded="$m $loaded"
  done
  if [ $ok = 1 ] && [ -w /sys/devices/system/cpu/cpu1/online ]; then
    # CPU hotplug with the hypervisor loaded: the module must disable and re-enable the CPU.
    echo 0 > /sys/devices/system/cpu/cpu1/online && echo 1 > /sys/devices/system/cpu/cpu1/online
    echo "VMTEST-HOTPLUG $label rc=$?"
  fi
  if [ $ok = 1 ] && [ -s "/etc/vmtest/demo-$label" ]; then
    /bin/kvm-demo --device "$dev" </dev/null 2>&1
    echo "VMTEST-DEMO $label rc=$?"
  fi
  if [ $ok = 1 ]; then
    echo "VMTEST-SUITE-BEGIN $label"
    /bin/kvm-conformance --device "$dev" $(cat "/etc/vmtest/skip-$label") $SUITE_ARGS </dev/null 2>&1
    rc=$?
    echo "VMTEST-SUITE-END $label rc=$rc"
    [ $rc -ne 0 ] && fails=$((fails + 1))
    if [ "$FUZZ_SECS" -gt 0 ] 2>/dev/null; then
      # Random guest code crashes QEMU 10's TCG; by default the fuzzer's guests run HLT loops.
      /bin/kvm-fuzz --device "$dev" --seconds "$FUZZ_SECS" $FUZZ_ARGS $(cat "/etc/vmtest/fuzz-extra-$label") </dev/null >/tmp/fuzz.log 2>&1
      frc=$?
      grep -E '^(fuzz:|kvm-fuzz:)' /tmp/fuzz.log
      echo "VMTEST-FUZZ $label rc=$frc"
    fi
    if [ "$GUEST_FUZZ_SECS" -gt 0 ] 2>/dev/null; then
      /bin/kvm-guestfuzz --device "$dev" --seconds "$GUEST_FUZZ_SECS" $(cat /etc/vmtest/guest-fuzz-args) </dev/null 2>&1
      echo "VMTEST-GUESTFUZZ $label rc=$?"
    fi
  else
    echo "VMTEST-SUITE-SKIPPED $label"
    fails=$((fails + 1))
  fi
  for m in $loaded; do
    rmmod "$(echo "$m" | tr - _)" </dev/null
    echo "VMTEST-RMMOD $label $m rc=$?"
  done
  # This run's kernel messages, while its phase is current: lines below the console's log level
  # (user-space fault notes, for instance) are judged against the run that caused them.
  echo "VMTEST-DMESG-BEGIN $label"
  dmesg -c
  echo "VMTEST-DMESG-END $label"
  echo "VMTEST-SLAB $label after-unload $(slab)"
done </etc/vmtest/runs
echo "VMTEST-DMESG-BEGIN"
dmesg
echo "VMTEST-DMESG-END"
echo "VMTEST-DONE rc=$fails uptime=$(up)"
sync
poweroff -f
"#;

/// Parsed command-line options.
#[derive(Debug)]
struct Opts {
    /// Guest vCPUs.
    smp: u32,
    /// Keep intermediate files.
    keep: bool,
    /// Wall-clock limit for the guest.
    timeout: Duration,
    /// A prebuilt suite binary to use instead of building the conformance package.
    suite: Option<PathBuf>,
    /// Extra suite arguments.
    suite_args: Vec<String>,
    /// Also run the suite against kvmport.ko.
    kvmport: bool,
    /// Fail on differences from the reference in cases that run no guest code.
    strict: bool,
    /// Seconds of `kvm-fuzz` per run (0: none).
    fuzz: u64,
    /// Arguments for `kvm-fuzz` besides the device and duration.
    fuzz_args: String,
    /// Skip the kvm_amd run (with `--kvmport`: iterate on kvmport alone).
    no_reference: bool,
    /// Extra kernel command-line arguments.
    append: String,
    /// A Unix socket for QEMU's human monitor (debugging a hung guest).
    monitor: Option<PathBuf>,
    /// Run `kvm-demo` against kvmport before its suite.
    demo: bool,
    /// Seconds of `kvm-guestfuzz` (random guest code) per run (0: none).
    guest_fuzz: u64,
    /// Extra `kvm-guestfuzz` arguments.
    guest_fuzz_args: String,
    /// QEMU's own log (`-d cpu_reset,guest_errors -D PATH`).
    qemu_log: Option<PathBuf>,
}

impl Opts {
    /// Parses the arguments after `vmtest`.
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Opts {
            smp: 1,
            keep: false,
            timeout: Duration::from_secs(600),
            suite: None,
            suite_args: Vec::new(),
            kvmport: false,
            strict: false,
            fuzz: 0,
            fuzz_args: "--guest-code hlt".to_string(),
            no_reference: false,
            append: String::new(),
            monitor: None,
            demo: false,
            guest_fuzz: 0,
            guest_fuzz_args: String::new(),
            qemu_log: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match a.as_str() {
                "--smp" => {
                    o.smp = value("--smp")?
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| format!("--smp takes 1..=64\n{USAGE}"))?;
                }
                "--timeout" => {
                    let secs: u64 = value("--timeout")?
                        .parse()
                        .map_err(|_| format!("--timeout takes seconds\n{USAGE}"))?;
                    o.timeout = Duration::from_secs(secs);
                }
                "--suite" => o.suite = Some(PathBuf::from(value("--suite")?)),
                "--keep" => o.keep = true,
                "--kvmport" => o.kvmport = true,
                "--strict" => o.strict = true,
                "--fuzz" => {
                    o.fuzz = value("--fuzz")?
                        .parse()
                        .map_err(|_| format!("--fuzz takes seconds\n{USAGE}"))?;
                }
                "--fuzz-args" => o.fuzz_args = value("--fuzz-args")?,
                "--no-reference" => o.no_reference = true,
                "--append" => o.append = value("--append")?,
                "--monitor" => o.monitor = Some(PathBuf::from(value("--monitor")?)),
                "--demo" => o.demo = true,
                "--guest-fuzz-args" => o.guest_fuzz_args = value("--guest-fuzz-args")?,
                "--qemu-log" => o.qemu_log = Some(PathBuf::from(value("--qemu-log")?)),
                "--guest-fuzz" => {
                    o.guest_fuzz = value("--guest-fuzz")?
                        .parse()
                        .map_err(|_| format!("--guest-fuzz takes seconds\n{USAGE}"))?;
                }
                "--" => {
                    o.suite_args = it.by_ref().cloned().collect();
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if (o.no_reference || o.demo) && !o.kvmport {
            return Err(format!("--no-reference and --demo need --kvmport\n{USAGE}"));
        }
        if o.suite_args.iter().any(|a| a.contains(char::is_whitespace)) {
            return Err("suite arguments cannot contain whitespace".into());
        }
        Ok(o)
    }
}

/// Entry point of `cargo xtask vmtest`.
pub fn run(args: &[String]) -> Result {
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        println!("{USAGE}");
        return Ok(());
    }
    let mut opts = Opts::parse(args)?;
    let t0 = Instant::now();
    let dir = target_dir().join("vmtest");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    step("vmtest: host packages (apt)", host_packages)?;
    let _lock = lock_dir(&dir)?;
    let kernel = step_val("vmtest: guest kernel", || guest_kernel(&dir, opts.keep))?;
    let suite = step_val("vmtest: conformance suite", || suite_binary(&opts))?;
    let mut plan = Plan {
        runs: if opts.no_reference {
            Vec::new()
        } else {
            GUEST_RUNS.to_vec()
        },
        modules: guest_modules(&kernel),
        guest_cases: HashSet::new(),
        strict: opts.strict,
        fuzzer: None,
        demo: None,
        guest_fuzzer: None,
    };
    if opts.guest_fuzz > 0 {
        // $KVMPORT_QEMU_HAS_3195 (0 or 1) overrides the version check, for a QEMU whose
        // version does not tell (a distribution's patched package, a local build).
        let forced = std::env::var("KVMPORT_QEMU_HAS_3195").ok();
        let affected = qemu_version().filter(|&v| match forced.as_deref() {
            Some("0") => false,
            Some("1") => true,
            _ => qemu_has_issue_3195(v),
        });
        if let Some(v) = affected {
            // A guest can crash this QEMU: keep the offending bytes out of the random code.
            eprintln!(
                "vmtest: QEMU {}.{}.{} has QEMU issue 3195 (MOV Sreg naming no segment register \
                 crashes QEMU; fixed in 10.0.7/10.1.3): kvm-guestfuzz --avoid-qemu-3195",
                v.0, v.1, v.2
            );
            opts.guest_fuzz_args.push_str(" --avoid-qemu-3195");
        }
        // Built with the suite, from the same package.
        let g = suite.with_file_name("kvm-guestfuzz");
        if !g.is_file() {
            return Err(format!("{} not found (built with the suite)", g.display()));
        }
        plan.guest_fuzzer = Some(g);
    }
    if opts.fuzz > 0 {
        plan.fuzzer = Some(step_val("vmtest: kvm-fuzz", fuzzer_binary)?);
    }
    if opts.kvmport {
        let ko = step_val("vmtest: kvmport.ko", || {
            crate::linux_module::build(&kernel.kver)
        })?;
        plan.modules.push(("kvmport".to_string(), ko));
        plan.runs.push(&KVMPORT_RUN);
        if opts.demo {
            // Built with the suite, from the same package.
            let demo = suite.with_file_name("kvm-demo");
            if !demo.is_file() {
                return Err(format!(
                    "{} not found (built with the suite)",
                    demo.display()
                ));
            }
            plan.demo = Some(demo);
        }
        plan.guest_cases = step_val("vmtest: cases that run guest code", || guest_cases(&suite))?;
    }
    let initrd = step_val("vmtest: initramfs", || {
        write_initramfs(&dir, &kernel, &suite, &opts, &plan)
    })?;
    let outcome = boot(&dir, &kernel, &initrd, &opts)?;
    let verdict = outcome.report(&plan);
    eprintln!("vmtest: total {:.1} s", t0.elapsed().as_secs_f64());
    verdict
}

/// Takes an exclusive lock on `dir/lock` (waiting for it if another `vmtest` holds it), so
/// that concurrent runs do not share the kernel cache, the initramfs or a log name. The lock
/// lasts as long as the returned file is open.
pub(crate) fn lock_dir(dir: &Path) -> Result<fs::File> {
    let path = dir.join("lock");
    let f = fs::File::create(&path).map_err(io_err(&path))?;
    if f.try_lock().is_err() {
        eprintln!(
            "vmtest: waiting for another `cargo xtask vmtest` ({} is locked)",
            path.display()
        );
        f.lock().map_err(io_err(&path))?;
    }
    Ok(f)
}

/// Runs [`step`] for a function that produces a value.
pub(crate) fn step_val<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut out = None;
    step(name, || {
        out = Some(f()?);
        Ok(())
    })?;
    out.ok_or_else(|| format!("{name}: no result"))
}

/// Formats an I/O error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

// ---------------------------------------------------------------------------------------------
// Host packages

/// Installs QEMU (from backports when the release's own is too old), busybox-static and
/// xz-utils when missing, adding the backports source first if needed.
pub(crate) fn host_packages() -> Result {
    let codename = os_codename();
    let backports = format!("{codename}-backports");
    let qemu = qemu_major();
    let need_qemu = qemu.is_none_or(|m| m < QEMU_MIN_MAJOR);
    let missing: Vec<&str> = ["busybox-static", "xz-utils"]
        .into_iter()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !need_qemu && missing.is_empty() {
        eprintln!(
            "qemu-system-x86_64 {}.x, busybox-static and xz-utils are installed",
            qemu.unwrap_or_default()
        );
        return Ok(());
    }
    let mut update = !missing.is_empty();
    if need_qemu {
        update |= ensure_backports_source(&backports)?;
    }
    if update {
        run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
    }
    if !missing.is_empty() {
        eprintln!("installing {missing:?}");
        run_cmd(apt_install().args(&missing))?;
    }
    if need_qemu {
        eprintln!(
            "installing qemu-system-x86 from {backports} (have {qemu:?}, need {QEMU_MIN_MAJOR})"
        );
        run_cmd(apt_install().args(["-t", &backports, "qemu-system-x86"]))?;
        match qemu_major() {
            Some(m) if m >= QEMU_MIN_MAJOR => {}
            other => {
                return Err(format!(
                    "qemu-system-x86_64 major version is {other:?} after the install, need {QEMU_MIN_MAJOR}"
                ));
            }
        }
    }
    Ok(())
}

/// `apt-get install -y` without recommends, non-interactive.
fn apt_install() -> Command {
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "-q", "--no-install-recommends"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    c
}

/// Whether dpkg has package `p` installed.
fn dpkg_installed(p: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", p])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The QEMU binary the harness runs: `$KVMPORT_QEMU` when set (e.g. a QEMU built with debug
/// information, to get a backtrace out of a QEMU crash), else `qemu-system-x86_64` from `PATH`.
pub(crate) fn qemu_command() -> Command {
    Command::new(std::env::var_os("KVMPORT_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into()))
}

/// The version of the QEMU that [`qemu_command`] runs, if it runs.
fn qemu_version() -> Option<(u32, u32, u32)> {
    let out = qemu_command().arg("--version").output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// The major version of the QEMU that [`qemu_command`] runs, if it runs.
fn qemu_major() -> Option<u32> {
    qemu_version().map(|v| v.0)
}

/// Parses `QEMU emulator version 10.0.2 (Debian ...)` into (major, minor, micro).
fn parse_qemu_version(s: &str) -> Option<(u32, u32, u32)> {
    let rest = s.split("version ").nth(1)?;
    let v = rest.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some((major, minor, micro))
}

/// Whether QEMU `v`'s TCG has QEMU issue 3195: `MOV Sreg, r/m` naming no segment register
/// crashes QEMU instead of raising #UD. It came with the new decoder's move of opcodes
/// 60-BF (9.1) and was fixed in 10.0.7, 10.1.3 and 10.2.0 (upstream commit ebb46ba6a4a2).
fn qemu_has_issue_3195(v: (u32, u32, u32)) -> bool {
    ((9, 1, 0)..(10, 0, 7)).contains(&v) || ((10, 1, 0)..(10, 1, 3)).contains(&v)
}

/// The Debian release's codename from `/etc/os-release` (default `bookworm`).
fn os_codename() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "bookworm".into())
}

/// APT source files that are in effect.
fn apt_source_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files.retain(|p| p.is_file());
    files
}

/// Makes sure APT has a `<codename>-backports` source, using the mirror the Debian sources use.
/// Returns whether `apt-get update` is needed.
fn ensure_backports_source(backports: &str) -> Result<bool> {
    let mut mirror = None;
    for f in apt_source_files() {
        let text = fs::read_to_string(&f).unwrap_or_default();
        let (has, m) = scan_sources(&text, backports);
        if has {
            eprintln!("{backports} is configured in {}", f.display());
            return Ok(!apt_lists_have(backports));
        }
        mirror = mirror.or(m);
    }
    let mirror = mirror.unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let opts = if Path::new(keyring).exists() {
        format!("[signed-by={keyring}] ")
    } else {
        String::new()
    };
    let path = Path::new("/etc/apt/sources.list.d/kvmport-backports.list");
    let line = format!("deb {opts}{mirror} {backports} main\n");
    eprintln!("writing {}: {}", path.display(), line.trim_end());
    fs::write(path, line).map_err(io_err(path))?;
    Ok(true)
}

/// Scans one APT source file (one-line or deb822 format): whether a non-comment line names
/// `suite`, and the first Debian archive URI (one ending in `/debian`).
fn scan_sources(text: &str, suite: &str) -> (bool, Option<String>) {
    let mut has = false;
    let mut mirror = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.split_whitespace().any(|w| w == suite) {
            has = true;
        }
        let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
            rest.split_whitespace().collect()
        } else if line.starts_with("deb ") {
            line.split_whitespace()
                .filter(|w| w.contains("://"))
                .take(1)
                .collect()
        } else {
            Vec::new()
        };
        for u in uris {
            let u = u.trim_end_matches('/');
            if mirror.is_none() && u.ends_with("/debian") {
                mirror = Some(u.to_string());
            }
        }
    }
    (has, mirror)
}

/// Whether `/var/lib/apt/lists` holds an index for `suite`.
fn apt_lists_have(suite: &str) -> bool {
    let needle = format!("_dists_{suite}_");
    fs::read_dir("/var/lib/apt/lists").is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().contains(&needle))
    })
}

// ---------------------------------------------------------------------------------------------
// Guest kernel

/// The guest kernel and its modules, ready to boot.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// `uname -r`, e.g. `6.12.115+deb12-amd64`.
    pub(crate) kver: String,
    /// The kernel image.
    pub(crate) vmlinuz: PathBuf,
    /// Directory of decompressed `<name>.ko` files.
    pub(crate) mods: PathBuf,
}

/// The `uname -r` of the newest 6.12 kernel apt offers (e.g. `6.12.117+deb12-amd64`).
pub(crate) fn newest_kver() -> Result<String> {
    let pkg = newest_kernel_package()?;
    pkg.strip_prefix("linux-image-")
        .and_then(|s| s.strip_suffix("-unsigned"))
        .map(str::to_string)
        .ok_or_else(|| format!("odd package name {pkg}"))
}

/// Chooses the newest `linux-image-6.12.*-amd64-unsigned`, downloads and unpacks it (cached).
pub(crate) fn guest_kernel(dir: &Path, keep: bool) -> Result<Kernel> {
    let pkg = match newest_kernel_package() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}; running apt-get update once");
            run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
            newest_kernel_package()?
        }
    };
    let kver = pkg
        .strip_prefix("linux-image-")
        .and_then(|s| s.strip_suffix("-unsigned"))
        .ok_or_else(|| format!("odd package name {pkg}"))?
        .to_string();
    eprintln!("guest kernel: {pkg}");
    let kdir = dir.join(format!("kernel-{kver}"));
    let stamp = kdir.join(".complete");
    if stamp.exists() {
        eprintln!("cached: {}", kdir.display());
    } else {
        let deb = match find_deb(dir, &pkg) {
            Some(d) => {
                eprintln!("cached: {}", d.display());
                d
            }
            None => download_deb(dir, &pkg)?,
        };
        extract_kernel(dir, &deb, &kver, &kdir, keep)?;
    }
    fs::write(dir.join("KVER"), format!("{kver}\n")).map_err(io_err(dir))?;
    if !keep {
        prune_old_kernels(dir, &pkg, &kver);
    }
    Ok(Kernel {
        vmlinuz: kdir.join("vmlinuz"),
        mods: kdir.join("mods"),
        kver,
    })
}

/// The newest `linux-image-6.12.<n>...-amd64-unsigned` (no `-rt`/`-cloud` flavours) with an
/// installable candidate.
fn newest_kernel_package() -> Result<String> {
    let prefix = format!("linux-image-{KERNEL_SERIES}.");
    let names = output(Command::new("apt-cache").args(["pkgnames", &prefix]))?;
    let mut cands: Vec<(u64, String)> = names
        .lines()
        .filter_map(|n| kernel_patch_level(n, &prefix).map(|p| (p, n.to_string())))
        .collect();
    cands.sort();
    for (_, name) in cands.iter().rev() {
        let madison = output(Command::new("apt-cache").args(["madison", name]))?;
        if !madison.trim().is_empty() {
            return Ok(name.clone());
        }
    }
    Err(format!("apt knows no {prefix}*-amd64-unsigned package"))
}

/// For `linux-image-6.12.115+deb12-amd64-unsigned` returns 115; `None` for other flavours.
fn kernel_patch_level(name: &str, prefix: &str) -> Option<u64> {
    let mid = name.strip_prefix(prefix)?.strip_suffix("-amd64-unsigned")?;
    if mid.contains('-') {
        return None;
    }
    let digits: String = mid.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A downloaded `<pkg>_*.deb` in `dir`.
fn find_deb(dir: &Path, pkg: &str) -> Option<PathBuf> {
    let prefix = format!("{pkg}_");
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
}

/// `apt-get download`s `pkg` into a scratch directory and moves it into `dir`.
fn download_deb(dir: &Path, pkg: &str) -> Result<PathBuf> {
    let tmp = dir.join("download.tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    run_cmd(
        Command::new("apt-get")
            // As root, apt would warn that its `_apt` user cannot write to the directory.
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", pkg])
            .current_dir(&tmp),
    )?;
    let got = find_deb(&tmp, pkg).ok_or_else(|| format!("apt-get download {pkg} left no .deb"))?;
    let dest = dir.join(got.file_name().unwrap_or_default());
    fs::rename(&got, &dest).map_err(io_err(&dest))?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(dest)
}

/// Unpacks `deb` with `dpkg -x` and copies the kernel image and the decompressed modules
/// into `kdir`.
fn extract_kernel(dir: &Path, deb: &Path, kver: &str, kdir: &Path, keep: bool) -> Result {
    let kpkg = dir.join(format!("kpkg-{kver}"));
    let _ = fs::remove_dir_all(&kpkg);
    eprintln!("unpacking {}", deb.display());
    run_cmd(Command::new("dpkg").arg("-x").arg(deb).arg(&kpkg))?;
    let tmp = dir.join(format!("kernel-{kver}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("mods")).map_err(io_err(&tmp))?;
    let image = kpkg.join(format!("boot/vmlinuz-{kver}"));
    fs::copy(&image, tmp.join("vmlinuz")).map_err(io_err(&image))?;
    let moddir = kpkg.join(format!("lib/modules/{kver}/kernel"));
    let mut found = Vec::new();
    find_files(&moddir, &mut found).map_err(io_err(&moddir))?;
    for m in KERNEL_MODULES {
        let xz = format!("{m}.ko.xz");
        let src = found
            .iter()
            .find(|p| p.file_name().is_some_and(|n| *n == *xz))
            .ok_or_else(|| format!("{xz} not in {}", moddir.display()))?;
        let dst = tmp.join(format!("mods/{m}.ko"));
        let f = fs::File::create(&dst).map_err(io_err(&dst))?;
        run_cmd(Command::new("xz").arg("-dc").arg(src).stdout(f))?;
    }
    fs::write(tmp.join(".complete"), "").map_err(io_err(&tmp))?;
    let _ = fs::remove_dir_all(kdir);
    fs::rename(&tmp, kdir).map_err(io_err(kdir))?;
    if !keep {
        fs::remove_dir_all(&kpkg).map_err(io_err(&kpkg))?;
    }
    Ok(())
}

/// Collects the regular files under `dir`, recursively.
fn find_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            find_files(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Removes kernel packages and unpacked kernels other than the current one.
fn prune_old_kernels(dir: &Path, pkg: &str, kver: &str) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let old_deb = name.starts_with("linux-image-")
            && name.ends_with(".deb")
            && !name.starts_with(&format!("{pkg}_"));
        let old_dir =
            (name.starts_with("kernel-") || name.starts_with("kpkg-")) && !name.ends_with(kver);
        if old_deb || old_dir {
            eprintln!("removing superseded {name}");
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Suite binary and initramfs

/// Builds the conformance suite as a static binary (or takes `--suite`) and returns its path.
fn suite_binary(opts: &Opts) -> Result<PathBuf> {
    let path = if let Some(p) = &opts.suite {
        eprintln!(
            "using {} instead of building kvmport-conformance",
            p.display()
        );
        p.clone()
    } else {
        ensure_rust_target(SUITE_TARGET)?;
        run_cmd(cargo().current_dir(workspace_root()).args([
            "build",
            "-p",
            "kvmport-conformance",
            "--release",
            "--target",
            SUITE_TARGET,
        ]))?;
        target_dir().join(format!("{SUITE_TARGET}/release/kvm-conformance"))
    };
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    if !bytes.starts_with(b"#!") && !is_static_elf(&bytes)? {
        return Err(format!(
            "{} is dynamically linked; the initramfs has no libc",
            path.display()
        ));
    }
    Ok(path)
}

/// Builds the static `kvm-fuzz`.
fn fuzzer_binary() -> Result<PathBuf> {
    ensure_rust_target(SUITE_TARGET)?;
    run_cmd(cargo().current_dir(workspace_root()).args([
        "build",
        "-p",
        "kvmport-fuzz",
        "--release",
        "--target",
        SUITE_TARGET,
    ]))?;
    Ok(target_dir().join(format!("{SUITE_TARGET}/release/kvm-fuzz")))
}

/// Adds a rustup target when it is missing (no-op without rustup).
pub(crate) fn ensure_rust_target(target: &str) -> Result {
    let Ok(installed) = output(Command::new("rustup").args(["target", "list", "--installed"]))
    else {
        return Ok(());
    };
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    run_cmd(Command::new("rustup").args(["target", "add", target]))
}

/// Whether a 64-bit little-endian ELF file has no `PT_INTERP` program header.
pub(crate) fn is_static_elf(b: &[u8]) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().map_err(|_| "bad ELF")?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let Some(t) = b.get(o..o + 4) else {
            return Err("truncated ELF program headers".into());
        };
        if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What one boot does: the runs, the modules it carries, and (for compared runs) which suite
/// cases run guest code.
struct Plan {
    /// The runs, in order.
    runs: Vec<&'static GuestRun>,
    /// Modules for `/mods`: (name without `.ko`, host path).
    modules: Vec<(String, PathBuf)>,
    /// Cases the suite tags `[guest]` (from `--list`).
    guest_cases: HashSet<String>,
    /// Differences in cases that run no guest code fail the run.
    strict: bool,
    /// The static `kvm-fuzz`, when fuzzing.
    fuzzer: Option<PathBuf>,
    /// The static `kvm-demo`, with `--demo` (run against kvmport).
    demo: Option<PathBuf>,
    /// The static `kvm-guestfuzz`, with `--guest-fuzz`.
    guest_fuzzer: Option<PathBuf>,
}

/// The suite cases that run guest code: `--list` prints `NAME [guest]` for them.
fn guest_cases(suite: &Path) -> Result<HashSet<String>> {
    let list = output(Command::new(suite).arg("--list"))?;
    Ok(list
        .lines()
        .filter_map(|l| l.strip_suffix(" [guest]"))
        .map(str::to_string)
        .collect())
}

/// The `/etc/vmtest/runs` file: one `label device module...` line per run.
fn runs_file(runs: &[&GuestRun]) -> String {
    runs.iter()
        .map(|r| format!("{} {} {}\n", r.label, r.device, r.modules.join(" ")))
        .collect()
}

/// The modules that go into the initramfs's `/mods`: (name without `.ko`, host path). Our own
/// module joins this list when a run uses it.
pub(crate) fn guest_modules(kernel: &Kernel) -> Vec<(String, PathBuf)> {
    KERNEL_MODULES
        .iter()
        .map(|m| (m.to_string(), kernel.mods.join(format!("{m}.ko"))))
        .collect()
}

/// Writes `initramfs.cpio`: busybox, `/init`, the run list, the modules and the suite.
fn write_initramfs(
    dir: &Path,
    kernel: &Kernel,
    suite: &Path,
    opts: &Opts,
    plan: &Plan,
) -> Result<PathBuf> {
    let busybox_path = Path::new("/bin/busybox");
    let busybox = fs::read(busybox_path).map_err(io_err(busybox_path))?;
    if !is_static_elf(&busybox)? {
        return Err("/bin/busybox is not static (install busybox-static)".into());
    }
    let suite_bytes = fs::read(suite).map_err(io_err(suite))?;

    let mut a = Archive::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/vmtest",
        "mods",
        "proc",
        "root",
        "sys",
        "tmp",
    ] {
        a.dir(d, 0o755);
    }
    a.chardev("dev/console", 0o600, 5, 1);
    a.file("bin/busybox", 0o755, &busybox);
    a.symlink("bin/sh", "busybox");
    a.file("init", 0o755, INIT_SCRIPT.as_bytes());
    a.file("etc/vmtest/runs", 0o644, runs_file(&plan.runs).as_bytes());
    let args = opts.suite_args.join(" ") + "\n";
    a.file("etc/vmtest/suite-args", 0o644, args.as_bytes());
    for r in &plan.runs {
        let skip: String = r.skip.iter().map(|c| format!("--skip {c} ")).collect();
        a.file(
            &format!("etc/vmtest/skip-{}", r.label),
            0o644,
            format!("{skip}\n").as_bytes(),
        );
        a.file(
            &format!("etc/vmtest/fuzz-extra-{}", r.label),
            0o644,
            format!("{}\n", r.fuzz_extra).as_bytes(),
        );
    }
    for (name, p) in &plan.modules {
        let bytes = fs::read(p).map_err(io_err(p))?;
        a.file(&format!("mods/{name}.ko"), 0o644, &bytes);
    }
    a.file("bin/kvm-conformance", 0o755, &suite_bytes);
    let fuzz_secs = format!("{}\n", opts.fuzz);
    a.file("etc/vmtest/fuzz-seconds", 0o644, fuzz_secs.as_bytes());
    let gf = format!("{}\n", opts.guest_fuzz);
    a.file("etc/vmtest/guest-fuzz-seconds", 0o644, gf.as_bytes());
    let gfa = format!("{}\n", opts.guest_fuzz_args);
    a.file("etc/vmtest/guest-fuzz-args", 0o644, gfa.as_bytes());
    if let Some(g) = &plan.guest_fuzzer {
        let bytes = fs::read(g).map_err(io_err(g))?;
        a.file("bin/kvm-guestfuzz", 0o755, &bytes);
    }
    let fuzz_args = format!("{}\n", opts.fuzz_args);
    a.file("etc/vmtest/fuzz-args", 0o644, fuzz_args.as_bytes());
    if let Some(f) = &plan.fuzzer {
        let bytes = fs::read(f).map_err(io_err(f))?;
        a.file("bin/kvm-fuzz", 0o755, &bytes);
    }
    if let Some(d) = &plan.demo {
        let bytes = fs::read(d).map_err(io_err(d))?;
        a.file("bin/kvm-demo", 0o755, &bytes);
        a.file(
            &format!("etc/vmtest/demo-{}", KVMPORT_RUN.label),
            0o644,
            b"1\n",
        );
    }
    let bytes = a.finish();

    let out = dir.join("initramfs.cpio");
    let tmp = dir.join("initramfs.cpio.tmp");
    fs::write(&tmp, &bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &out).map_err(io_err(&out))?;
    eprintln!(
        "{}: {:.1} MiB (kernel {}, suite {} KiB)",
        out.display(),
        bytes.len() as f64 / (1 << 20) as f64,
        kernel.kver,
        suite_bytes.len() / 1024
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Boot and judge

/// What one line of guest output was, for progress display.
#[derive(Debug, PartialEq)]
enum Event {
    /// `/init` started (the marker line).
    Init(String),
    /// A run's suite started.
    SuiteBegin(String),
    /// A run's suite ended: its label and the marker line.
    SuiteEnd(String, String),
    /// A test case result line.
    Case(String),
    /// Any other line while a suite runs (its summary, a panic message, a kernel message).
    SuiteOutput(String),
    /// A kernel problem line.
    Bad(String),
    /// A line of `kvm-demo`.
    Demo(String),
    /// A failed `insmod` or `rmmod`, or a run whose suite never started.
    StepFailed(String),
    /// `/init` finished (the marker line).
    Done(String),
    /// Anything else.
    Other,
}

/// The results of one suite run.
#[derive(Debug, Default)]
struct RunResult {
    /// The run's label.
    label: String,
    /// `ok`/`FAIL`/`skip` lines.
    cases: Vec<String>,
    /// The suite's `N passed, N failed, N skipped` line.
    summary: Option<[u64; 3]>,
    /// The suite's exit status.
    rc: Option<i32>,
}

/// Reads the guest's serial output line by line and judges it.
#[derive(Debug, Default)]
struct Judge {
    /// Runs seen so far.
    runs: Vec<RunResult>,
    /// Index into `runs` while between a BEGIN and END marker.
    current: Option<usize>,
    /// `/init` started.
    init: bool,
    /// `VMTEST-DONE rc=N`.
    done: Option<i32>,
    /// Kernel problem lines (deduplicated), with their serial line numbers.
    bad: Vec<(usize, String)>,
    /// Problem lines that appeared while only the reference (kvm_amd) was loaded: findings
    /// about upstream KVM, reported but not failing the run.
    upstream_bad: Vec<(usize, String)>,
    /// The run whose modules are loaded (from its `VMTEST-SLAB LABEL before-load` line).
    phase: String,
    /// Failed module loads and unloads, skipped suites and the tool's messages about them.
    step_failures: Vec<String>,
    /// Lines seen.
    lines: usize,
    /// `VMTEST-SLAB` lines: slab usage before each run's modules load and after they unload.
    slab: Vec<String>,
    /// kvmport's unload report (`outstanding: N allocations, N pages, N held pages`).
    leak_report: Option<String>,
    /// `kvm-demo`'s lines.
    demo: Vec<String>,
    /// `kvm-guestfuzz`'s lines.
    guestfuzz: Vec<String>,
    /// For deduplicating `bad` (console lines reappear in the dmesg dump).
    seen_bad: HashSet<String>,
    /// The first problem line and the lines after it (up to [`CONTEXT_LINES`]).
    context: Vec<String>,
}

/// How many lines after the first kernel problem line the report shows.
const CONTEXT_LINES: usize = 40;

impl Judge {
    /// Takes one serial line.
    fn feed(&mut self, raw: &str) -> Event {
        self.lines += 1;
        let clean = strip_escapes(raw);
        if !self.context.is_empty() && self.context.len() < CONTEXT_LINES {
            self.context.push(clean.trim_end().to_string());
        }
        // A marker may follow other output on the same line (a console reset, a kernel message).
        let line = match clean.find("VMTEST-") {
            Some(i) => &clean[i..],
            None => clean.trim_end(),
        };
        if BAD_PATTERNS.iter().any(|p| line.contains(p))
            && !BENIGN_PATTERNS.iter().any(|p| line.contains(p))
        {
            if self.context.is_empty() {
                self.context.push(line.to_string());
            }
            if self.seen_bad.insert(line.to_string()) {
                if self.phase == REFERENCE_RUN.label {
                    self.upstream_bad.push((self.lines, line.to_string()));
                } else {
                    self.bad.push((self.lines, line.to_string()));
                }
            }
            return Event::Bad(line.to_string());
        }
        if let Some(i) = line.find("kvmport: unloaded; outstanding:") {
            self.leak_report
                .get_or_insert_with(|| line[i..].to_string());
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        let label = words.next().unwrap_or("").to_string();
        if first == "VMTEST-SLAB" {
            self.phase = if words.next() == Some("before-load") {
                label.clone()
            } else {
                String::new()
            };
        }
        if first == "guestfuzz:" {
            self.guestfuzz.push(line.trim_end().to_string());
            return Event::Demo(line.trim_end().to_string());
        }
        if first == "kvm-demo:" {
            self.demo.push(line.trim_end().to_string());
            return Event::Demo(line.trim_end().to_string());
        }
        match first {
            "VMTEST-INIT" => {
                self.init = true;
                return Event::Init(line.to_string());
            }
            "VMTEST-SUITE-BEGIN" => {
                self.runs.push(RunResult {
                    label: label.clone(),
                    ..RunResult::default()
                });
                self.current = Some(self.runs.len() - 1);
                return Event::SuiteBegin(label);
            }
            "VMTEST-SUITE-END" => {
                if let Some(i) = self.current.take() {
                    self.runs[i].rc = rc_of(line);
                }
                return Event::SuiteEnd(label, line.to_string());
            }
            "VMTEST-SLAB" => {
                self.slab
                    .push(line.trim_start_matches("VMTEST-SLAB ").to_string());
                return Event::Other;
            }
            "VMTEST-INSMOD" | "VMTEST-RMMOD" | "VMTEST-HOTPLUG" | "VMTEST-FUZZ" | "VMTEST-DEMO"
            | "VMTEST-GUESTFUZZ"
                if rc_of(line) != Some(0) =>
            {
                self.step_failures.push(line.to_string());
                return Event::StepFailed(line.to_string());
            }
            "VMTEST-SUITE-SKIPPED" => {
                self.step_failures.push(line.to_string());
                return Event::StepFailed(line.to_string());
            }
            "insmod:" | "rmmod:" => {
                self.step_failures.push(line.to_string());
                return Event::StepFailed(line.to_string());
            }
            "VMTEST-DONE" => {
                self.done = Some(rc_of(line).unwrap_or(-1));
                return Event::Done(line.to_string());
            }
            _ => {}
        }
        let Some(i) = self.current else {
            return Event::Other;
        };
        let run = &mut self.runs[i];
        if ["ok ", "FAIL ", "skip "]
            .iter()
            .any(|p| line.starts_with(p))
        {
            run.cases.push(line.to_string());
            return Event::Case(line.to_string());
        }
        if let Some(s) = parse_summary(line) {
            run.summary = Some(s);
        }
        Event::SuiteOutput(line.to_string())
    }

    /// The reasons the run failed, given the expected runs.
    fn failures(&self, expected: &[&GuestRun]) -> Vec<String> {
        let mut f = Vec::new();
        if !self.init {
            f.push("the guest never reached /init".to_string());
        }
        if self.done.is_none() {
            f.push("no VMTEST-DONE: the guest crashed, hung or powered off early".into());
        }
        if !self.bad.is_empty() {
            f.push(format!(
                "the guest kernel reported {} problem line(s)",
                self.bad.len()
            ));
        }
        f.extend(self.step_failures.iter().map(|s| format!("guest: {s}")));
        if expected.iter().any(|e| e.label == KVMPORT_RUN.label) {
            match &self.leak_report {
                None => f.push("kvmport: no unload report (outstanding allocations)".into()),
                Some(r) if !r.ends_with("outstanding: 0 allocations, 0 pages, 0 held pages") => {
                    f.push(format!("kvmport leaked: {r}"));
                }
                Some(_) => {}
            }
        }
        for e in expected {
            let Some(r) = self.runs.iter().find(|r| r.label == e.label) else {
                f.push(format!("{}: the suite never started", e.title));
                continue;
            };
            match (r.summary, r.rc) {
                (_, None) => f.push(format!("{}: the suite did not finish", e.title)),
                (None, _) => f.push(format!("{}: the suite printed no summary line", e.title)),
                (Some([_, failed, _]), _) if failed > 0 && !e.compare => {
                    f.push(format!("{}: {failed} case(s) failed", e.title));
                }
                (_, Some(rc)) if rc != 0 && !e.compare => {
                    f.push(format!("{}: the suite exited with rc={rc}", e.title));
                }
                _ => {}
            }
        }
        f
    }
}

/// Removes terminal escape sequences (the console reset `ESC c`, `ESC [ ... m` and the like).
pub(crate) fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            // CSI: parameters and intermediates up to a final byte in 0x40..=0x7e.
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The number after `rc=` in a marker line.
fn rc_of(line: &str) -> Option<i32> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("rc="))
        .and_then(|v| v.parse().ok())
}

/// A line from one of QEMU's output pipes.
enum Msg {
    /// A serial console line (QEMU's stdout).
    Serial(String),
    /// A line QEMU itself printed on stderr.
    Stderr(String),
    /// One of the pipes closed.
    Eof,
}

/// Forwards the lines of `r` to `tx`, then an `Eof`.
fn forward(r: impl Read, tx: mpsc::Sender<Msg>, wrap: fn(String) -> Msg) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                let s = s.trim_end_matches(['\n', '\r']).replace('\r', "");
                if tx.send(wrap(s)).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Msg::Eof);
}

/// What a boot produced.
struct Outcome {
    /// The judged serial output.
    judge: Judge,
    /// The wall-clock limit was hit and QEMU was killed.
    timed_out: bool,
    /// QEMU's exit status.
    status: Option<std::process::ExitStatus>,
    /// What QEMU printed on stderr.
    stderr: Vec<String>,
    /// The serial log.
    log: PathBuf,
    /// Seconds from QEMU's start to `/init`.
    t_init: Option<f64>,
    /// Seconds each run's suite took.
    t_suites: Vec<(String, f64)>,
    /// Seconds QEMU ran.
    t_total: f64,
}

/// Boots the guest, echoes progress and collects the results.
fn boot(dir: &Path, kernel: &Kernel, initrd: &Path, opts: &Opts) -> Result<Outcome> {
    let log = dir.join(format!("serial-{}.log", utc_stamp()));
    let mut logf = fs::File::create(&log).map_err(io_err(&log))?;
    let mut cmd = qemu_command();
    cmd.args(["-M", "q35", "-accel", "tcg", "-cpu", "EPYC", "-m", "1024"])
        .args(["-smp", &opts.smp.to_string()])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &format!(
                "console=ttyS0 panic=-1 oops=panic quiet loglevel=5 {}",
                opts.append
            ),
        ])
        .args(["-nographic", "-no-reboot", "-nodefaults"])
        .args(["-serial", "stdio", "-monitor"])
        .arg(match &opts.monitor {
            Some(p) => format!("unix:{},server,nowait", p.display()),
            None => "none".to_string(),
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = &opts.qemu_log {
        let items = std::env::var("KVMPORT_QEMU_LOG_ITEMS")
            .unwrap_or_else(|_| "cpu_reset,guest_errors".to_string());
        cmd.args(["-d", &items, "-D"]).arg(p);
        // The debug console (port 0xe9), for marks that must survive QEMU dying.
        let mut con = p.clone().into_os_string();
        con.push(".debugcon");
        let mut arg = std::ffi::OsString::from("file:");
        arg.push(con);
        cmd.arg("-debugcon").arg(arg);
    }
    let shown = format!("{cmd:?}");
    let _ = writeln!(logf, "# {shown}");
    eprintln!(
        "==> vmtest: boot ({} vCPU, timeout {} s, log {})",
        opts.smp,
        opts.timeout.as_secs(),
        log.display()
    );
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().ok_or("no QEMU stdout")?;
    let err = child.stderr.take().ok_or("no QEMU stderr")?;
    let tx2 = tx.clone();
    std::thread::spawn(move || forward(out, tx, Msg::Serial));
    std::thread::spawn(move || forward(err, tx2, Msg::Stderr));

    let mut judge = Judge::default();
    let mut stderr = Vec::new();
    let mut t_init = None;
    let mut t_suites = Vec::new();
    let mut suite_start = 0.0;
    let mut eofs = 0;
    let mut deadline = t0 + opts.timeout;
    let mut timed_out = false;
    let mut last_output = Instant::now();
    while eofs < 2 {
        let now = Instant::now();
        if now >= deadline {
            timed_out = judge.done.is_none();
            if timed_out {
                eprintln!(
                    "vmtest: timeout after {} s, killing QEMU (pid {})",
                    opts.timeout.as_secs(),
                    child.id()
                );
            } else {
                eprintln!("vmtest: QEMU did not exit after VMTEST-DONE, killing it");
            }
            let _ = child.kill();
            break;
        }
        let msg = match rx.recv_timeout((deadline - now).min(Duration::from_secs(30))) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if last_output.elapsed() >= Duration::from_secs(30) {
                    eprintln!(
                        "[{:6.1}s] still running ({} serial lines so far)",
                        t0.elapsed().as_secs_f64(),
                        judge.lines
                    );
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let el = t0.elapsed().as_secs_f64();
        let line = match msg {
            Msg::Eof => {
                eofs += 1;
                continue;
            }
            Msg::Stderr(s) => {
                let _ = writeln!(logf, "[{el:8.3}] qemu: {s}");
                stderr.push(s);
                continue;
            }
            Msg::Serial(s) => s,
        };
        last_output = Instant::now();
        let _ = writeln!(logf, "[{el:8.3}] {line}");
        match judge.feed(&line) {
            Event::Init(marker) => {
                t_init = Some(el);
                eprintln!("[{el:6.1}s] booted: {marker}");
            }
            Event::SuiteBegin(label) => {
                suite_start = el;
                eprintln!("[{el:6.1}s] suite {label}: started");
            }
            Event::SuiteEnd(label, marker) => {
                eprintln!("[{el:6.1}s] suite {label}: {marker}");
                t_suites.push((label, el - suite_start));
            }
            Event::Case(c) => eprintln!("    {c}"),
            Event::SuiteOutput(l) => eprintln!("    | {l}"),
            Event::Bad(b) => eprintln!("[{el:6.1}s] !! {b}"),
            Event::Demo(d) => eprintln!("[{el:6.1}s] {d}"),
            Event::StepFailed(s) => eprintln!("[{el:6.1}s] !! {s}"),
            Event::Done(marker) => {
                eprintln!("[{el:6.1}s] {marker}");
                deadline = deadline.min(Instant::now() + Duration::from_secs(30));
            }
            Event::Other => {}
        }
    }
    let status = child.wait().ok();
    let t_total = t0.elapsed().as_secs_f64();
    let _ = writeln!(logf, "# qemu exit: {status:?} after {t_total:.3} s");
    Ok(Outcome {
        judge,
        timed_out,
        status,
        stderr,
        log,
        t_init,
        t_suites,
        t_total,
    })
}

impl Outcome {
    /// Prints the results and turns them into the command's result.
    fn report(&self, plan: &Plan) -> Result {
        let j = &self.judge;
        let mut failures = j.failures(&plan.runs);
        if self.timed_out {
            failures.insert(0, "timeout: QEMU was killed".into());
        }
        if let Some(s) = self.status.filter(|s| !s.success() && !self.timed_out) {
            failures.push(format!("QEMU exited with {s}"));
            for l in self
                .stderr
                .iter()
                .filter(|l| !l.contains("TCG doesn't support"))
            {
                eprintln!("qemu: {l}");
            }
        }
        if !j.context.is_empty() {
            eprintln!("the first kernel problem, with what followed it:");
            for l in &j.context {
                eprintln!("  | {l}");
            }
        }
        if !j.bad.is_empty() {
            eprintln!("kernel problem lines (serial log line numbers):");
            for (n, l) in &j.bad {
                eprintln!("  {n:5}: {l}");
            }
        }
        if !j.upstream_bad.is_empty() {
            eprintln!(
                "note: upstream KVM (the reference) reported {} problem line(s) while only it \
                 was loaded; a finding about kvm_amd, not gating:",
                j.upstream_bad.len()
            );
            for (n, l) in &j.upstream_bad {
                eprintln!("  {n:5}: {l}");
            }
        }
        let timing: Vec<String> = self
            .t_suites
            .iter()
            .map(|(l, t)| format!("suite {l} {t:.1} s"))
            .collect();
        eprintln!(
            "timing: boot to /init {}, {}, QEMU total {:.1} s",
            self.t_init.map_or("never".into(), |t| format!("{t:.1} s")),
            if timing.is_empty() {
                "no suite".into()
            } else {
                timing.join(", ")
            },
            self.t_total
        );
        eprintln!("serial log: {}", self.log.display());
        for l in &j.slab {
            println!("slab: {l}");
        }
        if let Some(r) = &j.leak_report {
            println!("{r}");
        }
        for g in &j.guestfuzz {
            println!("{g}");
        }
        if plan.demo.is_some() {
            for d in &j.demo {
                println!("{d}");
            }
            if !j
                .demo
                .iter()
                .any(|d| d.starts_with("kvm-demo: guest says:"))
            {
                failures.push("kvm-demo: the guest's greeting never arrived".into());
            }
        }
        let reference = j.runs.iter().find(|r| r.label == REFERENCE_RUN.label);
        for e in &plan.runs {
            let Some(r) = j.runs.iter().find(|r| r.label == e.label) else {
                continue;
            };
            if let Some(dir) = self.log.parent() {
                // The latest run's case lines, for comparing runs (e.g. ours against kvm_amd).
                let path = dir.join(format!("results-{}.txt", r.label));
                let text: String = r.cases.iter().map(|c| format!("{c}\n")).collect();
                if let Err(e) = fs::write(&path, text) {
                    eprintln!("{}: {e}", path.display());
                }
            }
            if let (true, Some(reference)) = (e.compare, reference) {
                let (unexplained, regressions) =
                    compare_runs(reference, r, &plan.guest_cases, e.title);
                if regressions > 0 {
                    failures.push(format!(
                        "{}: {regressions} case(s) the reference passes fail or are missing",
                        e.title
                    ));
                }
                if unexplained > 0 && !plan.strict {
                    println!(
                        "note: not gating: {unexplained} difference(s) in cases that run no guest \
                         code (--strict makes them fail)"
                    );
                }
                if unexplained > 0 && plan.strict {
                    failures.push(format!(
                        "{}: {unexplained} case(s) that run no guest code differ from the reference",
                        e.title
                    ));
                }
            }
            let failed: Vec<&String> = r.cases.iter().filter(|c| c.starts_with("FAIL")).collect();
            if !failed.is_empty() && !e.compare {
                println!("{} failures:", e.title);
                for c in failed {
                    println!("  {c}");
                }
            }
            let counted = |p: &str| r.cases.iter().filter(|c| c.starts_with(p)).count() as u64;
            let counted = [counted("ok "), counted("FAIL "), counted("skip ")];
            match r.summary {
                Some(s) => {
                    if s != counted {
                        eprintln!(
                            "note: {} summary {s:?} differs from the case lines {counted:?}",
                            e.title
                        );
                    }
                    println!(
                        "{}: {} passed, {} failed, {} skipped",
                        e.title, s[0], s[1], s[2]
                    );
                }
                None => println!(
                    "{}: no summary (case lines: {} ok, {} FAIL, {} skip)",
                    e.title, counted[0], counted[1], counted[2]
                ),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            for f in &failures {
                eprintln!("vmtest: FAILED: {f}");
            }
            Err(format!("vmtest failed ({} problem(s))", failures.len()))
        }
    }
}

/// Prints every case whose outcome differs between the reference and `run`, marking those
/// that run guest code, and returns how many differences are in cases that run none.
fn compare_runs(
    reference: &RunResult,
    run: &RunResult,
    guest: &HashSet<String>,
    title: &str,
) -> (usize, usize) {
    use crate::suite::{Outcome as Case, Report};
    let want = Report::parse(&reference.cases.join("\n"));
    let got = Report::parse(&run.cases.join("\n"));
    let show = |o: Option<&Case>| match o {
        Some(Case::Pass) => "ok".to_string(),
        Some(Case::Fail(why)) => format!("FAIL ({why})"),
        Some(Case::Skip(why)) => format!("skip ({why})"),
        None => "missing".to_string(),
    };
    let mut names: Vec<&String> = want.cases.keys().chain(got.cases.keys()).collect();
    names.sort();
    names.dedup();
    let (mut in_guest, mut unexplained, mut regressions) = (0, 0, 0);
    for name in names {
        let (w, g) = (want.cases.get(name), got.cases.get(name));
        if w == g {
            continue;
        }
        // With the world switch in, a case the reference passes must not fail, guest code or
        // not; a skip (a capability reported absent) is a difference, gated by --strict.
        if w == Some(&Case::Pass) && matches!(g, None | Some(Case::Fail(_))) {
            regressions += 1;
        }
        let tag = if guest.contains(name) {
            in_guest += 1;
            "guest "
        } else {
            unexplained += 1;
            "DIFF  "
        };
        println!("  {tag}{name}: kvm_amd {} | {title} {}", show(w), show(g));
    }
    println!(
        "{title} differs from the reference in {} case(s): {unexplained} that run no guest code, \
         {in_guest} that run guest code",
        unexplained + in_guest
    );
    (unexplained, regressions)
}

/// The current UTC time as `YYYYmmdd-HHMMSS`.
pub(crate) fn utc_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_summary_lines() {
        assert_eq!(
            parse_summary("12 passed, 1 failed, 3 skipped"),
            Some([12, 1, 3])
        );
        assert_eq!(
            parse_summary("12 passed, 0 failed, 0 skipped (1.2 s)"),
            Some([12, 0, 0])
        );
        assert_eq!(parse_summary("ok 12 passed"), None);
        assert_eq!(parse_summary("1 passed, 2 failed"), None);
    }

    #[test]
    fn judges_a_clean_run() {
        let mut j = Judge::default();
        for l in [
            "[    2.5] Run /init as init process",
            "VMTEST-INIT uptime=2.61 kernel=6.12.115+deb12-amd64 cpus=1",
            "VMTEST-INSMOD reference kvm-amd rc=0",
            "VMTEST-SUITE-BEGIN reference",
            "ok create_vm",
            "skip nested: no nested",
            "2 passed, 0 failed, 1 skipped",
            "VMTEST-SUITE-END reference rc=0",
            "VMTEST-RMMOD reference kvm-amd rc=0",
            "VMTEST-DONE rc=0 uptime=5.0",
        ] {
            j.feed(l);
        }
        assert_eq!(j.failures(GUEST_RUNS), Vec::<String>::new());
        assert_eq!(j.runs[0].cases.len(), 2);
        assert_eq!(j.runs[0].summary, Some([2, 0, 1]));
    }

    #[test]
    fn strips_escapes_before_markers() {
        assert_eq!(
            strip_escapes("\x1bc\x1b[?7l\x1b[2JVMTEST-INIT x"),
            "VMTEST-INIT x"
        );
        assert_eq!(strip_escapes("\x1b[0mSeaBIOS"), "SeaBIOS");
        let mut j = Judge::default();
        assert_eq!(
            j.feed("Booting from ROM..\x1bc\x1b[?7l\x1b[2JVMTEST-INIT uptime=1.9"),
            Event::Init("VMTEST-INIT uptime=1.9".into())
        );
        let srso = "[    0.216362] Speculative Return Stack Overflow: WARNING: See \
                    https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html for mitigation options.";
        assert_eq!(j.feed(srso), Event::Other);
    }

    #[test]
    fn judges_failures() {
        let mut j = Judge::default();
        for l in [
            "VMTEST-INIT uptime=2.61",
            "VMTEST-SUITE-BEGIN reference",
            "FAIL run_hlt: exit reason 17",
            "[    3.1] WARNING: CPU: 0 PID: 50 at arch/x86/kvm/svm/svm.c:123 foo",
            "[    3.1] Call Trace:",
            "0 passed, 1 failed, 0 skipped",
            "VMTEST-SUITE-END reference rc=1",
            "VMTEST-DMESG-BEGIN",
            "[    3.1] WARNING: CPU: 0 PID: 50 at arch/x86/kvm/svm/svm.c:123 foo",
            "VMTEST-DONE rc=1",
        ] {
            j.feed(l);
        }
        let f = j.failures(GUEST_RUNS);
        assert_eq!(j.bad.len(), 2, "{:?}", j.bad);
        assert!(f.iter().any(|s| s.contains("2 problem line")), "{f:?}");
        assert!(f.iter().any(|s| s.contains("1 case(s) failed")), "{f:?}");
    }

    #[test]
    fn reference_problems_do_not_gate() {
        let mut j = Judge::default();
        for l in [
            "VMTEST-INIT uptime=2.61",
            "VMTEST-SLAB reference before-load Slab: 1 kB",
            "[    6.1] WARNING: CPU: 1 PID: 9 at virt/kvm/pfncache.c:259 x [kvm]",
            "VMTEST-SLAB reference after-unload Slab: 1 kB",
            "VMTEST-SLAB kvmport before-load Slab: 1 kB",
            "[    9.1] WARNING: CPU: 1 PID: 9 at kvmport/x.rs:1 y [kvmport]",
        ] {
            j.feed(l);
        }
        assert_eq!(j.upstream_bad.len(), 1, "{:?}", j.upstream_bad);
        assert_eq!(j.bad.len(), 1, "{:?}", j.bad);
        assert!(j.bad[0].1.contains("[kvmport]"));
    }

    #[test]
    fn judges_a_crash_and_insmod_failure() {
        let mut j = Judge::default();
        for l in [
            "VMTEST-INIT uptime=2.61",
            "insmod: can't insert '/mods/kvm-amd.ko': Operation not supported",
            "VMTEST-INSMOD reference kvm-amd rc=1",
            "VMTEST-SUITE-SKIPPED reference",
        ] {
            j.feed(l);
        }
        let f = j.failures(GUEST_RUNS);
        assert!(f.iter().any(|s| s.contains("no VMTEST-DONE")), "{f:?}");
        assert!(f.iter().any(|s| s.contains("rc=1")), "{f:?}");
        assert!(f.iter().any(|s| s.contains("never started")), "{f:?}");
    }

    #[test]
    fn scans_apt_sources() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/x\nURIs: http://deb.debian.org/debian\n\
                      Suites: bookworm bookworm-updates\n";
        assert_eq!(
            scan_sources(deb822, "bookworm-backports"),
            (false, Some("http://deb.debian.org/debian".into()))
        );
        let one = "deb [arch=amd64] http://mirror.example/debian/ bookworm-backports main\n";
        assert_eq!(
            scan_sources(one, "bookworm-backports"),
            (true, Some("http://mirror.example/debian".into()))
        );
        let commented = "# deb http://x/debian bookworm-backports main";
        assert!(!scan_sources(commented, "bookworm-backports").0);
    }

    #[test]
    fn picks_kernel_flavours() {
        let p = "linux-image-6.12.";
        assert_eq!(
            kernel_patch_level("linux-image-6.12.115+deb12-amd64-unsigned", p),
            Some(115)
        );
        assert_eq!(
            kernel_patch_level("linux-image-6.12.115+deb12-rt-amd64-unsigned", p),
            None
        );
        assert_eq!(
            kernel_patch_level("linux-image-6.12.107+deb12-cloud-amd64-unsigned", p),
            None
        );
        assert_eq!(
            kernel_patch_level("linux-image-6.12.115+deb12-amd64", p),
            None
        );
    }

    #[test]
    fn misc_parsers() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.19"),
            Some((7, 2, 19))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.1.90\nCopyright"),
            Some((10, 1, 90))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 11"),
            Some((11, 0, 0))
        );
        assert_eq!(parse_qemu_version("no version here"), None);
        assert!(qemu_has_issue_3195((10, 0, 2)));
        assert!(qemu_has_issue_3195((10, 1, 2)));
        assert!(qemu_has_issue_3195((9, 2, 4)));
        assert!(!qemu_has_issue_3195((10, 0, 7)));
        assert!(!qemu_has_issue_3195((10, 1, 3)));
        assert!(!qemu_has_issue_3195((10, 2, 0)));
        assert!(!qemu_has_issue_3195((9, 0, 4)));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(rc_of("VMTEST-DONE rc=3 uptime=1"), Some(3));
        assert_eq!(
            runs_file(GUEST_RUNS),
            "reference /dev/kvm irqbypass kvm ccp kvm-amd\n"
        );
    }
}
