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
use kvmport_conformance::guest::{CODE, Code, Guest, Mode, PML4, RAM, init_vcpu};
use kvmport_conformance::harness::Ctx;
use kvmport_core::abi::{
    KVM_EXIT_HLT, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_IN, KVM_EXIT_MMIO,
    KVM_EXIT_SHUTDOWN, KVM_MEM_READONLY,
};

/// How long one `KVM_RUN` may take before the watchdog (`SIGALRM`) interrupts it.
const RUN_LIMIT: Duration = Duration::from_millis(20);
/// Exits per round before the round is ended (a guest doing I/O in a loop).
const EXITS_PER_ROUND: u32 = 64;
/// Bytes of random code per round.
const CODE_LEN: usize = 4096;
/// Rounds on one VM before it is made afresh (random code overwrites its own tables).
const ROUNDS_PER_VM: u32 = 32;

/// Rewrites every `MOV Sreg, r/m` (opcode `8E`) that QEMU 10.0.0-10.0.6 and 10.1.0-10.1.2 turn
/// into a crash of QEMU itself (QEMU issue 3195, fixed by upstream commit ebb46ba6a4a2
/// "target/i386/tcg: validate segment registers"): a ModRM `reg` field of 6 or 7, or a REX.R
/// prefix, names no segment register, and instead of raising #UD, TCG indexes past its six
/// segment bases. In real mode its code generator then dereferences a bogus value and QEMU
/// dies of `SIGSEGV`; in long mode (REX.R) it overwrites the emulated CPU's other state. The
/// guest that ran such bytes is the test VM's guest, so the crash kills the whole test VM,
/// whichever hypervisor runs in it. The `8E` byte becomes `NOP`; an `8E` at either end of
/// `buf`, whose neighbour is unknown, too. Returns how many bytes were rewritten.
fn avoid_qemu_3195(buf: &mut [u8]) -> usize {
    let mut n = 0;
    for i in 0..buf.len() {
        if buf.get(i) != Some(&0x8E) {
            continue;
        }
        let bad_reg = buf.get(i + 1).is_none_or(|m| (m >> 3) & 7 >= 6);
        let rex_r = i
            .checked_sub(1)
            .and_then(|p| buf.get(p))
            .is_none_or(|&b| b & 0xF4 == 0x44);
        if bad_reg || rex_r {
            if let Some(b) = buf.get_mut(i) {
                *b = 0x90;
                n += 1;
            }
        }
    }
    n
}

/// "mode opcode" for an instruction's bytes: legacy prefixes (and REX in long mode) skipped,
/// `0F` opcodes with their second byte, the ModRM `reg` field for the group opcodes that use
/// it; `?` when the bytes are missing (the instruction could not be fetched).
fn opcode_key(mode: Mode, bytes: &[u8]) -> String {
    let mut it = bytes.iter().copied().skip_while(|&b| {
        matches!(
            b,
            0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3
        ) || (mode == Mode::Long64 && b & 0xF0 == 0x40)
    });
    let Some(op) = it.next() else {
        return format!("{mode:?} ?");
    };
    if op == 0x0F {
        return match it.next() {
            Some(b) => format!("{mode:?} 0f {b:02x}"),
            None => format!("{mode:?} 0f ?"),
        };
    }
    let group = matches!(op, 0x80..=0x83 | 0x8F | 0xC0 | 0xC1 | 0xC6 | 0xC7 | 0xD0..=0xD3)
        || matches!(op, 0xF6 | 0xF7 | 0xFE | 0xFF);
    match it.next() {
        Some(m) if group => format!("{mode:?} {op:02x}/{}", (m >> 3) & 7),
        _ => format!("{mode:?} {op:02x}"),
    }
}

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
    /// Emulation failures by mode and opcode ([`opcode_key`]).
    emulation_by_opcode: std::collections::BTreeMap<String, u64>,
    /// What the first internal errors other than emulation failures said.
    internal_seen: Vec<String>,
    /// Bytes rewritten by [`avoid_qemu_3195`].
    avoided: usize,
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
    avoid_3195: bool,
) -> Result<bool, String> {
    let mut code = vec![0u8; CODE_LEN];
    rng.fill(&mut code);
    if avoid_3195 {
        t.avoided += avoid_qemu_3195(&mut code);
    }
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
                    let e: kvmport_core::abi::KvmRunExitEmulationFailure = g.run.exit();
                    let n = usize::from(e.insn_size).min(e.insn_bytes.len());
                    let key = opcode_key(mode, e.insn_bytes.get(..n).unwrap_or(&[]));
                    *t.emulation_by_opcode.entry(key).or_default() += 1;
                } else {
                    t.internal_other += 1;
                    let n = usize::try_from(i.ndata).unwrap_or(0).min(i.data.len());
                    t.internal_seen.push(format!(
                        "{mode:?}: suberror {} data {:x?}",
                        i.suberror,
                        i.data.get(..n).unwrap_or(&[])
                    ));
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

/// What the command line asked for.
struct Opts {
    device: String,
    seconds: u64,
    seed: u64,
    modes: Vec<Mode>,
    verbose: bool,
    /// `--cut VM:ROUND:K`.
    cut: Option<(u64, u32, usize)>,
    rounds_per_vm: u32,
    /// `--avoid-qemu-3195`: see [`avoid_qemu_3195`]; implies `read_only`.
    avoid_3195: bool,
    /// `--read-only-ram`: guest RAM is a `KVM_MEM_READONLY` slot, see [`read_only_guest`].
    read_only: bool,
}

/// A fuzz VM whose RAM the guest cannot write (`KVM_MEM_READONLY`): every guest store is an
/// MMIO exit, so the guest only ever runs bytes this program wrote. QEMU issue 3195 needs
/// that: a guest that can write can make the offending bytes itself, and did (a real-mode
/// guest wrote them into its interrupt vector table and jumped there within seconds). The page
/// tables get their accessed and dirty bits set, so the processor's page walk writes nothing.
fn read_only_guest(ctx: &Ctx, mode: Mode) -> Result<Guest, String> {
    let g = Guest::with_flags(ctx, mode, &Code::new().op(&[0xF4]), KVM_MEM_READONLY)?;
    const ACCESSED: u64 = 1 << 5;
    const DIRTY: u64 = 1 << 6;
    let (pdpt, pd) = (PML4 + 0x1000, PML4 + 0x2000);
    for table in [PML4, pdpt, pd] {
        for i in 0..512u64 {
            let e: u64 = g.mem.read_obj(table + 8 * i);
            if e & 1 != 0 {
                let ad = if table == pd {
                    ACCESSED | DIRTY
                } else {
                    ACCESSED
                };
                g.mem.write_obj(table + 8 * i, &(e | ad));
            }
        }
    }
    Ok(g)
}

fn run(o: &Opts) -> Result<Tally, String> {
    let Opts {
        ref device,
        seconds,
        seed,
        ref modes,
        verbose,
        cut,
        rounds_per_vm,
        avoid_3195,
        read_only,
    } = *o;
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
        let g = if read_only {
            read_only_guest(&ctx, mode)?
        } else {
            Guest::new(&ctx, mode, &Code::new().op(&[0xF4]))?
        };
        // Random bytes in the rest of RAM above the tables too, so jumps land in noise.
        let mut noise = vec![0u8; (RAM - 0x40000) as usize];
        rng.fill(&mut noise);
        if avoid_3195 {
            t.avoided += avoid_qemu_3195(&mut noise);
        }
        g.mem.write(0x40000, &noise);
        for r in 0..rounds_per_vm {
            if verbose {
                // Flushed before the round, so the last line names the round that was running.
                println!("guestfuzz: vm {n} round {r} {mode:?} rng {:#x}", rng.0);
            }
            debugcon(&format!("vm {n} round {r} {mode:?} rng {:#x}", rng.0));
            let c = cut.and_then(|(v, rr, k)| (v == n && rr == r).then_some(k));
            if Instant::now() >= deadline || !round(&g, mode, &mut rng, &mut t, c, avoid_3195)? {
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
    let mut avoid_3195 = false;
    let mut read_only = false;
    while let Some(a) = args.next() {
        if a == "--verbose" {
            verbose = true;
            continue;
        }
        if a == "--avoid-qemu-3195" {
            avoid_3195 = true;
            read_only = true;
            continue;
        }
        if a == "--read-only-ram" {
            read_only = true;
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
                    "usage: kvm-guestfuzz [--device PATH] [--seconds N] [--seed S] [--modes real,prot32,long] [--rounds-per-vm N] [--verbose] [--debugcon] [--cut VM:ROUND:K] [--avoid-qemu-3195] [--read-only-ram]"
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
    let opts = Opts {
        device: device.clone(),
        seconds,
        seed,
        modes,
        verbose,
        cut,
        rounds_per_vm,
        avoid_3195,
        read_only,
    };
    match run(&opts) {
        Ok(t) => {
            println!(
                "guestfuzz: {device}, seed {seed:#x}: {} rounds (real {}, long {}); exits: io {}, mmio {}, \
                 hlt {}, shutdown {}, emulation failure {}, other internal error {}, watchdog {}, \
                 exit limit {}; unexplained {}{}",
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
                t.unexplained.len(),
                if avoid_3195 {
                    format!("; QEMU issue 3195: {} bytes rewritten", t.avoided)
                } else {
                    String::new()
                }
            );
            let mut by: Vec<(&String, &u64)> = t.emulation_by_opcode.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            if !by.is_empty() {
                let top: Vec<String> = by
                    .iter()
                    .take(12)
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect();
                println!(
                    "guestfuzz: emulation failures by opcode: {}",
                    top.join(", ")
                );
            }
            for i in t.internal_seen.iter().take(5) {
                println!("guestfuzz: internal error: {i}");
            }
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

#[cfg(test)]
mod tests {
    use super::avoid_qemu_3195;

    fn fixed(bytes: &[u8]) -> (Vec<u8>, usize) {
        let mut b = bytes.to_vec();
        let n = avoid_qemu_3195(&mut b);
        (b, n)
    }

    #[test]
    fn rewrites_reg_6_and_7() {
        // mov ?s(7), [0xf9bb]: the bytes that crashed QEMU 10.0.2 in real mode.
        assert_eq!(
            fixed(&[0x90, 0x8E, 0x3E, 0xBB]),
            (vec![0x90, 0x90, 0x3E, 0xBB], 1)
        );
        // reg 6, register form.
        assert_eq!(
            fixed(&[0x90, 0x8E, 0xF0, 0x90]),
            (vec![0x90, 0x90, 0xF0, 0x90], 1)
        );
    }

    #[test]
    fn keeps_valid_segment_loads() {
        // mov ds, ax; mov es, [bx]; mov ss, ax (with REX.W, which has no R bit).
        let code = [0x90, 0x8E, 0xD8, 0x8E, 0x07, 0x48, 0x8E, 0xD0, 0x90];
        assert_eq!(fixed(&code), (code.to_vec(), 0));
    }

    #[test]
    fn rewrites_rex_r_and_unknown_neighbours() {
        // REX.R (0x44, 0x4C) makes any reg field 8 or more.
        assert_eq!(fixed(&[0x44, 0x8E, 0xD8, 0x4C, 0x8E, 0x00]).1, 2);
        // At the ends the neighbour is unknown.
        assert_eq!(
            fixed(&[0x8E, 0xD8, 0x90, 0x8E]),
            (vec![0x90, 0xD8, 0x90, 0x90], 2)
        );
    }
}
