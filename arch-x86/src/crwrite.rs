//! Guest writes to CR0 and CR4, emulated while the backend intercepts them.
//!
//! The backend runs a guest without CR intercepts, except in one state: `EFER.LME` set while
//! both `CR0.PG` and `CR4.PAE` are clear. QEMU's TCG SVM loads the host's CR0 on `#VMEXIT`
//! before the host's EFER and CR4, and it leaves CR0 unchanged when the paging transition it
//! sees (guest PG clear, host PG set, guest LME set, guest PAE clear) would be an illegal long
//! mode entry; the host then runs on with the guest's CR0 (paging off) and dies. Hardware
//! restores the host state whole (APM vol. 2, "#VMEXIT"). So in that state the processor is
//! given `EFER.LME` clear (see [`crate::vmrun::lme_hidden`]) and the backend regains control on
//! every write that could leave it: `MOV CR0`, `LMSW` and `CLTS` (the CR0 write intercept),
//! and `MOV CR4`. This module decodes those instructions and applies them with the
//! architectural checks (APM vol. 3 "MOV CRn", "LMSW", "CLTS"; Intel SDM vol. 2).

use kvmport_core::abi::x86::KvmRegs;

use crate::cpuid_table::cr4;
use crate::decode::{Insn, Map, Mode};
use crate::emulate::{EmuError, gpr};
use crate::hw::{EFER_LMA, EFER_LME};
use crate::state::cr0;

/// CR0.MP.
const CR0_MP: u64 = 1 << 1;
/// CR0.EM.
const CR0_EM: u64 = 1 << 2;
/// CR0.TS.
const CR0_TS: u64 = 1 << 3;
/// CR4.LA57.
const CR4_LA57: u64 = 1 << 12;
/// CR4.PCIDE.
const CR4_PCIDE: u64 = 1 << 17;

/// A decoded write of a control register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrWrite {
    /// `MOV CR0, reg` with the register's value at the operand width.
    Cr0(u64),
    /// `MOV CR4, reg`.
    Cr4(u64),
    /// `LMSW` with its 16-bit source.
    Lmsw(u16),
    /// `CLTS`.
    Clts,
}

impl CrWrite {
    /// The control register the write goes to (0 or 4), as the intercept names it.
    pub fn cr(self) -> u8 {
        match self {
            CrWrite::Cr4(_) => 4,
            _ => 0,
        }
    }
}

/// What decoding needs of an `LMSW` with a memory operand: the instruction's operand, read.
pub enum LmswSource {
    /// The source is a register: its value.
    Reg(u16),
    /// The source is in memory; the caller reads it.
    Mem,
}

/// Decodes `insn` as a CR0/CR4 write. `LMSW` from memory returns `Ok(None)` and the caller
/// reads the 16-bit operand and builds [`CrWrite::Lmsw`] itself.
pub fn decode(insn: &Insn, regs: &KvmRegs) -> Result<Option<CrWrite>, EmuError> {
    let unsupported = Err(EmuError::Unsupported);
    if insn.map != Map::Ox0F {
        return unsupported;
    }
    match insn.opcode {
        // MOV CRn, r: the ModRM.mod bits are ignored, the source is always a register, of
        // 64 bits in 64-bit mode and 32 bits elsewhere.
        0x22 => {
            let Some(m) = insn.modrm else {
                return unsupported;
            };
            let rex = insn.prefixes.rex;
            let src = m.rm | ((rex & 1) << 3);
            let n = m.reg | ((rex & 4) << 1);
            let mut value = gpr(regs, src);
            if insn.mode != Mode::Bits64 {
                value &= 0xffff_ffff;
            }
            match n {
                0 => Ok(Some(CrWrite::Cr0(value))),
                4 => Ok(Some(CrWrite::Cr4(value))),
                _ => unsupported,
            }
        }
        0x06 => Ok(Some(CrWrite::Clts)),
        // Group 7, /6: LMSW r/m16.
        0x01 => match insn.modrm {
            Some(m) if m.reg == 6 => match insn.rm_register() {
                // CAST: LMSW uses the low 16 bits.
                Some(r) => Ok(Some(CrWrite::Lmsw(gpr(regs, r) as u16))),
                None => Ok(None),
            },
            _ => unsupported,
        },
        _ => unsupported,
    }
}

/// The registers a control-register write reads and changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrState {
    /// CR0.
    pub cr0: u64,
    /// CR3 (read: `CR4.PCIDE` needs its low 12 bits clear).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER (`LMA` follows `CR0.PG` and `LME`).
    pub efer: u64,
}

/// Why a write raises `#GP(0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpFault;

/// Applies `w` at privilege level `cpl` in `mode` (`cs_long`: CS.L, for a paging enable
/// with long mode pending). `cr4_reserved` are the CR4 bits the guest may not set. On
/// `Err`, `s` is unchanged and the guest takes `#GP(0)`.
pub fn apply(
    s: &mut CrState,
    w: CrWrite,
    cpl: u8,
    mode: Mode,
    cs_long: bool,
    cr4_reserved: u64,
) -> Result<(), GpFault> {
    if cpl != 0 {
        return Err(GpFault);
    }
    match w {
        CrWrite::Cr0(v) => set_cr0(s, v, mode, cs_long),
        // LMSW loads PE, MP, EM and TS, and can set PE but not clear it.
        CrWrite::Lmsw(src) => {
            let low = u64::from(src) & (cr0::PE | CR0_MP | CR0_EM | CR0_TS);
            let v = (s.cr0 & !(CR0_MP | CR0_EM | CR0_TS)) | low;
            set_cr0(s, v, mode, cs_long)
        }
        CrWrite::Clts => {
            s.cr0 &= !CR0_TS;
            Ok(())
        }
        CrWrite::Cr4(v) => set_cr4(s, v, cr4_reserved),
    }
}

/// `MOV CR0`: the CR0 consistency rules, the long-mode entry and exit rules, and `LMA`.
fn set_cr0(s: &mut CrState, v: u64, mode: Mode, cs_long: bool) -> Result<(), GpFault> {
    if !crate::state::cr0_valid(v) {
        return Err(GpFault);
    }
    let (old_pg, new_pg) = (s.cr0 & cr0::PG != 0, v & cr0::PG != 0);
    let mut efer = s.efer;
    if !old_pg && new_pg && s.efer & EFER_LME != 0 {
        // Activating long mode needs PAE and a CS that is not yet 64-bit.
        if s.cr4 & cr4::PAE == 0 || cs_long {
            return Err(GpFault);
        }
        efer |= EFER_LMA;
    }
    if old_pg && !new_pg {
        // Paging goes off only outside 64-bit mode (compatibility mode leaves long mode).
        if mode == Mode::Bits64 {
            return Err(GpFault);
        }
        efer &= !EFER_LMA;
    }
    // ET is fixed at 1 on processors with an x87.
    s.cr0 = v | cr0::ET;
    s.efer = efer;
    Ok(())
}

/// `MOV CR4`: reserved bits, and the bits long mode pins.
fn set_cr4(s: &mut CrState, v: u64, cr4_reserved: u64) -> Result<(), GpFault> {
    let long = s.efer & EFER_LMA != 0;
    let bad = v & cr4_reserved != 0
        || (long && v & cr4::PAE == 0)
        || (long && (v ^ s.cr4) & CR4_LA57 != 0)
        || (v & CR4_PCIDE != 0 && s.cr4 & CR4_PCIDE == 0 && (!long || s.cr3 & 0xfff != 0));
    if bad {
        return Err(GpFault);
    }
    s.cr4 = v;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode as dec;

    const REAL_CR0: u64 = 0x6000_0010;

    fn state(cr0: u64, cr4: u64, efer: u64) -> CrState {
        CrState {
            cr0,
            cr3: 0,
            cr4,
            efer,
        }
    }

    fn regs_with(rax: u64, rbx: u64) -> KvmRegs {
        KvmRegs {
            rax,
            rbx,
            ..Default::default()
        }
    }

    #[test]
    fn decodes_the_intercepted_forms() {
        let r = regs_with(0x1_0000_0021, 0x8000_0011);
        let d = |b: &[u8], m| decode(&dec(b, m).unwrap(), &r).unwrap();
        // mov cr4, eax (32-bit operand outside 64-bit mode)
        assert_eq!(
            d(&[0x0f, 0x22, 0xe0], Mode::Bits16),
            Some(CrWrite::Cr4(0x21))
        );
        assert_eq!(
            d(&[0x0f, 0x22, 0xe0], Mode::Bits64),
            Some(CrWrite::Cr4(0x1_0000_0021))
        );
        // mov cr0, ebx; mod bits ignored (0x03 would be a memory form elsewhere)
        assert_eq!(
            d(&[0x0f, 0x22, 0xc3], Mode::Bits32),
            Some(CrWrite::Cr0(0x8000_0011))
        );
        assert_eq!(d(&[0x0f, 0x06], Mode::Bits16), Some(CrWrite::Clts));
        // lmsw ax / lmsw [bx]
        assert_eq!(
            d(&[0x0f, 0x01, 0xf0], Mode::Bits16),
            Some(CrWrite::Lmsw(0x21))
        );
        assert_eq!(d(&[0x0f, 0x01, 0x37], Mode::Bits16), None);
        // mov cr3, eax and a plain NOP are not ours
        for (b, m) in [
            (&[0x0f, 0x22, 0xd8][..], Mode::Bits32),
            (&[0x90][..], Mode::Bits16),
        ] {
            assert_eq!(decode(&dec(b, m).unwrap(), &r), Err(EmuError::Unsupported));
        }
    }

    #[test]
    fn paging_with_lme_needs_pae() {
        let mut s = state(REAL_CR0 | cr0::PE, 0, EFER_LME);
        let pg = REAL_CR0 | cr0::PE | cr0::PG;
        assert_eq!(
            apply(&mut s, CrWrite::Cr0(pg), 0, Mode::Bits32, false, 0),
            Err(GpFault)
        );
        assert_eq!(s.cr0, REAL_CR0 | cr0::PE, "unchanged on #GP");
        apply(&mut s, CrWrite::Cr4(cr4::PAE), 0, Mode::Bits32, false, 0).unwrap();
        apply(&mut s, CrWrite::Cr0(pg), 0, Mode::Bits32, false, 0).unwrap();
        assert_eq!(s.efer, EFER_LME | EFER_LMA, "long mode active");
        // Leaving: not from 64-bit mode, but from compatibility mode.
        let off = REAL_CR0 | cr0::PE;
        assert_eq!(
            apply(&mut s, CrWrite::Cr0(off), 0, Mode::Bits64, true, 0),
            Err(GpFault)
        );
        apply(&mut s, CrWrite::Cr0(off), 0, Mode::Bits32, false, 0).unwrap();
        assert_eq!(s.efer, EFER_LME);
    }

    #[test]
    fn cr0_consistency_and_privilege() {
        let mut s = state(REAL_CR0, 0, 0);
        for bad in [cr0::PG, cr0::NW, 1 << 32] {
            assert_eq!(
                apply(&mut s, CrWrite::Cr0(bad), 0, Mode::Bits16, false, 0),
                Err(GpFault),
                "{bad:#x}"
            );
        }
        assert_eq!(
            apply(&mut s, CrWrite::Clts, 3, Mode::Bits32, false, 0),
            Err(GpFault)
        );
        apply(&mut s, CrWrite::Cr0(0), 0, Mode::Bits16, false, 0).unwrap();
        assert_eq!(s.cr0, cr0::ET, "ET stays set");
    }

    #[test]
    fn lmsw_and_clts() {
        let mut s = state(REAL_CR0 | CR0_TS | cr0::PE, 0, 0);
        apply(&mut s, CrWrite::Clts, 0, Mode::Bits32, false, 0).unwrap();
        assert_eq!(s.cr0 & CR0_TS, 0);
        // LMSW 0: PE stays, MP/EM/TS clear; high bits untouched.
        apply(&mut s, CrWrite::Lmsw(0), 0, Mode::Bits32, false, 0).unwrap();
        assert_eq!(s.cr0, REAL_CR0 | cr0::PE);
        apply(&mut s, CrWrite::Lmsw(0xffff), 0, Mode::Bits32, false, 0).unwrap();
        assert_eq!(s.cr0, REAL_CR0 | 0xf, "only the low four bits load");
        let mut r = state(REAL_CR0, 0, 0);
        apply(&mut r, CrWrite::Lmsw(1), 0, Mode::Bits16, false, 0).unwrap();
        assert_eq!(r.cr0 & cr0::PE, cr0::PE, "LMSW sets PE");
    }

    #[test]
    fn cr4_rules() {
        let mut s = state(REAL_CR0, 0, 0);
        assert_eq!(
            apply(
                &mut s,
                CrWrite::Cr4(1 << 30),
                0,
                Mode::Bits16,
                false,
                1 << 30
            ),
            Err(GpFault),
            "reserved"
        );
        assert_eq!(
            apply(&mut s, CrWrite::Cr4(CR4_PCIDE), 0, Mode::Bits16, false, 0),
            Err(GpFault),
            "PCIDE outside long mode"
        );
        let mut l = state(REAL_CR0 | cr0::PE | cr0::PG, cr4::PAE, EFER_LME | EFER_LMA);
        assert_eq!(
            apply(&mut l, CrWrite::Cr4(0), 0, Mode::Bits64, true, 0),
            Err(GpFault),
            "PAE pinned in long mode"
        );
        apply(
            &mut l,
            CrWrite::Cr4(cr4::PAE | CR4_PCIDE),
            0,
            Mode::Bits64,
            true,
            0,
        )
        .unwrap();
        assert_eq!(l.cr4, cr4::PAE | CR4_PCIDE);
    }
}
