//! A test double for guest physical memory, and a page-table builder over it.

use std::collections::HashMap;
use std::vec::Vec;

use super::GuestMem;

/// Sparse guest RAM (unwritten bytes read as zero) with MMIO holes and read-only ranges.
#[derive(Default)]
pub struct FakeGuestMem {
    pages: HashMap<u64, [u8; 4096]>,
    /// Half-open `[start, end)` ranges that are not RAM.
    pub mmio: Vec<(u64, u64)>,
    /// Half-open ranges that are RAM but refuse writes.
    pub readonly: Vec<(u64, u64)>,
    /// Every successful `write_phys`: (gpa, bytes).
    pub writes: Vec<(u64, Vec<u8>)>,
    /// Next free page for page tables.
    pub next_table: u64,
}

fn hits(ranges: &[(u64, u64)], gpa: u64, len: usize) -> bool {
    let end = gpa + len as u64;
    ranges.iter().any(|&(s, e)| gpa < e && s < end)
}

impl FakeGuestMem {
    pub fn new() -> Self {
        FakeGuestMem {
            next_table: 0x100_0000,
            ..Default::default()
        }
    }

    pub fn poke(&mut self, gpa: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = gpa + i as u64;
            self.pages.entry(a & !0xfff).or_insert([0; 4096])[(a & 0xfff) as usize] = *b;
        }
    }

    pub fn peek(&self, gpa: u64, n: usize) -> Vec<u8> {
        (0..n as u64)
            .map(|i| {
                let a = gpa + i;
                self.pages
                    .get(&(a & !0xfff))
                    .map_or(0, |p| p[(a & 0xfff) as usize])
            })
            .collect()
    }

    pub fn poke_u64(&mut self, gpa: u64, v: u64) {
        self.poke(gpa, &v.to_le_bytes());
    }

    pub fn peek_u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.peek(gpa, 8).try_into().unwrap())
    }

    /// A zeroed page for a paging structure.
    pub fn alloc_table(&mut self) -> u64 {
        let t = self.next_table;
        self.next_table += 0x1000;
        self.poke(t, &[0; 4096]);
        t
    }

    /// Maps `lin` to `phys` in long-mode tables rooted at `root` (`levels` 4 or 5) with a
    /// page of `page_level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). `flags` go on every level;
    /// the leaf also gets PS for large pages.
    pub fn map_long(
        &mut self,
        root: u64,
        levels: u32,
        lin: u64,
        phys: u64,
        page_level: u32,
        flags: u64,
    ) {
        let mut table = root;
        let mut level = levels;
        loop {
            let shift = 12 + 9 * (level - 1);
            let slot = table + ((lin >> shift) & 0x1ff) * 8;
            if level == page_level {
                let ps = if level > 1 { 0x80 } else { 0 };
                self.poke_u64(slot, phys | flags | ps);
                return;
            }
            let e = self.peek_u64(slot);
            let next = if e & 1 != 0 {
                e & 0x000f_ffff_ffff_f000
            } else {
                let t = self.alloc_table();
                self.poke_u64(slot, t | flags);
                t
            };
            // Upper levels keep the most permissive flags; tests override entries directly.
            table = next;
            level -= 1;
        }
    }
}

impl GuestMem for FakeGuestMem {
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        if hits(&self.mmio, gpa, buf.len()) {
            return false;
        }
        let v = self.peek(gpa, buf.len());
        buf.copy_from_slice(&v);
        true
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool {
        if hits(&self.mmio, gpa, data.len()) || hits(&self.readonly, gpa, data.len()) {
            return false;
        }
        self.poke(gpa, data);
        self.writes.push((gpa, data.to_vec()));
        true
    }
}
