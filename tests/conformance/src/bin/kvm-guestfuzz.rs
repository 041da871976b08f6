//! `kvm-guestfuzz`: random instruction bytes run as a guest, in real mode and in 64-bit long
//! mode, for a bounded time. Every run must end in an exit that is explained: port I/O or
//! MMIO (answered and continued), `HLT`, shutdown (triple fault), an emulation failure, or the
//! watchdog's interrupt of a guest that loops. Anything else (a failed entry, an unknown exit,
//! an unexpected errno) is counted as unexplained and makes the program fail. The kernel side
//! (oops, warnings, leaks) is judged by `cargo xtask vmtest`, which runs this in the test VM.
//!
//! `kvm-guestfuzz --device PATH --seconds N [--seed S]`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kvmport_client::Errno;
use kvmport_conformance::guest::{CODE, Code, Guest, Mode, RAM, init_vcpu};
use kvmport_conformance::harness::Ctx;
use kvmport_core::abi::{
    KVM_EXIT_HLT, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_IN, KVM_EXIT_MMIO,
    KVM_EXIT_SHUTDOWN,
};

/// How long one `KVM_RUN` may take before the watchdog (`SIGALRM`) interrupts it.
const RUN_LIMIT: Duration = Duration::from_millis(20);
/// Exits per round before the round is ended (a guest doing I/O in a loop).
const EXITS_PER_ROUND: u32 = 64;
/// Bytes of random code per round.
const CODE_LEN: usize = 4096;
/// Rounds on one VM before it is made afresh (random code overwrites its own tables).
const ROUNDS_PER_VM: u32 = 32;

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[derive(Default)]
struct Tally {
    rounds: [u64; 2],
    io: u64,
    mmio: u64,
    hlt: u64,
    shutdown: u64,
    emulation: u64,
    internal_other: u64,
    timeout: u64,
    exit_limit: u64,
    unexplained: Vec<String>,
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Installs a no-op `SIGALRM` handler without `SA_RESTART`, so the alarm ends `KVM_RUN`.
fn install_alarm() {
    // SAFETY: a zeroed sigaction is a valid initial value; the handler is async-signal-safe
    // (it does nothing).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
    }
}

/// Arms (or with `None` disarms) the one-shot real-time alarm.
fn alarm(after: Option<Duration>) {
    let d = after.unwrap_or_default();
    let t = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: d.as_secs().try_into().unwrap_or(0),
            tv_usec: d.subsec_micros().into(),
        },
    };
    // SAFETY: setitimer reads `t` and writes nothing (old value not asked for).
    unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) };
}

/// With `--debugcon`: marks written synchronously to port 0xe9 (QEMU's debug console), which
/// survive QEMU dying, unlike the serial console's last lines.
static DEBUGCON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn debugcon(msg: &str) {
    if !DEBUGCON.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    for b in msg.bytes().chain(core::iter::once(b'\n')) {
        // SAFETY: ioperm(0xe9) succeeded (DEBUGCON is only set then); OUT to that port has no
        // effect on this process's memory.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0xe9u16, in("al") b, options(nomem, nostack))
        };
    }
}

/// One round: random code at [`CODE`] in `mode`, run until an ending exit.
fn round(
    g: &Guest,
    mode: Mode,
    rng: &mut Rng,
    t: &mut Tally,
    cut: Option<usize>,
) -> Result<bool, String> {
    let mut code = vec![0u8; CODE_LEN];
    rng.fill(&mut code);
    if let Some(k) = cut {
        // Bisecting a crash: only the first `k` bytes stay random, the rest is HLT.
        for b in code.iter_mut().skip(k) {
            *b = 0xF4;
        }
        println!(
            "guestfuzz: cut at {k}: {:02x?}",
            code.get(k.saturating_sub(16)..k).unwrap_or(&[])
        );
    }
    g.mem.write(CODE, &code);
    init_vcpu(&g.vcpu, mode, CODE)?;
    t.rounds[usize::from(mode == Mode::Long64)] += 1;
    for e in 0..EXITS_PER_ROUND {
        if DEBUGCON.load(std::sync::atomic::Ordering::Relaxed) {
            let ev = g.vcpu.get_vcpu_events().ok();
            let r = g.vcpu.get_regs().ok().map(|r| (r.rip, r.rflags));
            let sr = g
                .vcpu
                .get_sregs()
                .ok()
                .map(|s| (s.cs.base, s.cr0, s.idt.base, s.idt.limit));
            debugcon(&format!("run {e} events {ev:?} regs {r:x?} sregs {sr:x?}"));
        }
        alarm(Some(RUN_LIMIT));
        let r = g.vcpu.run();
        alarm(None);
        match r {
            Err(Errno::EINTR) => {
                t.timeout += 1;
                return Ok(true);
            }
            Err(e) => {
                t.unexplained
                    .push(format!("{mode:?}: KVM_RUN failed with {e:?}"));
                return Ok(false);
            }
            Ok(_) => {}
        }
        match g.run.exit_reason() {
            KVM_EXIT_IO => {
                t.io += 1;
                let io = g.run.io();
                if io.direction == KVM_EXIT_IO_IN {
                    // Leave whatever is in the data page: any value is a valid answer.
                }
            }
            KVM_EXIT_MMIO => t.mmio += 1,
            KVM_EXIT_HLT => {
                t.hlt += 1;
                return Ok(true);
            }
            KVM_EXIT_SHUTDOWN => {
                t.shutdown += 1;
                // The vCPU's state after a triple fault is undefined: make a new VM.
                return Ok(false);
            }
            KVM_EXIT_INTERNAL_ERROR => {
                let i = g.run.internal();
                if i.suberror == kvmport_core::abi::KVM_INTERNAL_ERROR_EMULATION {
                    t.emulation += 1;
                } else {
                    t.internal_other += 1;
                }
                return Ok(false);
            }
            other => {
                t.unexplained
                    .push(format!("{mode:?}: exit {other}{}", g.exit_detail(other)));
                return Ok(false);
            }
        }
    }
    t.exit_limit += 1;
    Ok(true)
}

fn run(
    device: &str,
    seconds: u64,
    seed: u64,
    modes: &[Mode],
    verbose: bool,
    cut: Option<(u64, u32, usize)>,
    rounds_per_vm: u32,
) -> Result<Tally, String> {
    install_alarm();
    let ctx = Ctx {
        device: device.into(),
    };
    let mut rng = Rng(seed | 1);
    let mut t = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mode = modes
            .get((n % modes.len() as u64) as usize)
            .copied()
            .unwrap_or(Mode::Real);
        n += 1;
        let g = Guest::new(&ctx, mode, &Code::new().op(&[0xF4]))?;
        // Random bytes in the rest of RAM above the tables too, so jumps land in noise.
        let mut noise = vec![0u8; 0x1000];
        for page in (0x40000..RAM).step_by(0x1000) {
            rng.fill(&mut noise);
            g.mem.write(page, &noise);
        }
        for r in 0..rounds_per_vm {
            if verbose {
                // Flushed before the round, so the last line names the round that was running.
                println!("guestfuzz: vm {n} round {r} {mode:?} rng {:#x}", rng.0);
            }
            debugcon(&format!("vm {n} round {r} {mode:?} rng {:#x}", rng.0));
            let c = cut.and_then(|(v, rr, k)| (v == n && rr == r).then_some(k));
            if Instant::now() >= deadline || !round(&g, mode, &mut rng, &mut t, c)? {
                break;
            }
        }
    }
    Ok(t)
}

/// A decimal or `0x` hexadecimal number.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut device, mut seconds, mut seed) = ("/dev/kvm".to_string(), 10u64, 0u64);
    let mut modes = vec![Mode::Real, Mode::Long64];
    let mut verbose = false;
    let mut cut: Option<(u64, u32, usize)> = None;
    let mut rounds_per_vm = ROUNDS_PER_VM;
    while let Some(a) = args.next() {
        if a == "--verbose" {
            verbose = true;
            continue;
        }
        if a == "--debugcon" {
            // SAFETY: ioperm only changes this process's I/O permission bitmap.
            let ok = unsafe { libc::ioperm(0xe9, 1, 1) } == 0;
            DEBUGCON.store(ok, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        let v = args.next();
        match (a.as_str(), v) {
            // --cut VM:ROUND:K (bisecting a crash; see docs/linux.md)
            ("--cut", Some(c)) => {
                let p: Vec<u64> = c.split(':').filter_map(parse_u64).collect();
                match p.as_slice() {
                    [v, r, k] => cut = Some((*v, *r as u32, *k as usize)),
                    _ => return ExitCode::from(2),
                }
            }
            ("--rounds-per-vm", Some(n)) if parse_u64(&n).is_some_and(|n| n > 0) => {
                rounds_per_vm = parse_u64(&n).map_or(1, |n| n.min(u64::from(u32::MAX)) as u32);
            }
            ("--modes", Some(m)) => {
                modes = m
                    .split(',')
                    .filter_map(|x| match x {
                        "real" => Some(Mode::Real),
                        "prot32" => Some(Mode::Prot32),
                        "long" => Some(Mode::Long64),
                        _ => None,
                    })
                    .collect();
                if modes.is_empty() {
                    eprintln!("--modes takes real,prot32,long");
                    return ExitCode::from(2);
                }
            }
            ("--device", Some(d)) => device = d,
            ("--seconds", Some(s)) if s.parse::<u64>().is_ok() => seconds = s.parse().unwrap_or(10),
            ("--seed", Some(s)) if parse_u64(&s).is_some() => seed = parse_u64(&s).unwrap_or(0),
            _ => {
                eprintln!(
                    "usage: kvm-guestfuzz [--device PATH] [--seconds N] [--seed S] [--modes real,prot32,long] [--rounds-per-vm N] [--verbose] [--debugcon] [--cut VM:ROUND:K]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if seed == 0 {
        seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    if verbose {
        println!("guestfuzz: {device}, seed {seed:#x}, modes {modes:?}, {seconds} s");
    }
    match run(&device, seconds, seed, &modes, verbose, cut, rounds_per_vm) {
        Ok(t) => {
            println!(
                "guestfuzz: {device}, seed {seed:#x}: {} rounds (real {}, long {}); exits: io {}, mmio {}, \
                 hlt {}, shutdown {}, emulation failure {}, other internal error {}, watchdog {}, \
                 exit limit {}; unexplained {}",
                t.rounds[0] + t.rounds[1],
                t.rounds[0],
                t.rounds[1],
                t.io,
                t.mmio,
                t.hlt,
                t.shutdown,
                t.emulation,
                t.internal_other,
                t.timeout,
                t.exit_limit,
                t.unexplained.len()
            );
            for u in t.unexplained.iter().take(20) {
                println!("guestfuzz: unexplained: {u}");
            }
            if t.unexplained.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("guestfuzz: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
