//! The illumos amd64 personality: krtld's rules for a kernel module (an ET_REL object), as
//! summarised in docs/illumos.md from `uts/common/krtld/kobj.c` and
//! `uts/intel/amd64/krtld/kobj_reloc.c`:
//!
//! - relocation sections must be `SHT_RELA` ("can't process type SHT_REL");
//! - krtld computes `S + A` (`- P` for PC-relative types) with overflow checks and builds no
//!   GOT or PLT, so only the static types a kernel-model object needs are accepted: NONE, 64,
//!   PC32, PLT32 (a direct call) and 32S; GOT types would be computed without GOT semantics,
//!   `R_AMD64_32` cannot reach kernel addresses, TLS types are refused;
//! - the module's entry points `_init`, `_fini` and `_info` are global functions;
//! - `_depends_on`, if present, is a global NUL-terminated string of `dir/name` modules
//!   inside a loaded section;
//! - krtld runs no constructors (`.init_array`, `.ctors`).

use crate::check::{Personality, Report};
use crate::elf::*;

/// illumos's krtld on amd64.
#[derive(Debug, Default, Clone, Copy)]
pub struct Illumos;

/// Relocation types the harness and this check accept for illumos: R_AMD64_NONE, 64, PC32,
/// PLT32, 32S.
pub const ILLUMOS_RELOCS: &[u32] = &[0, 1, 2, 4, 11];

/// `STT_FUNC`, `STT_OBJECT`.
const STT_FUNC: u8 = 2;
const STT_OBJECT: u8 = 1;

impl Personality for Illumos {
    fn name(&self) -> &'static str {
        "illumos amd64 krtld"
    }

    fn loader(&self) -> &'static str {
        "krtld"
    }

    fn reloc_allowed(&self, kind: u32) -> bool {
        ILLUMOS_RELOCS.contains(&kind)
    }

    fn rel_allowed(&self) -> bool {
        false
    }

    fn section_loaded(&self, s: &Section) -> bool {
        matches!(s.kind, SHT_PROGBITS | SHT_NOBITS | SHT_X86_64_UNWIND)
            && s.is_alloc()
            && s.size != 0
    }

    fn check_object(&self, elf: &Elf, r: &mut Report) {
        for s in &elf.sections {
            if s.kind == SHT_REL {
                r.problems.push(format!(
                    "{}: SHT_REL (krtld processes only SHT_RELA)",
                    s.name
                ));
            }
            let ctor = s.kind == SHT_INIT_ARRAY || s.name == ".init_array" || s.name == ".ctors";
            if ctor && s.size != 0 {
                r.problems
                    .push(format!("{}: constructors (krtld runs none)", s.name));
            }
        }
        let syms = elf.symbols().unwrap_or_default();
        let defined = |name: &str| {
            syms.iter().find(|s| {
                s.name == name && s.bind == STB_GLOBAL && s.shndx != SHN_UNDEF && s.shndx < 0xff00
            })
        };
        for entry in ["_init", "_fini", "_info"] {
            match defined(entry) {
                Some(s) if s.kind == STT_FUNC => {}
                Some(_) => r.problems.push(format!("{entry} is not a function")),
                None => r
                    .problems
                    .push(format!("entry point {entry} is not a defined global")),
            }
        }
        match defined("_depends_on") {
            None => {}
            Some(s) => {
                let sec = elf.sections.get(usize::from(s.shndx));
                let ok = s.kind == STT_OBJECT
                    && sec.is_some_and(|sec| {
                        self.section_loaded(sec)
                            && elf.bytes(sec).is_ok_and(|b| {
                                let start = s.value as usize;
                                let end = start.saturating_add(s.size as usize);
                                b.get(start..end).is_some_and(|v| v.contains(&0))
                            })
                    });
                if !ok {
                    r.problems.push(
                        "_depends_on is not a NUL-terminated string in a loaded section".into(),
                    );
                }
            }
        }
    }
}

/// The modules `_depends_on` names (`dir/name`, space-separated), or `None` without one.
pub fn depends_on(elf: &Elf) -> Option<Vec<String>> {
    let syms = elf.symbols().ok()?;
    let s = syms.iter().find(|s| s.name == "_depends_on")?;
    let sec = elf.sections.get(usize::from(s.shndx))?;
    let b = elf.bytes(sec).ok()?;
    let start = s.value as usize;
    let v = b.get(start..start.saturating_add(s.size as usize))?;
    let end = v.iter().position(|&c| c == 0)?;
    let text = String::from_utf8_lossy(v.get(..end)?).into_owned();
    Some(text.split_whitespace().map(str::to_string).collect())
}
