//! Maps a module's loaded sections below 2 GiB and relocates them as the kernel linker
//! would, binding each import to an address the caller provides. Functions the harness
//! provides live in the (position-independent, high) test binary, out of reach of the
//! module's 32-bit PC-relative calls, so each imported function gets a 16-byte trampoline
//! (`jmp *0(%rip)` + the absolute address) inside the low mapping.

use std::collections::BTreeMap;

use crate::check::Personality;
use crate::elf::*;

/// What an imported symbol binds to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A function anywhere in the address space: reached through a low trampoline.
    Func(u64),
    /// Data the harness placed below 2 GiB: bound directly.
    Data(u64),
}

/// A module in memory.
#[derive(Debug)]
pub struct Loaded {
    /// Base of the mapping.
    pub base: u64,
    /// Length of the mapping.
    pub len: usize,
    /// Load address of each loaded section, by section index.
    pub section_addr: BTreeMap<usize, u64>,
    /// Load address of each section by name (loaded sections only).
    pub by_name: BTreeMap<String, (u64, u64)>,
    /// Defined global symbols and their addresses.
    pub globals: BTreeMap<String, u64>,
}

impl Loaded {
    /// The address and size of a loaded section.
    pub fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.by_name.get(name).copied()
    }

    /// The pointers of linker set `set_<name>`.
    pub fn set(&self, name: &str) -> Vec<u64> {
        let Some((addr, size)) = self.section(&format!("set_{name}")) else {
            return Vec::new();
        };
        (0..size / 8)
            // SAFETY: inside the loaded section, which this value keeps mapped.
            .map(|i| unsafe { ((addr + i * 8) as *const u64).read_unaligned() })
            .collect()
    }
}

fn align_up(v: u64, a: u64) -> u64 {
    let a = a.max(1);
    v.div_ceil(a) * a
}

/// Loads `elf` at `hint` (below 2 GiB). `resolve` binds an undefined symbol, or returns
/// `None`, in which case the load fails listing every such name (weak ones become 0, as in
/// the kernel).
pub fn load(
    elf: &Elf,
    os: &dyn Personality,
    hint: u64,
    mut resolve: impl FnMut(&str) -> Option<Target>,
) -> Result<Loaded, String> {
    let syms = elf.symbols().map_err(|e| e.to_string())?;
    // Layout: loaded sections at their alignment, then one trampoline per import.
    let mut off = 0u64;
    let mut place = BTreeMap::new();
    for s in &elf.sections {
        if os.section_loaded(s) {
            off = align_up(off, s.align);
            place.insert(s.index, off);
            off += s.size;
        }
    }
    let imports: Vec<&Symbol> = syms
        .iter()
        .filter(|s| s.shndx == SHN_UNDEF && s.bind != STB_LOCAL && !s.name.is_empty())
        .collect();
    let tramp_base = align_up(off, 16);
    let len = usize::try_from(align_up(tramp_base + 16 * imports.len() as u64, 4096))
        .map_err(|e| e.to_string())?;
    if hint + len as u64 > 0x8000_0000 {
        return Err("module does not fit below 2 GiB".into());
    }
    // SAFETY: a new private mapping at a fixed address nothing else uses (NOREPLACE fails
    // otherwise); it is only accessed through raw pointers below.
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 != hint {
        return Err(format!(
            "mmap at {hint:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let base = hint;
    let mut loaded = Loaded {
        base,
        len,
        section_addr: BTreeMap::new(),
        by_name: BTreeMap::new(),
        globals: BTreeMap::new(),
    };
    for s in &elf.sections {
        if let Some(o) = place.get(&s.index) {
            let addr = base + o;
            let bytes = elf.bytes(s).map_err(|e| e.to_string())?;
            // SAFETY: the section's place lies inside the fresh mapping (layout above).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
            loaded.section_addr.insert(s.index, addr);
            loaded.by_name.insert(s.name.clone(), (addr, s.size));
        }
    }
    // Bind symbols.
    let mut missing = Vec::new();
    let mut addr_of: Vec<u64> = Vec::with_capacity(syms.len());
    let mut tramp = base + tramp_base;
    for sym in &syms {
        let a = match sym.shndx {
            SHN_UNDEF if sym.bind == STB_LOCAL || sym.name.is_empty() => 0,
            SHN_UNDEF => {
                // __start_set_X / __stop_set_X bind to the set section.
                let set = sym
                    .name
                    .strip_prefix("__start_")
                    .map(|n| (n, false))
                    .or_else(|| sym.name.strip_prefix("__stop_").map(|n| (n, true)));
                if let Some((a, sz)) = set.and_then(|(n, stop)| {
                    loaded
                        .section(n)
                        .map(|(a, s)| (a, if stop { s } else { 0 }))
                }) {
                    a + sz
                } else {
                    match resolve(&sym.name) {
                        Some(Target::Data(a)) => a,
                        Some(Target::Func(f)) => {
                            let t = tramp;
                            tramp += 16;
                            let mut code = [0u8; 16];
                            code[..6].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
                            code[6..14].copy_from_slice(&f.to_le_bytes());
                            code[14..].copy_from_slice(&[0xcc, 0xcc]);
                            // SAFETY: the trampoline slot lies inside the mapping.
                            unsafe {
                                std::ptr::copy_nonoverlapping(code.as_ptr(), t as *mut u8, 16)
                            };
                            t
                        }
                        None if sym.bind == STB_WEAK => 0,
                        None => {
                            missing.push(sym.name.clone());
                            0
                        }
                    }
                }
            }
            SHN_ABS => sym.value,
            SHN_COMMON => return Err(format!("common symbol {}", sym.name)),
            i => match loaded.section_addr.get(&usize::from(i)) {
                Some(sec) => sec + sym.value,
                None => 0,
            },
        };
        if sym.shndx != SHN_UNDEF && sym.bind != STB_LOCAL && !sym.name.is_empty() {
            loaded.globals.insert(sym.name.clone(), a);
        }
        addr_of.push(a);
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(format!(
            "imports the harness does not provide: {}",
            missing.join(" ")
        ));
    }
    // Relocate.
    for s in &elf.sections {
        if s.kind != SHT_RELA && s.kind != SHT_REL {
            continue;
        }
        let Some(&tbase) = loaded.section_addr.get(&(s.info as usize)) else {
            continue;
        };
        if s.kind == SHT_REL && !os.rel_allowed() {
            return Err(format!(
                "{}: can't process type SHT_REL ({})",
                os.loader(),
                s.name
            ));
        }
        let tsize = elf.sections.get(s.info as usize).map_or(0, |t| t.size);
        for r in elf.relocs(s).map_err(|e| e.to_string())? {
            let width = match r.kind {
                0 => 0,
                2 | 4 | 10 | 11 => 4,
                _ => 8,
            };
            if r.offset.checked_add(width).is_none_or(|e| e > tsize) {
                return Err(format!("relocation at {:#x} beyond its section", r.offset));
            }
            let p = tbase + r.offset;
            let sym = addr_of
                .get(r.sym as usize)
                .copied()
                .ok_or_else(|| format!("relocation symbol {} out of range", r.sym))?;
            let addend = if s.kind == SHT_RELA {
                r.addend
            } else if width == 4 {
                // SAFETY: inside the target section (checked above).
                i64::from(unsafe { (p as *const i32).read_unaligned() })
            } else if width == 8 {
                // SAFETY: as above.
                unsafe { (p as *const i64).read_unaligned() }
            } else {
                0
            };
            if !os.reloc_allowed(r.kind) {
                return Err(format!(
                    "{}: unexpected relocation type {} ({})",
                    os.loader(),
                    r.kind,
                    reloc_name(r.kind)
                ));
            }
            let s_a = (sym as i64).wrapping_add(addend);
            let write32 = |v: i64| -> Result<(), String> {
                let v32 = i32::try_from(v).map_err(|_| {
                    format!("{} at {p:#x}: {v:#x} does not fit", reloc_name(r.kind))
                })?;
                // SAFETY: inside the target section (checked above).
                unsafe { (p as *mut i32).write_unaligned(v32) };
                Ok(())
            };
            match r.kind {
                0 => {}
                // R_X86_64_64
                1 => {
                    // SAFETY: inside the target section.
                    unsafe { (p as *mut i64).write_unaligned(s_a) }
                }
                // PC32, PLT32 (as PC32)
                2 | 4 => write32(s_a.wrapping_sub(p as i64))?,
                // 32S
                11 => write32(s_a)?,
                // GLOB_DAT, JMP_SLOT: the symbol's address
                6 | 7 => {
                    // SAFETY: inside the target section.
                    unsafe { (p as *mut u64).write_unaligned(sym) }
                }
                // RELATIVE: relocbase + addend
                8 => {
                    // SAFETY: inside the target section.
                    unsafe { (p as *mut i64).write_unaligned((base as i64).wrapping_add(addend)) }
                }
                k => {
                    return Err(format!(
                        "relocation type {} ({}) is not applied by this harness",
                        k,
                        reloc_name(k)
                    ));
                }
            }
        }
    }
    Ok(loaded)
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `load`, owned by this value.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}
