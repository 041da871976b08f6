//! The static check of a module object against an OS personality's loader rules: what it
//! prints (sections, linker sets, relocation types, imports) and what it refuses.

use std::collections::BTreeMap;
use std::fmt;

use crate::elf::*;

/// What a kernel's module loader accepts and what it provides: the pluggable part of the
/// checker and the loader harness (FreeBSD 14 and illumos).
pub trait Personality {
    /// The OS and release line, e.g. `FreeBSD 14 amd64`.
    fn name(&self) -> &'static str;
    /// The name the loader's own error messages carry (`kldload`, `krtld`).
    fn loader(&self) -> &'static str {
        "kldload"
    }
    /// Whether the loader applies relocation type `kind` in a loaded section.
    fn reloc_allowed(&self, kind: u32) -> bool;
    /// Whether the loader processes `SHT_REL` sections (besides `SHT_RELA`).
    fn rel_allowed(&self) -> bool {
        true
    }
    /// Whether a section (by its header) is placed in memory by the loader.
    fn section_loaded(&self, s: &Section) -> bool;
    /// OS-specific rules (required linker sets or entry points); adds to `r.problems`.
    fn check_object(&self, elf: &Elf, r: &mut Report);
}

/// One loaded section in the report.
#[derive(Debug, Clone)]
pub struct SectionInfo {
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `W`, `X` flags.
    pub flags: String,
}

/// The result of [`check`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The personality's name.
    pub os: String,
    /// Sections the loader places in memory.
    pub sections: Vec<SectionInfo>,
    /// Linker sets (`set_*` sections) and their number of pointers.
    pub sets: Vec<(String, u64)>,
    /// Relocation types applied to loaded sections, with counts.
    pub relocs: BTreeMap<String, usize>,
    /// Undefined symbols the kernel must provide; `true` for weak ones.
    pub imports: Vec<(String, bool)>,
    /// Everything the loader would refuse.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether the loader would accept the object.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "module check ({}):", self.os)?;
        writeln!(f, "  sections:")?;
        for s in &self.sections {
            writeln!(f, "    {:<24} {:>8} bytes  {}", s.name, s.size, s.flags)?;
        }
        writeln!(f, "  linker sets:")?;
        for (n, c) in &self.sets {
            writeln!(f, "    {n:<24} {c} entries")?;
        }
        writeln!(f, "  relocation types:")?;
        for (n, c) in &self.relocs {
            writeln!(f, "    {n:<24} {c}")?;
        }
        let names: Vec<String> = self
            .imports
            .iter()
            .map(|(n, w)| if *w { format!("{n} (weak)") } else { n.clone() })
            .collect();
        writeln!(
            f,
            "  imported symbols ({}): {}",
            names.len(),
            names.join(" ")
        )?;
        if self.problems.is_empty() {
            write!(f, "  result: OK")
        } else {
            writeln!(f, "  result: REFUSED")?;
            for p in &self.problems {
                writeln!(f, "    - {p}")?;
            }
            Ok(())
        }
    }
}

/// Checks `elf` against the generic ET_REL rules and `os`'s own.
pub fn check(elf: &Elf, os: &dyn Personality) -> Report {
    let mut r = Report {
        os: os.name().to_string(),
        ..Report::default()
    };
    if elf.kind != ET_REL {
        r.problems
            .push(format!("e_type {} is not ET_REL", elf.kind));
    }
    if elf.machine != EM_X86_64 {
        r.problems
            .push(format!("e_machine {} is not EM_X86_64", elf.machine));
    }
    let symtabs = elf.symtabs().len();
    if symtabs != 1 {
        r.problems
            .push(format!("{symtabs} symbol tables (exactly one is required)"));
    }
    for s in &elf.sections {
        if s.flags & SHF_TLS != 0 {
            r.problems.push(format!("TLS section {}", s.name));
        }
        if os.section_loaded(s) {
            let mut flags = String::new();
            if s.flags & SHF_WRITE != 0 {
                flags.push('W');
            }
            if s.flags & SHF_EXECINSTR != 0 {
                flags.push('X');
            }
            r.sections.push(SectionInfo {
                name: s.name.clone(),
                size: s.size,
                flags,
            });
            if let Some(set) = s.name.strip_prefix("set_") {
                let _ = set;
                r.sets.push((s.name.clone(), s.size / 8));
                if s.size % 8 != 0 {
                    r.problems
                        .push(format!("linker set {} is not a pointer array", s.name));
                }
            }
        }
    }
    if r.sections.is_empty() {
        r.problems.push("no loadable section".into());
    }
    let syms = match elf.symbols() {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(format!("symbols: {e}"));
            Vec::new()
        }
    };
    for s in &elf.sections {
        if s.kind != SHT_RELA && s.kind != SHT_REL {
            continue;
        }
        let Some(target) = elf.sections.get(s.info as usize) else {
            r.problems.push(format!("{}: bad target section", s.name));
            continue;
        };
        if !os.section_loaded(target) {
            continue;
        }
        match elf.relocs(s) {
            Ok(rels) => {
                for rel in rels {
                    let name = reloc_name(rel.kind);
                    if !os.reloc_allowed(rel.kind) {
                        r.problems.push(format!(
                            "{} at {}+{:#x}: the loader rejects this relocation type",
                            name, target.name, rel.offset
                        ));
                    }
                    *r.relocs.entry(name).or_default() += 1;
                }
            }
            Err(e) => r.problems.push(format!("{}: {e}", s.name)),
        }
    }
    for sym in &syms {
        if sym.kind == STT_TLS {
            r.problems.push(format!("TLS symbol {}", sym.name));
        }
        if sym.shndx == SHN_COMMON {
            r.problems.push(format!("common symbol {}", sym.name));
        }
        if sym.shndx == SHN_UNDEF && sym.bind != STB_LOCAL && !sym.name.is_empty() {
            r.imports.push((sym.name.clone(), sym.bind == STB_WEAK));
        }
    }
    r.imports.sort();
    r.imports.dedup();
    let mut dedup = std::collections::BTreeSet::new();
    r.problems.retain(|p| dedup.insert(p.clone()));
    os.check_object(elf, &mut r);
    r
}
