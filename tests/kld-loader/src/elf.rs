//! A bounds-checked reader of ELF64 little-endian relocatable objects (what a kernel module
//! is): the header, sections, symbols and RELA/REL entries. Nothing here trusts the file.

use std::fmt;

/// `ET_REL`.
pub const ET_REL: u16 = 1;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// Section types.
pub const SHT_PROGBITS: u32 = 1;
/// `SHT_SYMTAB`.
pub const SHT_SYMTAB: u32 = 2;
/// `SHT_STRTAB`.
pub const SHT_STRTAB: u32 = 3;
/// `SHT_RELA`.
pub const SHT_RELA: u32 = 4;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = 8;
/// `SHT_REL`.
pub const SHT_REL: u32 = 9;
/// `SHT_INIT_ARRAY`.
pub const SHT_INIT_ARRAY: u32 = 14;
/// `SHT_GROUP`.
pub const SHT_GROUP: u32 = 17;
/// `SHT_X86_64_UNWIND`.
pub const SHT_X86_64_UNWIND: u32 = 0x7000_0001;
/// `SHF_WRITE`.
pub const SHF_WRITE: u64 = 1;
/// `SHF_ALLOC`.
pub const SHF_ALLOC: u64 = 2;
/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = 4;
/// `SHF_TLS`.
pub const SHF_TLS: u64 = 0x400;
/// `SHN_UNDEF`.
pub const SHN_UNDEF: u16 = 0;
/// `SHN_ABS`.
pub const SHN_ABS: u16 = 0xfff1;
/// `SHN_COMMON`.
pub const SHN_COMMON: u16 = 0xfff2;
/// `STB_LOCAL`, `STB_GLOBAL`, `STB_WEAK`.
pub const STB_LOCAL: u8 = 0;
/// `STB_GLOBAL`.
pub const STB_GLOBAL: u8 = 1;
/// `STB_WEAK`.
pub const STB_WEAK: u8 = 2;
/// `STT_TLS`.
pub const STT_TLS: u8 = 6;
/// `STT_SECTION`.
pub const STT_SECTION: u8 = 3;

/// An error reading the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ElfError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(msg.into()))
}

/// One section header.
#[derive(Debug, Clone)]
pub struct Section {
    /// Index.
    pub index: usize,
    /// Name.
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_offset`.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// `sh_addralign`.
    pub align: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

impl Section {
    /// Whether the loader places it in memory.
    pub fn is_alloc(&self) -> bool {
        self.flags & SHF_ALLOC != 0
    }
}

/// One symbol.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Name.
    pub name: String,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// Binding (`STB_*`).
    pub bind: u8,
    /// Type (`STT_*`).
    pub kind: u8,
    /// `st_shndx`.
    pub shndx: u16,
}

/// One relocation (REL entries have addend 0 here; the caller reads it from the target).
#[derive(Debug, Clone, Copy)]
pub struct Reloc {
    /// Offset in the target section.
    pub offset: u64,
    /// `ELF64_R_TYPE`.
    pub kind: u32,
    /// `ELF64_R_SYM`.
    pub sym: u32,
    /// The addend (RELA).
    pub addend: i64,
}

/// A parsed relocatable object.
#[derive(Debug, Clone)]
pub struct Elf {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// `e_type`.
    pub kind: u16,
    /// `e_machine`.
    pub machine: u16,
    /// Sections, by index.
    pub sections: Vec<Section>,
}

fn rd<const N: usize>(d: &[u8], off: usize) -> Result<[u8; N], ElfError> {
    let end = off
        .checked_add(N)
        .ok_or_else(|| ElfError("offset overflow".into()))?;
    d.get(off..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| ElfError(format!("read of {N} bytes at {off:#x} beyond the file")))
}
fn u16_at(d: &[u8], off: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(rd(d, off)?))
}
fn u32_at(d: &[u8], off: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(rd(d, off)?))
}
fn u64_at(d: &[u8], off: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(rd(d, off)?))
}
fn usz(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError("value too large".into()))
}

/// A NUL-terminated string at `off` of `table`.
fn cstr(table: &[u8], off: usize) -> Result<String, ElfError> {
    let s = table
        .get(off..)
        .ok_or_else(|| ElfError(format!("string offset {off:#x} beyond its table")))?;
    let n = s
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| ElfError("unterminated string".into()))?;
    Ok(String::from_utf8_lossy(s.get(..n).unwrap_or_default()).into_owned())
}

impl Elf {
    /// Parses `data` as an ELF64 little-endian object.
    pub fn parse(data: Vec<u8>) -> Result<Elf, ElfError> {
        if data.get(..4) != Some(b"\x7fELF".as_slice()) {
            return err("not an ELF file");
        }
        if data.get(4) != Some(&2) || data.get(5) != Some(&1) || data.get(6) != Some(&1) {
            return err("not ELFCLASS64 / ELFDATA2LSB / EV_CURRENT");
        }
        let kind = u16_at(&data, 16)?;
        let machine = u16_at(&data, 18)?;
        let shoff = usz(u64_at(&data, 40)?)?;
        let shentsize = u16_at(&data, 58)?;
        let shnum = usize::from(u16_at(&data, 60)?);
        let shstrndx = usize::from(u16_at(&data, 62)?);
        if shentsize != 64 {
            return err(format!("e_shentsize {shentsize} != sizeof(Elf64_Shdr)"));
        }
        let mut raw = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let b = shoff + i * 64;
            raw.push((
                u32_at(&data, b)?,
                u32_at(&data, b + 4)?,
                u64_at(&data, b + 8)?,
                u64_at(&data, b + 24)?,
                u64_at(&data, b + 32)?,
                u32_at(&data, b + 40)?,
                u32_at(&data, b + 44)?,
                u64_at(&data, b + 48)?,
                u64_at(&data, b + 56)?,
            ));
        }
        let shstr = raw
            .get(shstrndx)
            .ok_or_else(|| ElfError("bad e_shstrndx".into()))?;
        let strtab = slice(&data, shstr.3, shstr.4)?.to_vec();
        let mut sections = Vec::with_capacity(shnum);
        for (index, r) in raw.iter().enumerate() {
            sections.push(Section {
                index,
                name: cstr(&strtab, usz(u64::from(r.0))?)?,
                kind: r.1,
                flags: r.2,
                offset: r.3,
                size: r.4,
                link: r.5,
                info: r.6,
                align: r.7,
                entsize: r.8,
            });
        }
        Ok(Elf {
            data,
            kind,
            machine,
            sections,
        })
    }

    /// The bytes of a section (empty for `SHT_NOBITS`).
    pub fn bytes(&self, s: &Section) -> Result<&[u8], ElfError> {
        if s.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        slice(&self.data, s.offset, s.size)
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The symbol tables.
    pub fn symtabs(&self) -> Vec<&Section> {
        self.sections
            .iter()
            .filter(|s| s.kind == SHT_SYMTAB)
            .collect()
    }

    /// The symbols of the (first) symbol table, by index.
    pub fn symbols(&self) -> Result<Vec<Symbol>, ElfError> {
        let Some(st) = self.symtabs().first().copied() else {
            return err("no symbol table");
        };
        let strs = self
            .sections
            .get(st.link as usize)
            .ok_or_else(|| ElfError("symtab sh_link out of range".into()))?;
        if strs.kind != SHT_STRTAB {
            return err("symtab sh_link is not a string table");
        }
        let names = self.bytes(strs)?;
        let d = self.bytes(st)?;
        let mut out = Vec::with_capacity(d.len() / 24);
        for i in 0..d.len() / 24 {
            let b = i * 24;
            let info = *d
                .get(b + 4)
                .ok_or_else(|| ElfError("short symtab".into()))?;
            out.push(Symbol {
                name: cstr(names, usz(u64::from(u32_at(d, b)?))?)?,
                bind: info >> 4,
                kind: info & 0xf,
                shndx: u16_at(d, b + 6)?,
                value: u64_at(d, b + 8)?,
                size: u64_at(d, b + 16)?,
            });
        }
        Ok(out)
    }

    /// The entries of a REL or RELA section.
    pub fn relocs(&self, s: &Section) -> Result<Vec<Reloc>, ElfError> {
        let d = self.bytes(s)?;
        let (ent, rela) = match s.kind {
            SHT_RELA => (24, true),
            SHT_REL => (16, false),
            _ => return err(format!("{} is not a relocation section", s.name)),
        };
        let mut out = Vec::with_capacity(d.len() / ent);
        for i in 0..d.len() / ent {
            let b = i * ent;
            let info = u64_at(d, b + 8)?;
            out.push(Reloc {
                offset: u64_at(d, b)?,
                // CAST: the low and high halves of r_info.
                kind: info as u32,
                sym: (info >> 32) as u32,
                addend: if rela { u64_at(d, b + 16)? as i64 } else { 0 },
            });
        }
        Ok(out)
    }
}

fn slice(d: &[u8], off: u64, size: u64) -> Result<&[u8], ElfError> {
    let (o, n) = (usz(off)?, usz(size)?);
    let end = o
        .checked_add(n)
        .ok_or_else(|| ElfError("overflow".into()))?;
    d.get(o..end)
        .ok_or_else(|| ElfError(format!("section data {off:#x}+{size:#x} beyond the file")))
}

/// The name of an x86-64 relocation type.
pub fn reloc_name(kind: u32) -> String {
    let n = match kind {
        0 => "R_X86_64_NONE",
        1 => "R_X86_64_64",
        2 => "R_X86_64_PC32",
        3 => "R_X86_64_GOT32",
        4 => "R_X86_64_PLT32",
        5 => "R_X86_64_COPY",
        6 => "R_X86_64_GLOB_DAT",
        7 => "R_X86_64_JUMP_SLOT",
        8 => "R_X86_64_RELATIVE",
        9 => "R_X86_64_GOTPCREL",
        10 => "R_X86_64_32",
        11 => "R_X86_64_32S",
        16..=23 => "R_X86_64_TLS*",
        24 => "R_X86_64_PC64",
        37 => "R_X86_64_IRELATIVE",
        41 => "R_X86_64_GOTPCRELX",
        42 => "R_X86_64_REX_GOTPCRELX",
        _ => return format!("R_X86_64_#{kind}"),
    };
    n.to_string()
}
