//! vCPU state: initial values, set-then-get round trips and validation of REGS, SREGS, FPU,
//! XSAVE, XCRS, MSRS, MP_STATE, VCPU_EVENTS, DEBUGREGS, CPUID2, interrupts, the signal mask
//! and the `kvm_run` mapping.

use crate::cases::sys::supported;
use crate::guest::{Code, Guest, Mode};
use crate::harness::{Case, CaseResult, Ctx, OrFail, cap, need, want_err, want_ret};
use crate::{check, check_eq, check_hex};
use kvmport_client::{CpuidBuf, Errno, GuardedBuf, MsrsBuf, Vcpu};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::{
    KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SHADOW, KVM_VCPUEVENT_VALID_SMM,
    KvmCpuidEntry2, KvmDtable, KvmMsrEntry, KvmRegs, KvmSregs, KvmXcr, KvmXcrs,
};

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    "vcpu.regs.initial" => regs_initial,
    "vcpu.regs.roundtrip" => regs_roundtrip,
    "vcpu.regs.rflags_fixed_bit" => regs_rflags,
    "vcpu.sregs.initial" => sregs_initial,
    "vcpu.sregs.roundtrip_protected" => sregs_roundtrip,
    "vcpu.sregs.roundtrip_long_mode" => sregs_long,
    "vcpu.sregs.roundtrip_legacy_paging" => sregs_legacy_paging,
    "vcpu.sregs.bad_cr0_einval" => sregs_bad_cr0,
    "vcpu.sregs.bad_long_mode_einval" => sregs_bad_long,
    "vcpu.sregs.bad_cr4_einval" => sregs_bad_cr4,
    "vcpu.sregs.x2apic_without_cpuid_einval" => sregs_apic_base,
    "vcpu.fpu.initial" => fpu_initial,
    "vcpu.fpu.roundtrip" => fpu_roundtrip,
    "vcpu.xsave.roundtrip" => xsave_roundtrip,
    "vcpu.xsave2.size_exact" => xsave2_size,
    "vcpu.xcrs.initial" => xcrs_initial,
    "vcpu.xcrs.roundtrip_after_cpuid" => xcrs_roundtrip,
    "vcpu.xcrs.invalid_einval" => xcrs_invalid,
    "vcpu.msrs.roundtrip" => msrs_roundtrip,
    "vcpu.msrs.stop_at_unknown" => msrs_partial,
    "vcpu.msrs.count_limits" => msrs_e2big,
    "vcpu.msrs.efer_host_write" => msrs_efer,
    "vcpu.mp_state.initial_runnable" => mp_initial,
    "vcpu.mp_state.no_irqchip_only_runnable" => mp_set,
    "vcpu.events.initial" => events_initial,
    "vcpu.events.exception_roundtrip" => events_exception,
    "vcpu.events.interrupt_roundtrip" => events_interrupt,
    "vcpu.events.nmi_pending_needs_flag" => events_nmi,
    "vcpu.events.bad_flags_einval" => events_bad_flags,
    "vcpu.events.bad_vector_einval" => events_bad_vector,
    "vcpu.events.smm_per_cap" => events_smm,
    "vcpu.debugregs.initial" => dbg_initial,
    "vcpu.debugregs.roundtrip" => dbg_roundtrip,
    "vcpu.debugregs.invalid_einval" => dbg_invalid,
    "vcpu.interrupt.queued_without_irqchip" => interrupt,
    "vcpu.nmi.queued" => nmi,
    "vcpu.cpuid2.set_get" => cpuid_set_get,
    "vcpu.cpuid2.get_e2big" => cpuid_get_e2big,
    "vcpu.cpuid2.set_limits" => cpuid_set_limits,
    guest "vcpu.cpuid2.frozen_after_run" => cpuid_frozen,
    "vcpu.signal_mask.lengths" => signal_mask,
    "vcpu.mmap.zeroed_at_creation" => mmap_zeroed,
];

fn vcpu(ctx: &Ctx) -> Result<Vcpu, String> {
    // The VM lives on in the vCPU.
    Ok(ctx.vcpu()?.2)
}

fn regs_initial(ctx: &Ctx) -> CaseResult {
    let r = vcpu(ctx)?.get_regs().ctx("GET_REGS")?;
    check_hex!(r.rip, 0xfff0u64, "rip");
    check_hex!(r.rflags, 0x2u64, "rflags");
    // Without CPUID, RDX holds the default family/model/stepping 0x600.
    check_hex!(r.rdx, 0x600u64, "rdx");
    let others = [
        r.rax, r.rbx, r.rcx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r15,
    ];
    check!(
        others.iter().all(|&v| v == 0),
        "GPRs other than rdx not zero: {r:x?}"
    );
    Ok(())
}

fn regs_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut r = KvmRegs::default();
    let f = |i: u64| 0x0101_0101_0101_0101u64.wrapping_mul(i + 1) ^ 0x8000_0000_0000_0000;
    [
        &mut r.rax, &mut r.rbx, &mut r.rcx, &mut r.rdx, &mut r.rsi, &mut r.rdi, &mut r.rsp,
        &mut r.rbp, &mut r.r8, &mut r.r9, &mut r.r10, &mut r.r11, &mut r.r12, &mut r.r13,
        &mut r.r14, &mut r.r15,
    ]
    .into_iter()
    .enumerate()
    .for_each(|(i, x)| *x = f(i as u64));
    r.rip = 0x1234_5678_9abc;
    r.rflags = 0x8c3;
    v.set_regs(&r).ctx("SET_REGS")?;
    check_eq!(v.get_regs().ctx("GET_REGS")?, r, "registers read back");
    Ok(())
}

fn regs_rflags(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    for (set, want) in [(0u64, 0x2u64), (0x2, 0x2), (0x200, 0x202), (0x1000, 0x1002)] {
        let r = KvmRegs {
            rflags: set,
            ..Default::default()
        };
        v.set_regs(&r).ctx("SET_REGS")?;
        check_hex!(
            v.get_regs().ctx("GET_REGS")?.rflags,
            want,
            "rflags after setting {set:#x}"
        );
    }
    Ok(())
}

fn sregs_initial(ctx: &Ctx) -> CaseResult {
    let s = vcpu(ctx)?.get_sregs().ctx("GET_SREGS")?;
    check_hex!(s.cr0, 0x6000_0010u64, "cr0");
    check_hex!(
        s.cr2 | s.cr3 | s.cr4 | s.efer,
        0u64,
        "cr2 | cr3 | cr4 | efer"
    );
    check_hex!(s.apic_base, 0xfee0_0900u64, "apic_base (enabled, BSP)");
    check_eq!(
        (s.cs.base, s.cs.selector, s.cs.limit),
        (0xffff_0000, 0xf000, 0xffff),
        "cs"
    );
    for (n, seg) in [
        ("ds", s.ds),
        ("es", s.es),
        ("ss", s.ss),
        ("fs", s.fs),
        ("gs", s.gs),
    ] {
        check_eq!((seg.base, seg.selector, seg.limit), (0, 0, 0xffff), "{n}");
    }
    check_eq!((s.gdt.base, s.gdt.limit), (0, 0xffff), "gdt");
    check_eq!((s.idt.base, s.idt.limit), (0, 0xffff), "idt");
    check_eq!(s.interrupt_bitmap, [0u64; 4], "interrupt_bitmap");
    Ok(())
}

/// Compares the architectural fields of two sregs.
fn same_sregs(got: &KvmSregs, want: &KvmSregs) -> CaseResult {
    let segs = |s: &KvmSregs| {
        [s.cs, s.ds, s.es, s.fs, s.gs, s.ss, s.tr].map(|x| {
            (
                x.base, x.limit, x.selector, x.r#type, x.present, x.dpl, x.db, x.s, x.l, x.g,
            )
        })
    };
    check_eq!(segs(got), segs(want), "segments (cs ds es fs gs ss tr)");
    let dt = |d: &KvmDtable| (d.base, d.limit);
    check_eq!(
        (dt(&got.gdt), dt(&got.idt)),
        (dt(&want.gdt), dt(&want.idt)),
        "gdt, idt"
    );
    let crs = |s: &KvmSregs| [s.cr0, s.cr2, s.cr3, s.cr4, s.efer];
    check_hex!(crs(got)[0], crs(want)[0], "cr0");
    check_eq!(crs(got), crs(want), "cr0 cr2 cr3 cr4 efer");
    Ok(())
}

/// Protected-mode sregs from the guest helpers, with cr2/cr3 set.
fn protected_sregs(ctx: &Ctx, v: &Vcpu, mode: Mode) -> Result<KvmSregs, String> {
    crate::guest::setup_vcpu(&ctx.kvm()?, v, mode, 0x1000)?;
    let mut s = v.get_sregs().ctx("GET_SREGS")?;
    s.cr2 = 0x1234_5000;
    if mode == Mode::Prot32 {
        s.cr3 = 0x5000;
    }
    Ok(s)
}

fn sregs_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let s = protected_sregs(ctx, &v, Mode::Prot32)?;
    v.set_sregs(&s).ctx("SET_SREGS")?;
    same_sregs(&v.get_sregs().ctx("GET_SREGS")?, &s)?;
    check_hex!(s.cr0, 0x11u64, "cr0 (PE | ET)");
    Ok(())
}

fn sregs_long(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let s = protected_sregs(ctx, &v, Mode::Long64)?;
    v.set_sregs(&s).ctx("SET_SREGS")?;
    let g = v.get_sregs().ctx("GET_SREGS")?;
    same_sregs(&g, &s)?;
    check_eq!(
        (g.cr0, g.cr4, g.efer),
        (0x8000_0011, 0x20, 0x500),
        "cr0, cr4, efer"
    );
    Ok(())
}

fn sregs_legacy_paging(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut s = protected_sregs(ctx, &v, Mode::Prot32)?;
    // 32-bit paging: PE | PG, no PAE, no LME.
    s.cr0 = 0x8000_0011;
    s.cr3 = 0x20000;
    v.set_sregs(&s).ctx("SET_SREGS")?;
    same_sregs(&v.get_sregs().ctx("GET_SREGS")?, &s)
}

/// Sets `s`, requires EINVAL and the state unchanged.
fn sregs_reject(v: &Vcpu, s: &KvmSregs, what: &str) -> CaseResult {
    let before = v.get_sregs().ctx("GET_SREGS")?;
    want_err(v.set_sregs(s), Errno::EINVAL, what)?;
    check_eq!(
        v.get_sregs().ctx("GET_SREGS")?,
        before,
        "sregs after the rejected {what}"
    );
    Ok(())
}

fn sregs_bad_cr0(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let init = v.get_sregs().ctx("GET_SREGS")?;
    let cases = [
        ("PG without PE", (1 << 31) | (init.cr0 & !1)),
        ("bit 32", init.cr0 | 1 << 32),
        ("bit 40", init.cr0 | 1 << 40),
        ("NW without CD", (init.cr0 & !(1 << 30)) | 1 << 29),
    ];
    for (what, cr0) in cases {
        sregs_reject(&v, &KvmSregs { cr0, ..init }, what)?;
    }
    Ok(())
}

fn sregs_bad_long(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut cs_l = v.get_sregs().ctx("GET_SREGS")?;
    cs_l.cs.l = 1;
    let long = protected_sregs(ctx, &v, Mode::Long64)?;
    crate::guest::init_vcpu(&v, Mode::Real, 0x1000)?;
    let cases = [
        ("LME | LMA, PG, no PAE", KvmSregs { cr4: 0, ..long }),
        (
            "LME without LMA, PG, PAE",
            KvmSregs {
                efer: 0x100,
                ..long
            },
        ),
        ("LME | LMA without PG", KvmSregs { cr0: 0x11, ..long }),
        (
            "LMA only, no PG",
            KvmSregs {
                cr0: 0x11,
                efer: 0x400,
                ..long
            },
        ),
        (
            "cr3 beyond MAXPHYADDR",
            KvmSregs {
                cr3: 1 << 52,
                ..long
            },
        ),
        ("cs.l outside long mode", cs_l),
    ];
    for (what, s) in cases {
        sregs_reject(&v, &s, what)?;
    }
    Ok(())
}

fn sregs_bad_cr4(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let init = v.get_sregs().ctx("GET_SREGS")?;
    for (what, cr4) in [
        ("bit 63", 1u64 << 63),
        ("VMXE", 1 << 13),
        ("bit 32", 1 << 32),
    ] {
        sregs_reject(&v, &KvmSregs { cr4, ..init }, what)?;
    }
    Ok(())
}

fn sregs_apic_base(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let init = v.get_sregs().ctx("GET_SREGS")?;
    let s = KvmSregs {
        apic_base: 0xfee0_0d00,
        ..init
    };
    sregs_reject(&v, &s, "apic_base with x2APIC enabled, x2APIC not in CPUID")
}

fn fpu_initial(ctx: &Ctx) -> CaseResult {
    let f = vcpu(ctx)?.get_fpu().ctx("GET_FPU")?;
    // x86 KVM_GET_FPU does not report MXCSR: the field stays 0 (KVM_GET_XSAVE has it).
    check_eq!(
        (f.fcw, f.fsw, f.ftwx, f.mxcsr),
        (0x37f, 0, 0, 0),
        "fcw, fsw, ftwx, mxcsr"
    );
    check_eq!(f.xmm, [[0u8; 16]; 16], "xmm");
    Ok(())
}

fn fpu_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut f = v.get_fpu().ctx("GET_FPU")?;
    f.fcw = 0x27f;
    f.fsw = 0x3800;
    f.ftwx = 0x80;
    f.last_opcode = 0x1d9;
    f.last_ip = 0x1234;
    f.last_dp = 0x5678;
    f.mxcsr = 0x1fbf;
    for (i, x) in f.xmm.iter_mut().enumerate() {
        *x = [i as u8 ^ 0x5a; 16];
        x[0] = i as u8;
    }
    for (i, r) in f.fpr.iter_mut().enumerate() {
        *r = [0; 16];
        r[..10].copy_from_slice(&[i as u8 + 1, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    }
    v.set_fpu(&f).ctx("SET_FPU")?;
    let g = v.get_fpu().ctx("GET_FPU")?;
    check_eq!(
        (g.fcw, g.fsw, g.ftwx, g.mxcsr),
        (f.fcw, f.fsw, f.ftwx, 0),
        "control words"
    );
    // x86 KVM_SET_FPU ignores MXCSR too: the XSAVE area still has the reset value.
    check_hex!(
        v.get_xsave().ctx("GET_XSAVE")?.region[6],
        0x1f80u32,
        "MXCSR after SET_FPU"
    );
    check_eq!(
        (g.last_opcode, g.last_ip, g.last_dp),
        (0x1d9, 0x1234, 0x5678),
        "last op/ip/dp"
    );
    check_eq!(g.xmm, f.xmm, "xmm");
    check_eq!(
        g.fpr.map(|r| r[..10].to_vec()),
        f.fpr.map(|r| r[..10].to_vec()),
        "st0..st7"
    );
    Ok(())
}

fn xsave_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    need(&ctx.kvm()?, Cap::Xsave)?;
    let mut x = v.get_xsave().ctx("GET_XSAVE")?;
    check_hex!(x.region[0] & 0xffff, 0x37fu32, "fcw in the XSAVE area");
    check_hex!(x.region[6], 0x1f80u32, "mxcsr in the XSAVE area");
    // xmm0..15 at bytes 160..416 (u32 40..104); XSTATE_BV at byte 512 (u32 128): x87 | SSE.
    for i in 40..104 {
        x.region[i] = 0x1111_1111u32.wrapping_mul(i as u32);
    }
    x.region[6] = 0x1f00;
    x.region[128] |= 3;
    v.set_xsave(&x).ctx("SET_XSAVE")?;
    let g = v.get_xsave().ctx("GET_XSAVE")?;
    check_eq!(g.region[40..104], x.region[40..104], "xmm0..15 read back");
    check_hex!(g.region[6], 0x1f00u32, "mxcsr read back");
    check_hex!(g.region[128] & 2, 2u32, "XSTATE_BV.SSE read back");
    let f = v.get_fpu().ctx("GET_FPU")?;
    check_eq!(
        f.xmm[1][..4],
        x.region[44].to_le_bytes(),
        "xmm1 through GET_FPU"
    );
    Ok(())
}

fn xsave2_size(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let size = need(&ctx.kvm()?, Cap::Xsave2)? as usize;
    check!(size >= 4096, "XSAVE2 size {size}");
    let mut b = GuardedBuf::new(size + 64).ctx("buffer")?;
    b.fill(0xaa);
    want_ret(v.fd().ioctl_buf(KVM_GET_XSAVE2, &mut b), 0, "GET_XSAVE2")?;
    check_eq!(
        b.read_bytes(size, 64),
        vec![0xaau8; 64],
        "bytes past the XSAVE2 size"
    );
    check_hex!(b.read::<u16>(0), 0x37fu16, "fcw");
    let mut exact = GuardedBuf::new(size).ctx("buffer")?;
    want_ret(
        v.fd().ioctl_buf(KVM_GET_XSAVE2, &mut exact),
        0,
        "GET_XSAVE2, exact size",
    )
}

fn xcrs(v: &Vcpu, entries: &[(u32, u64)], flags: u32) -> Result<(), Errno> {
    let mut x = KvmXcrs {
        nr_xcrs: entries.len() as u32,
        flags,
        ..Default::default()
    };
    for (i, &(xcr, value)) in entries.iter().enumerate() {
        x.xcrs[i] = KvmXcr {
            xcr,
            reserved: 0,
            value,
        };
    }
    v.set_xcrs(&x)
}

fn xcr0(v: &Vcpu) -> Result<u64, String> {
    let x = v.get_xcrs().ctx("GET_XCRS")?;
    check_eq!(
        (x.nr_xcrs, x.flags, x.xcrs[0].xcr),
        (1, 0, 0),
        "GET_XCRS nr_xcrs, flags, xcr"
    );
    Ok(x.xcrs[0].value)
}

fn xcrs_initial(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    need(&ctx.kvm()?, Cap::Xcrs)?;
    check_hex!(xcr0(&v)?, 1u64, "initial XCR0");
    Ok(())
}

/// Sets the supported CPUID on `v`; returns the supported entries.
fn set_supported_cpuid(ctx: &Ctx, v: &Vcpu) -> Result<Vec<KvmCpuidEntry2>, String> {
    let e = supported(ctx)?;
    let mut b = CpuidBuf::from_entries(&e).ctx("buffer")?;
    want_ret(v.set_cpuid2(&mut b), 0, "SET_CPUID2 (supported)")?;
    Ok(e)
}

fn xcrs_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    need(&ctx.kvm()?, Cap::Xcrs)?;
    let e = set_supported_cpuid(ctx, &v)?;
    let mask = e
        .iter()
        .find(|e| e.function == 0xd && e.index == 0)
        .map_or(1, |e| e.eax);
    xcrs(&v, &[(0, 3)], 0).ctx("SET_XCRS xcr0=3")?;
    check_hex!(xcr0(&v)?, 3u64, "XCR0 after setting x87|SSE");
    if mask & 4 != 0 {
        xcrs(&v, &[(0, 7)], 0).ctx("SET_XCRS xcr0=7")?;
        check_hex!(xcr0(&v)?, 7u64, "XCR0 after setting x87|SSE|AVX");
    }
    xcrs(&v, &[(1, 5), (0, 1)], 0).ctx("SET_XCRS [xcr1=5, xcr0=1]")?;
    check_hex!(xcr0(&v)?, 1u64, "XCR0 after [xcr1, xcr0=1]");
    Ok(())
}

fn xcrs_invalid(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    need(&ctx.kvm()?, Cap::Xcrs)?;
    want_err(
        xcrs(&v, &[(0, 3)], 0),
        Errno::EINVAL,
        "xcr0=3 before SET_CPUID2",
    )?;
    want_err(xcrs(&v, &[(0, 0)], 0), Errno::EINVAL, "xcr0=0 (x87 clear)")?;
    want_err(xcrs(&v, &[(0, 1)], 1), Errno::EINVAL, "flags=1")?;
    let mut x = KvmXcrs {
        nr_xcrs: 17,
        ..Default::default()
    };
    x.xcrs[0] = KvmXcr {
        xcr: 0,
        reserved: 0,
        value: 1,
    };
    want_err(v.set_xcrs(&x), Errno::EINVAL, "nr_xcrs=17")?;
    set_supported_cpuid(ctx, &v)?;
    want_err(
        xcrs(&v, &[(0, 5)], 0),
        Errno::EINVAL,
        "xcr0=5 (AVX without SSE)",
    )?;
    want_err(
        xcrs(&v, &[(0, 1 << 63 | 1)], 0),
        Errno::EINVAL,
        "xcr0 bit 63",
    )?;
    check_hex!(xcr0(&v)?, 1u64, "XCR0 after the rejected writes");
    Ok(())
}

fn msr(index: u32, data: u64) -> KvmMsrEntry {
    KvmMsrEntry {
        index,
        reserved: 0,
        data,
    }
}

fn msrs_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let set = [
        msr(0x174, 0x10),
        msr(0x175, 0x8000),
        msr(0x176, 0x1234_5678),
        msr(0xc000_0081, 0x0023_0010_0000_0000),
        msr(0xc000_0082, 0xffff_8000_1234_5000),
        msr(0xc000_0084, 0x4700),
        msr(0xc000_0102, 0xffff_8880_0000_0000),
    ];
    let mut b = MsrsBuf::from_entries(&set).ctx("buffer")?;
    want_ret(v.set_msrs(&mut b), set.len() as i64, "SET_MSRS")?;
    let mut g = MsrsBuf::from_entries(&set.map(|e| msr(e.index, 0))).ctx("buffer")?;
    want_ret(v.get_msrs(&mut g), set.len() as i64, "GET_MSRS")?;
    let got: Vec<(u32, u64)> = g.entries().iter().map(|e| (e.index, e.data)).collect();
    let want: Vec<(u32, u64)> = set.iter().map(|e| (e.index, e.data)).collect();
    check_eq!(got, want, "MSRs read back");
    Ok(())
}

fn msrs_partial(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut b = MsrsBuf::from_entries(&[msr(0x174, 8), msr(0x1234_5678, 8), msr(0x175, 8)])
        .ctx("buffer")?;
    want_ret(v.set_msrs(&mut b), 1, "SET_MSRS [0x174, unknown, 0x175]")?;
    let aa = 0xaaaa_aaaa_aaaa_aaaa;
    let e = [
        msr(0x174, aa),
        msr(0x175, aa),
        msr(0x1234_5678, aa),
        msr(0x176, aa),
    ];
    let mut g = MsrsBuf::from_entries(&e).ctx("buffer")?;
    want_ret(
        v.get_msrs(&mut g),
        2,
        "GET_MSRS [0x174, 0x175, unknown, 0x176]",
    )?;
    check_eq!(
        (g.entry(0).data, g.entry(1).data),
        (8, 0),
        "SYSENTER_CS, SYSENTER_ESP"
    );
    check_hex!(
        g.entry(3).data,
        aa,
        "entry after the unknown MSR (must be untouched)"
    );
    let mut first = MsrsBuf::from_entries(&[msr(0x1234_5678, aa), msr(0x174, aa)]).ctx("buf")?;
    want_ret(v.get_msrs(&mut first), 0, "GET_MSRS [unknown, 0x174]")?;
    check_hex!(
        first.entry(1).data,
        aa,
        "0x174 behind an unknown MSR (untouched)"
    );
    Ok(())
}

fn msrs_e2big(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let aa = 0xaaaa_aaaa_aaaa_aaaa;
    let mut b = MsrsBuf::from_entries(&vec![msr(0x174, aa); 256]).ctx("buffer")?;
    for n in [256u32, 257, u32::MAX] {
        b.set_count(n);
        want_err(
            v.get_msrs(&mut b),
            Errno::E2BIG,
            &format!("GET_MSRS nmsrs={n}"),
        )?;
        check_hex!(b.entry(0).data, aa, "entry 0 after E2BIG");
        want_err(
            v.set_msrs(&mut b),
            Errno::E2BIG,
            &format!("SET_MSRS nmsrs={n}"),
        )?;
    }
    b.set_count(255);
    want_ret(v.get_msrs(&mut b), 255, "GET_MSRS nmsrs=255")?;
    want_ret(v.set_msrs(&mut b), 255, "SET_MSRS nmsrs=255")?;
    b.set_count(0);
    want_ret(v.get_msrs(&mut b), 0, "GET_MSRS nmsrs=0")?;
    want_ret(v.set_msrs(&mut b), 0, "SET_MSRS nmsrs=0")
}

fn msrs_efer(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    const EFER: u32 = 0xc000_0080;
    // SCE | LME | LMA | NX: a host write keeps the current LMA (0).
    let mut b = MsrsBuf::from_entries(&[msr(EFER, 0xd01)]).ctx("buffer")?;
    want_ret(v.set_msrs(&mut b), 1, "SET_MSRS EFER=0xd01")?;
    check_hex!(
        v.get_msr(EFER).ctx("GET_MSRS EFER")?,
        0x901u64,
        "EFER (LMA not settable)"
    );
    let mut b = MsrsBuf::from_entries(&[msr(EFER, 1 << 20)]).ctx("buffer")?;
    want_ret(v.set_msrs(&mut b), 0, "SET_MSRS EFER with reserved bit 20")?;
    check_hex!(
        v.get_msr(EFER).ctx("GET_MSRS EFER")?,
        0x901u64,
        "EFER after the rejected write"
    );
    check_hex!(v.get_sregs().ctx("GET_SREGS")?.efer, 0x901u64, "sregs.efer");
    Ok(())
}

fn mp_initial(ctx: &Ctx) -> CaseResult {
    check_eq!(
        vcpu(ctx)?.get_mp_state().ctx("GET_MP_STATE")?,
        0,
        "mp_state (RUNNABLE)"
    );
    Ok(())
}

fn mp_set(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    v.set_mp_state(0).ctx("SET_MP_STATE RUNNABLE")?;
    for s in (1..=10).chain([u32::MAX]) {
        want_err(
            v.set_mp_state(s),
            Errno::EINVAL,
            &format!("SET_MP_STATE {s}"),
        )?;
    }
    check_eq!(v.get_mp_state().ctx("GET_MP_STATE")?, 0, "mp_state after");
    Ok(())
}

fn events_initial(ctx: &Ctx) -> CaseResult {
    let e = vcpu(ctx)?.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    let want = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    check_hex!(
        e.flags & !KVM_VCPUEVENT_VALID_SMM,
        want,
        "flags (SMM bit aside)"
    );
    let clear = kvmport_core::abi::x86::KvmVcpuEvents {
        flags: e.flags,
        ..Default::default()
    };
    check_eq!(e, clear, "events other than flags");
    Ok(())
}

fn events_exception(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    e.exception.injected = 1;
    e.exception.nr = 14;
    e.exception.has_error_code = 1;
    e.exception.error_code = 2;
    v.set_vcpu_events(&e).ctx("SET_VCPU_EVENTS #PF")?;
    let g = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    let x = g.exception;
    check_eq!(
        (x.injected, x.nr, x.has_error_code, x.error_code),
        (1, 14, 1, 2),
        "exception"
    );
    Ok(())
}

fn events_interrupt(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    e.interrupt.injected = 1;
    e.interrupt.nr = 0x30;
    v.set_vcpu_events(&e).ctx("SET_VCPU_EVENTS")?;
    let i = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?.interrupt;
    check_eq!(
        (i.injected, i.nr, i.soft, i.shadow),
        (1, 0x30, 0, 0),
        "interrupt"
    );
    Ok(())
}

fn events_nmi(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    e.nmi.pending = 1;
    e.flags &= !KVM_VCPUEVENT_VALID_NMI_PENDING;
    v.set_vcpu_events(&e)
        .ctx("SET_VCPU_EVENTS without NMI_PENDING")?;
    check_eq!(
        v.get_vcpu_events().ctx("GET")?.nmi.pending,
        0,
        "nmi.pending (flag clear: ignored)"
    );
    e.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
    v.set_vcpu_events(&e)
        .ctx("SET_VCPU_EVENTS with NMI_PENDING")?;
    check_eq!(
        v.get_vcpu_events().ctx("GET")?.nmi.pending,
        1,
        "nmi.pending"
    );
    Ok(())
}

fn events_bad_flags(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    // PAYLOAD (bit 4) and TRIPLE_FAULT (bit 5) need their caps enabled first; the rest are
    // undefined.
    for bit in [4, 5, 6, 7, 10, 31] {
        let mut x = e;
        x.flags |= 1 << bit;
        want_err(
            v.set_vcpu_events(&x),
            Errno::EINVAL,
            &format!("flags bit {bit}"),
        )?;
    }
    Ok(())
}

fn events_bad_vector(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    for nr in [2u8, 32, 255] {
        let mut x = e;
        x.exception.injected = 1;
        x.exception.nr = nr;
        want_err(
            v.set_vcpu_events(&x),
            Errno::EINVAL,
            &format!("injected exception {nr}"),
        )?;
    }
    check_eq!(
        v.get_vcpu_events().ctx("GET")?,
        e,
        "events after the rejected writes"
    );
    Ok(())
}

fn events_smm(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let smm = cap(&ctx.kvm()?, Cap::X86Smm)?;
    let mut e = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?;
    e.flags |= KVM_VCPUEVENT_VALID_SMM;
    e.smi.smm = 1;
    if smm == 0 {
        return want_err(
            v.set_vcpu_events(&e),
            Errno::EINVAL,
            "SMM without KVM_CAP_X86_SMM",
        );
    }
    v.set_vcpu_events(&e).ctx("SET_VCPU_EVENTS smm=1")?;
    check_eq!(v.get_vcpu_events().ctx("GET")?.smi.smm, 1, "smi.smm");
    Ok(())
}

fn dbg_initial(ctx: &Ctx) -> CaseResult {
    let d = vcpu(ctx)?.get_debugregs().ctx("GET_DEBUGREGS")?;
    check_eq!(
        (d.db, d.dr6, d.dr7, d.flags),
        ([0; 4], 0xffff_0ff0, 0x400, 0),
        "db, dr6, dr7, flags"
    );
    Ok(())
}

fn dbg_roundtrip(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut d = v.get_debugregs().ctx("GET_DEBUGREGS")?;
    d.db = [0x1000, 0x2000, 0xffff_ffff_ffff_ffff, 0x4000];
    d.dr6 = 0xffff_4ff0;
    d.dr7 = 0x0000_0401;
    v.set_debugregs(&d).ctx("SET_DEBUGREGS")?;
    let g = v.get_debugregs().ctx("GET_DEBUGREGS")?;
    check_eq!(
        (g.db, g.dr6, g.dr7, g.flags),
        (d.db, d.dr6, d.dr7, 0),
        "debug registers"
    );
    d.dr7 = 0xffff_ffff;
    v.set_debugregs(&d).ctx("SET_DEBUGREGS dr7=0xffffffff")?;
    check_hex!(v.get_debugregs().ctx("GET")?.dr7, 0xffff_ffffu64, "dr7");
    Ok(())
}

fn dbg_invalid(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let d = v.get_debugregs().ctx("GET_DEBUGREGS")?;
    let mut x = d;
    x.flags = 1;
    want_err(v.set_debugregs(&x), Errno::EINVAL, "flags=1")?;
    x.flags = 2;
    want_err(v.set_debugregs(&x), Errno::EINVAL, "flags=2")?;
    let x = kvmport_core::abi::x86::KvmDebugregs {
        dr6: d.dr6 | 1 << 32,
        ..d
    };
    want_err(v.set_debugregs(&x), Errno::EINVAL, "dr6 bit 32")?;
    let x = kvmport_core::abi::x86::KvmDebugregs {
        dr7: d.dr7 | 1 << 32,
        ..d
    };
    want_err(v.set_debugregs(&x), Errno::EINVAL, "dr7 bit 32")?;
    check_eq!(
        v.get_debugregs().ctx("GET")?,
        d,
        "debug registers after the rejected writes"
    );
    Ok(())
}

fn interrupt(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    want_err(v.interrupt(256), Errno::EINVAL, "irq 256")?;
    want_err(v.interrupt(u32::MAX), Errno::EINVAL, "irq 0xffffffff")?;
    want_ret(v.interrupt(32), 0, "irq 32")?;
    let i = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?.interrupt;
    check_eq!((i.injected, i.nr, i.soft), (1, 32, 0), "queued interrupt");
    want_ret(v.interrupt(33), 0, "irq 33 while 32 is queued")?;
    check_eq!(
        v.get_vcpu_events().ctx("GET")?.interrupt.nr,
        33,
        "queued interrupt replaced"
    );
    Ok(())
}

fn nmi(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    want_ret(v.nmi(), 0, "KVM_NMI")?;
    let n = v.get_vcpu_events().ctx("GET_VCPU_EVENTS")?.nmi;
    check_eq!(
        (n.injected, n.pending, n.masked),
        (0, 1, 0),
        "nmi (injected, pending, masked)"
    );
    Ok(())
}

fn cpuid_set_get(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let e = set_supported_cpuid(ctx, &v)?;
    let mut g = CpuidBuf::with_count(e.len()).ctx("buffer")?;
    want_ret(v.get_cpuid2(&mut g), 0, "GET_CPUID2 nent = n")?;
    check_eq!(g.count() as usize, e.len(), "nent");
    let key = |e: &KvmCpuidEntry2| (e.function, e.index);
    check_eq!(
        g.entries().iter().map(key).collect::<Vec<_>>(),
        e.iter().map(key).collect::<Vec<_>>(),
        "leaves"
    );
    for f in [0, 0x8000_0000, 0x4000_0000] {
        let a = e.iter().find(|x| x.function == f);
        let b = g.entries().into_iter().find(|x| x.function == f);
        check_eq!(b, a.copied(), "leaf {f:#x}");
    }
    let mut big = CpuidBuf::with_count(e.len() + 5).ctx("buffer")?;
    want_ret(v.get_cpuid2(&mut big), 0, "GET_CPUID2 nent = n + 5")?;
    check_eq!(big.count() as usize, e.len(), "nent written back");
    Ok(())
}

fn cpuid_get_e2big(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let e = set_supported_cpuid(ctx, &v)?;
    for n in [0, 1, e.len() - 1] {
        let mut g = CpuidBuf::new(e.len()).ctx("buffer")?;
        g.fill(0x55);
        g.set_count(n as u32);
        want_err(v.get_cpuid2(&mut g), Errno::E2BIG, &format!("nent={n}"))?;
        check_eq!(g.count() as usize, n, "nent after E2BIG");
        check_eq!(
            g.entry(0).function,
            0x5555_5555,
            "entry 0 after E2BIG (untouched)"
        );
    }
    Ok(())
}

fn cpuid_set_limits(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let dummy: Vec<KvmCpuidEntry2> = (0..257u32)
        .map(|i| KvmCpuidEntry2 {
            function: 0x4fff_0000 + i,
            ..Default::default()
        })
        .collect();
    let mut b = CpuidBuf::from_entries(&dummy).ctx("buffer")?;
    want_err(v.set_cpuid2(&mut b), Errno::E2BIG, "nent=257")?;
    b.set_count(u32::MAX);
    want_err(v.set_cpuid2(&mut b), Errno::E2BIG, "nent=0xffffffff")?;
    b.set_count(256);
    want_ret(v.set_cpuid2(&mut b), 0, "nent=256")?;
    b.set_count(0);
    want_ret(v.set_cpuid2(&mut b), 0, "nent=0")
}

fn cpuid_frozen(ctx: &Ctx) -> CaseResult {
    let g = Guest::new(ctx, Mode::Real, &Code::new().op(&[0xF4]))?; // hlt
    let e = supported(ctx)?;
    let mut b = CpuidBuf::from_entries(&e).ctx("buffer")?;
    want_ret(g.vcpu.set_cpuid2(&mut b), 0, "SET_CPUID2 before running")?;
    g.run_hlt()?;
    let mut cur = CpuidBuf::with_count(e.len()).ctx("buffer")?;
    want_ret(g.vcpu.get_cpuid2(&mut cur), 0, "GET_CPUID2")?;
    let now = cur.entries();
    let mut same = CpuidBuf::from_entries(&now).ctx("buffer")?;
    want_ret(
        g.vcpu.set_cpuid2(&mut same),
        0,
        "SET_CPUID2 after running, identical",
    )?;
    let mut changed = now.clone();
    changed[0].ebx ^= 1;
    let mut b = CpuidBuf::from_entries(&changed).ctx("buffer")?;
    want_err(
        g.vcpu.set_cpuid2(&mut b),
        Errno::EINVAL,
        "after running, one bit changed",
    )?;
    let mut b = CpuidBuf::from_entries(&now[1..]).ctx("buffer")?;
    want_err(
        g.vcpu.set_cpuid2(&mut b),
        Errno::EINVAL,
        "after running, one entry fewer",
    )?;
    let mut b = CpuidBuf::new(0).ctx("buffer")?;
    want_err(
        g.vcpu.set_cpuid2(&mut b),
        Errno::EINVAL,
        "after running, nent=0",
    )
}

fn signal_mask(ctx: &Ctx) -> CaseResult {
    let v = vcpu(ctx)?;
    let mut b = GuardedBuf::new(4 + 16).ctx("buffer")?;
    for (len, ok) in [(8u32, true), (4, false), (16, false), (0, false)] {
        b.write(0, &len);
        let r = v.fd().ioctl_buf(KVM_SET_SIGNAL_MASK, &mut b);
        if ok {
            want_ret(r, 0, &format!("len {len}"))?;
        } else {
            want_err(r, Errno::EINVAL, &format!("len {len}"))?;
        }
    }
    let r = v
        .fd()
        .ioctl_bad_ptr(KVM_SET_SIGNAL_MASK, kvmport_client::BadPtr::Null);
    want_ret(r, 0, "NULL (no mask)")
}

fn mmap_zeroed(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let v = vcpu(ctx)?;
    let size = kvm.vcpu_mmap_size().ctx("GET_VCPU_MMAP_SIZE")?;
    let m = v.map_run(size).ctx("mmap")?;
    let bytes = m.read_bytes(0, size);
    let nz = bytes.iter().position(|&b| b != 0);
    check_eq!(nz, None, "first non-zero byte of a new vCPU's mapping");
    Ok(())
}
