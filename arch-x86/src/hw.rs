//! Hardware access: CPUID, MSRs and the TSC, behind a trait so that host tests can replace the
//! real instructions with a fake.
//!
//! MSR numbers and bits are from the AMD64 Architecture Programmer's Manual, vol. 2
//! ("SVM related MSRs", "Extended Feature Enable Register") and vol. 3 (`RDMSR`/`WRMSR`).

use kvmport_core::abi::x86::KvmRegs;

use crate::cpuid::Leaf;

// The world switch addresses `KvmRegs` fields by offset.
const _: () = {
    assert!(core::mem::offset_of!(KvmRegs, rbx) == 8);
    assert!(core::mem::offset_of!(KvmRegs, rcx) == 16);
    assert!(core::mem::offset_of!(KvmRegs, rdx) == 24);
    assert!(core::mem::offset_of!(KvmRegs, rsi) == 32);
    assert!(core::mem::offset_of!(KvmRegs, rdi) == 40);
    assert!(core::mem::offset_of!(KvmRegs, rbp) == 56);
    assert!(core::mem::offset_of!(KvmRegs, r8) == 64);
    assert!(core::mem::offset_of!(KvmRegs, r15) == 120);
};

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

    /// Whether [`Hw::world_switch`] really enters a guest (false for fakes: the backend then
    /// refuses `KVM_RUN` with `ENOSYS`).
    fn can_world_switch(&self) -> bool {
        false
    }

    /// `CLGI`: masks interrupts (and NMIs) globally on the current CPU.
    ///
    /// # Safety
    /// SVM must be enabled on the current CPU; the caller must call [`Hw::stgi`] on the same
    /// CPU, with preemption disabled in between.
    unsafe fn clgi(&self) {}

    /// `STGI`: unmasks interrupts globally again.
    ///
    /// # Safety
    /// SVM must be enabled on the current CPU.
    unsafe fn stgi(&self) {}

    /// The world switch: `VMSAVE` of the host into `host_pa`, `VMLOAD` and `VMRUN` of the
    /// guest VMCB at `vmcb_pa` with the guest's RBX, RCX, RDX, RSI, RDI, RBP and R8-R15 taken
    /// from `*regs`, then, after `#VMEXIT`, those registers stored back into `*regs`,
    /// `VMSAVE` of the guest and `VMLOAD` of the host. The host's DR7 is kept.
    ///
    /// # Safety
    /// Called between [`Hw::clgi`] and [`Hw::stgi`] on a CPU where SVM is enabled and whose
    /// `VM_HSAVE_PA` is set; `vmcb_pa` is a VMCB page with a valid guest, `host_pa` a page this
    /// CPU owns, and `regs` points to a `KvmRegs` valid for reads and writes. `vmcb` is the
    /// VMCB's memory as the caller sees it (the processor reads and writes it during the
    /// call), or null when the VMCB is a page the caller only copies to and from.
    unsafe fn world_switch(&self, vmcb_pa: u64, host_pa: u64, regs: *mut KvmRegs, vmcb: *mut u8) {
        let _ = (vmcb_pa, host_pa, regs, vmcb);
    }

    /// `XGETBV` of `XCR0` (0 for fakes and processors without `XSAVE`).
    fn xcr0(&self) -> u64 {
        0
    }

    /// `XSETBV` of `XCR0`.
    ///
    /// # Safety
    /// The processor has `XSAVE` with `CR4.OSXSAVE` set, `value` is a valid `XCR0` for it, and
    /// the caller owns the FPU registers (between `Os::fpu_begin` and `Os::fpu_end`) and puts
    /// the host's value back before giving them up.
    unsafe fn set_xcr0(&self, value: u64) {
        let _ = value;
    }

    /// Loads the FPU/SIMD registers from `img`: `XRSTOR` of the components in `mask` when
    /// `xsave` is true, else `FXRSTOR` of the x87/SSE state.
    ///
    /// # Safety
    /// The caller owns the FPU registers (`Os::fpu_begin`); `img` is a standard-format image
    /// that passed the `KVM_SET_XSAVE` checks (no header or `MXCSR` bits the processor
    /// refuses) and `mask` is within the current `XCR0`.
    unsafe fn fpu_load(&self, img: &XsaveArea, mask: u64, xsave: bool) {
        let _ = (img, mask, xsave);
    }

    /// Stores the FPU/SIMD registers into `img` (`XSAVE` of `mask`, or `FXSAVE`).
    ///
    /// # Safety
    /// As for [`Hw::fpu_load`]: the caller owns the FPU registers and `mask` is within `XCR0`.
    unsafe fn fpu_store(&self, img: &mut XsaveArea, mask: u64, xsave: bool) {
        let _ = (img, mask, xsave);
    }
}

/// A 64-byte aligned XSAVE image of [`XSAVE_AREA_SIZE`] bytes, the form `XSAVE`, `XRSTOR`,
/// `FXSAVE` and `FXRSTOR` require. [`XsaveArea::bytes`] views it as the standard-format image
/// `KVM_GET_XSAVE` carries.
#[derive(Debug, Clone)]
pub struct XsaveArea(alloc::vec::Vec<XsaveChunk>);

/// One 64-byte aligned piece of an [`XsaveArea`].
#[derive(Debug, Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C, align(64))]
pub struct XsaveChunk([u8; 64]);

/// Size of an [`XsaveArea`]: the 4 KiB of `struct kvm_xsave`.
pub const XSAVE_AREA_SIZE: usize = 4096;

impl XsaveArea {
    /// A zeroed image (`ENOMEM` if it cannot be allocated).
    pub fn new() -> kvmport_core::KResult<XsaveArea> {
        kvmport_core::kalloc::vec_filled(XSAVE_AREA_SIZE / 64, XsaveChunk([0; 64])).map(XsaveArea)
    }

    /// The image as bytes.
    pub fn bytes(&self) -> &[u8] {
        zerocopy::IntoBytes::as_bytes(self.0.as_slice())
    }

    /// The image as mutable bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        zerocopy::IntoBytes::as_mut_bytes(self.0.as_mut_slice())
    }
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

    fn can_world_switch(&self) -> bool {
        true
    }

    unsafe fn clgi(&self) {
        // SAFETY: the caller guarantees SVM is enabled here (so CLGI does not raise #UD) and
        // that STGI follows on this CPU; CLGI touches no memory.
        unsafe { core::arch::asm!("clgi", options(nomem, nostack)) }
    }

    unsafe fn stgi(&self) {
        // SAFETY: SVM is enabled here (caller); STGI only sets GIF, which lets the interrupts
        // held pending since CLGI or #VMEXIT be taken.
        unsafe { core::arch::asm!("stgi", options(nomem, nostack)) }
    }

    unsafe fn world_switch(&self, vmcb_pa: u64, host_pa: u64, regs: *mut KvmRegs, vmcb: *mut u8) {
        // SAFETY: the caller guarantees GIF is clear, SVM and VM_HSAVE_PA are set up, both
        // pages are valid for VMSAVE/VMLOAD/VMRUN and `regs` is valid (offsets checked by the
        // assertions above). RBX and RBP, which cannot be declared clobbered, are saved on the
        // stack with the three pointers; every other general register is declared clobbered.
        // The pushes and pops are balanced, so RSP is unchanged at the end. VMRUN restores the
        // host's RAX (the VMCB address), RSP and RIP on #VMEXIT. #VMEXIT disables the
        // host's breakpoints, so DR7 is saved first and written back last.
        unsafe {
            core::arch::asm!(
                "mov rax, dr7",
                "push rax",
                "push rbx",
                "push rbp",
                "push rdi",
                "push rsi",
                "push rdx",
                "mov rax, rsi",
                "vmsave rax",
                "mov rax, rdx",
                "vmload rax",
                "mov rbx, [rdi + 8]",
                "mov rcx, [rdi + 16]",
                "mov rdx, [rdi + 24]",
                "mov rsi, [rdi + 32]",
                "mov rbp, [rdi + 56]",
                "mov r8, [rdi + 64]",
                "mov r9, [rdi + 72]",
                "mov r10, [rdi + 80]",
                "mov r11, [rdi + 88]",
                "mov r12, [rdi + 96]",
                "mov r13, [rdi + 104]",
                "mov r14, [rdi + 112]",
                "mov r15, [rdi + 120]",
                "mov rdi, [rdi + 40]",
                "vmrun rax",
                "push rdi",
                "mov rdi, [rsp + 24]",
                "mov [rdi + 8], rbx",
                "mov [rdi + 16], rcx",
                "mov [rdi + 24], rdx",
                "mov [rdi + 32], rsi",
                "mov [rdi + 56], rbp",
                "mov [rdi + 64], r8",
                "mov [rdi + 72], r9",
                "mov [rdi + 80], r10",
                "mov [rdi + 88], r11",
                "mov [rdi + 96], r12",
                "mov [rdi + 104], r13",
                "mov [rdi + 112], r14",
                "mov [rdi + 120], r15",
                "pop rax",
                "mov [rdi + 40], rax",
                "pop rax",
                "vmsave rax",
                "pop rax",
                "vmload rax",
                "pop rdi",
                "pop rbp",
                "pop rbx",
                "pop rax",
                "mov dr7, rax",
                inout("rdi") regs => _,
                inout("rsi") host_pa => _,
                inout("rdx") vmcb_pa => _,
                out("rax") _,
                // The VMCB's memory, which VMRUN and #VMEXIT read and write: handed to the
                // block so the compiler knows it may change (the register is overwritten).
                inout("rcx") vmcb => _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
            );
        }
    }

    fn xcr0(&self) -> u64 {
        if core::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
            return 0;
        }
        let (lo, hi): (u32, u32);
        // SAFETY: CPUID.1:ECX.OSXSAVE says the OS enabled XGETBV (CR4.OSXSAVE); ECX = 0
        // names XCR0, which always exists; the instruction only writes EAX/EDX.
        unsafe {
            core::arch::asm!(
                "xgetbv",
                in("ecx") 0u32,
                out("eax") lo,
                out("edx") hi,
                options(nomem, nostack, preserves_flags),
            );
        }
        (u64::from(hi) << 32) | u64::from(lo)
    }

    unsafe fn set_xcr0(&self, value: u64) {
        // CAST: split into EDX:EAX.
        let (lo, hi) = (value as u32, (value >> 32) as u32);
        // SAFETY: the caller guarantees XSAVE is enabled, `value` is valid for this processor
        // and that it owns the FPU registers whose management XCR0 controls.
        unsafe {
            core::arch::asm!(
                "xsetbv",
                in("ecx") 0u32,
                in("eax") lo,
                in("edx") hi,
                options(nomem, nostack, preserves_flags),
            );
        }
    }

    unsafe fn fpu_load(&self, img: &XsaveArea, mask: u64, xsave: bool) {
        let p = img.bytes().as_ptr();
        // CAST: split into EDX:EAX.
        let (lo, hi) = (mask as u32, (mask >> 32) as u32);
        // SAFETY: `p` is 64-byte aligned (XsaveChunk) and points to 4 KiB, more than the
        // image for any mask within XCR0 (the probe checks CPUID 0xD); the caller guarantees
        // the header and MXCSR were validated, so neither instruction faults, and that it owns
        // the registers being loaded.
        unsafe {
            if xsave {
                core::arch::asm!(
                    "xrstor64 [{p}]",
                    p = in(reg) p,
                    in("eax") lo,
                    in("edx") hi,
                    options(nostack, readonly, preserves_flags),
                );
            } else {
                core::arch::asm!(
                    "fxrstor64 [{p}]",
                    p = in(reg) p,
                    options(nostack, readonly, preserves_flags),
                );
            }
        }
    }

    unsafe fn fpu_store(&self, img: &mut XsaveArea, mask: u64, xsave: bool) {
        let p = img.bytes_mut().as_mut_ptr();
        // CAST: split into EDX:EAX.
        let (lo, hi) = (mask as u32, (mask >> 32) as u32);
        // SAFETY: as for `fpu_load`: `p` is 64-byte aligned and large enough, the caller owns
        // the registers; XSAVE/FXSAVE only write the image.
        unsafe {
            if xsave {
                core::arch::asm!(
                    "xsave64 [{p}]",
                    p = in(reg) p,
                    in("eax") lo,
                    in("edx") hi,
                    options(nostack, preserves_flags),
                );
            } else {
                core::arch::asm!(
                    "fxsave64 [{p}]",
                    p = in(reg) p,
                    options(nostack, preserves_flags),
                );
            }
        }
    }
}
