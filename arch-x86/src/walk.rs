//! Guest linear-to-physical translation through the guest's own page tables (Intel SDM
//! vol. 3 ch. 4, AMD APM vol. 2 ch. 5), segment arithmetic, and instruction fetch.
//!
//! [`translate`] handles no paging (identity), 32-bit paging (with `CR4.PSE` 4 MiB pages and
//! PSE-36 high address bits), PAE paging, and 4- and 5-level long-mode paging (2 MiB and
//! 1 GiB pages). It checks U/S, R/W with `CR0.WP`, NX with `EFER.NXE`, SMEP and SMAP
//! (honouring `RFLAGS.AC`), reserved bits (above MAXPHYADDR, NX without `EFER.NXE`, the
//! large-page and PDPTE reserved bits), and canonical form; a failed check returns the `#PF`
//! error code the guest would see.
//!
//! Not done: accessed/dirty bits are not set (the hardware set them for the access that
//! faulted), protection keys are not checked, the PAE PDPTEs are read from memory at each
//! walk (as AMD does under nested paging) rather than from a cache, and there is no TLB.

use crate::decode::{Mode, Seg};
use crate::state::VcpuState;

/// Guest physical memory as the backend sees it.
pub trait GuestMem {
    /// Reads guest RAM at `gpa` into `buf`; false if any byte is not RAM.
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Writes `data` to guest RAM at `gpa`; false if any byte is not writable RAM (MMIO or a
    /// read-only slot), in which case nothing is written.
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool;
}

/// The control registers that select and steer paging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    /// CR0 (PG bit 31, WP bit 16).
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4 (PSE bit 4, PAE bit 5, LA57 bit 12, SMEP bit 20, SMAP bit 21).
    pub cr4: u64,
    /// EFER (LMA bit 10, NXE bit 11).
    pub efer: u64,
    /// The guest's physical address width (CPUID 0x80000008 EAX\[7:0\]), 32 to 52.
    pub maxphyaddr: u8,
}

impl Paging {
    /// The paging registers of a vCPU.
    pub fn from_state(st: &VcpuState) -> Paging {
        Paging {
            cr0: st.cr0,
            cr3: st.cr3,
            cr4: st.cr4,
            efer: st.efer,
            // CAST: clamped to 52 first.
            maxphyaddr: st.maxphyaddr.clamp(32, 52) as u8,
        }
    }
}

/// What kind of access a translation is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A write.
    pub write: bool,
    /// An instruction fetch.
    pub fetch: bool,
    /// A user-mode access (CPL 3).
    pub user: bool,
    /// `RFLAGS.AC` (lifts SMAP for supervisor data accesses).
    pub ac: bool,
}

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The guest would take a `#PF` at `addr` with this error code.
    PageFault {
        /// Faulting linear address (CR2).
        addr: u64,
        /// `#PF` error code: P, W/R, U/S, RSVD, I/D in bits 0-4.
        error_code: u32,
    },
    /// A non-canonical address in long mode (`#GP(0)`).
    NonCanonical,
    /// A paging structure or the data is not in guest RAM (at this guest physical address).
    NotRam {
        /// The guest physical address that was not RAM.
        gpa: u64,
    },
}

/// `#PF` error-code bits.
pub mod pf {
    /// The page was present (a protection or reserved-bit fault).
    pub const P: u32 = 1 << 0;
    /// A write.
    pub const W: u32 = 1 << 1;
    /// A user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set.
    pub const RSVD: u32 = 1 << 3;
    /// An instruction fetch.
    pub const ID: u32 = 1 << 4;
}

const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;
/// Address bits 51:12 of a PAE/long-mode entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Mask of an address (or operand) size in bytes: 2, 4 or 8.
pub fn size_mask(bytes: u8) -> u64 {
    match bytes {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// The linear address of `seg:offset`: the offset wraps at the address size; in 64-bit mode
/// only FS and GS have a base; outside it the sum wraps at 4 GiB.
pub fn linear(mode: Mode, seg: Seg, seg_base: u64, offset: u64, addr_size: u8) -> u64 {
    let off = offset & size_mask(addr_size);
    match mode {
        Mode::Bits64 if matches!(seg, Seg::Fs | Seg::Gs) => seg_base.wrapping_add(off),
        Mode::Bits64 => off,
        _ => seg_base.wrapping_add(off) & 0xffff_ffff,
    }
}

struct Walk {
    /// Accumulated R/W (all levels writable).
    rw: bool,
    /// Accumulated U/S (all levels user).
    us: bool,
    /// Any level has NX (with NXE).
    nx: bool,
}

impl Walk {
    fn add(&mut self, e: u64, nxe: bool) {
        self.rw &= e & PTE_RW != 0;
        self.us &= e & PTE_US != 0;
        self.nx |= nxe && e & PTE_NX != 0;
    }
}

fn read_entry<M: GuestMem + ?Sized>(mem: &mut M, gpa: u64, wide: bool) -> Result<u64, WalkError> {
    if wide {
        let mut b = [0u8; 8];
        if !mem.read_phys(gpa, &mut b) {
            return Err(WalkError::NotRam { gpa });
        }
        Ok(u64::from_le_bytes(b))
    } else {
        let mut b = [0u8; 4];
        if !mem.read_phys(gpa, &mut b) {
            return Err(WalkError::NotRam { gpa });
        }
        Ok(u64::from(u32::from_le_bytes(b)))
    }
}

/// Translates `linear` for `acc` through the guest's paging; returns the guest physical
/// address.
pub fn translate<M: GuestMem + ?Sized>(
    mem: &mut M,
    pg: &Paging,
    linear: u64,
    acc: Access,
) -> Result<u64, WalkError> {
    if pg.cr0 & CR0_PG == 0 {
        return Ok(linear & 0xffff_ffff);
    }
    let long = pg.efer & EFER_LMA != 0;
    let pae = pg.cr4 & CR4_PAE != 0;
    let nxe = pg.efer & EFER_NXE != 0 && (long || pae);
    let smep = pg.cr4 & CR4_SMEP != 0;
    let mut code = 0u32;
    if acc.write {
        code |= pf::W;
    }
    if acc.user {
        code |= pf::U;
    }
    if acc.fetch && (smep || nxe) {
        code |= pf::ID;
    }
    let maxphy = u32::from(pg.maxphyaddr.clamp(32, 52));
    // Bits 51:MAXPHYADDR.
    let above_phys = ADDR_MASK & !((1u64 << maxphy) - 1);
    let fault = |extra: u32| WalkError::PageFault {
        addr: linear,
        error_code: code | extra,
    };
    let rsvd = || fault(pf::P | pf::RSVD);
    let mut w = Walk {
        rw: true,
        us: true,
        nx: false,
    };

    let phys = if long {
        let la57 = pg.cr4 & CR4_LA57 != 0;
        let bits = if la57 { 57 } else { 48 };
        // CAST: reinterpreting for the sign-extension check.
        let sx = ((linear << (64 - bits)) as i64 >> (64 - bits)) as u64;
        if sx != linear {
            return Err(WalkError::NonCanonical);
        }
        let entry_rsvd = above_phys | if nxe { 0 } else { PTE_NX };
        let mut table = pg.cr3 & ADDR_MASK;
        let mut level: u32 = if la57 { 5 } else { 4 };
        loop {
            let shift = 12 + 9 * (level - 1);
            let idx = (linear >> shift) & 0x1ff;
            let e = read_entry(mem, table | (idx << 3), true)?;
            if e & PTE_P == 0 {
                return Err(fault(0));
            }
            let ps = e & PTE_PS != 0;
            let mut r = entry_rsvd;
            match level {
                4 | 5 => r |= PTE_PS,
                3 if ps => r |= 0x3fff_e000,
                2 if ps => r |= 0x1f_e000,
                _ => {}
            }
            if e & r != 0 {
                return Err(rsvd());
            }
            w.add(e, nxe);
            if level == 1 || (ps && level <= 3) {
                let page_mask = (1u64 << shift) - 1;
                break (e & ADDR_MASK & !page_mask) | (linear & page_mask);
            }
            table = e & ADDR_MASK;
            level -= 1;
        }
    } else if pae {
        let lin = linear & 0xffff_ffff;
        let pdpte = read_entry(mem, (pg.cr3 & 0xffff_ffe0) + ((lin >> 30) << 3), true)?;
        if pdpte & PTE_P == 0 {
            return Err(fault(0));
        }
        // PDPTE: bits 2:1, 8:5 and 63 reserved besides the address bits.
        if pdpte & (above_phys | 0x1e6 | PTE_NX) != 0 {
            return Err(rsvd());
        }
        let entry_rsvd = above_phys | if nxe { 0 } else { PTE_NX };
        let pde = read_entry(
            mem,
            (pdpte & ADDR_MASK) | (((lin >> 21) & 0x1ff) << 3),
            true,
        )?;
        if pde & PTE_P == 0 {
            return Err(fault(0));
        }
        let ps = pde & PTE_PS != 0;
        if pde & (entry_rsvd | if ps { 0x1f_e000 } else { 0 }) != 0 {
            return Err(rsvd());
        }
        w.add(pde, nxe);
        if ps {
            (pde & ADDR_MASK & !0x1f_ffff) | (lin & 0x1f_ffff)
        } else {
            let pte = read_entry(mem, (pde & ADDR_MASK) | (((lin >> 12) & 0x1ff) << 3), true)?;
            if pte & PTE_P == 0 {
                return Err(fault(0));
            }
            if pte & entry_rsvd != 0 {
                return Err(rsvd());
            }
            w.add(pte, nxe);
            (pte & ADDR_MASK) | (lin & 0xfff)
        }
    } else {
        let lin = linear & 0xffff_ffff;
        let pde = read_entry(mem, (pg.cr3 & 0xffff_f000) | ((lin >> 22) << 2), false)?;
        if pde & PTE_P == 0 {
            return Err(fault(0));
        }
        if pde & PTE_PS != 0 && pg.cr4 & CR4_PSE != 0 {
            // PSE-36: bits 20:13 are physical address bits 39:32; bit 21 is reserved.
            let pa = (pde & 0xffc0_0000) | (((pde >> 13) & 0xff) << 32);
            if pde & (1 << 21) != 0 || pa >> maxphy != 0 {
                return Err(rsvd());
            }
            w.add(pde, false);
            pa | (lin & 0x3f_ffff)
        } else {
            let pte = read_entry(
                mem,
                (pde & 0xffff_f000) | (((lin >> 12) & 0x3ff) << 2),
                false,
            )?;
            if pte & PTE_P == 0 {
                return Err(fault(0));
            }
            w.add(pde, false);
            w.add(pte, false);
            (pte & 0xffff_f000) | (lin & 0xfff)
        }
    };

    let wp = pg.cr0 & CR0_WP != 0;
    let denied = if acc.user {
        !w.us || (acc.write && !w.rw) || (acc.fetch && w.nx)
    } else {
        (acc.write && !w.rw && wp)
            || (acc.fetch && w.nx)
            || (acc.fetch && w.us && smep)
            || (!acc.fetch && w.us && pg.cr4 & CR4_SMAP != 0 && !acc.ac)
    };
    if denied {
        return Err(fault(pf::P));
    }
    Ok(phys)
}

/// Instruction bytes fetched from guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The bytes; `bytes[..len]` are valid.
    pub bytes: [u8; 15],
    /// How many bytes could be fetched.
    pub len: usize,
    /// Why fetching stopped before 15 bytes, if it did. If decoding the `len` bytes reports
    /// [`crate::decode::DecodeError::Truncated`], this is the fault the guest would take.
    pub fault: Option<WalkError>,
}

impl Fetched {
    /// The valid bytes.
    pub fn valid(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Fetches up to 15 instruction bytes at `CS.base + RIP`, translating each page separately
/// (the instruction may cross a page boundary). IP/EIP wrap at 64 KiB/4 GiB in 16/32-bit
/// code. `user` is CPL 3.
pub fn fetch_insn<M: GuestMem + ?Sized>(
    mem: &mut M,
    pg: &Paging,
    mode: Mode,
    cs_base: u64,
    rip: u64,
    user: bool,
) -> Fetched {
    let mut out = Fetched {
        bytes: [0; 15],
        len: 0,
        fault: None,
    };
    let acc = Access {
        fetch: true,
        user,
        ..Access::default()
    };
    // The bytes' linear addresses (IP and, outside 64-bit mode, the linear address wrap),
    // then one translation and one read per run of consecutive addresses within a page.
    let mut lin = [0u64; 15];
    for (i, l) in (0u64..).zip(lin.iter_mut()) {
        *l = linear(mode, Seg::Cs, cs_base, rip.wrapping_add(i), mode.ip_bytes());
    }
    let mut i = 0usize;
    while i < lin.len() {
        let Some(&start) = lin.get(i) else { break };
        let page = start & !0xfff;
        let mut n = 1usize;
        while lin
            .get(i + n)
            .is_some_and(|&l| l == start.wrapping_add(n as u64) && l & !0xfff == page)
        {
            n += 1;
        }
        let phys_page = match translate(mem, pg, page, acc) {
            Ok(p) => p,
            Err(e) => {
                out.fault = Some(match e {
                    WalkError::PageFault { error_code, .. } => WalkError::PageFault {
                        addr: start,
                        error_code,
                    },
                    other => other,
                });
                break;
            }
        };
        let gpa = phys_page | (start & 0xfff);
        let Some(chunk) = out.bytes.get_mut(i..i + n) else {
            break;
        };
        if !mem.read_phys(gpa, chunk) {
            // Somewhere in the run the bytes stop being RAM: find where, byte by byte.
            let mut good = 0usize;
            for (k, byte) in (0u64..).zip(chunk.iter_mut()) {
                let mut b = [0u8; 1];
                if !mem.read_phys(gpa + k, &mut b) {
                    out.fault = Some(WalkError::NotRam { gpa: gpa + k });
                    break;
                }
                [*byte] = b;
                good += 1;
            }
            out.len = i + good;
            break;
        }
        i += n;
        out.len = i;
    }
    out
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
