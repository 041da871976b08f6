//! The checker and the loader against small hand-made objects: what FreeBSD 14's kernel
//! linker accepts, what it refuses, and how relocations and imports are applied.

use kvmport_kld_loader::check::check;
use kvmport_kld_loader::elf::Elf;
use kvmport_kld_loader::freebsd::FreeBsd14;

/// Options for [`object`].
#[derive(Clone)]
struct Obj {
    e_type: u16,
    reloc: u32,
    addend: i64,
    sets: bool,
    two_symtabs: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Obj {
            e_type: 1,
            reloc: 2, // R_X86_64_PC32
            addend: -4,
            sets: true,
            two_symtabs: false,
        }
    }
}

/// An ET_REL object: `.text` (16 bytes of NOPs, one relocation at offset 4 against the
/// undefined global `ext_fn`), and `set_modmetadata_set`/`set_sysinit_set` of one pointer.
fn object(o: &Obj) -> Vec<u8> {
    let mut shstr = vec![0u8];
    let mut name = |s: &str| {
        let off = shstr.len() as u32;
        shstr.extend_from_slice(s.as_bytes());
        shstr.push(0);
        off
    };
    let n_text = name(".text");
    let n_md = name("set_modmetadata_set");
    let n_si = name("set_sysinit_set");
    let n_rela = name(".rela.text");
    let n_sym = name(".symtab");
    let n_str = name(".strtab");
    let n_shstr = name(".shstrtab");
    let strtab = b"\0ext_fn\0".to_vec();
    let mut symtab = vec![0u8; 24];
    let mut sym = vec![0u8; 24];
    sym[0..4].copy_from_slice(&1u32.to_le_bytes());
    sym[4] = 1 << 4; // STB_GLOBAL, STT_NOTYPE
    symtab.extend_from_slice(&sym);
    let mut rela = Vec::new();
    rela.extend_from_slice(&4u64.to_le_bytes());
    rela.extend_from_slice(&((1u64 << 32) | u64::from(o.reloc)).to_le_bytes());
    rela.extend_from_slice(&o.addend.to_le_bytes());
    let text = vec![0x90u8; 16];
    let ptr = vec![0u8; 8];
    // Layout: header, then section data, then section headers.
    let mut data = vec![0u8; 64];
    let place = |d: &[u8], data: &mut Vec<u8>| {
        while data.len() % 8 != 0 {
            data.push(0);
        }
        let off = data.len() as u64;
        data.extend_from_slice(d);
        off
    };
    let o_text = place(&text, &mut data);
    let o_md = place(&ptr, &mut data);
    let o_si = place(&ptr, &mut data);
    let o_rela = place(&rela, &mut data);
    let o_sym = place(&symtab, &mut data);
    let o_str = place(&strtab, &mut data);
    let o_shstr = place(&shstr, &mut data);
    while data.len() % 8 != 0 {
        data.push(0);
    }
    let shoff = data.len() as u64;
    // (name, type, flags, off, size, link, info, align, entsize)
    type Shdr = (u32, u32, u64, u64, u64, u32, u32, u64, u64);
    let mut sh: Vec<Shdr> = vec![
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (n_text, 1, 6, o_text, 16, 0, 0, 16, 0),
    ];
    let set_flags = if o.sets { 2 } else { 0 };
    sh.push((n_md, 1, set_flags, o_md, 8, 0, 0, 8, 0));
    sh.push((n_si, 1, set_flags, o_si, 8, 0, 0, 8, 0));
    sh.push((n_rela, 4, 0x40, o_rela, 24, 5, 1, 8, 24));
    sh.push((n_sym, 2, 0, o_sym, 48, 6, 1, 8, 24));
    sh.push((n_str, 3, 0, o_str, strtab.len() as u64, 0, 0, 1, 0));
    sh.push((n_shstr, 3, 0, o_shstr, shstr.len() as u64, 0, 0, 1, 0));
    if o.two_symtabs {
        sh.push((n_sym, 2, 0, o_sym, 48, 6, 1, 8, 24));
    }
    for s in &sh {
        data.extend_from_slice(&s.0.to_le_bytes());
        data.extend_from_slice(&s.1.to_le_bytes());
        data.extend_from_slice(&s.2.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        data.extend_from_slice(&s.3.to_le_bytes());
        data.extend_from_slice(&s.4.to_le_bytes());
        data.extend_from_slice(&s.5.to_le_bytes());
        data.extend_from_slice(&s.6.to_le_bytes());
        data.extend_from_slice(&s.7.to_le_bytes());
        data.extend_from_slice(&s.8.to_le_bytes());
    }
    let h = &mut data[..64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    h[16..18].copy_from_slice(&o.e_type.to_le_bytes());
    h[18..20].copy_from_slice(&62u16.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[40..48].copy_from_slice(&shoff.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h[58..60].copy_from_slice(&64u16.to_le_bytes());
    h[60..62].copy_from_slice(&(sh.len() as u16).to_le_bytes());
    h[62..64].copy_from_slice(&7u16.to_le_bytes());
    data
}

fn report(o: &Obj) -> kvmport_kld_loader::check::Report {
    check(&Elf::parse(object(o)).expect("parse"), &FreeBsd14)
}

#[test]
fn accepts_a_well_formed_module() {
    let r = report(&Obj::default());
    assert!(r.ok(), "{r}");
    assert_eq!(r.imports, vec![("ext_fn".to_string(), false)]);
    assert_eq!(r.relocs.get("R_X86_64_PC32"), Some(&1));
    assert_eq!(r.sets.len(), 2);
}

#[test]
fn refuses_relocation_types_link_elf_obj_does_not_apply() {
    for (ty, name) in [
        (9, "R_X86_64_GOTPCREL"),
        (42, "R_X86_64_REX_GOTPCRELX"),
        (10, "R_X86_64_32"),
        (24, "R_X86_64_PC64"),
        (5, "R_X86_64_COPY"),
        (19, "R_X86_64_TLS*"),
    ] {
        let r = report(&Obj {
            reloc: ty,
            ..Obj::default()
        });
        assert!(!r.ok(), "{name} accepted");
        assert!(r.problems.iter().any(|p| p.contains(name)), "{r}");
    }
    for ty in [0, 1, 4, 11] {
        let r = report(&Obj {
            reloc: ty,
            ..Obj::default()
        });
        assert!(r.ok(), "type {ty}: {r}");
    }
}

#[test]
fn refuses_wrong_type_missing_sets_and_two_symtabs() {
    let r = report(&Obj {
        e_type: 3,
        ..Obj::default()
    });
    assert!(r.problems.iter().any(|p| p.contains("ET_REL")), "{r}");
    let r = report(&Obj {
        sets: false,
        ..Obj::default()
    });
    assert!(
        r.problems.iter().any(|p| p.contains("set_modmetadata_set")),
        "{r}"
    );
    let r = report(&Obj {
        two_symtabs: true,
        ..Obj::default()
    });
    assert!(
        r.problems.iter().any(|p| p.contains("symbol tables")),
        "{r}"
    );
}

#[test]
fn rejects_truncated_files() {
    let mut d = object(&Obj::default());
    d.truncate(100);
    assert!(Elf::parse(d).is_err());
    assert!(Elf::parse(b"\x7fELF".to_vec()).is_err());
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod load {
    use super::*;
    use kvmport_kld_loader::load::{Target, load};

    extern "C" fn ext_fn() {}

    #[test]
    fn binds_imports_through_low_trampolines_and_applies_pc32() {
        let elf = Elf::parse(object(&Obj::default())).expect("parse");
        let f = ext_fn as *const () as u64;
        let m = load(&elf, &FreeBsd14, 0x5000_0000, |n| {
            (n == "ext_fn").then_some(Target::Func(f))
        })
        .expect("load");
        let (text, _) = m.section(".text").expect(".text");
        // SAFETY: inside the loaded text.
        let disp = unsafe { ((text + 4) as *const i32).read_unaligned() };
        let target = (text as i64 + 4 + 4 + i64::from(disp)) as u64;
        assert!(target < 0x8000_0000, "the call must reach a low trampoline");
        // SAFETY: the trampoline: jmp *0(%rip), then the absolute address.
        let (op, abs) = unsafe {
            (
                (target as *const [u8; 6]).read(),
                ((target + 6) as *const u64).read_unaligned(),
            )
        };
        assert_eq!(op, [0xff, 0x25, 0, 0, 0, 0]);
        assert_eq!(abs, f);
    }

    #[test]
    fn names_every_import_it_cannot_bind() {
        let elf = Elf::parse(object(&Obj::default())).expect("parse");
        let e = load(&elf, &FreeBsd14, 0x5100_0000, |_| None).expect_err("must fail");
        assert!(e.contains("ext_fn"), "{e}");
    }

    #[test]
    fn refuses_what_the_kernel_linker_refuses() {
        let elf = Elf::parse(object(&Obj {
            reloc: 9,
            ..Obj::default()
        }))
        .expect("parse");
        let e = load(&elf, &FreeBsd14, 0x5200_0000, |_| {
            Some(Target::Data(0x1000))
        })
        .expect_err("GOTPCREL must fail");
        assert!(e.contains("unexpected relocation type 9"), "{e}");
    }

    #[test]
    fn refuses_32s_that_does_not_fit() {
        let elf = Elf::parse(object(&Obj {
            reloc: 11,
            addend: 0,
            ..Obj::default()
        }))
        .expect("parse");
        let e = load(&elf, &FreeBsd14, 0x5300_0000, |_| {
            Some(Target::Data(0x1_0000_0000))
        })
        .expect_err("out of range");
        assert!(e.contains("does not fit"), "{e}");
    }
}

/// illumos krtld: the same object lacks the entry points; GOT types are refused; SHT_REL is
/// refused; the static types pass the relocation check.
mod illumos {
    use super::*;
    use kvmport_kld_loader::illumos::Illumos;

    fn report(o: &Obj) -> kvmport_kld_loader::check::Report {
        check(&Elf::parse(object(o)).expect("parse"), &Illumos)
    }

    #[test]
    fn requires_entry_points() {
        let r = report(&Obj::default());
        for e in ["_init", "_fini", "_info"] {
            assert!(
                r.problems
                    .iter()
                    .any(|p| p.contains(&format!("entry point {e} "))),
                "{r}"
            );
        }
    }

    #[test]
    fn refuses_got_tls_and_32() {
        for (ty, name) in [
            (9, "R_X86_64_GOTPCREL"),
            (42, "R_X86_64_REX_GOTPCRELX"),
            (10, "R_X86_64_32"),
            (19, "R_X86_64_TLS*"),
        ] {
            let r = report(&Obj {
                reloc: ty,
                ..Obj::default()
            });
            assert!(r.problems.iter().any(|p| p.contains(name)), "{name}: {r}");
        }
        for ty in [0, 1, 2, 4, 11] {
            let r = report(&Obj {
                reloc: ty,
                ..Obj::default()
            });
            assert!(
                !r.problems
                    .iter()
                    .any(|p| p.contains("rejects this relocation")),
                "type {ty}: {r}"
            );
        }
    }

    #[test]
    fn refuses_sht_rel() {
        let mut d = object(&Obj::default());
        // Section header 4 is `.rela.text`: make it SHT_REL (type at +4 of the header).
        let shoff = u64::from_le_bytes(d[40..48].try_into().expect("8 bytes")) as usize;
        let at = shoff + 4 * 64 + 4;
        d[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
        let r = check(&Elf::parse(d).expect("parse"), &Illumos);
        assert!(r.problems.iter().any(|p| p.contains("SHT_REL")), "{r}");
    }
}
