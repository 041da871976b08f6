//! Simulated CPUs. Each has a `struct pcpu` (`pc_curthread` at 0, `pc_cpuid` at 60) that
//! `%gs` points at while "kernel" code runs on it (user space may set its GS base with
//! `arch_prctl`), and an MSR file. The module's privileged instructions trap: `RDMSR`/`WRMSR`
//! raise `SIGSEGV` (#GP in user mode) and are emulated on the current CPU's MSRs; each
//! `CPUID` was replaced by `UD2` at load time and is emulated in the `SIGILL` handler as the
//! host's CPUID plus AMD SVM with nested paging.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of simulated CPUs.
pub const NCPU: usize = 4;
const PCPU_SIZE: u64 = 0x400;
const PC_CPUID: u64 = 60;
/// MSRs the backend uses.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `VM_HSAVE_PA`.
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
/// `EFER.SVME`.
pub const EFER_SVME: u64 = 1 << 12;
const MSR_SLOTS: usize = 32;

static PCPU: [AtomicU64; NCPU] = [const { AtomicU64::new(0) }; NCPU];
/// The CPU "kernel" code currently runs on.
pub static CUR_CPU: AtomicUsize = AtomicUsize::new(0);
/// Critical-section depth of the current thread (critical_enter/exit).
pub static CRIT: AtomicUsize = AtomicUsize::new(0);
/// Emulated instructions, for the report.
pub static EMULATED: AtomicUsize = AtomicUsize::new(0);

/// MSR files: (msr + 1, value) slots per CPU; msr + 1 == 0 means empty.
static MSRS: [[(AtomicU64, AtomicU64); MSR_SLOTS]; NCPU] =
    [const { [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MSR_SLOTS] }; NCPU];

/// The module's text, where traps may be emulated: [start, end).
static TEXT: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));

/// Allocates the pcpu areas and sets every CPU's EFER to a long-mode host value.
pub fn init() {
    for (i, slot) in PCPU.iter().enumerate() {
        let p = crate::mem::kalloc(PCPU_SIZE as usize, "pcpu");
        // SAFETY: a fresh arena block of PCPU_SIZE bytes.
        unsafe { ((p + PC_CPUID) as *mut u32).write(i as u32) };
        slot.store(p, Ordering::Relaxed);
        msr_write(i, MSR_EFER, 0xd01);
    }
}

/// The pcpu area of `cpu`.
pub fn pcpu(cpu: usize) -> u64 {
    PCPU[cpu].load(Ordering::Relaxed)
}

/// Makes `cpu` current for this host thread, running `td`.
pub fn switch_to(cpu: usize, td: u64) {
    let p = pcpu(cpu);
    // SAFETY: `p` is the pcpu area; pc_curthread is at offset 0.
    unsafe { (p as *mut u64).write(td) };
    CUR_CPU.store(cpu, Ordering::Relaxed);
    // SAFETY: sets this thread's GS base; nothing in the harness or std uses %gs.
    let r = unsafe {
        libc::syscall(libc::SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, p)
    };
    assert_eq!(r, 0, "arch_prctl(ARCH_SET_GS)");
}

/// An MSR of `cpu` (0 if never written).
pub fn msr_read(cpu: usize, msr: u32) -> u64 {
    for (k, v) in &MSRS[cpu] {
        if k.load(Ordering::Relaxed) == u64::from(msr) + 1 {
            return v.load(Ordering::Relaxed);
        }
    }
    0
}

/// Sets an MSR of `cpu` (what the host kernel does, e.g. illumos HMA enabling SVM).
#[allow(dead_code, reason = "used by the illumos harness, which includes this file")]
pub fn msr_set(cpu: usize, msr: u32, value: u64) {
    msr_write(cpu, msr, value);
}

fn msr_write(cpu: usize, msr: u32, value: u64) {
    let key = u64::from(msr) + 1;
    for (k, v) in &MSRS[cpu] {
        let cur = k.load(Ordering::Relaxed);
        if cur == key || cur == 0 {
            k.store(key, Ordering::Relaxed);
            v.store(value, Ordering::Relaxed);
            return;
        }
    }
}

/// The emulated CPUID: the host's, plus SVM (0x8000_0001 ECX bit 2) and leaf 0x8000_000A
/// (revision 1, 64 ASIDs, nested paging).
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    let mut v = [r.eax, r.ebx, r.ecx, r.edx];
    match leaf {
        0x8000_0000 => v[0] = v[0].max(0x8000_000a),
        0x8000_0001 => v[2] |= 1 << 2,
        0x8000_000a => v = [1, 64, 0, 1],
        _ => {}
    }
    v
}

const REG_RAX: usize = libc::REG_RAX as usize;
const REG_RBX: usize = libc::REG_RBX as usize;
const REG_RCX: usize = libc::REG_RCX as usize;
const REG_RDX: usize = libc::REG_RDX as usize;
const REG_RIP: usize = libc::REG_RIP as usize;

extern "C" fn on_trap(sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext for an SA_SIGINFO handler.
    let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
    let g = &mut uc.uc_mcontext.gregs;
    let rip = g[REG_RIP] as u64;
    let (lo, hi) = (
        TEXT.0.load(Ordering::Relaxed),
        TEXT.1.load(Ordering::Relaxed),
    );
    if rip >= lo && rip + 2 <= hi {
        // SAFETY: rip is inside the module's mapped text.
        let op = unsafe { [(rip as *const u8).read(), ((rip + 1) as *const u8).read()] };
        let cpu = CUR_CPU.load(Ordering::Relaxed);
        let handled = match (sig, op) {
            (libc::SIGILL, [0x0f, 0x0b]) => {
                let v = cpuid(g[REG_RAX] as u32, g[REG_RCX] as u32);
                g[REG_RAX] = i64::from(v[0]);
                g[REG_RBX] = i64::from(v[1]);
                g[REG_RCX] = i64::from(v[2]);
                g[REG_RDX] = i64::from(v[3]);
                true
            }
            (libc::SIGSEGV, [0x0f, 0x32]) => {
                let v = msr_read(cpu, g[REG_RCX] as u32);
                g[REG_RAX] = (v & 0xffff_ffff) as i64;
                g[REG_RDX] = (v >> 32) as i64;
                true
            }
            (libc::SIGSEGV, [0x0f, 0x30]) => {
                let v = (g[REG_RAX] as u64 & 0xffff_ffff) | ((g[REG_RDX] as u64) << 32);
                msr_write(cpu, g[REG_RCX] as u32, v);
                true
            }
            _ => false,
        };
        if handled {
            EMULATED.fetch_add(1, Ordering::Relaxed);
            g[REG_RIP] += 2;
            return;
        }
    }
    // Not ours: die of the signal.
    // SAFETY: restores the default action and returns, re-executing the faulting instruction.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Installs the trap handlers for the module text `[lo, hi)`.
pub fn install_traps(lo: u64, hi: u64) {
    TEXT.0.store(lo, Ordering::Relaxed);
    TEXT.1.store(hi, Ordering::Relaxed);
    for sig in [libc::SIGILL, libc::SIGSEGV] {
        // SAFETY: a zeroed sigaction with our SA_SIGINFO handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_trap as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
        }
    }
}

/// Offsets of `cpuid` instructions in section `.text` of `ko`, from llvm-objdump's
/// disassembly.
pub fn cpuid_sites(ko: &std::path::Path) -> Result<Vec<u64>, String> {
    let out = std::process::Command::new("llvm-objdump")
        .args(["-d", "--no-show-raw-insn", "--section=.text"])
        .arg(ko)
        .output()
        .map_err(|e| format!("llvm-objdump: {e}"))?;
    if !out.status.success() {
        return Err("llvm-objdump failed".into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for l in text.lines() {
        let Some((addr, insn)) = l.split_once(':') else {
            continue;
        };
        if insn.trim() == "cpuid" {
            if let Ok(a) = u64::from_str_radix(addr.trim(), 16) {
                v.push(a);
            }
        }
    }
    Ok(v)
}
