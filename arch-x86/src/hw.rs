//! Hardware access: CPUID, MSRs and the TSC, behind a trait so that host tests can replace the
//! real instructions with a fake.
//!
//! MSR numbers and bits are from the AMD64 Architecture Programmer's Manual, vol. 2
//! ("SVM related MSRs", "Extended Feature Enable Register") and vol. 3 (`RDMSR`/`WRMSR`).

use crate::cpuid::Leaf;

/// `EFER`: extended feature enable register.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `EFER.SCE`: system call extensions.
pub const EFER_SCE: u64 = 1 << 0;
/// `EFER.LME`: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// `EFER.LMA`: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// `EFER.NXE`: no-execute enable.
pub const EFER_NX: u64 = 1 << 11;
/// `EFER.SVME`: secure virtual machine enable.
pub const EFER_SVME: u64 = 1 << 12;
/// `EFER.FFXSR`: fast `FXSAVE`/`FXRSTOR`.
pub const EFER_FFXSR: u64 = 1 << 14;

/// `VM_CR`: SVM control register.
pub const MSR_VM_CR: u32 = 0xc001_0114;
/// `VM_CR.SVMDIS`: SVM disabled by firmware.
pub const VM_CR_SVMDIS: u64 = 1 << 4;
/// `VM_HSAVE_PA`: physical address of the host state-save area used by `VMRUN`.
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

/// `PATCH_LEVEL` / `IA32_UCODE_REV`: the microcode revision (a feature MSR).
pub const MSR_UCODE_REV: u32 = 0x8b;

/// Access to the processor. One value lives in the backend for the module's lifetime.
///
/// MSR access is `unsafe`: reading an MSR the processor lacks raises `#GP`, and writing one
/// changes the host's own execution environment.
pub trait Hw: Send + Sync + Sized + 'static {
    /// Creates the handle; the backend calls this once, when it is probed.
    fn new() -> Self;
    /// `CPUID` with `EAX = leaf`, `ECX = subleaf` on the current CPU.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Leaf;
    /// `RDMSR` on the current CPU.
    ///
    /// # Safety
    /// `msr` must exist on this processor (its presence established from CPUID).
    unsafe fn rdmsr(&self, msr: u32) -> u64;
    /// `WRMSR` on the current CPU.
    ///
    /// # Safety
    /// `msr` must exist, `value` must be valid for it, and the write must not break the host:
    /// the caller owns the state it changes (here only `EFER.SVME` and `VM_HSAVE_PA`, with
    /// preemption disabled on the CPU concerned).
    unsafe fn wrmsr(&self, msr: u32, value: u64);
    /// `RDTSC` on the current CPU.
    fn rdtsc(&self) -> u64;
}

/// The real processor.
#[derive(Debug, Default)]
pub struct RealHw;

impl Hw for RealHw {
    fn new() -> Self {
        RealHw
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> Leaf {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        Leaf {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    unsafe fn rdmsr(&self, msr: u32) -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: the caller guarantees `msr` exists on this processor, so `RDMSR` does not
        // fault; the instruction only writes EAX/EDX, touches no memory and keeps the flags.
        unsafe {
            core::arch::asm!(
                "rdmsr",
                in("ecx") msr,
                out("eax") lo,
                out("edx") hi,
                options(nomem, nostack, preserves_flags),
            );
        }
        (u64::from(hi) << 32) | u64::from(lo)
    }

    unsafe fn wrmsr(&self, msr: u32, value: u64) {
        // CAST: split into the EDX:EAX halves WRMSR takes.
        let lo = value as u32;
        let hi = (value >> 32) as u32;
        // SAFETY: the caller guarantees `msr` exists and `value` is valid for it and owns the
        // state the write changes; `WRMSR` touches no memory and keeps the flags.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") msr,
                in("eax") lo,
                in("edx") hi,
                options(nostack, preserves_flags),
            );
        }
    }

    fn rdtsc(&self) -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: `RDTSC` exists on every x86-64 processor, only writes EAX/EDX and reads no
        // memory. (CR4.TSD only restricts it at CPL 3; this runs in the kernel.)
        unsafe {
            core::arch::asm!(
                "rdtsc",
                out("eax") lo,
                out("edx") hi,
                options(nomem, nostack, preserves_flags),
            );
        }
        (u64::from(hi) << 32) | u64::from(lo)
    }
}
