//! The FreeBSD 14 amd64 personality: `link_elf_obj`'s rules (sys/kern/link_elf_obj.c and the
//! amd64 `elf_reloc_internal` in sys/amd64/amd64/elf_machdep.c, as summarised in
//! docs/freebsd.md).

use crate::check::{Personality, Report};
use crate::elf::*;

/// FreeBSD 14's kernel linker for ET_REL modules on amd64.
#[derive(Debug, Default, Clone, Copy)]
pub struct FreeBsd14;

/// Relocation types amd64 `elf_reloc_internal` applies: NONE, 64, PC32, PLT32 (as PC32),
/// 32S, GLOB_DAT, JMP_SLOT, RELATIVE, IRELATIVE. Everything else (32, GOTPCREL*, PC64, TLS,
/// COPY) fails the load.
pub const FREEBSD_RELOCS: &[u32] = &[0, 1, 2, 4, 11, 6, 7, 8, 37];

impl Personality for FreeBsd14 {
    fn name(&self) -> &'static str {
        "FreeBSD 14 amd64 link_elf_obj"
    }

    fn reloc_allowed(&self, kind: u32) -> bool {
        FREEBSD_RELOCS.contains(&kind)
    }

    fn section_loaded(&self, s: &Section) -> bool {
        matches!(s.kind, SHT_PROGBITS | SHT_NOBITS | SHT_X86_64_UNWIND)
            && s.is_alloc()
            && s.size != 0
    }

    fn check_object(&self, elf: &Elf, r: &mut Report) {
        for need in ["set_modmetadata_set", "set_sysinit_set"] {
            if !r.sets.iter().any(|(n, _)| n == need) {
                r.problems.push(format!("missing linker set {need}"));
            }
        }
        for s in &elf.sections {
            let ctor = s.kind == SHT_INIT_ARRAY || s.name == ".init_array" || s.name == ".ctors";
            if ctor && s.size != 0 {
                r.problems.push(format!(
                    "{}: constructors (link_elf_obj runs only .ctors, and kvmport has none)",
                    s.name
                ));
            }
            if s.kind == SHT_REL || s.kind == SHT_RELA {
                let target = elf.sections.get(s.info as usize);
                if target.is_some_and(|t| self.section_loaded(t))
                    && s.link as usize >= elf.sections.len()
                {
                    r.problems.push(format!("{}: bad sh_link", s.name));
                }
            }
        }
    }
}
