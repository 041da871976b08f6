//! x86 instruction decoder for 16-, 32- and 64-bit code (Intel SDM vol. 2 ch. 2 and
//! appendix A; AMD APM vol. 3 ch. 1).
//!
//! [`decode`] finds the length of every instruction (so RIP can be advanced) and, for all of
//! them, the prefixes, operand and address sizes, opcode map and byte, ModRM fields, the
//! memory operand (base/index/scale/displacement, RIP-relative, or the `moffs` of
//! `A0`-`A3`) and the immediates. Operand *semantics* are left to [`crate::emulate`].
//!
//! Covered for length: legacy prefixes (any number, up to the 15-byte limit), REX (64-bit
//! mode only, and only when it is the last prefix before the opcode), the one-byte, `0F`,
//! `0F 38` and `0F 3A` maps, 3DNow! (`0F 0F`), VEX (`C4`/`C5`), EVEX (`62`) and XOP (`8F`),
//! 16-bit and 32/64-bit ModRM/SIB forms, the `MOV CR/DR` forms whose `mod` bits are ignored,
//! and the odd immediates (`F6`/`F7` `/0` and `/1`, `ENTER`, far pointers, `moffs`, SSE4a
//! `EXTRQ`/`INSERTQ`).
//!
//! Vendor: lengths follow AMD, as this crate's SVM backend runs on AMD CPUs: in 64-bit mode a
//! `66` prefix without `REX.W` gives near branches (`E8`, `E9`, `0F 80`-`8F`) a 16-bit
//! displacement (Intel ignores it there), and `UD0` (`0F FF`) has no ModRM byte.
//!
//! Not reported as invalid: most `#UD` cases (LOCK on a non-lockable instruction, bad VEX
//! prefixes, undefined opcodes in the maps). [`DecodeError::Invalid`] is returned only for
//! the one-byte opcodes that 64-bit mode removed, and for undefined VEX/EVEX/XOP maps.

/// The processor mode the code runs in, which sets the default operand and address sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Real mode, virtual-8086 mode, or a 16-bit code segment.
    Bits16,
    /// A 32-bit protected-mode or compatibility-mode code segment.
    Bits32,
    /// 64-bit mode (long mode with `CS.L = 1`).
    Bits64,
}

impl Mode {
    /// The mode from CR0, EFER, RFLAGS and the CS attributes in VMCB format (L bit 9, D/B
    /// bit 10).
    pub fn from_regs(cr0: u64, efer: u64, rflags: u64, cs_attrib: u16) -> Mode {
        const PE: u64 = 1;
        const LMA: u64 = 1 << 10;
        const VM: u64 = 1 << 17;
        if cr0 & PE == 0 || rflags & VM != 0 {
            Mode::Bits16
        } else if efer & LMA != 0 && cs_attrib & (1 << 9) != 0 {
            Mode::Bits64
        } else if cs_attrib & (1 << 10) != 0 {
            Mode::Bits32
        } else {
            Mode::Bits16
        }
    }

    /// The width of the instruction pointer in bytes (2, 4 or 8): IP and EIP wrap.
    pub fn ip_bytes(self) -> u8 {
        match self {
            Mode::Bits16 => 2,
            Mode::Bits32 => 4,
            Mode::Bits64 => 8,
        }
    }
}

/// A segment register named by a prefix or used by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// ES (`26`).
    Es,
    /// CS (`2E`).
    Cs,
    /// SS (`36`).
    Ss,
    /// DS (`3E`).
    Ds,
    /// FS (`64`).
    Fs,
    /// GS (`65`).
    Gs,
}

impl Seg {
    /// Index of this segment in [`crate::state::VcpuState::segs`].
    pub fn state_index(self) -> usize {
        use crate::state::seg;
        match self {
            Seg::Es => seg::ES,
            Seg::Cs => seg::CS,
            Seg::Ss => seg::SS,
            Seg::Ds => seg::DS,
            Seg::Fs => seg::FS,
            Seg::Gs => seg::GS,
        }
    }
}

/// A repeat prefix (the last of `F2`/`F3` seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// `F3`: REP/REPE/REPZ (or a mandatory prefix).
    Rep,
    /// `F2`: REPNE/REPNZ (or a mandatory prefix).
    Repne,
}

/// Legacy and REX prefixes of an instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefixes {
    /// `F0`.
    pub lock: bool,
    /// The last of `F2`/`F3`.
    pub rep: Option<Rep>,
    /// `66`.
    pub opsize: bool,
    /// `67`.
    pub adsize: bool,
    /// The last segment override (in 64-bit mode only FS and GS have an effect).
    pub seg: Option<Seg>,
    /// The REX byte (`40`-`4F`) if one is in effect, else 0.
    pub rex: u8,
}

impl Prefixes {
    /// REX.W.
    pub fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }
}

/// The opcode map an opcode byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// One-byte opcodes.
    One,
    /// `0F xx`.
    Ox0F,
    /// `0F 38 xx`.
    Ox0F38,
    /// `0F 3A xx`.
    Ox0F3A,
    /// 3DNow! (`0F 0F modrm imm8`); the opcode is the trailing byte.
    Amd3dNow,
    /// VEX with its `mmmmm` map (1 = `0F`, 2 = `0F38`, 3 = `0F3A`).
    Vex(u8),
    /// EVEX with its `mmm` map.
    Evex(u8),
    /// XOP with its `mmmmm` map (8, 9 or 10).
    Xop(u8),
}

/// The ModRM byte's fields, raw (without REX extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModRm {
    /// `mod`, 0-3.
    pub md: u8,
    /// `reg`, 0-7 (a register or an opcode extension `/digit`).
    pub reg: u8,
    /// `r/m`, 0-7.
    pub rm: u8,
}

/// A memory operand's effective-address description. Registers are numbered 0-15 (RAX,
/// RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemOperand {
    /// Base register.
    pub base: Option<u8>,
    /// Index register.
    pub index: Option<u8>,
    /// Index scale: 1, 2, 4 or 8.
    pub scale: u8,
    /// Displacement, sign-extended (for `moffs`, the zero-extended offset).
    pub disp: i64,
    /// RIP-relative (64-bit mode `mod=00 r/m=101`): relative to the next instruction.
    pub rip_relative: bool,
    /// The default segment is SS (base register is BP/SP/EBP/ESP/RBP/RSP).
    pub ss_default: bool,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The instruction bytes; only `bytes[..len]` are part of it.
    pub bytes: [u8; 15],
    /// Total length in bytes, 1 to 15.
    pub len: u8,
    /// The mode it was decoded for.
    pub mode: Mode,
    /// Legacy and REX prefixes.
    pub prefixes: Prefixes,
    /// Effective operand size in bytes (2, 4 or 8) from the mode, `66` and REX.W/VEX.W.
    /// Instructions with a fixed or 64-bit default size must apply that themselves.
    pub op_size: u8,
    /// Effective address size in bytes (2, 4 or 8).
    pub addr_size: u8,
    /// Opcode map.
    pub map: Map,
    /// Opcode byte within the map.
    pub opcode: u8,
    /// ModRM fields, if the instruction has a ModRM byte.
    pub modrm: Option<ModRm>,
    /// The memory operand (ModRM with `mod != 3`, or the `moffs` of `A0`-`A3`).
    pub mem: Option<MemOperand>,
    /// First immediate, zero-extended (see [`Insn::imm_sext`]).
    pub imm: u64,
    /// Size of the first immediate in bytes (0 if none).
    pub imm_len: u8,
    /// Second immediate (`ENTER`'s level, a far pointer's selector, `EXTRQ`'s index).
    pub imm2: u64,
    /// Size of the second immediate in bytes (0 if none).
    pub imm2_len: u8,
}

impl Insn {
    /// The instruction's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The first immediate sign-extended from its size.
    pub fn imm_sext(&self) -> i64 {
        sext(self.imm, self.imm_len)
    }

    /// REX.R/REX.B-style extension bits: (R, X, B) each 0 or 8.
    fn ext(&self) -> (u8, u8, u8) {
        let r = self.prefixes.rex;
        ((r & 4) << 1, (r & 2) << 2, (r & 1) << 3)
    }

    /// The register named by ModRM.reg, extended by REX.R (0-15).
    pub fn reg_operand(&self) -> Option<u8> {
        let m = self.modrm?;
        Some(m.reg | self.ext().0)
    }

    /// The register named by ModRM.r/m when `mod == 3`, extended by REX.B (0-15).
    pub fn rm_register(&self) -> Option<u8> {
        let m = self.modrm?;
        (m.md == 3).then_some(m.rm | self.ext().2)
    }
}

/// Why an instruction could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than 15 bytes (`#GP`).
    TooLong,
    /// The bytes supplied end before the instruction does.
    Truncated,
    /// Invalid in this mode (`#UD`): see the module documentation for which cases.
    Invalid,
}

/// Sign-extends the low `len` bytes of `v`.
pub fn sext(v: u64, len: u8) -> i64 {
    let bits = u32::from(len).saturating_mul(8);
    if bits == 0 || bits >= 64 {
        // CAST: reinterpreting the bits.
        return v as i64;
    }
    let shift = 64 - bits;
    // CAST: reinterpreting the bits for an arithmetic shift.
    ((v << shift) as i64) >> shift
}

/// Maximum instruction length.
pub const MAX_LEN: usize = 15;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_LEN {
            return Err(DecodeError::TooLong);
        }
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    fn next(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// Reads a little-endian value of `n` (0-8) bytes.
    fn uint(&mut self, n: u8) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.next()?) << (8 * u32::from(i));
        }
        Ok(v)
    }
}

/// Immediate kinds of the opcode tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Imm {
    None,
    /// 1 byte.
    B,
    /// 2 bytes.
    W,
    /// 2 or 4 bytes by operand size (4 also for 64-bit operands).
    Z,
    /// 2, 4 or 8 bytes by operand size (`B8`-`BF`).
    V,
    /// Near branch displacement: like `Z`, but see the module docs for 64-bit mode.
    Rel,
    /// `F6`/`F7`: `Z` or `B` if ModRM.reg is 0 or 1.
    Group3,
    /// `C8`: a word then a byte.
    Enter,
    /// `9A`/`EA`: offset (2 or 4) then selector (2).
    Far,
    /// `A0`-`A3`: an offset of the address size.
    Moffs,
    /// `0F 78` (`66`/`F2` prefixed: two byte immediates).
    Sse4a,
}

/// ModRM presence: none, normal, or register-only with `mod` ignored (`MOV CR/DR`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rm {
    No,
    Yes,
    RegOnly,
}

fn one_byte(op: u8, mode: Mode) -> Result<(Rm, Imm), DecodeError> {
    let m64 = mode == Mode::Bits64;
    let inv64 = |r: (Rm, Imm)| {
        if m64 {
            Err(DecodeError::Invalid)
        } else {
            Ok(r)
        }
    };
    Ok(match op {
        0x00..=0x3f => match op & 7 {
            0..=3 => (Rm::Yes, Imm::None),
            4 => (Rm::No, Imm::B),
            5 => (Rm::No, Imm::Z),
            // 06/07/0E/16/17/1E/1F push/pop segment; 27/2F/37/3F BCD adjust.
            _ => return inv64((Rm::No, Imm::None)),
        },
        0x40..=0x5f => (Rm::No, Imm::None),
        0x60 | 0x61 => return inv64((Rm::No, Imm::None)),
        0x62 => return inv64((Rm::Yes, Imm::None)),
        0x63 => (Rm::Yes, Imm::None),
        0x68 => (Rm::No, Imm::Z),
        0x69 => (Rm::Yes, Imm::Z),
        0x6a => (Rm::No, Imm::B),
        0x6b => (Rm::Yes, Imm::B),
        0x6c..=0x6f => (Rm::No, Imm::None),
        0x70..=0x7f => (Rm::No, Imm::B),
        0x80 | 0x83 => (Rm::Yes, Imm::B),
        0x81 => (Rm::Yes, Imm::Z),
        0x82 => return inv64((Rm::Yes, Imm::B)),
        0x84..=0x8f => (Rm::Yes, Imm::None),
        0x90..=0x99 => (Rm::No, Imm::None),
        0x9a => return inv64((Rm::No, Imm::Far)),
        0x9b..=0x9f => (Rm::No, Imm::None),
        0xa0..=0xa3 => (Rm::No, Imm::Moffs),
        0xa4..=0xa7 | 0xaa..=0xaf => (Rm::No, Imm::None),
        0xa8 => (Rm::No, Imm::B),
        0xa9 => (Rm::No, Imm::Z),
        0xb0..=0xb7 => (Rm::No, Imm::B),
        0xb8..=0xbf => (Rm::No, Imm::V),
        0xc0 | 0xc1 => (Rm::Yes, Imm::B),
        0xc2 | 0xca => (Rm::No, Imm::W),
        0xc3 | 0xc9 | 0xcb | 0xcc | 0xcf => (Rm::No, Imm::None),
        // LES/LDS (VEX is handled before the table).
        0xc4 | 0xc5 => return inv64((Rm::Yes, Imm::None)),
        0xc6 => (Rm::Yes, Imm::B),
        0xc7 => (Rm::Yes, Imm::Z),
        0xc8 => (Rm::No, Imm::Enter),
        0xcd => (Rm::No, Imm::B),
        0xce => return inv64((Rm::No, Imm::None)),
        0xd0..=0xd3 => (Rm::Yes, Imm::None),
        0xd4 | 0xd5 => return inv64((Rm::No, Imm::B)),
        0xd6 => return inv64((Rm::No, Imm::None)),
        0xd7 => (Rm::No, Imm::None),
        0xd8..=0xdf => (Rm::Yes, Imm::None),
        0xe0..=0xe7 | 0xeb => (Rm::No, Imm::B),
        0xe8 | 0xe9 => (Rm::No, Imm::Rel),
        0xea => return inv64((Rm::No, Imm::Far)),
        0xec..=0xef => (Rm::No, Imm::None),
        0xf1 | 0xf4 | 0xf5 | 0xf8..=0xfd => (Rm::No, Imm::None),
        0xf6 | 0xf7 => (Rm::Yes, Imm::Group3),
        0xfe | 0xff => (Rm::Yes, Imm::None),
        // Prefixes never reach here (64..67, F0, F2, F3, 26/2E/36/3E are consumed).
        _ => (Rm::No, Imm::None),
    })
}

fn two_byte(op: u8) -> (Rm, Imm) {
    match op {
        0x05..=0x09 | 0x0b | 0x0e | 0x30..=0x37 | 0x77 => (Rm::No, Imm::None),
        0xa0..=0xa2 | 0xa8..=0xaa | 0xc8..=0xcf => (Rm::No, Imm::None),
        // UD0 on AMD.
        0xff => (Rm::No, Imm::None),
        0x20..=0x23 => (Rm::RegOnly, Imm::None),
        0x70..=0x73 | 0xa4 | 0xac | 0xba | 0xc2 | 0xc4..=0xc6 => (Rm::Yes, Imm::B),
        0x78 => (Rm::Yes, Imm::Sse4a),
        0x80..=0x8f => (Rm::No, Imm::Rel),
        _ => (Rm::Yes, Imm::None),
    }
}

/// Immediate of a VEX/EVEX opcode in map 1 (`0F`) or 3 (`0F3A`).
fn vex_imm(map: u8, op: u8) -> Imm {
    match (map, op) {
        (3, _) | (1, 0x70..=0x73 | 0xc2 | 0xc4..=0xc6) => Imm::B,
        _ => Imm::None,
    }
}

/// Decodes one instruction from `bytes` (at most [`MAX_LEN`] are looked at).
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Insn, DecodeError> {
    let m64 = mode == Mode::Bits64;
    let mut c = Cursor { bytes, pos: 0 };
    let mut p = Prefixes::default();
    let mut b;
    loop {
        b = c.next()?;
        match b {
            0x26 => p.seg = Some(Seg::Es),
            0x2e => p.seg = Some(Seg::Cs),
            0x36 => p.seg = Some(Seg::Ss),
            0x3e => p.seg = Some(Seg::Ds),
            0x64 => p.seg = Some(Seg::Fs),
            0x65 => p.seg = Some(Seg::Gs),
            0x66 => p.opsize = true,
            0x67 => p.adsize = true,
            0xf0 => p.lock = true,
            0xf2 => p.rep = Some(Rep::Repne),
            0xf3 => p.rep = Some(Rep::Rep),
            0x40..=0x4f if m64 => {
                p.rex = b;
                continue;
            }
            _ => break,
        }
        // A legacy prefix after REX cancels it.
        p.rex = 0;
    }
    let addr_size = match (mode, p.adsize) {
        (Mode::Bits16, false) | (Mode::Bits32, true) => 2,
        (Mode::Bits16, true) | (Mode::Bits32, false) | (Mode::Bits64, true) => 4,
        (Mode::Bits64, false) => 8,
    };
    let mut wbit = p.rex_w();
    // Extension bits (R, X, B) as 0 or 8, from REX or a VEX-style prefix.
    let mut ext = ((p.rex & 4) << 1, (p.rex & 2) << 2, (p.rex & 1) << 3);

    let (map, opcode, rm, imm) = match b {
        0x0f => {
            let b2 = c.next()?;
            match b2 {
                0x38 => (Map::Ox0F38, c.next()?, Rm::Yes, Imm::None),
                0x3a => (Map::Ox0F3A, c.next()?, Rm::Yes, Imm::B),
                // The 3DNow! opcode is the trailing byte; it is read as the immediate.
                0x0f => (Map::Amd3dNow, 0x0f, Rm::Yes, Imm::B),
                _ => {
                    let (r, i) = two_byte(b2);
                    (Map::Ox0F, b2, r, i)
                }
            }
        }
        0xc4 | 0xc5 | 0x62 if m64 || c.peek()? >= 0xc0 => {
            let p0 = c.next()?;
            let (map, p_last) = match b {
                0xc5 => (1, p0),
                0xc4 => {
                    let p1 = c.next()?;
                    (p0 & 0x1f, p1)
                }
                _ => {
                    let p1 = c.next()?;
                    let _p2 = c.next()?;
                    (p0 & 7, p1)
                }
            };
            let (r, x, bb) = if b == 0xc5 {
                (!p0 & 0x80, 0x40, 0x20)
            } else {
                (!p0 & 0x80, !p0 & 0x40, !p0 & 0x20)
            };
            if m64 {
                ext = (
                    if r != 0 { 8 } else { 0 },
                    if x != 0 { 8 } else { 0 },
                    if bb != 0 { 8 } else { 0 },
                );
                wbit = b != 0xc5 && p_last & 0x80 != 0;
            } else {
                ext = (0, 0, 0);
                wbit = false;
            }
            let op = c.next()?;
            if b == 0x62 {
                if !matches!(map, 1 | 2 | 3 | 5 | 6) {
                    return Err(DecodeError::Invalid);
                }
                (Map::Evex(map), op, Rm::Yes, vex_imm(map, op))
            } else {
                if !matches!(map, 1..=3) {
                    return Err(DecodeError::Invalid);
                }
                let rm = if map == 1 && op == 0x77 {
                    Rm::No
                } else {
                    Rm::Yes
                };
                (Map::Vex(map), op, rm, vex_imm(map, op))
            }
        }
        0x8f if c.peek()? & 0x1f >= 8 => {
            let p0 = c.next()?;
            let p1 = c.next()?;
            let map = p0 & 0x1f;
            if m64 {
                ext = (
                    if p0 & 0x80 == 0 { 8 } else { 0 },
                    if p0 & 0x40 == 0 { 8 } else { 0 },
                    if p0 & 0x20 == 0 { 8 } else { 0 },
                );
                wbit = p1 & 0x80 != 0;
            } else {
                ext = (0, 0, 0);
                wbit = false;
            }
            let op = c.next()?;
            let imm = match map {
                8 => Imm::B,
                9 => Imm::None,
                10 => Imm::Z,
                _ => return Err(DecodeError::Invalid),
            };
            (Map::Xop(map), op, Rm::Yes, imm)
        }
        _ => {
            let (r, i) = one_byte(b, mode)?;
            (Map::One, b, r, i)
        }
    };

    let op_size = match mode {
        Mode::Bits64 if wbit => 8,
        Mode::Bits64 | Mode::Bits32 => {
            if p.opsize {
                2
            } else {
                4
            }
        }
        Mode::Bits16 => {
            if p.opsize {
                4
            } else {
                2
            }
        }
    };

    let mut modrm = None;
    let mut mem = None;
    if rm != Rm::No {
        let m = c.next()?;
        let f = ModRm {
            md: m >> 6,
            reg: (m >> 3) & 7,
            rm: m & 7,
        };
        modrm = Some(f);
        if rm == Rm::Yes && f.md != 3 {
            mem = Some(mem_operand(&mut c, f, addr_size, m64, ext)?);
        }
    }

    let (mut imm_v, mut imm_len, mut imm2, mut imm2_len) = (0, 0u8, 0, 0u8);
    let z = if op_size == 2 { 2 } else { 4 };
    match imm {
        Imm::None => {}
        Imm::B => imm_len = 1,
        Imm::W => imm_len = 2,
        Imm::Z | Imm::Far => imm_len = z,
        Imm::V => imm_len = op_size,
        Imm::Rel => {
            // AMD: in 64-bit mode 66 (without REX.W) selects a 16-bit displacement, else 32.
            imm_len = if m64 {
                if op_size == 2 { 2 } else { 4 }
            } else {
                z
            };
        }
        Imm::Group3 => {
            if modrm.is_some_and(|m| m.reg < 2) {
                imm_len = if opcode == 0xf6 { 1 } else { z };
            }
        }
        Imm::Enter => {
            imm_len = 2;
            imm2_len = 1;
        }
        Imm::Moffs => {}
        Imm::Sse4a => {
            if p.opsize || p.rep == Some(Rep::Repne) {
                imm_len = 1;
                imm2_len = 1;
            }
        }
    }
    if imm == Imm::Far {
        imm2_len = 2;
    }
    if imm == Imm::Moffs {
        let off = c.uint(addr_size)?;
        mem = Some(MemOperand {
            // CAST: the offset's bits.
            disp: off as i64,
            scale: 1,
            ..MemOperand::default()
        });
    }
    imm_v = if imm_len > 0 { c.uint(imm_len)? } else { imm_v };
    imm2 = if imm2_len > 0 {
        c.uint(imm2_len)?
    } else {
        imm2
    };

    let len = c.pos;
    let mut out = [0u8; 15];
    for (o, i) in out.iter_mut().zip(bytes.iter().take(len)) {
        *o = *i;
    }
    Ok(Insn {
        bytes: out,
        // CAST: len <= 15 (the cursor refuses more).
        len: len as u8,
        mode,
        prefixes: p,
        op_size,
        addr_size,
        map,
        opcode,
        modrm,
        mem,
        imm: imm_v,
        imm_len,
        imm2,
        imm2_len,
    })
}

fn mem_operand(
    c: &mut Cursor<'_>,
    m: ModRm,
    addr_size: u8,
    m64: bool,
    (_, x, b): (u8, u8, u8),
) -> Result<MemOperand, DecodeError> {
    let mut o = MemOperand {
        scale: 1,
        ..MemOperand::default()
    };
    if addr_size == 2 {
        // SDM vol. 2 table 2-1: BX+SI, BX+DI, BP+SI, BP+DI, SI, DI, BP (disp16 if mod=0), BX.
        const BX: u8 = 3;
        const BP: u8 = 5;
        const SI: u8 = 6;
        const DI: u8 = 7;
        let (base, index) = match m.rm {
            0 => (Some(BX), Some(SI)),
            1 => (Some(BX), Some(DI)),
            2 => (Some(BP), Some(SI)),
            3 => (Some(BP), Some(DI)),
            4 => (Some(SI), None),
            5 => (Some(DI), None),
            6 if m.md == 0 => (None, None),
            6 => (Some(BP), None),
            _ => (Some(BX), None),
        };
        o.base = base;
        o.index = index;
        o.ss_default = base == Some(BP);
        o.disp = match (m.md, base) {
            (0, None) | (2, _) => sext(c.uint(2)?, 2),
            (1, _) => sext(c.uint(1)?, 1),
            _ => 0,
        };
        return Ok(o);
    }
    let mut disp_len = match m.md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if m.rm == 4 {
        let sib = c.next()?;
        let (ss, idx, base) = (sib >> 6, ((sib >> 3) & 7) | x, (sib & 7) | b);
        o.scale = 1 << ss;
        o.index = (idx != 4).then_some(idx);
        if sib & 7 == 5 && m.md == 0 {
            disp_len = 4;
        } else {
            o.base = Some(base);
        }
    } else if m.rm == 5 && m.md == 0 {
        disp_len = 4;
        o.rip_relative = m64;
    } else {
        o.base = Some(m.rm | b);
    }
    o.ss_default = o.base.is_some_and(|r| r == 4 || r == 5);
    o.disp = sext(c.uint(disp_len)?, disp_len);
    Ok(o)
}

#[cfg(test)]
pub(crate) mod tests;
