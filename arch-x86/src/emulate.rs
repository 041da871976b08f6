//! MMIO emulation for a nested page fault without decode assists, and the register side of
//! string port I/O.
//!
//! Flow for MMIO: [`start`] fetches the instruction at CS:RIP (through the guest's paging),
//! decodes it and returns an [`MmioPlan`]: one access (`gpa`, `len`, read or write data) for
//! user space, as [`MmioPlan::exit`]. When user space has done it, [`complete`] applies the
//! result to the registers and either finishes the instruction (`Ok(None)`: RIP advanced) or
//! returns the next access (read-modify-write forms need a read, then a write). Data moves
//! one element per exit, as KVM does.
//!
//! Backend use: on a nested page fault that resolves to MMIO, build a [`CpuCtx`] from the
//! stored guest state, call [`start`] and keep the plan; return [`MmioPlan::exit`]. When
//! `KVM_RUN` hands back `Completion::Mmio`, call [`complete`]; if it returns another plan,
//! that access must go to user space before the guest runs again. A [`Failure`] becomes
//! `KVM_EXIT_INTERNAL_ERROR` with [`Failure::emulation_failure`] (or, for
//! [`EmuError::Fault`] with a page fault, the `#PF` can be injected instead). The
//! [`GuestMem`] the backend passes reads and writes guest RAM by guest physical address.
//!
//! Emulated (memory operand only; register forms never fault):
//! - `MOV` `88`, `89`, `8A`, `8B`, `C6 /0`, `C7 /0`, `A0`-`A3` (`moffs`), `MOVZX`/`MOVSX`
//!   (`0F B6`, `B7`, `BE`, `BF`), `MOVSXD` (`63` in 64-bit mode; with REX.W it sign-extends),
//!   `MOVNTI` (`0F C3`);
//! - `XCHG` `86`/`87` (a read, then a write);
//! - `ADD`/`OR`/`ADC`/`SBB`/`AND`/`SUB`/`XOR`/`CMP` (`00`-`3B` ModRM forms, `80`, `81`,
//!   `83`), `TEST` (`84`, `85`, `F6`/`F7` `/0` and `/1`), `NOT`/`NEG` (`F6`/`F7` `/2`, `/3`)
//!   and `INC`/`DEC` (`FE`/`FF` `/0`, `/1`), with CF, PF, AF, ZF, SF and OF as the SDM
//!   defines them (AF, undefined for the logical operations, is cleared); `CMP` and `TEST`
//!   only read;
//! - `STOS`, `LODS` and `MOVS` (`AA`-`AD`, `A4`, `A5`), with or without `REP`: one element per
//!   exit; for `REP`, RCX counts down and RIP stays on the instruction until it reaches zero.
//!   `MOVS` reads or writes its other operand in guest RAM through [`GuestMem`], or makes a
//!   second MMIO access if that is not RAM either.
//!
//! Not emulated ([`EmuError::Unsupported`]): everything else, including `LOCK` on `MOV`
//! (`#UD`), `CMPS`/`SCAS`, shifts and rotates, `BT*`, `CMPXCHG`, `XADD`, `MOVBE`,
//! any SSE/AVX (VEX/EVEX) access, stack operations and far/segment loads. Also not done:
//! segment limit and type checks (the hardware made them for the faulting access), accesses
//! that cross a page boundary ([`EmuError::SplitAccess`]), single-step (`RFLAGS.TF`) traps and
//! data breakpoints. `RFLAGS.RF` is cleared when an instruction completes.
//!
//! Register conventions: 8-bit register operands name AH/CH/DH/BH for 4-7 without a REX
//! prefix and SPL/BPL/SIL/DIL with one; 8- and 16-bit writes keep the other bits; 32-bit
//! writes zero-extend to 64 bits. String index/count updates use the address size: 16-bit
//! updates keep bits 63:16; 32-bit updates zero-extend in 64-bit mode and keep bits 63:32
//! elsewhere (they are not visible there). RIP wraps at the IP width of the mode.

use kvmport_core::abi::x86::KvmRegs;
use kvmport_core::abi::{
    KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
    KvmRunExitEmulationFailure,
};
use kvmport_core::arch::Exit;
use kvmport_core::memslot::Gpa;

use crate::decode::{self, DecodeError, Insn, Map, Mode, Seg, sext};
use crate::state::{VcpuState, seg};
use crate::walk::{self, Access, GuestMem, Paging, WalkError, size_mask};

/// RFLAGS bits.
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Parity.
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Direction.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// Resume.
    pub const RF: u64 = 1 << 16;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// The arithmetic flags.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// The vCPU state the emulator needs besides the general registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuCtx {
    /// The code's mode.
    pub mode: Mode,
    /// The paging registers.
    pub paging: Paging,
    /// Segment bases, indexed like [`VcpuState::segs`] ([`crate::state::seg`]).
    pub seg_base: [u64; 6],
    /// Current privilege level.
    pub cpl: u8,
}

impl CpuCtx {
    /// The context of a vCPU whose state was stored from the VMCB.
    pub fn from_state(st: &VcpuState) -> CpuCtx {
        let attr = st.segs.get(seg::CS).map_or(0, |s| s.attrib);
        let mut seg_base = [0u64; 6];
        for (b, s) in seg_base.iter_mut().zip(st.segs.iter()) {
            *b = s.base;
        }
        CpuCtx {
            mode: Mode::from_regs(st.cr0, st.efer, st.regs.rflags, attr),
            paging: Paging::from_state(st),
            seg_base,
            cpl: crate::vmrun::guest_cpl(st),
        }
    }

    /// The base of a segment register.
    pub fn base(&self, s: Seg) -> u64 {
        self.seg_base.get(s.state_index()).copied().unwrap_or(0)
    }
}

/// Why an instruction was not emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmuError {
    /// The instruction bytes did not decode.
    Decode(DecodeError),
    /// The guest faults fetching the instruction or on the other operand of `MOVS` (a `#PF`
    /// to inject, a `#GP` for a non-canonical address, or a page table outside RAM).
    Fault(WalkError),
    /// Outside the emulated subset (see the module documentation).
    Unsupported,
    /// The instruction does not access the faulting address as decoded (the code changed
    /// under us, or it has no memory operand).
    Mismatch,
    /// The access crosses a page boundary.
    SplitAccess,
}

/// A failure with the instruction bytes, for `KVM_INTERNAL_ERROR_EMULATION`'s data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub error: EmuError,
    /// Instruction bytes (`bytes[..len]`): the decoded instruction, or as much as could be
    /// fetched.
    pub bytes: [u8; 15],
    /// Number of valid bytes.
    pub len: u8,
}

impl Failure {
    /// The `kvm_run.emulation_failure` payload KVM reports for this failure: with instruction
    /// bytes, `ndata` is 3 (the flags word and the two words of `insn_size`/`insn_bytes`)
    /// and unused bytes are `0x90`, as in KVM; without any (nothing could be fetched), only
    /// the zero flags word.
    pub fn emulation_failure(&self) -> KvmRunExitEmulationFailure {
        let len = self.len.min(15);
        if len == 0 {
            return KvmRunExitEmulationFailure {
                suberror: KVM_INTERNAL_ERROR_EMULATION,
                ndata: 1,
                ..KvmRunExitEmulationFailure::default()
            };
        }
        let mut insn_bytes = [0x90u8; 15];
        for (d, s) in insn_bytes
            .iter_mut()
            .zip(self.bytes.iter())
            .take(usize::from(len))
        {
            *d = *s;
        }
        KvmRunExitEmulationFailure {
            suberror: KVM_INTERNAL_ERROR_EMULATION,
            ndata: 3,
            flags: KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
            insn_size: len,
            insn_bytes,
        }
    }
}

/// An 8- to 64-bit general register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reg {
    /// 0-15.
    num: u8,
    /// AH/CH/DH/BH (bits 15:8 of register `num`, 0-3).
    high8: bool,
}

impl Reg {
    fn full(num: u8) -> Reg {
        Reg { num, high8: false }
    }

    /// A byte register: 4-7 are AH-BH unless a REX prefix is present.
    fn byte(num: u8, rex: bool) -> Reg {
        if !rex && (4..8).contains(&num) {
            Reg {
                num: num - 4,
                high8: true,
            }
        } else {
            Reg::full(num)
        }
    }
}

/// A general register by number (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
pub fn gpr(regs: &KvmRegs, n: u8) -> u64 {
    match n & 15 {
        0 => regs.rax,
        1 => regs.rcx,
        2 => regs.rdx,
        3 => regs.rbx,
        4 => regs.rsp,
        5 => regs.rbp,
        6 => regs.rsi,
        7 => regs.rdi,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        _ => regs.r15,
    }
}

pub(crate) fn gpr_mut(regs: &mut KvmRegs, n: u8) -> &mut u64 {
    match n & 15 {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

fn read_reg(regs: &KvmRegs, r: Reg, size: u8) -> u64 {
    let v = gpr(regs, r.num);
    if r.high8 {
        (v >> 8) & 0xff
    } else {
        v & size_mask(size)
    }
}

/// Writes `size` bytes of `val` with the x86 merge rules.
fn write_reg(regs: &mut KvmRegs, r: Reg, size: u8, val: u64) {
    let d = gpr_mut(regs, r.num);
    *d = match (size, r.high8) {
        (1, true) => (*d & !0xff00) | ((val & 0xff) << 8),
        (1, false) => (*d & !0xff) | (val & 0xff),
        (2, _) => (*d & !0xffff) | (val & 0xffff),
        (4, _) => val & 0xffff_ffff,
        _ => val,
    };
}

/// Writes an index or count register updated at address size `asz`.
fn write_addr_reg(regs: &mut KvmRegs, n: u8, asz: u8, mode: Mode, val: u64) {
    let d = gpr_mut(regs, n);
    *d = match asz {
        2 => (*d & !0xffff) | (val & 0xffff),
        4 if mode == Mode::Bits64 => val & 0xffff_ffff,
        4 => (*d & !0xffff_ffff) | (val & 0xffff_ffff),
        _ => val,
    };
}

/// Steps RIP past the instruction (wrapping at the mode's IP width) and clears RF.
pub(crate) fn advance_rip(regs: &mut KvmRegs, insn: &Insn) {
    let ipm = size_mask(insn.mode.ip_bytes());
    regs.rip = regs.rip.wrapping_add(u64::from(insn.len)) & ipm;
    regs.rflags &= !flags::RF;
}

/// An arithmetic or logical operation, numbered as in the `00`-`3F` opcodes and the
/// `80`-`83` ModRM.reg field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    /// ADD.
    Add,
    /// OR.
    Or,
    /// ADC.
    Adc,
    /// SBB.
    Sbb,
    /// AND.
    And,
    /// SUB.
    Sub,
    /// XOR.
    Xor,
    /// CMP (SUB without writing the result).
    Cmp,
    /// TEST (AND without writing the result).
    Test,
}

impl AluOp {
    fn from_index(i: u8) -> AluOp {
        match i & 7 {
            0 => AluOp::Add,
            1 => AluOp::Or,
            2 => AluOp::Adc,
            3 => AluOp::Sbb,
            4 => AluOp::And,
            5 => AluOp::Sub,
            6 => AluOp::Xor,
            _ => AluOp::Cmp,
        }
    }

    fn writes(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test)
    }
}

/// Computes `dst op src` at `size` bytes: the result (masked) and the new RFLAGS (only the
/// arithmetic flags of `rflags` change).
pub fn alu(op: AluOp, dst: u64, src: u64, size: u8, rflags: u64) -> (u64, u64) {
    let mask = size_mask(size);
    let bits = u32::from(size).saturating_mul(8).clamp(8, 64);
    let sign = 1u64 << (bits - 1);
    let (a, b) = (dst & mask, src & mask);
    let carry_in = u64::from(rflags & flags::CF != 0);
    let (r, cf, of, af) = match op {
        AluOp::Add | AluOp::Adc => {
            let c = if op == AluOp::Adc { carry_in } else { 0 };
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(c);
            let r = s2 & mask;
            // Below 64 bits the sum cannot overflow u64; the carry is the bit above.
            let cf = if bits == 64 {
                c1 || c2
            } else {
                s2 >> bits != 0
            };
            let of = (a ^ r) & (b ^ r) & sign != 0;
            (r, cf, of, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
            let c = if op == AluOp::Sbb { carry_in } else { 0 };
            let r = a.wrapping_sub(b).wrapping_sub(c) & mask;
            // Borrow: a < b + c, without forming b + c (c is 0 or 1).
            let cf = b > a || (c != 0 && b == a);
            let of = (a ^ b) & (a ^ r) & sign != 0;
            (r, cf, of, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::Or => (a | b, false, false, false),
        AluOp::And | AluOp::Test => (a & b, false, false, false),
        AluOp::Xor => (a ^ b, false, false, false),
    };
    let mut f = rflags & !flags::ARITH;
    // CAST: the low byte, for parity.
    let parity_even = (r as u8).count_ones() % 2 == 0;
    for (on, bit) in [
        (cf, flags::CF),
        (parity_even, flags::PF),
        (af, flags::AF),
        (r == 0, flags::ZF),
        (r & sign != 0, flags::SF),
        (of, flags::OF),
    ] {
        if on {
            f |= bit;
        }
    }
    (r, f)
}

/// A one-operand read-modify-write operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// NOT (no flags).
    Not,
    /// NEG (flags as `0 - x`).
    Neg,
    /// INC (flags as `x + 1`, CF kept).
    Inc,
    /// DEC (flags as `x - 1`, CF kept).
    Dec,
}

/// Computes a [`Unary`] operation at `size` bytes: the result and the new RFLAGS.
pub fn unary(op: Unary, v: u64, size: u8, rflags: u64) -> (u64, u64) {
    let keep_cf = |(r, f): (u64, u64)| (r, (f & !flags::CF) | (rflags & flags::CF));
    match op {
        Unary::Not => (!v & size_mask(size), rflags),
        Unary::Neg => alu(AluOp::Sub, 0, v, size, rflags),
        Unary::Inc => keep_cf(alu(AluOp::Add, v, 1, size, rflags)),
        Unary::Dec => keep_cf(alu(AluOp::Sub, v, 1, size, rflags)),
    }
}

/// Source of an ALU operation besides the memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Reg(Reg),
    Imm(u64),
}

/// What to do with the accesses of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Load into `dst` (`dst_size` bytes), zero- or sign-extending from the access length.
    Load { dst: Reg, dst_size: u8, sign: bool },
    /// A store (the data is in the plan).
    Store,
    /// XCHG: read, then write the register's value and load the old memory value into it.
    Xchg { reg: Reg },
    /// ALU with a memory operand: `mem op src` into memory, or `reg op mem` into `reg`.
    Alu { op: AluOp, src: Src, mem_dst: bool },
    /// NOT/NEG/INC/DEC of the memory operand.
    Unary(Unary),
    /// STOS / LODS: one element.
    Stos,
    /// LODS: one element into rAX.
    Lods,
    /// MOVS: one element from `src` to `dst` (guest physical).
    Movs { src: u64, dst: u64 },
}

/// Which access of an instruction a plan stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    First,
    /// The write of a read-modify-write; `carry` holds what finishing needs.
    Second {
        carry: u64,
    },
}

/// One MMIO access for user space, and what to do when it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioPlan {
    /// Guest physical address.
    pub gpa: u64,
    /// Length in bytes: 1, 2, 4 or 8.
    pub len: u8,
    /// `Some(data)` to write `data[..len]`; `None` to read.
    pub write: Option<[u8; 8]>,
    insn: Insn,
    op: Op,
    stage: Stage,
}

impl MmioPlan {
    /// The exit that hands this access to user space.
    pub fn exit(&self) -> Exit {
        Exit::Mmio {
            gpa: Gpa(self.gpa),
            len: self.len,
            write: self.write,
        }
    }

    /// The instruction being emulated.
    pub fn insn(&self) -> &Insn {
        &self.insn
    }
}

fn le_bytes(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn from_le(data: &[u8; 8], len: u8) -> u64 {
    u64::from_le_bytes(*data) & size_mask(len)
}

/// Fetches and decodes the instruction at CS:RIP and plans its MMIO access to `gpa`
/// (`write_fault` from the nested page fault's error code).
pub fn start<M: GuestMem + ?Sized>(
    mem: &mut M,
    cpu: &CpuCtx,
    regs: &KvmRegs,
    gpa: u64,
    write_fault: bool,
) -> Result<MmioPlan, Failure> {
    let f = walk::fetch_insn(
        mem,
        &cpu.paging,
        cpu.mode,
        cpu.base(Seg::Cs),
        regs.rip,
        cpu.cpl == 3,
    );
    let fetched = |error| Failure {
        error,
        bytes: f.bytes,
        // CAST: at most 15.
        len: f.len as u8,
    };
    let insn = match decode::decode(f.valid(), cpu.mode) {
        Ok(i) => i,
        Err(DecodeError::Truncated) => {
            return Err(fetched(match f.fault {
                Some(w) => EmuError::Fault(w),
                None => EmuError::Decode(DecodeError::Truncated),
            }));
        }
        Err(e) => return Err(fetched(EmuError::Decode(e))),
    };
    plan(&insn, cpu, regs, mem, gpa, write_fault).map_err(|error| Failure {
        error,
        bytes: insn.bytes,
        len: insn.len,
    })
}

/// The effective address (offset) of the instruction's memory operand.
fn effective_address(insn: &Insn, regs: &KvmRegs) -> Option<u64> {
    let m = insn.mem?;
    // CAST: reinterpreting the displacement's bits.
    let mut a = m.disp as u64;
    if let Some(b) = m.base {
        a = a.wrapping_add(gpr(regs, b));
    }
    if let Some(i) = m.index {
        a = a.wrapping_add(gpr(regs, i).wrapping_mul(u64::from(m.scale)));
    }
    if m.rip_relative {
        a = a.wrapping_add(regs.rip).wrapping_add(u64::from(insn.len));
    }
    Some(a & size_mask(insn.addr_size))
}

/// The linear address of the explicit memory operand.
pub(crate) fn operand_linear(insn: &Insn, cpu: &CpuCtx, regs: &KvmRegs) -> Option<u64> {
    let ea = effective_address(insn, regs)?;
    let default = if insn.mem.is_some_and(|m| m.ss_default) {
        Seg::Ss
    } else {
        Seg::Ds
    };
    let s = insn.prefixes.seg.unwrap_or(default);
    Some(walk::linear(insn.mode, s, cpu.base(s), ea, insn.addr_size))
}

/// Checks that an access of `len` bytes at `linear` is the one that faulted at `gpa`.
fn check_access(linear: u64, len: u8, gpa: u64) -> Result<(), EmuError> {
    if (linear ^ gpa) & 0xfff != 0 {
        return Err(EmuError::Mismatch);
    }
    if (linear & 0xfff) + u64::from(len) > 0x1000 {
        return Err(EmuError::SplitAccess);
    }
    Ok(())
}

/// The string instructions' REP count (RCX at the address size), or `None` without REP.
fn rep_count(insn: &Insn, regs: &KvmRegs) -> Option<u64> {
    insn.prefixes
        .rep
        .map(|_| regs.rcx & size_mask(insn.addr_size))
}

/// Plans the MMIO access of a decoded instruction that faulted at `gpa`. `mem` is used only by
/// `MOVS` (its other operand). The operand's page offset must match `gpa`'s
/// ([`EmuError::Mismatch`] otherwise). `write_fault` is not needed: the instruction says
/// which access comes first (a read-modify-write may fault as a write but reads first), and
/// `MOVS` finds its faulting operand by address.
pub fn plan<M: GuestMem + ?Sized>(
    insn: &Insn,
    cpu: &CpuCtx,
    regs: &KvmRegs,
    mem: &mut M,
    gpa: u64,
    write_fault: bool,
) -> Result<MmioPlan, EmuError> {
    let _ = write_fault;
    let rex = insn.prefixes.rex != 0;
    let opsz = insn.op_size;
    let reg_field = insn.reg_operand();
    let m64 = insn.mode == Mode::Bits64;
    if !matches!(insn.map, Map::One | Map::Ox0F) {
        return Err(EmuError::Unsupported);
    }
    let one = insn.map == Map::One;
    let op = insn.opcode;
    let digit = insn.modrm.map(|m| m.reg);

    let mk = |len: u8, write: Option<u64>, op: Op| -> Result<MmioPlan, EmuError> {
        let lin = operand_linear(insn, cpu, regs).ok_or(EmuError::Mismatch)?;
        check_access(lin, len, gpa)?;
        Ok(MmioPlan {
            gpa,
            len,
            write: write.map(le_bytes),
            insn: *insn,
            op,
            stage: Stage::First,
        })
    };
    let reg_or = |size: u8| -> Result<Reg, EmuError> {
        let n = reg_field.ok_or(EmuError::Mismatch)?;
        Ok(if size == 1 {
            Reg::byte(n, rex)
        } else {
            Reg::full(n)
        })
    };
    let lockable = one && (matches!(op, 0x86 | 0x87) || is_alu_rmw(insn));
    if insn.prefixes.lock && !lockable {
        return Err(EmuError::Unsupported);
    }
    // Explicit memory operands come from ModRM (mod != 3) or moffs.
    if insn.modrm.is_some() && insn.mem.is_none() {
        return Err(EmuError::Mismatch);
    }
    let load = |dst: Reg, dst_size: u8, len: u8, sign: bool| {
        mk(
            len,
            None,
            Op::Load {
                dst,
                dst_size,
                sign,
            },
        )
    };
    match (one, op) {
        (true, 0x88 | 0x89) => {
            let size = if op == 0x88 { 1 } else { opsz };
            let v = read_reg(regs, reg_or(size)?, size);
            mk(size, Some(v), Op::Store)
        }
        (true, 0x8a | 0x8b) => {
            let size = if op == 0x8a { 1 } else { opsz };
            load(reg_or(size)?, size, size, false)
        }
        (true, 0xc6 | 0xc7) if digit == Some(0) => {
            let size = if op == 0xc6 { 1 } else { opsz };
            // CAST: reinterpreting the sign-extended immediate's bits.
            mk(
                size,
                Some(insn.imm_sext() as u64 & size_mask(size)),
                Op::Store,
            )
        }
        (true, 0xa0..=0xa3) => {
            let size = if op & 1 == 0 { 1 } else { opsz };
            if op < 0xa2 {
                load(Reg::full(0), size, size, false)
            } else {
                mk(size, Some(read_reg(regs, Reg::full(0), size)), Op::Store)
            }
        }
        (false, 0xb6 | 0xb7 | 0xbe | 0xbf) => {
            let src = if op & 1 == 0 { 1 } else { 2 };
            load(reg_or(opsz)?, opsz, src, op >= 0xbe)
        }
        (true, 0x63) if m64 => {
            if insn.prefixes.rex_w() {
                load(reg_or(8)?, 8, 4, true)
            } else {
                load(reg_or(opsz)?, opsz, opsz, false)
            }
        }
        // MOVNTI is 32-bit (64 with REX.W) in every mode; 66 makes it #UD.
        (false, 0xc3) if !insn.prefixes.opsize => {
            let size = if insn.prefixes.rex_w() { 8 } else { 4 };
            let v = read_reg(regs, reg_or(size)?, size);
            mk(size, Some(v), Op::Store)
        }
        (true, 0x86 | 0x87) => {
            let size = if op == 0x86 { 1 } else { opsz };
            mk(size, None, Op::Xchg { reg: reg_or(size)? })
        }
        (true, 0x00..=0x3f) if op & 7 < 4 => {
            let size = if op & 1 == 0 { 1 } else { opsz };
            let src = Src::Reg(reg_or(size)?);
            let alu_op = AluOp::from_index(op >> 3);
            mk(
                size,
                None,
                Op::Alu {
                    op: alu_op,
                    src,
                    mem_dst: op & 2 == 0,
                },
            )
        }
        (true, 0x80 | 0x81 | 0x83) => {
            let size = if op == 0x80 { 1 } else { opsz };
            // CAST: reinterpreting the sign-extended immediate's bits.
            let imm = insn.imm_sext() as u64 & size_mask(size);
            let alu_op = AluOp::from_index(digit.unwrap_or(0));
            mk(
                size,
                None,
                Op::Alu {
                    op: alu_op,
                    src: Src::Imm(imm),
                    mem_dst: true,
                },
            )
        }
        (true, 0x84 | 0x85) => {
            let size = if op == 0x84 { 1 } else { opsz };
            let src = Src::Reg(reg_or(size)?);
            mk(
                size,
                None,
                Op::Alu {
                    op: AluOp::Test,
                    src,
                    mem_dst: true,
                },
            )
        }
        (true, 0xf6 | 0xf7) if digit.is_some_and(|d| d < 2) => {
            let size = if op == 0xf6 { 1 } else { opsz };
            // CAST: reinterpreting the sign-extended immediate's bits.
            let imm = insn.imm_sext() as u64 & size_mask(size);
            mk(
                size,
                None,
                Op::Alu {
                    op: AluOp::Test,
                    src: Src::Imm(imm),
                    mem_dst: true,
                },
            )
        }
        (true, 0xf6 | 0xf7 | 0xfe | 0xff) => {
            let size = if op & 1 == 0 { 1 } else { opsz };
            let u = match (op, digit) {
                (0xf6 | 0xf7, Some(2)) => Unary::Not,
                (0xf6 | 0xf7, Some(3)) => Unary::Neg,
                (0xfe | 0xff, Some(0)) => Unary::Inc,
                (0xfe | 0xff, Some(1)) => Unary::Dec,
                _ => return Err(EmuError::Unsupported),
            };
            mk(size, None, Op::Unary(u))
        }
        (true, 0xa4 | 0xa5 | 0xaa..=0xad) => plan_string(insn, cpu, regs, mem, gpa),
        _ => Err(EmuError::Unsupported),
    }
}

/// Whether `LOCK` is allowed: the ALU forms with a memory destination other than CMP/TEST.
fn is_alu_rmw(insn: &Insn) -> bool {
    let op = insn.opcode;
    let digit = insn.modrm.map_or(0, |m| m.reg);
    match op {
        0x00..=0x3f => op & 7 < 2 && op >> 3 != 7,
        0x80 | 0x81 | 0x83 => digit != 7,
        0xf6 | 0xf7 => matches!(digit, 2 | 3),
        0xfe | 0xff => digit < 2,
        _ => false,
    }
}

fn string_size(insn: &Insn) -> u8 {
    if insn.opcode & 1 == 0 {
        1
    } else {
        insn.op_size
    }
}

fn plan_string<M: GuestMem + ?Sized>(
    insn: &Insn,
    cpu: &CpuCtx,
    regs: &KvmRegs,
    mem: &mut M,
    gpa: u64,
) -> Result<MmioPlan, EmuError> {
    if rep_count(insn, regs) == Some(0) {
        return Err(EmuError::Mismatch);
    }
    let size = string_size(insn);
    let asz = insn.addr_size;
    let src_seg = insn.prefixes.seg.unwrap_or(Seg::Ds);
    let src_lin = walk::linear(insn.mode, src_seg, cpu.base(src_seg), regs.rsi, asz);
    let dst_lin = walk::linear(insn.mode, Seg::Es, cpu.base(Seg::Es), regs.rdi, asz);
    let mut out = MmioPlan {
        gpa,
        len: size,
        write: None,
        insn: *insn,
        op: Op::Stos,
        stage: Stage::First,
    };
    match insn.opcode {
        0xaa | 0xab => {
            check_access(dst_lin, size, gpa)?;
            out.write = Some(le_bytes(read_reg(regs, Reg::full(0), size)));
        }
        0xac | 0xad => {
            check_access(src_lin, size, gpa)?;
            out.op = Op::Lods;
        }
        _ => {
            let user = cpu.cpl == 3;
            let ac = regs.rflags & flags::AC != 0;
            let rd = Access {
                user,
                ac,
                ..Access::default()
            };
            let wr = Access { write: true, ..rd };
            let src = walk::translate(mem, &cpu.paging, src_lin, rd).map_err(EmuError::Fault)?;
            let dst = walk::translate(mem, &cpu.paging, dst_lin, wr).map_err(EmuError::Fault)?;
            for a in [src, dst] {
                if (a & 0xfff) + u64::from(size) > 0x1000 {
                    return Err(EmuError::SplitAccess);
                }
            }
            if gpa != src && gpa != dst {
                return Err(EmuError::Mismatch);
            }
            out.op = Op::Movs { src, dst };
            let mut buf = [0u8; 8];
            let b = buf.get_mut(..usize::from(size)).ok_or(EmuError::Mismatch)?;
            if mem.read_phys(src, b) {
                // The source is RAM, so the destination must be what faulted.
                if mem.write_phys(dst, b) {
                    return Err(EmuError::Mismatch);
                }
                out.gpa = dst;
                out.write = Some(buf);
                out.stage = Stage::Second { carry: 0 };
            } else {
                out.gpa = src;
            }
        }
    }
    Ok(out)
}

/// Updates RSI/RDI/RCX and RIP after one element of a string instruction.
fn finish_string(insn: &Insn, regs: &mut KvmRegs, src: bool, dst: bool) {
    let size = u64::from(string_size(insn));
    let delta = if regs.rflags & flags::DF != 0 {
        size.wrapping_neg()
    } else {
        size
    };
    let (asz, mode) = (insn.addr_size, insn.mode);
    if src {
        let v = regs.rsi.wrapping_add(delta);
        write_addr_reg(regs, 6, asz, mode, v);
    }
    if dst {
        let v = regs.rdi.wrapping_add(delta);
        write_addr_reg(regs, 7, asz, mode, v);
    }
    match rep_count(insn, regs) {
        Some(n) => {
            let left = n.wrapping_sub(1) & size_mask(asz);
            write_addr_reg(regs, 1, asz, mode, left);
            if left == 0 {
                advance_rip(regs, insn);
            }
        }
        None => advance_rip(regs, insn),
    }
}

/// Applies a completed access of `plan` (`data` holds what user space returned for a read).
/// Returns the next access of the same instruction, or `None` when it has completed (the
/// registers, RFLAGS and RIP are updated).
pub fn complete<M: GuestMem + ?Sized>(
    plan: &MmioPlan,
    regs: &mut KvmRegs,
    mem: &mut M,
    data: &[u8; 8],
) -> Result<Option<MmioPlan>, EmuError> {
    let insn = &plan.insn;
    let len = plan.len;
    let value = from_le(data, len);
    let second = |write: u64, carry: u64| MmioPlan {
        write: Some(le_bytes(write & size_mask(len))),
        stage: Stage::Second { carry },
        ..*plan
    };
    match (plan.op, plan.stage) {
        (Op::Store, _) => advance_rip(regs, insn),
        (
            Op::Load {
                dst,
                dst_size,
                sign,
            },
            _,
        ) => {
            let v = if sign {
                // CAST: reinterpreting the sign-extended bits.
                sext(value, len) as u64
            } else {
                value
            };
            write_reg(regs, dst, dst_size, v);
            advance_rip(regs, insn);
        }
        (Op::Xchg { reg }, Stage::First) => {
            return Ok(Some(second(read_reg(regs, reg, len), value)));
        }
        (Op::Xchg { reg }, Stage::Second { carry }) => {
            write_reg(regs, reg, len, carry);
            advance_rip(regs, insn);
        }
        (Op::Alu { op, src, mem_dst }, Stage::First) => {
            let other = match src {
                Src::Reg(r) => read_reg(regs, r, len),
                Src::Imm(i) => i,
            };
            if mem_dst {
                let (r, f) = alu(op, value, other, len, regs.rflags);
                if op.writes() {
                    return Ok(Some(second(r, f)));
                }
                regs.rflags = f;
            } else {
                let Src::Reg(dst) = src else {
                    return Err(EmuError::Mismatch);
                };
                let (r, f) = alu(op, other, value, len, regs.rflags);
                if op.writes() {
                    write_reg(regs, dst, len, r);
                }
                regs.rflags = f;
            }
            advance_rip(regs, insn);
        }
        (Op::Unary(u), Stage::First) => {
            let (r, f) = unary(u, value, len, regs.rflags);
            return Ok(Some(second(r, f)));
        }
        (Op::Alu { .. } | Op::Unary(_), Stage::Second { carry }) => {
            regs.rflags = carry;
            advance_rip(regs, insn);
        }
        (Op::Stos, _) => finish_string(insn, regs, false, true),
        (Op::Lods, _) => {
            write_reg(regs, Reg::full(0), len, value);
            finish_string(insn, regs, true, false);
        }
        (Op::Movs { dst, .. }, Stage::First) => {
            let bytes = le_bytes(value);
            let n = usize::from(len);
            let b = bytes.get(..n).ok_or(EmuError::Mismatch)?;
            if !mem.write_phys(dst, b) {
                return Ok(Some(MmioPlan {
                    gpa: dst,
                    ..second(value, 0)
                }));
            }
            finish_string(insn, regs, true, true);
        }
        (Op::Movs { .. }, Stage::Second { .. }) => finish_string(insn, regs, true, true),
    }
    Ok(None)
}

/// The register side of a string port access (`INS`/`OUTS`, `6C`-`6F`), which the IOIO exit
/// does not fully describe without decode assists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIo {
    /// `INS` (port to memory) rather than `OUTS`.
    pub input: bool,
    /// Element size in bytes: 1, 2 or 4.
    pub size: u8,
    /// Segment of the memory operand: ES for `INS`; DS or the override for `OUTS`.
    pub seg: Seg,
    /// Address size in bytes (2, 4 or 8).
    pub addr_size: u8,
    /// A `REP` prefix.
    pub rep: bool,
    /// Elements to transfer: RCX at the address size with `REP` (may be 0), else 1.
    pub count: u64,
    /// Offset of the first element (RDI for `INS`, RSI for `OUTS`, at the address size).
    pub offset: u64,
    /// `RFLAGS.DF`: addresses go down.
    pub backward: bool,
    insn: Insn,
}

/// Describes the string port instruction `insn` (decoded at RIP) for the current registers.
pub fn string_io(insn: &Insn, regs: &KvmRegs) -> Result<StringIo, EmuError> {
    if insn.map != Map::One || !(0x6c..=0x6f).contains(&insn.opcode) {
        return Err(EmuError::Mismatch);
    }
    let input = insn.opcode < 0x6e;
    let size = if insn.opcode & 1 == 0 {
        1
    } else {
        insn.op_size.min(4)
    };
    let asz = insn.addr_size;
    let rep = insn.prefixes.rep.is_some();
    Ok(StringIo {
        input,
        size,
        seg: if input {
            Seg::Es
        } else {
            insn.prefixes.seg.unwrap_or(Seg::Ds)
        },
        addr_size: asz,
        rep,
        count: if rep { regs.rcx & size_mask(asz) } else { 1 },
        offset: if input { regs.rdi } else { regs.rsi } & size_mask(asz),
        backward: regs.rflags & flags::DF != 0,
        insn: *insn,
    })
}

impl StringIo {
    /// The decoded instruction.
    pub fn insn(&self) -> &Insn {
        &self.insn
    }

    /// Linear address of the first element.
    pub fn linear(&self, cpu: &CpuCtx) -> u64 {
        walk::linear(
            self.insn.mode,
            self.seg,
            cpu.base(self.seg),
            self.offset,
            self.addr_size,
        )
    }

    /// How many of the first `n` elements lie in the page of the first one (in the direction
    /// of DF), so each batch can be translated once. At least 1 if `n > 0`.
    pub fn elems_in_page(&self, linear: u64, n: u64) -> u64 {
        let size = u64::from(self.size.max(1));
        let off = linear & 0xfff;
        let room = if self.backward {
            off / size + 1
        } else {
            (0x1000 - off) / size
        };
        n.min(room.max(1))
    }

    /// Whether this agrees with the IOIO exit's direction, size and `REP` bit (if not, the
    /// code changed under us).
    pub fn matches_exit(&self, input: bool, size: u8, rep: bool) -> bool {
        self.input == input && self.size == size && self.rep == rep
    }

    /// Updates the registers after `n` elements (at most `count`): the index register moves
    /// by `n * size` (down with DF), RCX drops by `n` with `REP`, and RIP steps past the
    /// instruction once no elements are left (always without `REP`).
    pub fn advance(&self, regs: &mut KvmRegs, n: u64) {
        let insn = &self.insn;
        let bytes = n.wrapping_mul(u64::from(self.size));
        let delta = if self.backward {
            bytes.wrapping_neg()
        } else {
            bytes
        };
        let idx = if self.input { 7 } else { 6 };
        let v = gpr(regs, idx).wrapping_add(delta);
        write_addr_reg(regs, idx, self.addr_size, insn.mode, v);
        let done = if self.rep {
            let left = self.count.saturating_sub(n);
            write_addr_reg(regs, 1, self.addr_size, insn.mode, left);
            left == 0
        } else {
            true
        };
        if done {
            advance_rip(regs, insn);
        }
    }
}

#[cfg(test)]
mod tests;
