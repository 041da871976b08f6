use super::fake::FakeGuestMem;
use super::*;

const PG: u64 = 1 << 31;
const PE: u64 = 1;
const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const NX: u64 = 1 << 63;

const R: Access = Access {
    write: false,
    fetch: false,
    user: false,
    ac: false,
};
const W: Access = Access { write: true, ..R };
const X: Access = Access { fetch: true, ..R };
const UR: Access = Access { user: true, ..R };
const UW: Access = Access {
    user: true,
    write: true,
    ..R
};

fn long_paging(cr3: u64) -> Paging {
    Paging {
        cr0: PG | PE | CR0_WP,
        cr3,
        cr4: CR4_PAE,
        efer: EFER_LMA | (1 << 8) | EFER_NXE,
        maxphyaddr: 48,
    }
}

fn pf(addr: u64, error_code: u32) -> Result<u64, WalkError> {
    Err(WalkError::PageFault { addr, error_code })
}

#[test]
fn no_paging_is_identity() {
    let mut m = FakeGuestMem::new();
    let p = Paging::default();
    assert_eq!(translate(&mut m, &p, 0x1234_5678, W), Ok(0x1234_5678));
    assert_eq!(translate(&mut m, &p, 0x1_0000_fff0, R), Ok(0xfff0));
}

#[test]
fn long_mode_4k_2m_1g() {
    let mut m = FakeGuestMem::new();
    let root = m.alloc_table();
    m.map_long(root, 4, 0x7fff_1234_5000, 0xabc_d000, 1, P | RW | US);
    m.map_long(root, 4, 0xffff_8000_0020_0000, 0x4000_0000, 2, P | RW);
    m.map_long(root, 4, 0xffff_c000_4000_0000, 0x1_c000_0000, 3, P | RW);
    let p = long_paging(root);
    assert_eq!(translate(&mut m, &p, 0x7fff_1234_5abc, UW), Ok(0xabc_dabc));
    assert_eq!(
        translate(&mut m, &p, 0xffff_8000_002f_f123, W),
        Ok(0x400f_f123)
    );
    assert_eq!(
        translate(&mut m, &p, 0xffff_c000_7fff_fffe, R),
        Ok(0x1_ffff_fffe)
    );
    // Not present at the PT level (same PD, next 4 KiB page).
    assert_eq!(
        translate(&mut m, &p, 0x7fff_1234_6000, UW),
        pf(0x7fff_1234_6000, pf::W | pf::U)
    );
    // Not present at the top level; a fetch sets I/D (NXE is on).
    assert_eq!(translate(&mut m, &p, 0x1000, X), pf(0x1000, pf::ID));
    // Non-canonical.
    assert_eq!(
        translate(&mut m, &p, 0x8000_0000_0000, R),
        Err(WalkError::NonCanonical)
    );
    // User access to a supervisor page.
    assert_eq!(
        translate(&mut m, &p, 0xffff_8000_0020_0000, UR),
        pf(0xffff_8000_0020_0000, pf::P | pf::U)
    );
}

#[test]
fn long_mode_permissions() {
    let mut m = FakeGuestMem::new();
    let root = m.alloc_table();
    let lin = 0x40_0000;
    m.map_long(root, 4, lin, 0x20_0000, 1, P | US);
    let mut p = long_paging(root);
    // Supervisor write to a read-only page: allowed without WP, faults with it.
    assert_eq!(translate(&mut m, &p, lin, W), pf(lin, pf::P | pf::W));
    p.cr0 &= !CR0_WP;
    assert_eq!(translate(&mut m, &p, lin, W), Ok(0x20_0000));
    // User writes always need R/W.
    assert_eq!(
        translate(&mut m, &p, lin, UW),
        pf(lin, pf::P | pf::W | pf::U)
    );
    // SMAP: supervisor data access to a user page, unless RFLAGS.AC.
    p.cr4 |= CR4_SMAP;
    assert_eq!(translate(&mut m, &p, lin, R), pf(lin, pf::P));
    assert_eq!(
        translate(&mut m, &p, lin, Access { ac: true, ..R }),
        Ok(0x20_0000)
    );
    // SMEP: supervisor fetch from a user page.
    p.cr4 |= CR4_SMEP;
    assert_eq!(translate(&mut m, &p, lin, X), pf(lin, pf::P | pf::ID));
    assert_eq!(
        translate(&mut m, &p, lin, Access { user: true, ..X }),
        Ok(0x20_0000)
    );
    // NX in the PTE.
    // Find the PTE by hand: PML4 0, PDPT 0, PD 2, PT 0.
    let pdpt = m.peek_u64(root) & ADDR_MASK;
    let pd = m.peek_u64(pdpt) & ADDR_MASK;
    let pte_slot = m.peek_u64(pd + 2 * 8) & ADDR_MASK;
    m.poke_u64(pte_slot, 0x20_0000 | P | US | NX);
    assert_eq!(
        translate(&mut m, &p, lin, Access { user: true, ..X }),
        pf(lin, pf::P | pf::U | pf::ID)
    );
    assert_eq!(translate(&mut m, &p, lin, UR), Ok(0x20_0000));
    // NX without EFER.NXE is a reserved bit.
    p.efer &= !EFER_NXE;
    assert_eq!(
        translate(&mut m, &p, lin, UR),
        pf(lin, pf::P | pf::RSVD | pf::U)
    );
    p.efer |= EFER_NXE;
    // An address bit above MAXPHYADDR is reserved.
    m.poke_u64(pte_slot, (1 << 50) | P | US);
    assert_eq!(
        translate(&mut m, &p, lin, UR),
        pf(lin, pf::P | pf::RSVD | pf::U)
    );
    p.maxphyaddr = 52;
    assert_eq!(translate(&mut m, &p, lin, UR), Ok(1 << 50));
}

#[test]
fn long_mode_reserved_large_page_bits() {
    let mut m = FakeGuestMem::new();
    let root = m.alloc_table();
    m.map_long(root, 4, 0x4000_0000, 0x8000_0000 | (1 << 13), 3, P | RW);
    m.map_long(root, 4, 0x20_0000, 0x40_0000 | (1 << 20), 2, P | RW);
    let p = long_paging(root);
    assert_eq!(
        translate(&mut m, &p, 0x4000_0000, R),
        pf(0x4000_0000, pf::P | pf::RSVD)
    );
    assert_eq!(
        translate(&mut m, &p, 0x20_0000, W),
        pf(0x20_0000, pf::P | pf::RSVD | pf::W)
    );
    // PS in a PML4E is reserved.
    let e = m.peek_u64(root);
    m.poke_u64(root, e | 0x80);
    assert_eq!(
        translate(&mut m, &p, 0x20_0000, R),
        pf(0x20_0000, pf::P | pf::RSVD)
    );
}

#[test]
fn five_level() {
    let mut m = FakeGuestMem::new();
    let root = m.alloc_table();
    let lin = 0xff12_3456_7890_1000u64;
    m.map_long(root, 5, lin, 0x55_5000, 1, P | RW);
    let mut p = long_paging(root);
    p.cr4 |= CR4_LA57;
    assert_eq!(translate(&mut m, &p, lin | 0x123, R), Ok(0x55_5123));
    // Canonical for 57 bits but not 48.
    assert_eq!(
        translate(&mut m, &p, 0x00ff_0000_0000_0000, R),
        pf(0x00ff_0000_0000_0000, 0)
    );
    assert_eq!(
        translate(&mut m, &p, 0x0100_0000_0000_0000, R),
        Err(WalkError::NonCanonical)
    );
}

#[test]
fn pae_paging() {
    let mut m = FakeGuestMem::new();
    let pdpt = 0x3000u64; // 32-byte aligned, below 4 GiB
    let pd = m.alloc_table();
    let pt = m.alloc_table();
    m.poke_u64(pdpt + 8 * 2, pd | P);
    // 0x8040_0000: PDPT 2, PD 2 -> PT; 0x8060_0000: PD 3 -> 2 MiB page.
    m.poke_u64(pd + 8 * 2, pt | P | RW | US);
    m.poke_u64(pt + 8 * 5, 0x7_6000 | P | RW | US);
    m.poke_u64(pd + 8 * 3, 0x1_2340_0000 | P | 0x80);
    let p = Paging {
        cr0: PG | PE | CR0_WP,
        cr3: pdpt,
        cr4: CR4_PAE,
        efer: EFER_NXE,
        maxphyaddr: 40,
    };
    assert_eq!(translate(&mut m, &p, 0x8040_5123, UW), Ok(0x7_6123));
    assert_eq!(translate(&mut m, &p, 0x8067_8123, R), Ok(0x1_2347_8123));
    assert_eq!(
        translate(&mut m, &p, 0x8067_8123, UR),
        pf(0x8067_8123, pf::P | pf::U)
    );
    // PDPT entry 0 not present.
    assert_eq!(translate(&mut m, &p, 0x1000, R), pf(0x1000, 0));
    // Reserved bit 1 in a PDPTE.
    m.poke_u64(pdpt + 8 * 2, pd | P | 2);
    assert_eq!(
        translate(&mut m, &p, 0x8040_5123, R),
        pf(0x8040_5123, pf::P | pf::RSVD)
    );
}

#[test]
fn legacy_32_bit_paging() {
    let mut m = FakeGuestMem::new();
    let pd = m.alloc_table();
    let pt = m.alloc_table();
    // 0x0040_1000 -> 0x0012_3000 via a PT; 0x0080_0000 -> 4 MiB page at 0x0c00_0000.
    m.poke(pd + 4, &((pt | P | RW | US) as u32).to_le_bytes());
    m.poke(pt + 4, &(0x12_3000u32 | 7).to_le_bytes());
    m.poke(pd + 8, &(0x0c00_0000u32 | 0x80 | 3).to_le_bytes());
    let mut p = Paging {
        cr0: PG | PE,
        cr3: pd,
        cr4: CR4_PSE,
        efer: 0,
        maxphyaddr: 36,
    };
    assert_eq!(translate(&mut m, &p, 0x0040_1abc, UW), Ok(0x12_3abc));
    assert_eq!(translate(&mut m, &p, 0x0093_4567, W), Ok(0x0c13_4567));
    assert_eq!(
        translate(&mut m, &p, 0x0093_4567, UR),
        pf(0x0093_4567, pf::P | pf::U)
    );
    assert_eq!(translate(&mut m, &p, 0x0040_2000, R), pf(0x0040_2000, 0));
    // A fetch without SMEP or NX has no I/D bit.
    assert_eq!(translate(&mut m, &p, 0x0040_2000, X), pf(0x0040_2000, 0));
    // PSE-36: bits 20:13 are physical bits 39:32; above MAXPHYADDR is reserved.
    m.poke(
        pd + 8,
        &(0x0c00_0000u32 | (0x3 << 13) | 0x80 | 3).to_le_bytes(),
    );
    assert_eq!(translate(&mut m, &p, 0x0080_0010, R), Ok(0x3_0c00_0010));
    m.poke(
        pd + 8,
        &(0x0c00_0000u32 | (0x10 << 13) | 0x80 | 3).to_le_bytes(),
    );
    assert_eq!(
        translate(&mut m, &p, 0x0080_0010, R),
        pf(0x0080_0010, pf::P | pf::RSVD)
    );
    // Without CR4.PSE the PS bit is ignored: the PDE points at a page table (at 0x0c000000,
    // whose entries are zero: not present).
    p.cr4 = 0;
    m.poke(pd + 8, &(0x0c00_0000u32 | 0x80 | 3).to_le_bytes());
    assert_eq!(translate(&mut m, &p, 0x0080_0010, R), pf(0x0080_0010, 0));
    // A page table outside RAM.
    m.mmio.push((0x0c00_0000, 0x0c00_1000));
    assert_eq!(
        translate(&mut m, &p, 0x0080_0010, R),
        Err(WalkError::NotRam { gpa: 0x0c00_0000 })
    );
}

#[test]
fn segments_and_wrap() {
    assert_eq!(
        linear(Mode::Bits16, Seg::Ds, 0xf_0000, 0x1_fff0, 2),
        0xf_fff0
    );
    assert_eq!(
        linear(Mode::Bits32, Seg::Ds, 0xffff_f000, 0x2000, 4),
        0x1000
    );
    assert_eq!(linear(Mode::Bits64, Seg::Ds, 0x1000, 0x2000, 8), 0x2000);
    assert_eq!(linear(Mode::Bits64, Seg::Gs, 0x1000, 0x2000, 8), 0x3000);
    assert_eq!(
        linear(Mode::Bits64, Seg::Fs, 0x1000, 0xffff_ffff_0000_0000, 4),
        0x1000
    );
    assert_eq!(size_mask(2), 0xffff);
}

#[test]
fn fetch_across_pages() {
    let mut m = FakeGuestMem::new();
    let root = m.alloc_table();
    let lin = 0x40_0000u64;
    m.map_long(root, 4, lin, 0x9000, 1, P | RW);
    m.map_long(root, 4, lin + 0x1000, 0x5000, 1, P | RW);
    m.poke(0x9ffd, &[1, 2, 3]);
    m.poke(0x5000, &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    let p = long_paging(root);
    let f = fetch_insn(&mut m, &p, Mode::Bits64, 0xdead_0000, lin + 0xffd, false);
    assert_eq!(f.len, 15);
    assert_eq!(f.fault, None);
    assert_eq!(
        f.valid(),
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    // The next page is not present: three bytes, and the fault at the first missing byte.
    let f = fetch_insn(&mut m, &p, Mode::Bits64, 0, lin + 0x1ffe, false);
    assert_eq!(f.len, 2);
    assert_eq!(
        f.fault,
        Some(WalkError::PageFault {
            addr: lin + 0x2000,
            error_code: pf::ID
        })
    );
    // 16-bit code: IP wraps at 64 KiB within the CS segment; no paging.
    m.poke(0x1_ffff, &[0xaa]);
    m.poke(0x1_0000, &[0xbb, 0xcc]);
    let f = fetch_insn(
        &mut m,
        &Paging::default(),
        Mode::Bits16,
        0x1_0000,
        0xffff,
        false,
    );
    assert_eq!(&f.valid()[..3], &[0xaa, 0xbb, 0xcc]);
    // Fetching from MMIO stops.
    m.mmio.push((0x2_0002, 0x2_1000));
    let f = fetch_insn(&mut m, &Paging::default(), Mode::Bits32, 0x2_0000, 0, false);
    assert_eq!(
        (f.len, f.fault),
        (2, Some(WalkError::NotRam { gpa: 0x2_0002 }))
    );
}
