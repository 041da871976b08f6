//! `kvm-fuzz`: hammers a KVM device node with random and mutated ioctls for a bounded time.
//!
//! ```text
//! kvm-fuzz --device PATH --seconds N [--seed S] [--guest-code random|snippets|hlt]
//!          [--no-state] [--no-run]
//! ```
//!
//! The fuzzing runs in forked children (see [`fuzz`]); the parent only supervises. Each child
//! keeps a small pool of system, VM, vCPU and other KVM fds, creates and closes them at random
//! (a VM fd too while its vCPUs live on), and issues mostly well-formed-but-mutated commands,
//! other fds' commands, other architectures' commands and random command numbers, with
//! arguments that are valid-shaped structs with boundary values, NULL, kernel addresses,
//! unmapped memory, or buffers that run into a `PROT_NONE` page. Memslots point at real,
//! fuzzer-owned memory full of random bytes and x86 instruction snippets, so `KVM_RUN`
//! executes garbage guest code; every run is bounded by a repeating `SIGALRM`.
//!
//! A child lives a few seconds (its exit tears down whatever it had open), then the next one
//! starts with the next seed derived from `--seed`. A child that dies of a signal or stops
//! making progress is counted as a fuzzer crash and replaced; the run goes on until the
//! deadline. The verdict on the kernel is the kernel log's business: the fuzzer prints
//! progress every 5 s, then
//!
//! ```text
//! fuzz: N ioctls (sys A, vm B, vcpu C, other D; R KVM_RUN, M mmap, F forks), E distinct errnos, K crashes of the fuzzer
//! ok kvm-fuzz
//! 1 passed, 0 failed, 0 skipped
//! ```
//!
//! (the last two lines are for `cargo xtask vmtest --suite`). The exit code is 0 unless the device
//! could not be opened.

mod cmds;
mod fuzz;
mod mem;
mod rng;
mod stats;

use stats::Stats;
use std::ffi::CString;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a child may go without a single step before it is killed.
const STALL: Duration = Duration::from_secs(20);
/// How often progress is printed.
const PROGRESS: Duration = Duration::from_secs(5);
/// Exit code of a child that could not open the device.
const EXIT_NO_DEVICE: i32 = 3;

fn usage() -> ExitCode {
    eprintln!(
        "usage: kvm-fuzz --device PATH --seconds N [--seed S] [--guest-code random|snippets|hlt] [--no-state] [--no-run] [--state-allow MASK]"
    );
    ExitCode::from(2)
}

/// Parses a decimal or `0x` hexadecimal number.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Runs one fuzzing child until `until`; never returns.
fn child(
    device: &str,
    seed: u64,
    guest: fuzz::GuestCode,
    limits: fuzz::Limits,
    until: Instant,
    stats: &'static Stats,
) -> ! {
    fuzz::install_signals();
    let code = match fuzz::Fuzzer::new(device, seed, guest, limits, stats) {
        Some(mut f) => {
            f.run_until(until);
            0
        }
        None => EXIT_NO_DEVICE,
    };
    // SAFETY: ends the child at once; the kernel closes its fds and unmaps its memory.
    unsafe { libc::_exit(code) }
}

/// The supervisor's tally.
#[derive(Default)]
struct Tally {
    children: u64,
    crashes: u64,
    hangs: u64,
}

fn progress(t0: Instant, stats: &Stats, t: &Tally) {
    println!(
        "[{:5.0}s] {} ioctls ({}), {} KVM_RUN, {} distinct errnos, {} children, {} crashes",
        t0.elapsed().as_secs_f64(),
        stats.total(),
        stats.per_kind(),
        stats.runs.load(Relaxed),
        stats.distinct_errnos(),
        t.children,
        t.crashes,
    );
}

fn main() -> ExitCode {
    let mut device = None;
    let mut seconds = None;
    let mut seed = None;
    let mut guest = fuzz::GuestCode::Random;
    let mut limits = fuzz::Limits::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next();
        match a.as_str() {
            "--device" => device = val(),
            "--seconds" => seconds = val().as_deref().and_then(parse_u64),
            "--seed" => match val().as_deref().and_then(parse_u64) {
                Some(s) => seed = Some(s),
                None => return usage(),
            },
            "--guest-code" => match val().as_deref().and_then(fuzz::GuestCode::parse) {
                Some(g) => guest = g,
                None => return usage(),
            },
            "--no-state" => limits.no_state = true,
            "--no-run" => limits.no_run = true,
            "--state-allow" => match val().as_deref().and_then(parse_u64) {
                Some(m) => limits.state_allow = m,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let (Some(device), Some(seconds)) = (device, seconds) else {
        return usage();
    };
    let seed = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let Ok(cpath) = CString::new(device.clone()) else {
        return usage();
    };
    // SAFETY: a NUL-terminated path; the fd is closed at once.
    let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        eprintln!("kvm-fuzz: {device}: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };

    let stats = Stats::new_shared();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(seconds);
    println!("kvm-fuzz: {device}, {seconds} s, seed {seed:#x}, guest code {guest:?}, {limits:?}");
    let mut t = Tally::default();
    let mut last_print = t0;
    while Instant::now() < deadline {
        let cseed = rng::child_seed(seed, t.children);
        let life = Duration::from_secs(2 + cseed % 12);
        let until = deadline.min(Instant::now() + life);
        t.children += 1;
        // SAFETY: the supervisor is single-threaded; the child only runs `child`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            eprintln!("kvm-fuzz: fork: {}", std::io::Error::last_os_error());
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if pid == 0 {
            child(&device, cseed, guest, limits, until, stats);
        }
        let mut beat = stats.heartbeat.load(Relaxed);
        let mut beat_at = Instant::now();
        let mut killed = false;
        let status = loop {
            let mut st = 0;
            // SAFETY: reaps our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                break st;
            }
            if r < 0 {
                break 0;
            }
            let now = Instant::now();
            if now.duration_since(last_print) >= PROGRESS {
                last_print = now;
                progress(t0, stats, &t);
            }
            let b = stats.heartbeat.load(Relaxed);
            if b != beat {
                (beat, beat_at) = (b, now);
            }
            let overdue = now > until + STALL;
            if !killed && (now.duration_since(beat_at) > STALL || overdue) {
                println!("kvm-fuzz: child seed {cseed:#x} stalled; killing it");
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
                t.hangs += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if killed {
            continue;
        }
        if libc::WIFSIGNALED(status) {
            t.crashes += 1;
            println!(
                "kvm-fuzz: child seed {cseed:#x} died of signal {}",
                libc::WTERMSIG(status)
            );
        } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
            t.crashes += 1;
            println!(
                "kvm-fuzz: child seed {cseed:#x} exited with {}",
                libc::WEXITSTATUS(status)
            );
        }
    }
    progress(t0, stats, &t);
    println!(
        "fuzz: {} ioctls ({}; {} KVM_RUN, {} mmap, {} forks, {} children, {} stalled), {} distinct errnos, {} crashes of the fuzzer",
        stats.total(),
        stats.per_kind(),
        stats.runs.load(Relaxed),
        stats.mmaps.load(Relaxed),
        stats.forks.load(Relaxed),
        t.children,
        t.hangs,
        stats.distinct_errnos(),
        t.crashes,
    );
    println!("ok kvm-fuzz");
    println!("1 passed, 0 failed, 0 skipped");
    ExitCode::SUCCESS
}
