//! Guests the suite builds itself: memory layout, mode setup (real, 32-bit protected, 64-bit
//! long mode with its own page tables), a tiny machine-code builder, and running a vCPU under a
//! watchdog.
//!
//! Guest physical layout (one 2 MiB RAM slot, slot 0, at GPA 0):
//!
//! | GPA       | what                                                         |
//! |-----------|--------------------------------------------------------------|
//! | `0x1000`  | [`CODE`]: the code of vCPU 0                                 |
//! | `0x9000`  | [`DATA`]: scratch data                                       |
//! | `0xf000`  | [`STACK_TOP`]: initial stack pointer                         |
//! | `0x10000` | [`GDT`]: null, code32, data, code64, TSS descriptors         |
//! | `0x11000` | [`IDT`]: empty (IDTR limit 0) unless a case writes one       |
//! | `0x20000` | [`PML4`], then PDPT and PD: 2 MiB pages identity-mapping 1 GiB |
//! | `0x30000` | [`CODE_N`]: code of vCPU *n* at `0x30000 + n * 0x1000`       |
//!
//! [`MMIO`] (256 MiB) is identity-mapped but has no memslot.

use crate::harness::{Ctx, OrFail, exit_name};
use kvmport_client::{Errno, GuestMem, Kvm, RunMap, Vcpu, Vm};
use kvmport_core::abi::x86::{KvmDtable, KvmRegs, KvmSegment, KvmSregs};
use kvmport_core::abi::{KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_MMIO, KvmRunExitIo, KvmRunExitMmio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Size of guest RAM (slot 0 at GPA 0).
pub const RAM: u64 = 2 << 20;
/// GPA of vCPU 0's code.
pub const CODE: u64 = 0x1000;
/// GPA of scratch data.
pub const DATA: u64 = 0x9000;
/// Initial stack pointer.
pub const STACK_TOP: u64 = 0xf000;
/// GPA of the GDT.
pub const GDT: u64 = 0x10000;
/// GPA of the IDT.
pub const IDT: u64 = 0x11000;
/// GPA of the PML4 (the PDPT and PD follow, one page each).
pub const PML4: u64 = 0x20000;
/// GPA of the code of the extra vCPUs of the multi-vCPU cases.
pub const CODE_N: u64 = 0x30000;
/// An identity-mapped GPA with no memslot.
pub const MMIO: u64 = 0x1000_0000;

/// GDT selector of the 32-bit code segment.
pub const SEL_CODE32: u16 = 0x08;
/// GDT selector of the data segment.
pub const SEL_DATA: u16 = 0x10;
/// GDT selector of the 64-bit code segment.
pub const SEL_CODE64: u16 = 0x18;
/// GDT selector of the TSS.
pub const SEL_TSS: u16 = 0x20;

/// CR0.PE.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET.
pub const CR0_ET: u64 = 1 << 4;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;

/// How long a guest may run before the watchdog interrupts it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(5);

/// The CPU mode a guest starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Real mode: CS base at the code, IP 0.
    Real,
    /// 32-bit protected mode, flat segments, no paging.
    Prot32,
    /// 64-bit long mode, identity-mapped with 2 MiB pages.
    Long64,
}

/// A tiny machine-code builder: one call per instruction (opcode bytes, then any little-endian
/// immediate), each followed by a comment with the assembly it encodes.
#[derive(Clone, Debug, Default)]
pub struct Code(pub Vec<u8>);

impl Code {
    /// An empty program.
    pub fn new() -> Code {
        Code(Vec::new())
    }
    /// Appends opcode bytes.
    pub fn op(mut self, b: &[u8]) -> Code {
        self.0.extend_from_slice(b);
        self
    }
    /// Appends opcode bytes and an 8-bit immediate.
    pub fn op_b(self, b: &[u8], imm: u8) -> Code {
        self.op(b).op(&[imm])
    }
    /// Appends opcode bytes and a 16-bit immediate.
    pub fn op_w(self, b: &[u8], imm: u16) -> Code {
        self.op(b).op(&imm.to_le_bytes())
    }
    /// Appends opcode bytes and a 32-bit immediate.
    pub fn op_d(self, b: &[u8], imm: u32) -> Code {
        self.op(b).op(&imm.to_le_bytes())
    }
    /// Appends opcode bytes and a 64-bit immediate.
    pub fn op_q(self, b: &[u8], imm: u64) -> Code {
        self.op(b).op(&imm.to_le_bytes())
    }
    /// Appends opcode bytes, a 16-bit displacement and an 8-bit immediate.
    pub fn op_wb(self, b: &[u8], disp: u16, imm: u8) -> Code {
        self.op_w(b, disp).op(&[imm])
    }
    /// The current length (the offset of the next instruction).
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no byte was emitted yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A segment covering 4 GiB from 0 with the given selector and type.
fn flat(selector: u16, ty: u8, db: u8, l: u8) -> KvmSegment {
    KvmSegment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        r#type: ty,
        present: 1,
        dpl: 0,
        db,
        s: 1,
        l,
        g: 1,
        ..Default::default()
    }
}

/// Writes the GDT and the identity-mapping page tables into `mem`.
pub fn write_tables(mem: &GuestMem) {
    // GDT: 0 null; 0x08 code32 (base 0, limit 4G, G, D, P, type 0xb);
    // 0x10 data (type 3, D); 0x18 code64 (L); 0x20 32-bit TSS (type 0xb busy, limit 0x67).
    let gdt: [u64; 5] = [
        0,
        0x00cf_9b00_0000_ffff,
        0x00cf_9300_0000_ffff,
        0x00af_9b00_0000_ffff,
        0x0000_8b00_0000_0067 | ((IDT + 0x800) & 0xff_ffff) << 16,
    ];
    for (i, d) in gdt.iter().enumerate() {
        mem.write_obj(GDT + 8 * i as u64, d);
    }
    // PML4[0] -> PDPT, PDPT[0] -> PD (present, writable); PD[i] = 2 MiB page i (P, RW, PS).
    let pdpt = PML4 + 0x1000;
    let pd = PML4 + 0x2000;
    mem.write_obj(PML4, &(pdpt | 0x3));
    mem.write_obj(pdpt, &(pd | 0x3));
    for i in 0..512u64 {
        mem.write_obj(pd + 8 * i, &((i << 21) | 0x83));
    }
}

/// Gives `vcpu` the CPUID table `KVM_GET_SUPPORTED_CPUID` reports, as a VMM does before it
/// loads any register state.
///
/// Upstream checks CR4 and EFER against the vCPU's guest CPUID (`kvm_is_valid_cr4`, the EFER
/// checks): until CPUID advertises PAE, long mode, etc., `KVM_SET_SREGS` treats those bits as
/// reserved and fails with `EINVAL`. Call it once, before the vCPU first runs.
pub fn set_supported_cpuid(kvm: &Kvm, vcpu: &Vcpu) -> Result<(), String> {
    let mut b = kvm
        .supported_cpuid(256)
        .ctx("GET_SUPPORTED_CPUID nent=256")?;
    vcpu.set_cpuid2(&mut b).ctx("SET_CPUID2 (supported)")?;
    Ok(())
}

/// Sets up a new vCPU: gives it the supported CPUID ([`set_supported_cpuid`]), which the
/// protected modes' CR4/EFER need, then [`init_vcpu`].
pub fn setup_vcpu(kvm: &Kvm, vcpu: &Vcpu, mode: Mode, code: u64) -> Result<(), String> {
    set_supported_cpuid(kvm, vcpu)?;
    init_vcpu(vcpu, mode, code)
}

/// Puts `vcpu` in `mode` with its first instruction at GPA `code` (tables from
/// [`write_tables`] must be in memory for the protected modes) and the stack at `STACK_TOP`.
/// The vCPU must already have its CPUID (see [`setup_vcpu`]) for the protected modes.
pub fn init_vcpu(vcpu: &Vcpu, mode: Mode, code: u64) -> Result<(), String> {
    let mut s = vcpu.get_sregs().ctx("GET_SREGS")?;
    let mut r = KvmRegs {
        rflags: 0x2,
        rsp: STACK_TOP,
        ..Default::default()
    };
    match mode {
        Mode::Real => {
            // CS:IP = (code >> 4):0, i.e. base = code.
            s.cs.selector = (code >> 4) as u16;
            s.cs.base = code & !0xf;
            r.rip = code & 0xf;
        }
        Mode::Prot32 | Mode::Long64 => {
            s.gdt = KvmDtable {
                base: GDT,
                limit: 5 * 8 - 1,
                ..Default::default()
            };
            s.idt = KvmDtable {
                base: IDT,
                limit: 0,
                ..Default::default()
            };
            let data = flat(SEL_DATA, 3, 1, 0);
            s.ds = data;
            s.es = data;
            s.fs = data;
            s.gs = data;
            s.ss = data;
            s.tr = KvmSegment {
                base: IDT + 0x800,
                limit: 0x67,
                selector: SEL_TSS,
                r#type: 0xb,
                present: 1,
                ..Default::default()
            };
            s.ldt = KvmSegment {
                r#type: 2,
                present: 1,
                limit: 0xffff,
                ..Default::default()
            };
            r.rip = code;
            if mode == Mode::Prot32 {
                s.cs = flat(SEL_CODE32, 0xb, 1, 0);
                s.cr0 = CR0_PE | CR0_ET;
            } else {
                s.cs = flat(SEL_CODE64, 0xb, 0, 1);
                s.cr3 = PML4;
                s.cr4 = CR4_PAE;
                s.efer = EFER_LME | EFER_LMA;
                s.cr0 = CR0_PE | CR0_ET | CR0_PG;
            }
        }
    }
    vcpu.set_sregs(&s).ctx("SET_SREGS")?;
    vcpu.set_regs(&r).ctx("SET_REGS")?;
    Ok(())
}

/// A thread of this process that other threads may signal.
#[derive(Clone, Copy)]
pub struct ThreadHandle(libc::pthread_t);

// SAFETY: a pthread_t names a thread of the process; it may be used from any thread of it
// (on musl it is a pointer, which is why the auto traits are missing).
unsafe impl Send for ThreadHandle {}
// SAFETY: as above; the handle is only copied and passed to pthread_kill.
unsafe impl Sync for ThreadHandle {}

impl ThreadHandle {
    /// The calling thread.
    pub fn current() -> ThreadHandle {
        // SAFETY: pthread_self has no preconditions.
        ThreadHandle(unsafe { libc::pthread_self() })
    }

    /// Sends `SIGUSR1` (whose handler does nothing) to the thread.
    ///
    /// The thread must still be running: callers signal only threads that outlive them (a
    /// scoped thread signalling the thread that owns its scope).
    pub fn kick(self) {
        // SAFETY: per the contract above the thread is alive, and SIGUSR1 has a no-op handler
        // installed (main.rs) so it only interrupts a blocking call.
        unsafe { libc::pthread_kill(self.0, libc::SIGUSR1) };
    }
}

/// Runs `vcpu` once. A watchdog thread sets `immediate_exit` and sends `SIGUSR1` (whose handler
/// does nothing) if the guest is still running after [`RUN_TIMEOUT`]; that is reported as an
/// `Err`. Otherwise returns what `KVM_RUN` returned.
pub fn run_guarded(vcpu: &Vcpu, run: &RunMap) -> Result<Result<i64, Errno>, String> {
    let fired = AtomicBool::new(false);
    let me = ThreadHandle::current();
    let (tx, rx) = mpsc::channel::<()>();
    let r = std::thread::scope(|sc| {
        let fired = &fired;
        sc.spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(RUN_TIMEOUT) {
                fired.store(true, Ordering::SeqCst);
                run.set_immediate_exit(1);
                // `me` owns this scope, so it outlives this thread.
                me.kick();
            }
        });
        let r = vcpu.run();
        drop(tx);
        r
    });
    if fired.load(Ordering::SeqCst) {
        run.set_immediate_exit(0);
        return Err(format!(
            "guest still running after {RUN_TIMEOUT:?} (KVM_RUN gave {r:?})"
        ));
    }
    Ok(r)
}

/// A VM with 2 MiB of RAM at GPA 0 and one vCPU set up in a mode, running code the suite wrote.
pub struct Guest {
    /// The system fd.
    pub kvm: Kvm,
    /// The VM.
    pub vm: Vm,
    /// vCPU 0.
    pub vcpu: Vcpu,
    /// vCPU 0's `kvm_run` mapping.
    pub run: RunMap,
    /// Guest RAM (slot 0).
    pub mem: GuestMem,
}

impl Guest {
    /// A fresh VM with RAM in slot 0 (flags `slot_flags`), `code` at [`CODE`], and vCPU 0 in
    /// `mode` about to execute it.
    pub fn with_flags(
        ctx: &Ctx,
        mode: Mode,
        code: &Code,
        slot_flags: u32,
    ) -> Result<Guest, String> {
        Self::with_hook(ctx, mode, code, slot_flags, |_| Ok(()))
    }

    /// [`Guest::with_flags`], calling `hook` on the VM before any memslot or vCPU exists.
    pub fn with_hook(
        ctx: &Ctx,
        mode: Mode,
        code: &Code,
        slot_flags: u32,
        hook: impl FnOnce(&Vm) -> Result<(), String>,
    ) -> Result<Guest, String> {
        let (kvm, vm) = ctx.vm()?;
        hook(&vm)?;
        let mem = GuestMem::new(RAM as usize).ctx("mmap guest RAM")?;
        write_tables(&mem);
        mem.write(CODE, &code.0);
        vm.add_memory(0, slot_flags, 0, &mem)
            .ctx("SET_USER_MEMORY_REGION slot 0")?;
        let vcpu = vm.create_vcpu(0).ctx("CREATE_VCPU 0")?;
        let size = kvm.vcpu_mmap_size().ctx("GET_VCPU_MMAP_SIZE")?;
        let run = vcpu.map_run(size).ctx("mmap vCPU")?;
        setup_vcpu(&kvm, &vcpu, mode, CODE)?;
        Ok(Guest {
            kvm,
            vm,
            vcpu,
            run,
            mem,
        })
    }

    /// [`Guest::with_flags`] with slot flags 0.
    pub fn new(ctx: &Ctx, mode: Mode, code: &Code) -> Result<Guest, String> {
        Self::with_flags(ctx, mode, code, 0)
    }

    /// `KVM_RUN` under the watchdog; `Err` on timeout or failure, else the exit reason.
    pub fn run(&self) -> Result<u32, String> {
        run_guarded(&self.vcpu, &self.run)?.ctx("KVM_RUN")?;
        Ok(self.run.exit_reason())
    }

    /// `KVM_RUN` under the watchdog; `Err` on timeout, else what `KVM_RUN` returned.
    pub fn run_raw(&self) -> Result<Result<i64, Errno>, String> {
        run_guarded(&self.vcpu, &self.run)
    }

    /// Runs and requires exit `want`.
    pub fn run_expect(&self, want: u32, what: &str) -> Result<(), String> {
        let got = self.run()?;
        if got != want {
            return Err(format!(
                "{what}: exit {}, want {}{}",
                exit_name(got),
                exit_name(want),
                self.exit_detail(got)
            ));
        }
        Ok(())
    }

    /// Extra detail about an unexpected exit, for messages.
    pub fn exit_detail(&self, reason: u32) -> String {
        use kvmport_core::abi::KVM_EXIT_INTERNAL_ERROR;
        let rip = self.vcpu.get_regs().map(|r| r.rip).unwrap_or(u64::MAX);
        match reason {
            KVM_EXIT_IO => format!(" (rip {rip:#x}, {:?})", self.run.io()),
            KVM_EXIT_MMIO => format!(" (rip {rip:#x}, {:?})", self.run.mmio()),
            KVM_EXIT_INTERNAL_ERROR => {
                let i = self.run.internal();
                let n = (i.ndata as usize).min(i.data.len());
                format!(
                    " (rip {rip:#x}, suberror {}, data {:x?})",
                    i.suberror,
                    &i.data[..n]
                )
            }
            _ => format!(" (rip {rip:#x})"),
        }
    }

    /// Runs and requires `KVM_EXIT_HLT`.
    pub fn run_hlt(&self) -> Result<(), String> {
        self.run_expect(KVM_EXIT_HLT, "expected HLT")
    }

    /// Runs and requires a `KVM_EXIT_IO` with the given direction, size, port and count.
    pub fn run_io(&self, dir: u8, size: u8, port: u16, count: u32) -> Result<KvmRunExitIo, String> {
        self.run_expect(KVM_EXIT_IO, &format!("expected IO on port {port:#x}"))?;
        let io = self.run.io();
        let want = (dir, size, port, count);
        let got = (io.direction, io.size, io.port, io.count);
        if got != want {
            return Err(format!(
                "IO exit (direction, size, port, count): got {got:?}, want {want:?}"
            ));
        }
        Ok(io)
    }

    /// Runs and requires a `KVM_EXIT_MMIO` at `gpa` with the given length and direction.
    pub fn run_mmio(&self, gpa: u64, len: u32, is_write: bool) -> Result<KvmRunExitMmio, String> {
        self.run_expect(KVM_EXIT_MMIO, &format!("expected MMIO at {gpa:#x}"))?;
        let m = self.run.mmio();
        let got = (m.phys_addr, m.len, m.is_write);
        let want = (gpa, len, u8::from(is_write));
        if got != want {
            return Err(format!(
                "MMIO exit (phys_addr, len, is_write): got {got:x?}, want {want:x?}"
            ));
        }
        Ok(m)
    }

    /// `KVM_GET_REGS`.
    pub fn regs(&self) -> Result<KvmRegs, String> {
        self.vcpu.get_regs().ctx("GET_REGS")
    }

    /// `KVM_GET_SREGS`.
    pub fn sregs(&self) -> Result<KvmSregs, String> {
        self.vcpu.get_sregs().ctx("GET_SREGS")
    }
}
