//! `cargo xtask bench`: kvmport's path lengths against kvm_amd's, in one deterministic VM.
//!
//! The guest is the vmtest guest (Debian's 6.12 kernel, QEMU/TCG, `-cpu EPYC`) booted so that
//! it is deterministic: `-icount shift=0,sleep=off` (the guest's TSC advances by one per retired
//! instruction), `-cpu EPYC,-rdrand,-rdseed`, a fixed VM-clock `-rtc`, `nokaslr norandmaps` and
//! one vCPU. Its `/init` loads kvm_amd and then kvmport.ko with `devname=kvmport`, so both
//! serve at once (`/dev/kvm` and `/dev/kvmport`), and runs `kvm-bench` (`tests/bench`) in a
//! memory cgroup against both. The same initramfs is booted twice (`--boots`) and the two sets
//! of counts are compared line by line.
//!
//! On the host it then runs `cargo bench -p kvmport-bench --bench host` (memslot lookup against
//! the slot count, dispatcher cost per ioctl).
//!
//! Everything goes to `target/bench/`: `table.txt` (the printed table), `raw.json` (every
//! measured line of every boot and of the host bench, parsed), `scaling.svg` (memslot lookup
//! against the slot count), `host.txt`, `serial-<boot>.log` and `initramfs.cpio`.

use crate::cpio::Archive;
use crate::vmtest::{self, Kernel};
use crate::{Result, cargo, run as run_cmd, step, target_dir, workspace_root};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Command-line help for `cargo xtask bench`.
const USAGE: &str = "\
usage: cargo xtask bench [--boots N] [--timeout SECS] [--scale S] [--quick-host] [--no-host]
  --boots N       deterministic boots to run and compare (default 2)
  --timeout SECS  wall-clock limit per boot (default 300; a boot takes about 15 s)
  --scale S       multiply every guest batch size by S (default 1)
  --quick-host    shorter host benchmark samples
  --no-host       skip the host benchmarks (memslot lookup, dispatcher)";

/// QEMU options that make the guest deterministic (see docs/bench.md).
const QEMU_DETERMINISTIC: &[&str] = &[
    "-cpu",
    "EPYC,-rdrand,-rdseed",
    "-icount",
    "shift=0,sleep=off",
    "-rtc",
    "base=2024-01-01T00:00:00,clock=vm",
    "-smp",
    "1",
];

/// The kernel command line of the bench guest.
const APPEND: &str = "console=ttyS0 panic=-1 oops=panic quiet loglevel=5 nokaslr norandmaps";

/// The bench guest's `/init`.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# /init of the kvmport bench initramfs, written by `cargo xtask bench`.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "BENCH-INIT kernel=$(uname -r)"
for m in irqbypass kvm ccp kvm-amd; do
  insmod "/mods/$m.ko" </dev/null
  echo "BENCH-INSMOD $m rc=$?"
done
insmod /mods/kvmport.ko devname=kvmport </dev/null
echo "BENCH-INSMOD kvmport rc=$?"
CG=/sys/fs/cgroup
mount -t cgroup2 none $CG && echo +memory > $CG/cgroup.subtree_control && mkdir $CG/bench
echo "BENCH-MEMCG rc=$?"
echo "BENCH-BEGIN"
sh -c "echo \$\$ > $CG/bench/cgroup.procs && exec /bin/kvm-bench --memcg $CG/bench $(cat /etc/bench/args) kvm_amd=/dev/kvm kvmport=/dev/kvmport" </dev/null 2>&1
echo "BENCH-END rc=$?"
rmmod kvmport </dev/null
echo "BENCH-RMMOD kvmport rc=$?"
for m in kvm_amd ccp kvm irqbypass; do rmmod $m </dev/null; done
dmesg | grep -E 'kvmport: unloaded|Oops|BUG:|WARNING:|Call Trace'
echo "BENCH-DONE"
poweroff -f
"#;

/// Kernel log lines that mean something went wrong in the guest.
const BAD_PATTERNS: &[&str] = &["Oops", "BUG:", "WARNING:", "Kernel panic", "Call Trace"];

/// A guest row of the table: `kvm-bench`'s operation name, the row's title, and whether the
/// row is an exit or round trip (judged by the worst-ratio line).
const GUEST_ROWS: &[(&str, &str, bool)] = &[
    ("cpuid_exit", "in-kernel CPUID exit [insns]", true),
    ("pio", "port I/O round trip via user space [insns]", true),
    (
        "mmio_write",
        "MMIO write round trip via user space [insns]",
        true,
    ),
    ("hlt", "HLT round trip via user space [insns]", true),
    (
        "immediate_exit",
        "KVM_RUN with immediate_exit [insns]",
        true,
    ),
    (
        "vcpu_create_destroy",
        "vCPU create + destroy [insns]",
        false,
    ),
    ("memslot_add_delete", "memslot add + delete [insns]", false),
    ("vm_create_destroy", "VM create + destroy [insns]", false),
];

/// Memory rows: `BENCHMEM what=` and the title.
const MEM_ROWS: &[(&str, &str)] = &[
    ("vm", "kernel memory per VM (16 VMs) [KiB]"),
    ("vcpu", "kernel memory per vCPU (64 vCPUs) [KiB]"),
];

/// The two devices, as labelled in `kvm-bench`'s output.
const REFERENCE: &str = "kvm_amd";
const OURS: &str = "kvmport";

/// Parsed options.
struct Opts {
    boots: usize,
    timeout: Duration,
    scale: u64,
    quick_host: bool,
    host: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            boots: 2,
            timeout: Duration::from_secs(300),
            scale: 1,
            quick_host: false,
            host: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut num = |name: &str| -> Result<u64> {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v| v > 0)
                    .ok_or_else(|| format!("{name} takes a positive number\n{USAGE}"))
            };
            match a.as_str() {
                "--boots" => o.boots = num("--boots")? as usize,
                "--timeout" => o.timeout = Duration::from_secs(num("--timeout")?),
                "--scale" => o.scale = num("--scale")?,
                "--quick-host" => o.quick_host = true,
                "--no-host" => o.host = false,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(o)
    }
}

/// Entry point of `cargo xtask bench`.
pub fn run(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = Opts::parse(args)?;
    let t0 = Instant::now();
    let out = target_dir().join("bench");
    fs::create_dir_all(&out).map_err(vmtest::io_err(&out))?;
    let vmdir = target_dir().join("vmtest");
    fs::create_dir_all(&vmdir).map_err(vmtest::io_err(&vmdir))?;

    step("bench: host packages (apt)", vmtest::host_packages)?;
    // The vmtest lock: one QEMU at a time, and the kernel cache is shared with vmtest.
    let _lock = vmtest::lock_dir(&vmdir)?;
    let kernel = vmtest::step_val("bench: guest kernel", || {
        vmtest::guest_kernel(&vmdir, false)
    })?;
    let prog = vmtest::step_val("bench: kvm-bench", bench_binary)?;
    let ko = vmtest::step_val("bench: kvmport.ko", || {
        crate::linux_module::build(&kernel.kver)
    })?;
    let initrd = vmtest::step_val("bench: initramfs", || {
        write_initramfs(&out, &kernel, &prog, &ko, opts.scale)
    })?;
    let mut boots = Vec::new();
    for i in 1..=opts.boots {
        let b = vmtest::step_val(&format!("bench: deterministic boot {i}"), || {
            boot(&out, &kernel, &initrd, i, opts.timeout)
        })?;
        boots.push(b);
    }
    let host = if opts.host {
        Some(vmtest::step_val("bench: host benchmarks", || {
            host_bench(&out, opts.quick_host)
        })?)
    } else {
        None
    };
    let report = Report::new(&boots, host.as_deref());
    let table = report.table();
    print!("{table}");
    let write = |name: &str, text: &str| -> Result {
        let p = out.join(name);
        fs::write(&p, text).map_err(vmtest::io_err(&p))
    };
    write("table.txt", &table)?;
    write("raw.json", &report.json(&kernel, &boots, host.as_deref()))?;
    match host.as_deref().and_then(scaling_svg) {
        Some(svg) => write("scaling.svg", &svg)?,
        // Not a stale figure from an earlier run.
        None => {
            let _ = fs::remove_file(out.join("scaling.svg"));
        }
    }
    eprintln!(
        "bench: wrote {}/{{table.txt,raw.json,scaling.svg}}; total {:.1} s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    if boots.iter().any(|b| !b.complete()) {
        return Err("a boot did not finish the bench (see its serial log)".into());
    }
    Ok(())
}

/// Builds the static `kvm-bench`.
fn bench_binary() -> Result<PathBuf> {
    vmtest::ensure_rust_target(vmtest::SUITE_TARGET)?;
    run_cmd(cargo().current_dir(workspace_root()).args([
        "build",
        "-p",
        "kvmport-bench",
        "--bin",
        "kvm-bench",
        "--release",
        "--target",
        vmtest::SUITE_TARGET,
    ]))?;
    let p = target_dir().join(format!("{}/release/kvm-bench", vmtest::SUITE_TARGET));
    let bytes = fs::read(&p).map_err(vmtest::io_err(&p))?;
    if !vmtest::is_static_elf(&bytes)? {
        return Err(format!("{} is not static", p.display()));
    }
    Ok(p)
}

/// Writes `initramfs.cpio`: busybox, `/init`, the modules and `kvm-bench`.
fn write_initramfs(
    dir: &Path,
    kernel: &Kernel,
    prog: &Path,
    ko: &Path,
    scale: u64,
) -> Result<PathBuf> {
    let read = |p: &Path| fs::read(p).map_err(vmtest::io_err(p));
    let busybox = read(Path::new("/bin/busybox"))?;
    if !vmtest::is_static_elf(&busybox)? {
        return Err("/bin/busybox is not static (install busybox-static)".into());
    }
    let mut a = Archive::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/bench",
        "mods",
        "proc",
        "sys",
        "tmp",
    ] {
        a.dir(d, 0o755);
    }
    a.chardev("dev/console", 0o600, 5, 1);
    a.file("bin/busybox", 0o755, &busybox);
    a.symlink("bin/sh", "busybox");
    a.file("init", 0o755, INIT_SCRIPT.as_bytes());
    a.file(
        "etc/bench/args",
        0o644,
        format!("--scale {scale}\n").as_bytes(),
    );
    for (name, p) in vmtest::guest_modules(kernel) {
        a.file(&format!("mods/{name}.ko"), 0o644, &read(&p)?);
    }
    a.file("mods/kvmport.ko", 0o644, &read(ko)?);
    a.file("bin/kvm-bench", 0o755, &read(prog)?);
    let bytes = a.finish();
    let out = dir.join("initramfs.cpio");
    fs::write(&out, &bytes).map_err(vmtest::io_err(&out))?;
    Ok(out)
}

/// What one deterministic boot printed.
struct Boot {
    /// The `BENCH`/`BENCHMEM` lines, in order.
    lines: Vec<String>,
    /// Marker lines (`BENCH-INSMOD ...`) that report a failure.
    failures: Vec<String>,
    /// Kernel problem lines.
    problems: Vec<String>,
    /// `BENCH-DONE` was seen.
    done: bool,
    /// The serial log.
    log: PathBuf,
    /// Wall-clock seconds QEMU ran.
    secs: f64,
}

impl Boot {
    /// Whether the bench ran to its end.
    fn complete(&self) -> bool {
        self.done && !self.lines.is_empty()
    }
}

/// A line from QEMU.
enum Msg {
    Line(String),
    Eof,
}

/// Boots the bench guest once and collects its output.
fn boot(dir: &Path, kernel: &Kernel, initrd: &Path, n: usize, timeout: Duration) -> Result<Boot> {
    let log = dir.join(format!("serial-{n}.log"));
    let mut logf = fs::File::create(&log).map_err(vmtest::io_err(&log))?;
    let mut cmd = vmtest::qemu_command();
    cmd.args(["-M", "q35", "-accel", "tcg", "-m", "1024"])
        .args(QEMU_DETERMINISTIC)
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", APPEND])
        .args(["-nographic", "-no-reboot", "-nodefaults"])
        .args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let _ = writeln!(logf, "# {cmd:?}");
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let (tx, rx) = mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n').map_while(|l| l.ok()) {
                let s = String::from_utf8_lossy(&line).replace('\r', "");
                if tx.send(Msg::Line(s)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Msg::Eof);
        });
    }
    drop(tx);
    let mut b = Boot {
        lines: Vec::new(),
        failures: Vec::new(),
        problems: Vec::new(),
        done: false,
        log: log.clone(),
        secs: 0.0,
    };
    let deadline = t0 + timeout;
    let mut eofs = 0;
    while eofs < 2 {
        let now = Instant::now();
        if now >= deadline {
            eprintln!(
                "bench: boot {n}: timeout after {} s, killing QEMU (pid {})",
                timeout.as_secs(),
                child.id()
            );
            let _ = child.kill();
            break;
        }
        let line = match rx.recv_timeout((deadline - now).min(Duration::from_secs(30))) {
            Ok(Msg::Line(l)) => l,
            Ok(Msg::Eof) => {
                eofs += 1;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!("[{:6.1}s] still running", t0.elapsed().as_secs_f64());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let el = t0.elapsed().as_secs_f64();
        let _ = writeln!(logf, "[{el:8.3}] {line}");
        let clean = vmtest::strip_escapes(&line);
        if BAD_PATTERNS.iter().any(|p| clean.contains(p)) && !clean.contains("/hw-vuln/") {
            eprintln!("[{el:6.1}s] !! {clean}");
            b.problems.push(clean.trim().to_string());
            continue;
        }
        let Some(i) = clean.find("BENCH") else {
            continue;
        };
        let m = clean[i..].trim_end().to_string();
        if m.starts_with("BENCH ") || m.starts_with("BENCHMEM ") {
            eprintln!("    {m}");
            b.lines.push(m);
        } else if m.starts_with("BENCH-DONE") {
            b.done = true;
        } else if m.starts_with("BENCH-") {
            eprintln!("[{el:6.1}s] {m}");
            if m.contains(" rc=") && !m.ends_with(" rc=0") {
                b.failures.push(m);
            }
        }
    }
    let _ = child.wait();
    b.secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(logf, "# qemu ran {:.3} s", b.secs);
    Ok(b)
}

/// Runs the host benchmarks and returns their output (also in `host.txt`).
fn host_bench(dir: &Path, quick: bool) -> Result<String> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
        "bench",
        "-p",
        "kvmport-bench",
        "--bench",
        "host",
        "--",
    ]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo bench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("cargo bench exited with {}", out.status));
    }
    let p = dir.join("host.txt");
    fs::write(&p, &text).map_err(vmtest::io_err(&p))?;
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Parsing and the report

/// The `key=value` fields of a `BENCH`/`BENCHMEM`/`HOST` line; `na=` takes the rest of the
/// line.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line;
    // The kind word.
    if let Some((kind, r)) = rest.split_once(' ') {
        out.push(("kind".to_string(), kind.to_string()));
        rest = r;
    }
    while !rest.is_empty() {
        if let Some(v) = rest.strip_prefix("na=") {
            out.push(("na".to_string(), v.to_string()));
            break;
        }
        let (tok, r) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some((k, v)) = tok.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        } else if !tok.is_empty() {
            out.push((tok.to_string(), String::new()));
        }
        rest = r.trim_start();
    }
    out
}

/// The numbers of a comma-separated field (`totals=1,2,3`).
fn nums(v: Option<&str>) -> Vec<f64> {
    v.unwrap_or("")
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// The value of `key` among `f`.
fn get<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// One cell: a number, or why there is none.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Value(f64),
    Na(String),
}

impl Cell {
    fn value(&self) -> Option<f64> {
        match self {
            Cell::Value(v) => Some(*v),
            Cell::Na(_) => None,
        }
    }

    /// The table text: the number, or `n/a (ENOSYS)` (the errno, or the reason's first words).
    fn show(&self) -> String {
        match self {
            Cell::Value(v) => format!("{v:.1}"),
            Cell::Na(why) => {
                let first = why.split_whitespace().next().unwrap_or("");
                let short = if first.len() > 1
                    && first.starts_with('E')
                    && first
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                {
                    first.to_string()
                } else {
                    why.chars().take(28).collect()
                };
                format!("n/a ({short})")
            }
        }
    }
}

/// A row of the table.
struct Row {
    op: String,
    title: String,
    exit_row: bool,
    reference: Cell,
    ours: Cell,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.reference.value(), self.ours.value()) {
            (Some(r), Some(o)) if r > 0.0 => Some(o / r),
            _ => None,
        }
    }
}

/// The results of a run.
struct Report {
    rows: Vec<Row>,
    /// Whether every boot printed the same lines as the first (None with one boot).
    identical: Option<bool>,
    /// Lines that differ between boot 1 and another boot.
    differing: Vec<String>,
    /// Problems (kernel warnings, failed steps, incomplete boots).
    problems: Vec<String>,
    /// Remarks on individual figures (idle time inside a measurement).
    notes: Vec<String>,
    /// Boot count and wall-clock seconds of each.
    boot_secs: Vec<f64>,
    /// Within boot 1: the largest relative spread between the repeats of any operation.
    max_repeat_spread: f64,
    /// Host lines.
    host: Vec<String>,
}

impl Report {
    fn new(boots: &[Boot], host: Option<&str>) -> Report {
        let first: &[String] = boots.first().map_or(&[], |b| &b.lines);
        let parsed: Vec<Vec<(String, String)>> = first.iter().map(|l| fields(l)).collect();
        let find = |kind: &str, dev: &str, key: &str, val: &str| {
            parsed.iter().find(|f| {
                get(f, "kind") == Some(kind)
                    && get(f, "dev") == Some(dev)
                    && get(f, key) == Some(val)
            })
        };
        let guest_cell = |dev: &str, op: &str| match find("BENCH", dev, "op", op) {
            None => Cell::Na("not measured".into()),
            Some(f) => match (get(f, "na"), get(f, "per_op").and_then(|v| v.parse().ok())) {
                (Some(why), _) => Cell::Na(why.to_string()),
                (None, Some(v)) => Cell::Value(v),
                (None, None) => Cell::Na("no value".into()),
            },
        };
        let mem_cell = |dev: &str, what: &str| match find("BENCHMEM", dev, "what", what) {
            None => Cell::Na("not measured".into()),
            Some(f) => match (
                get(f, "na"),
                get(f, "kernel").and_then(|v| v.parse::<f64>().ok()),
            ) {
                (Some(why), _) => Cell::Na(why.to_string()),
                (None, Some(v)) if v >= 0.0 => Cell::Value(v / 1024.0),
                (None, _) => Cell::Na("no memcg".into()),
            },
        };
        let mut rows: Vec<Row> = GUEST_ROWS
            .iter()
            .map(|(op, title, exit_row)| Row {
                op: op.to_string(),
                title: title.to_string(),
                exit_row: *exit_row,
                reference: guest_cell(REFERENCE, op),
                ours: guest_cell(OURS, op),
            })
            .collect();
        rows.extend(MEM_ROWS.iter().map(|(what, title)| Row {
            op: format!("mem_{what}"),
            title: title.to_string(),
            exit_row: false,
            reference: mem_cell(REFERENCE, what),
            ours: mem_cell(OURS, what),
        }));
        let mut differing = Vec::new();
        for b in boots.iter().skip(1) {
            let n = first.len().max(b.lines.len());
            for i in 0..n {
                let (x, y) = (first.get(i), b.lines.get(i));
                if x != y {
                    differing.push(format!(
                        "boot 1: {} | other: {}",
                        x.map_or("-", String::as_str),
                        y.map_or("-", String::as_str)
                    ));
                }
            }
        }
        let identical = (boots.len() > 1).then_some(differing.is_empty());
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        for (i, b) in boots.iter().enumerate() {
            if !b.complete() {
                problems.push(format!(
                    "boot {}: did not finish ({})",
                    i + 1,
                    b.log.display()
                ));
            }
            problems.extend(b.failures.iter().map(|f| format!("boot {}: {f}", i + 1)));
            problems.extend(
                b.problems
                    .iter()
                    .map(|p| format!("boot {}: kernel: {p}", i + 1)),
            );
        }
        // Idle time inside the timed batches (waits, which -icount sleep=off counts too).
        for f in &parsed {
            let (Some(dev), Some(op)) = (get(f, "dev"), get(f, "op")) else {
                continue;
            };
            let idle: f64 = nums(get(f, "idle")).iter().sum();
            let total: f64 = nums(get(f, "totals")).iter().sum();
            if total > 0.0 && idle / total > 0.01 {
                notes.push(format!(
                    "{op} on {dev}: {:.0} % of the timed batches' TSC time was idle (waiting, \
                     e.g. for an RCU grace period); the figure excludes it",
                    100.0 * (idle / total).min(1.0)
                ));
            }
        }
        let max_repeat_spread = parsed
            .iter()
            .filter_map(|f| {
                let t = nums(get(f, "totals"));
                let idle = nums(get(f, "idle"));
                let busy: Vec<f64> = t
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v - idle.get(i).copied().unwrap_or(0.0))
                    .collect();
                let lo = busy.iter().copied().fold(f64::MAX, f64::min);
                let hi = busy.iter().copied().fold(0.0, f64::max);
                (lo > 0.0 && lo < f64::MAX).then(|| (hi - lo) / lo)
            })
            .fold(0.0, f64::max);
        Report {
            rows,
            identical,
            differing,
            problems,
            notes,
            boot_secs: boots.iter().map(|b| b.secs).collect(),
            max_repeat_spread,
            host: host
                .unwrap_or("")
                .lines()
                .filter(|l| l.starts_with("HOST "))
                .map(str::to_string)
                .collect(),
        }
    }

    /// The printed table, the determinism verdict, the host figures and the worst ratio.
    fn table(&self) -> String {
        let mut s = String::new();
        let w = self.rows.iter().map(|r| r.title.len()).max().unwrap_or(10);
        let _ = writeln!(
            s,
            "{:<w$}  {:>14}  {:>14}  {:>8}",
            "operation", REFERENCE, OURS, "ratio"
        );
        let _ = writeln!(s, "{}", "-".repeat(w + 44));
        for r in &self.rows {
            let ratio = r.ratio().map_or("-".to_string(), |x| format!("{x:.2}"));
            let _ = writeln!(
                s,
                "{:<w$}  {:>14}  {:>14}  {:>8}",
                r.title,
                r.reference.show(),
                r.ours.show(),
                ratio
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "instructions: guest TSC under -icount shift=0 (1 per retired instruction: L1 \
             kernel + L1 user + L2 guest) less idle time, minimum of 3 batches, empty-loop \
             cost subtracted; memory: the kernel field of the cgroup's memory.stat (all kernel \
             memory charged)"
        );
        match self.identical {
            Some(true) => {
                let _ = writeln!(
                    s,
                    "determinism: {} boots of the same initramfs gave identical counts on every \
                     line; within boot 1 the repeats of an operation differ by up to {:.3} %",
                    self.boot_secs.len(),
                    100.0 * self.max_repeat_spread
                );
            }
            Some(false) => {
                let _ = writeln!(
                    s,
                    "determinism: the boots DIFFER on {} line(s):",
                    self.differing.len()
                );
                for d in self.differing.iter().take(10) {
                    let _ = writeln!(s, "  {d}");
                }
            }
            None => {
                let _ = writeln!(s, "determinism: one boot only (use --boots 2 to compare)");
            }
        }
        let secs: Vec<String> = self.boot_secs.iter().map(|t| format!("{t:.1} s")).collect();
        let _ = writeln!(s, "boots: {}", secs.join(", "));
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        for p in &self.problems {
            let _ = writeln!(s, "problem: {p}");
        }
        if !self.host.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "host (kvmport-core, wall clock, median of samples):");
            for l in &self.host {
                let f = fields(l);
                let med = get(&f, "median_ns").unwrap_or("?");
                let mad = get(&f, "mad_ns").unwrap_or("?");
                if let Some(n) = get(&f, "slots") {
                    let ratio = get(&f, "ratio_to_1_slot").unwrap_or("?");
                    let _ = writeln!(
                        s,
                        "  memslot lookup, {n:>5} slots: {med:>7} ns (mad {mad}), x{ratio} of 1 slot"
                    );
                } else if get(&f, "kind") == Some("HOST") && l.starts_with("HOST dispatch ") {
                    let cmd = get(&f, "cmd").unwrap_or("?");
                    let _ = writeln!(s, "  dispatch {cmd:<26} {med:>7} ns (mad {mad})");
                }
            }
        }
        let _ = writeln!(s);
        let exit_rows: Vec<&Row> = self.rows.iter().filter(|r| r.exit_row).collect();
        let na = exit_rows.iter().filter(|r| r.ratio().is_none()).count();
        let worst = exit_rows
            .iter()
            .filter_map(|r| Some((r.ratio()?, r)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match worst {
            Some((x, r)) => {
                let _ = writeln!(
                    s,
                    "worst ratio: {x:.2} ({}) over {} exit/round-trip rows; {na} n/a",
                    r.op,
                    exit_rows.len() - na
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "worst ratio: n/a (none of the {} exit/round-trip rows has both values)",
                    exit_rows.len()
                );
            }
        }
        s
    }

    /// `raw.json`: the settings, every measured line of every boot and of the host bench
    /// (parsed into fields), and the table's rows.
    fn json(&self, kernel: &Kernel, boots: &[Boot], host: Option<&str>) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"kernel\": {},", json_str(&kernel.kver));
        let qemu: Vec<String> = QEMU_DETERMINISTIC.iter().map(|a| json_str(a)).collect();
        let _ = writeln!(s, "  \"qemu_args\": [{}],", qemu.join(", "));
        let _ = writeln!(s, "  \"append\": {},", json_str(APPEND));
        let _ = writeln!(
            s,
            "  \"identical\": {},",
            self.identical.map_or("null".into(), |b| b.to_string())
        );
        s.push_str("  \"rows\": [\n");
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let cell = |c: &Cell| match c {
                    Cell::Value(v) => format!("{v}"),
                    Cell::Na(w) => format!("{{\"na\": {}}}", json_str(w)),
                };
                format!(
                    "    {{\"op\": {}, \"title\": {}, \"exit_row\": {}, \"{REFERENCE}\": {}, \"{OURS}\": {}, \"ratio\": {}}}",
                    json_str(&r.op),
                    json_str(&r.title),
                    r.exit_row,
                    cell(&r.reference),
                    cell(&r.ours),
                    r.ratio().map_or("null".into(), |x| format!("{x}"))
                )
            })
            .collect();
        s.push_str(&rows.join(",\n"));
        s.push_str("\n  ],\n  \"boots\": [\n");
        let bs: Vec<String> = boots
            .iter()
            .map(|b| {
                format!(
                    "    {{\"seconds\": {:.1}, \"log\": {}, \"lines\": [\n{}\n    ]}}",
                    b.secs,
                    json_str(&b.log.display().to_string()),
                    lines_json(b.lines.iter().map(String::as_str), "      ")
                )
            })
            .collect();
        s.push_str(&bs.join(",\n"));
        s.push_str("\n  ],\n  \"host\": [\n");
        let hl = host
            .unwrap_or("")
            .lines()
            .filter(|l| l.starts_with("HOST "));
        s.push_str(&lines_json(hl, "    "));
        s.push_str("\n  ]\n}\n");
        s
    }
}

/// One JSON object per line, its fields as numbers where they parse.
fn lines_json<'a>(lines: impl Iterator<Item = &'a str>, indent: &str) -> String {
    lines
        .map(|l| {
            let parts: Vec<String> = fields(l)
                .iter()
                .map(|(k, v)| {
                    let val = match v.parse::<f64>() {
                        Ok(x) if x.is_finite() && !v.contains(',') => v.clone(),
                        _ => json_str(v),
                    };
                    format!("{}: {val}", json_str(k))
                })
                .collect();
            format!("{indent}{{{}}}", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ---------------------------------------------------------------------------------------------
// The scaling figure

/// `scaling.svg`: memslot lookup time against the slot count (log scale), median with the
/// min..max range of the samples, and an `a + b·log2(n)` line fitted to the medians for
/// comparison. `None` without lookup figures.
fn scaling_svg(host: &str) -> Option<String> {
    let pts: Vec<(f64, f64, f64, f64)> = host
        .lines()
        .filter(|l| l.starts_with("HOST memslot_lookup "))
        .filter_map(|l| {
            let f = fields(l);
            let num = |k: &str| get(&f, k)?.parse::<f64>().ok();
            Some((
                num("slots")?,
                num("median_ns")?,
                num("min_ns")?,
                num("max_ns")?,
            ))
        })
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let (w, h) = (720.0, 440.0);
    let (l, r, t, b) = (70.0, 20.0, 40.0, 60.0);
    let xmax = pts.iter().map(|p| p.0.log2()).fold(0.0, f64::max).max(1.0);
    let ymax = pts.iter().map(|p| p.3).fold(0.0, f64::max) * 1.1;
    let x = |n: f64| l + (w - l - r) * n.log2() / xmax;
    let y = |v: f64| h - b - (h - t - b) * v / ymax;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">kvmport-core memslot lookup vs. number of slots</text>"#,
        w / 2.0
    );
    // Axes.
    let _ = writeln!(
        s,
        r#"<path d="M{l} {t} V{} H{}" stroke="black" fill="none"/>"#,
        h - b,
        w - r
    );
    for e in (0..=xmax as u32).step_by(2) {
        let n = f64::from(1u32 << e);
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="black"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"#,
            x(n),
            h - b,
            h - b + 5.0,
            h - b + 18.0,
            n
        );
    }
    let step = nice_step(ymax / 6.0);
    let mut v = 0.0;
    while v <= ymax {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#ddd"/><text x="{3}" y="{4:.1}" text-anchor="end">{v}</text>"##,
            l,
            y(v),
            w - r,
            l - 6.0,
            y(v) + 4.0
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">slots (log scale)</text>"#,
        (l + w - r) / 2.0,
        h - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">ns per lookup</text>"#,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    );
    // Least-squares fit of median = a + b*log2(n).
    let k = pts.len() as f64;
    let (sx, sy) = pts
        .iter()
        .fold((0.0, 0.0), |(a, c), p| (a + p.0.log2(), c + p.1));
    let (sxx, sxy) = pts.iter().fold((0.0, 0.0), |(a, c), p| {
        (a + p.0.log2() * p.0.log2(), c + p.0.log2() * p.1)
    });
    let slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
    let icept = (sy - slope * sx) / k;
    let nmax = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="5 4"/>"##,
        x(1.0),
        y(icept),
        x(nmax),
        y(icept + slope * nmax.log2())
    );
    let path: Vec<String> = pts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}{:.1} {:.1}",
                if i == 0 { "M" } else { "L" },
                x(p.0),
                y(p.1)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<path d="{}" stroke="#1f5fa8" stroke-width="2" fill="none"/>"##,
        path.join(" ")
    );
    for p in &pts {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#1f5fa8"/><circle cx="{0:.1}" cy="{3:.1}" r="3.5" fill="#1f5fa8"><title>{4} slots: {5:.2} ns (min {6:.2}, max {7:.2})</title></circle>"##,
            x(p.0),
            y(p.2),
            y(p.3),
            y(p.1),
            p.0,
            p.1,
            p.2,
            p.3
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" fill="#1f5fa8">median (bars: min..max of samples)</text><text x="{}" y="{}" fill="#777">fit {icept:.2} + {slope:.2}·log2(n) ns</text>"##,
        l + 12.0,
        t + 14.0,
        l + 12.0,
        t + 30.0
    );
    s.push_str("</svg>\n");
    Some(s)
}

/// A round axis step near `raw` (1, 2 or 5 times a power of ten).
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(lines: &[&str]) -> Boot {
        Boot {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            failures: Vec::new(),
            problems: Vec::new(),
            done: true,
            log: PathBuf::from("serial-1.log"),
            secs: 1.0,
        }
    }

    #[test]
    fn parses_fields_and_na() {
        let f = fields("BENCH dev=kvmport op=pio na=ENOSYS (KVM_RUN)");
        assert_eq!(get(&f, "kind"), Some("BENCH"));
        assert_eq!(get(&f, "op"), Some("pio"));
        assert_eq!(get(&f, "na"), Some("ENOSYS (KVM_RUN)"));
        let f = fields("BENCH dev=kvm_amd op=pio n=10 empty=5 totals=1,2,3 per_op=3306.50");
        assert_eq!(get(&f, "per_op"), Some("3306.50"));
        assert_eq!(get(&f, "totals"), Some("1,2,3"));
    }

    #[test]
    fn table_marks_na_and_computes_the_worst_ratio_over_rows_with_both_values() {
        let lines = [
            "BENCH dev=kvm_amd op=cpuid_exit n=1 empty=0 totals=2600 per_op=2600.00",
            "BENCH dev=kvm_amd op=immediate_exit n=1 empty=0 totals=900 per_op=900.00",
            "BENCH dev=kvm_amd op=vm_create_destroy n=1 empty=0 totals=9 per_op=90000.00",
            "BENCH dev=kvmport op=cpuid_exit na=ENOSYS (KVM_RUN)",
            "BENCH dev=kvmport op=immediate_exit n=1 empty=0 totals=450 per_op=450.00",
            "BENCH dev=kvmport op=vm_create_destroy n=1 empty=0 totals=9 per_op=180000.00",
        ];
        let b = [boot(&lines), boot(&lines)];
        let r = Report::new(&b, None);
        assert_eq!(r.identical, Some(true));
        let t = r.table();
        assert!(t.contains("n/a (ENOSYS)"), "{t}");
        assert!(t.contains("0.50"), "{t}");
        // VM create is not an exit row: its ratio of 2.00 is not the worst.
        assert!(
            t.trim_end()
                .ends_with("worst ratio: 0.50 (immediate_exit) over 1 exit/round-trip rows; 4 n/a"),
            "{t}"
        );
    }

    #[test]
    fn reports_differing_boots() {
        let a = boot(&["BENCH dev=kvm_amd op=pio n=1 empty=0 totals=5 per_op=5.00"]);
        let b = boot(&["BENCH dev=kvm_amd op=pio n=1 empty=0 totals=6 per_op=6.00"]);
        let r = Report::new(&[a, b], None);
        assert_eq!(r.identical, Some(false));
        assert!(r.table().contains("DIFFER on 1 line"));
    }

    #[test]
    fn draws_the_scaling_chart() {
        let host = "HOST memslot_lookup slots=1 median_ns=2.0 min_ns=1.9 max_ns=2.2 mad_ns=0.01\n\
                    HOST memslot_lookup slots=1024 median_ns=12.0 min_ns=11.0 max_ns=13.0 mad_ns=0.1\n";
        let svg = scaling_svg(host).expect("two points");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(scaling_svg("").is_none());
        assert_eq!(nice_step(3.3), 5.0);
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\u000a\"");
    }
}
