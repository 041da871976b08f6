//! A vCPU's architectural state as the KVM ABI exposes it, the VMCB segment format it is kept
//! in, and the validation rules of the `KVM_SET_*` commands (pure functions, unit-tested here).
//!
//! Segment attribute packing: AMD64 APM vol. 2, appendix B ("VMCB layout", segment
//! attribute field). Register rules: APM vol. 2 chapters 3 and 13 (CR0, CR4, EFER, DR6/DR7).

use alloc::vec::Vec;

use kvmport_core::abi::x86::{
    BP_VECTOR, KVM_NR_INTERRUPTS, KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_PAYLOAD,
    KVM_VCPUEVENT_VALID_SHADOW, KVM_VCPUEVENT_VALID_SIPI_VECTOR, KVM_VCPUEVENT_VALID_SMM,
    KVM_VCPUEVENT_VALID_TRIPLE_FAULT, KvmCpuidEntry2, KvmDebugregs, KvmDtable, KvmRegs, KvmSegment,
    KvmSregs, KvmVcpuEvents, OF_VECTOR,
};
use kvmport_core::{Errno, KResult};

use crate::cpuid_table::{self, XFEATURE_FP, XFEATURE_SSE, XFEATURE_YMM, cr4};
use crate::hw::{EFER_LMA, EFER_LME, XsaveArea};

/// A segment register in the VMCB state-save format (APM vol. 2, table B-2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmcbSeg {
    /// Selector.
    pub selector: u16,
    /// Packed attributes: type\[3:0\], S\[4\], DPL\[6:5\], P\[7\], AVL\[8\], L\[9\], DB\[10\],
    /// G\[11\].
    pub attrib: u16,
    /// Limit (bytes, already scaled).
    pub limit: u32,
    /// Base.
    pub base: u64,
}

const _: () = assert!(core::mem::size_of::<VmcbSeg>() == 16);

/// Exception vector of the NMI (not injectable as an exception).
const NMI_VECTOR: u32 = 2;

const ATTR_S: u16 = 1 << 4;
const ATTR_P: u16 = 1 << 7;

/// Which segment register a [`VmcbSeg`] is (the ABI view differs slightly per register).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegKind {
    /// CS.
    Cs,
    /// DS, ES, FS or GS.
    Data,
    /// SS.
    Ss,
    /// TR.
    Tr,
    /// LDTR.
    Ldt,
}

impl VmcbSeg {
    /// Packs an ABI segment. An unusable segment is stored as not present (the VMCB has no
    /// separate "unusable" bit).
    pub fn from_kvm(s: &KvmSegment) -> VmcbSeg {
        let b = |v: u8, shift: u16| u16::from(v & 1) << shift;
        let present = s.present & 1 != 0 && s.unusable == 0;
        VmcbSeg {
            selector: s.selector,
            attrib: u16::from(s.r#type & 0xf)
                | b(s.s, 4)
                | (u16::from(s.dpl & 3) << 5)
                | (u16::from(present) << 7)
                | b(s.avl, 8)
                | b(s.l, 9)
                | b(s.db, 10)
                | b(s.g, 11),
            limit: s.limit,
            base: s.base,
        }
    }

    /// Unpacks into the ABI form, the way a KVM on SVM reports it: "unusable" is "not present",
    /// G is derived from the limit, loaded data segments show the accessed bit (the processor
    /// sets it when it loads the descriptor), TR shows the busy bit, and an unusable SS has a
    /// clear DB.
    pub fn to_kvm(&self, kind: SegKind) -> KvmSegment {
        let bit = |shift: u16| u8::from(self.attrib & (1 << shift) != 0);
        let present = self.attrib & ATTR_P != 0;
        // CAST: a 4-bit field.
        let mut ty = (self.attrib & 0xf) as u8;
        let mut db = bit(10);
        match kind {
            SegKind::Tr => ty |= 2,
            SegKind::Data if present => ty |= 1,
            SegKind::Ss if !present => db = 0,
            _ => {}
        }
        KvmSegment {
            base: self.base,
            limit: self.limit,
            selector: self.selector,
            r#type: ty,
            present: u8::from(present),
            // CAST: a 2-bit field.
            dpl: ((self.attrib >> 5) & 3) as u8,
            db,
            s: bit(4),
            l: bit(9),
            g: u8::from(self.limit > 0xf_ffff),
            avl: bit(8),
            unusable: u8::from(!present),
            padding: 0,
        }
    }
}

/// A descriptor-table register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dtable {
    /// Base.
    pub base: u64,
    /// Limit.
    pub limit: u16,
}

impl Dtable {
    fn from_kvm(d: &KvmDtable) -> Dtable {
        Dtable {
            base: d.base,
            limit: d.limit,
        }
    }
    fn to_kvm(self) -> KvmDtable {
        KvmDtable {
            base: self.base,
            limit: self.limit,
            padding: [0; 3],
        }
    }
}

/// CR0 bits (APM vol. 2, "CR0 register").
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Extension type.
    pub const ET: u64 = 1 << 4;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
}

/// `APIC_BASE` MSR bits.
pub mod apic {
    /// Boot-strap processor.
    pub const BSP: u64 = 1 << 8;
    /// x2APIC mode.
    pub const EXTD: u64 = 1 << 10;
    /// APIC global enable.
    pub const EN: u64 = 1 << 11;
    /// The architectural default base address.
    pub const DEFAULT_BASE: u64 = 0xfee0_0000;
}

/// An exception recorded for injection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exception {
    /// Being delivered (re-injected after an interrupted delivery).
    pub injected: bool,
    /// Raised but not yet delivered.
    pub pending: bool,
    /// Vector.
    pub nr: u8,
    /// Whether `error_code` is pushed.
    pub has_error_code: bool,
    /// Error code.
    pub error_code: u32,
    /// Whether `payload` is meaningful (CR2 for `#PF`, DR6 bits for `#DB`).
    pub has_payload: bool,
    /// Payload.
    pub payload: u64,
}

/// Pending events (`KVM_GET/SET_VCPU_EVENTS`, `KVM_INTERRUPT`, `KVM_NMI`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Exception.
    pub exception: Exception,
    /// An external interrupt is queued for injection.
    pub irq_injected: bool,
    /// Its vector.
    pub irq_nr: u8,
    /// It is a software interrupt (`INTn`).
    pub irq_soft: bool,
    /// Interrupt shadow (after `STI`/`MOV SS`); SVM has a single bit for both.
    pub int_shadow: bool,
    /// An NMI is being delivered.
    pub nmi_injected: bool,
    /// NMIs waiting (at most two are kept: one running and one latched).
    pub nmi_pending: u32,
    /// NMIs are blocked (an NMI handler is running).
    pub nmi_masked: bool,
}

impl Events {
    /// Pending NMIs collapse like on hardware: one may be latched behind the one in progress,
    /// so at most two are kept, and at most one when an NMI is already masked or injected.
    pub fn clamp_nmis(&mut self) {
        let limit = if self.nmi_masked || self.nmi_injected {
            1
        } else {
            2
        };
        self.nmi_pending = self.nmi_pending.min(limit);
    }
}

/// Offsets in the standard-format XSAVE image (APM vol. 2, "XSAVE/XRSTOR instructions").
pub mod xsave {
    /// FCW (u16).
    pub const FCW: usize = 0;
    /// FSW (u16).
    pub const FSW: usize = 2;
    /// Abridged FTW (u8).
    pub const FTW: usize = 4;
    /// FOP (u16).
    pub const FOP: usize = 6;
    /// FIP (u64).
    pub const FIP: usize = 8;
    /// FDP (u64).
    pub const FDP: usize = 16;
    /// MXCSR (u32).
    pub const MXCSR: usize = 24;
    /// ST0..ST7, 16 bytes each.
    pub const ST: usize = 32;
    /// XMM0..XMM15, 16 bytes each.
    pub const XMM: usize = 160;
    /// XSTATE_BV (u64).
    pub const XSTATE_BV: usize = 512;
    /// XCOMP_BV (u64).
    pub const XCOMP_BV: usize = 520;
    /// End of the XSAVE header.
    pub const HEADER_END: usize = 576;
    /// Size of the image the ABI carries.
    pub const SIZE: usize = 4096;
}

/// The state of one vCPU.
#[derive(Debug)]
pub struct VcpuState {
    /// vCPU id.
    pub id: u32,
    /// General registers, RIP, RFLAGS.
    pub regs: KvmRegs,
    /// CS, DS, ES, FS, GS, SS, TR, LDTR.
    pub segs: [VmcbSeg; 8],
    /// GDTR.
    pub gdt: Dtable,
    /// IDTR.
    pub idt: Dtable,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (TPR), kept here while there is no in-kernel local APIC.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// `APIC_BASE` MSR.
    pub apic_base: u64,
    /// PAE page-directory pointers (`KVM_SET_SREGS2`).
    pub pdptrs: [u64; 4],
    /// Whether `pdptrs` came from user space and are current.
    pub pdptrs_valid: bool,
    /// Guest XSAVE image, standard format, [`xsave::SIZE`] bytes.
    pub xsave: XsaveArea,
    /// XCR0.
    pub xcr0: u64,
    /// DR0..DR3.
    pub db: [u64; 4],
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// Pending events.
    pub events: Events,
    /// The guest CPUID table as last set.
    pub cpuid: Vec<KvmCpuidEntry2>,
    /// Whether `KVM_SET_CPUID2` has been called (the derived limits below apply from then on).
    pub cpuid_set: bool,
    /// Guest MAXPHYADDR.
    pub maxphyaddr: u32,
    /// XCR0 bits the guest CPUID allows (within what the backend supports).
    pub guest_xcr0: u64,
    /// CR4 bits reserved by the guest CPUID (0 until `KVM_SET_CPUID2`).
    pub cr4_guest_reserved: u64,
    /// Model-specific registers the backend keeps (see [`crate::msr`]).
    pub msrs: crate::msr::MsrState,
    /// Set on the first successful `VMRUN`; CPUID is frozen from then on.
    pub ran: bool,
    /// `KVM_SET_GUEST_DEBUG` controls in force (0 when debugging is off).
    pub guest_debug: u32,
}

/// Index of each segment in [`VcpuState::segs`].
pub mod seg {
    /// CS.
    pub const CS: usize = 0;
    /// DS.
    pub const DS: usize = 1;
    /// ES.
    pub const ES: usize = 2;
    /// FS.
    pub const FS: usize = 3;
    /// GS.
    pub const GS: usize = 4;
    /// SS.
    pub const SS: usize = 5;
    /// TR.
    pub const TR: usize = 6;
    /// LDTR.
    pub const LDT: usize = 7;
}

const KINDS: [SegKind; 8] = [
    SegKind::Cs,
    SegKind::Data,
    SegKind::Data,
    SegKind::Data,
    SegKind::Data,
    SegKind::Ss,
    SegKind::Tr,
    SegKind::Ldt,
];

/// Initial DR6 (the architecturally reserved-as-one bits).
pub const DR6_INIT: u64 = 0xffff_0ff0;
/// Initial DR7 (bit 10 reads as one).
pub const DR7_INIT: u64 = 0x400;

impl VcpuState {
    /// The state at RESET (APM vol. 2, "Processor initialization state"): real mode at
    /// `F000:FFF0`, caches disabled, the APIC enabled at its default base (BSP for vCPU 0).
    pub fn reset(id: u32, tsc_now: u64) -> KResult<VcpuState> {
        let data = VmcbSeg {
            selector: 0,
            attrib: ATTR_P | ATTR_S | 0x3,
            limit: 0xffff,
            base: 0,
        };
        let mut segs = [data; 8];
        segs[seg::CS] = VmcbSeg {
            selector: 0xf000,
            attrib: ATTR_P | ATTR_S | 0xb,
            limit: 0xffff,
            base: 0xffff_0000,
        };
        segs[seg::TR] = VmcbSeg {
            attrib: ATTR_P | 0x3,
            ..data
        };
        segs[seg::LDT] = VmcbSeg {
            attrib: ATTR_P | 0x2,
            ..data
        };
        let mut xsave = XsaveArea::new()?;
        put(xsave.bytes_mut(), xsave::FCW, &0x37fu16.to_le_bytes());
        put(xsave.bytes_mut(), xsave::MXCSR, &0x1f80u32.to_le_bytes());
        Ok(VcpuState {
            id,
            regs: KvmRegs {
                rip: 0xfff0,
                rflags: 2,
                rdx: 0x600,
                ..Default::default()
            },
            segs,
            gdt: Dtable {
                base: 0,
                limit: 0xffff,
            },
            idt: Dtable {
                base: 0,
                limit: 0xffff,
            },
            cr0: cr0::CD | cr0::NW | cr0::ET,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            apic_base: apic::DEFAULT_BASE | apic::EN | if id == 0 { apic::BSP } else { 0 },
            pdptrs: [0; 4],
            pdptrs_valid: false,
            xsave,
            xcr0: XFEATURE_FP,
            db: [0; 4],
            dr6: DR6_INIT,
            dr7: DR7_INIT,
            events: Events::default(),
            cpuid: Vec::new(),
            cpuid_set: false,
            maxphyaddr: 36,
            guest_xcr0: 0,
            cr4_guest_reserved: 0,
            msrs: crate::msr::MsrState::reset(tsc_now),
            ran: false,
            guest_debug: 0,
        })
    }

    /// Reserved physical-address bits for this guest.
    pub fn reserved_pa(&self) -> u64 {
        cpuid_table::reserved_pa_bits(self.maxphyaddr)
    }

    /// The segment registers in ABI order (cs, ds, es, fs, gs, ss, tr, ldt).
    pub fn kvm_segs(&self) -> [KvmSegment; 8] {
        core::array::from_fn(|i| match (self.segs.get(i), KINDS.get(i)) {
            (Some(s), Some(k)) => s.to_kvm(*k),
            _ => KvmSegment::default(),
        })
    }

    /// `KVM_GET_SREGS`.
    pub fn sregs(&self) -> KvmSregs {
        let [cs, ds, es, fs, gs, ss, tr, ldt] = self.kvm_segs();
        let mut interrupt_bitmap = [0u64; KVM_NR_INTERRUPTS.div_ceil(64)];
        if self.events.irq_injected && !self.events.irq_soft {
            let nr = usize::from(self.events.irq_nr);
            if let Some(w) = interrupt_bitmap.get_mut(nr / 64) {
                *w |= 1 << (nr % 64);
            }
        }
        KvmSregs {
            cs,
            ds,
            es,
            fs,
            gs,
            ss,
            tr,
            ldt,
            gdt: self.gdt.to_kvm(),
            idt: self.idt.to_kvm(),
            cr0: self.cr0,
            cr2: self.cr2,
            cr3: self.cr3,
            cr4: self.cr4,
            cr8: self.cr8,
            efer: self.efer,
            apic_base: self.apic_base,
            interrupt_bitmap,
        }
    }

    /// The part of `KVM_SET_SREGS`/`KVM_SET_SREGS2` both share: validate everything, then
    /// store. Nothing changes on `EINVAL`.
    pub fn set_sregs_common(&mut self, s: &SregsCommon, host_cr4_reserved: u64) -> KResult<()> {
        check_sregs(
            s,
            host_cr4_reserved | self.cr4_guest_reserved,
            self.reserved_pa(),
        )?;
        check_apic_base(
            s.apic_base,
            self.apic_base,
            self.reserved_pa(),
            cpuid_table::has(&self.cpuid, cpuid_table::F_X2APIC),
        )?;
        for (dst, src) in self.segs.iter_mut().zip(s.segs.iter()) {
            *dst = VmcbSeg::from_kvm(src);
        }
        self.gdt = Dtable::from_kvm(&s.gdt);
        self.idt = Dtable::from_kvm(&s.idt);
        self.cr0 = s.cr0;
        self.cr2 = s.cr2;
        self.cr3 = s.cr3;
        self.cr4 = s.cr4;
        // A TPR value with reserved bits set is ignored rather than refused.
        if s.cr8 & !0xf == 0 {
            self.cr8 = s.cr8;
        }
        self.efer = s.efer;
        self.apic_base = s.apic_base;
        self.pdptrs_valid = false;
        self.update_cpuid_runtime();
        Ok(())
    }

    /// Mirrors run-time state into the CPUID bits that report it (OSXSAVE follows CR4,
    /// APIC follows `APIC_BASE.EN`, the XSAVE size follows XCR0).
    pub fn update_cpuid_runtime(&mut self) {
        apply_cpuid_runtime(&mut self.cpuid, self.cr4, self.apic_base, self.xcr0);
    }

    /// `KVM_GET_VCPU_EVENTS`.
    pub fn get_events(&self) -> KvmVcpuEvents {
        let ev = &self.events;
        let x = &ev.exception;
        let mut out = KvmVcpuEvents::default();
        // Software exceptions (INT3, INTO) cannot be re-injected without their instruction
        // length, which the ABI does not carry: they are not reported.
        let soft = u32::from(x.nr) == BP_VECTOR || u32::from(x.nr) == OF_VECTOR;
        if !soft {
            // Without KVM_CAP_EXCEPTION_PAYLOAD a pending exception is reported as injected.
            out.exception.injected = u8::from(x.injected || x.pending);
            out.exception.pending = 0;
        }
        out.exception.nr = x.nr;
        out.exception.has_error_code = u8::from(x.has_error_code);
        out.exception.error_code = x.error_code;
        out.exception_has_payload = u8::from(x.has_payload);
        out.exception_payload = x.payload;
        out.interrupt.injected = u8::from(ev.irq_injected && !ev.irq_soft);
        out.interrupt.nr = ev.irq_nr;
        out.interrupt.soft = 0;
        out.interrupt.shadow = if ev.int_shadow { 3 } else { 0 };
        out.nmi.injected = u8::from(ev.nmi_injected);
        let mut e = *ev;
        e.clamp_nmis();
        // CAST: clamp_nmis bounds it to 2.
        out.nmi.pending = e.nmi_pending as u8;
        out.nmi.masked = u8::from(ev.nmi_masked);
        out.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
        out
    }

    /// `KVM_SET_VCPU_EVENTS` (validated first; nothing changes on `EINVAL`).
    pub fn set_events(&mut self, e: &KvmVcpuEvents) -> KResult<()> {
        check_events(e)?;
        // Without the payload capability, "pending" and the payload are not part of the ABI.
        let ev = &mut self.events;
        ev.exception = Exception {
            injected: e.exception.injected != 0,
            pending: false,
            nr: e.exception.nr,
            has_error_code: e.exception.has_error_code != 0,
            error_code: e.exception.error_code,
            has_payload: false,
            payload: e.exception_payload,
        };
        ev.irq_injected = e.interrupt.injected != 0;
        ev.irq_nr = e.interrupt.nr;
        ev.irq_soft = e.interrupt.soft != 0;
        if e.flags & KVM_VCPUEVENT_VALID_SHADOW != 0 {
            ev.int_shadow = e.interrupt.shadow != 0;
        }
        ev.nmi_injected = e.nmi.injected != 0;
        if e.flags & KVM_VCPUEVENT_VALID_NMI_PENDING != 0 {
            ev.nmi_pending = u32::from(e.nmi.pending);
        }
        ev.nmi_masked = e.nmi.masked != 0;
        ev.clamp_nmis();
        Ok(())
    }

    /// `KVM_INTERRUPT` without an in-kernel interrupt controller: queue `irq` for injection
    /// (replacing any queued one).
    pub fn queue_interrupt(&mut self, irq: u32) -> KResult<()> {
        let nr = u8::try_from(irq).map_err(|_| Errno::EINVAL)?;
        self.events.irq_injected = true;
        self.events.irq_nr = nr;
        self.events.irq_soft = false;
        Ok(())
    }

    /// `KVM_NMI`: one more NMI pending.
    pub fn queue_nmi(&mut self) {
        self.events.nmi_pending = self.events.nmi_pending.saturating_add(1);
        self.events.clamp_nmis();
    }

    /// `KVM_GET_DEBUGREGS`.
    pub fn debugregs(&self) -> KvmDebugregs {
        KvmDebugregs {
            db: self.db,
            dr6: self.dr6,
            dr7: self.dr7,
            flags: 0,
            reserved: [0; 9],
        }
    }

    /// `KVM_SET_DEBUGREGS`: no flags, and DR6/DR7 bits 63:32 must be zero.
    pub fn set_debugregs(&mut self, d: &KvmDebugregs) -> KResult<()> {
        if d.flags != 0 || d.dr6 >> 32 != 0 || d.dr7 >> 32 != 0 {
            return Err(Errno::EINVAL);
        }
        self.db = d.db;
        self.dr6 = d.dr6;
        self.dr7 = d.dr7;
        Ok(())
    }

    /// Sets XCR0 (`KVM_SET_XCRS`) under the XSETBV rules.
    pub fn set_xcr0(&mut self, xcr0: u64) -> KResult<()> {
        check_xcr0(xcr0, self.guest_xcr0)?;
        self.xcr0 = xcr0;
        self.update_cpuid_runtime();
        Ok(())
    }

    /// Installs a new guest CPUID table (already checked with [`cpuid_table::check`] and,
    /// after the first run, [`frozen_cpuid_matches`]) and recomputes what derives from it.
    pub fn set_cpuid(&mut self, entries: Vec<KvmCpuidEntry2>, supported_xcr0: u64) {
        self.cpuid = entries;
        self.cpuid_set = true;
        self.maxphyaddr = cpuid_table::maxphyaddr(&self.cpuid);
        self.guest_xcr0 = cpuid_table::xcr0_announced(&self.cpuid) & supported_xcr0;
        self.cr4_guest_reserved = cpuid_table::cr4_reserved(&self.cpuid);
        self.update_cpuid_runtime();
    }

    /// Reads `N` bytes of the XSAVE image at `off`.
    pub fn xsave_get<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.xsave.bytes().get(off..off.saturating_add(N)) {
            out.copy_from_slice(src);
        }
        out
    }

    /// Writes `bytes` into the XSAVE image at `off`.
    pub fn xsave_put(&mut self, off: usize, bytes: &[u8]) {
        put(self.xsave.bytes_mut(), off, bytes);
    }
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(off..off.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

/// Applies the run-time CPUID bits to a table (see [`VcpuState::update_cpuid_runtime`]).
pub fn apply_cpuid_runtime(entries: &mut [KvmCpuidEntry2], cr4v: u64, apic_base: u64, xcr0: u64) {
    cpuid_table::change(entries, cpuid_table::F_OSXSAVE, cr4v & cr4::OSXSAVE != 0);
    cpuid_table::change(entries, cpuid_table::F_APIC, apic_base & apic::EN != 0);
    if let Some(e) = entries
        .iter_mut()
        .find(|e| e.function == 0xd && e.index == 0)
    {
        e.ebx = cpuid_table::xsave_size(xcr0);
    }
}

/// The fields `KVM_SET_SREGS` and `KVM_SET_SREGS2` share.
#[derive(Clone, Copy, Debug)]
pub struct SregsCommon {
    /// cs, ds, es, fs, gs, ss, tr, ldt.
    pub segs: [KvmSegment; 8],
    /// GDTR.
    pub gdt: KvmDtable,
    /// IDTR.
    pub idt: KvmDtable,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// APIC base.
    pub apic_base: u64,
}

impl SregsCommon {
    /// From `struct kvm_sregs`.
    pub fn from_sregs(s: &KvmSregs) -> SregsCommon {
        SregsCommon {
            segs: [s.cs, s.ds, s.es, s.fs, s.gs, s.ss, s.tr, s.ldt],
            gdt: s.gdt,
            idt: s.idt,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
            apic_base: s.apic_base,
        }
    }
}

/// Whether CR0 is acceptable: no bits above 31, no PG without PE, no NW without CD.
pub fn cr0_valid(v: u64) -> bool {
    v >> 32 == 0
        && !(v & cr0::PG != 0 && v & cr0::PE == 0)
        && !(v & cr0::NW != 0 && v & cr0::CD == 0)
}

/// The consistency rules of a whole `sregs`: CR0 and CR4 must be valid; with `EFER.LME` and
/// paging, CR4.PAE and `EFER.LMA` are required and CR3 must lie below MAXPHYADDR; otherwise
/// neither `EFER.LMA` nor a 64-bit CS is allowed.
pub fn check_sregs(s: &SregsCommon, cr4_reserved: u64, reserved_pa: u64) -> KResult<()> {
    let long = s.efer & EFER_LME != 0 && s.cr0 & cr0::PG != 0;
    let ok = if long {
        s.cr4 & cr4::PAE != 0 && s.efer & EFER_LMA != 0 && s.cr3 & reserved_pa == 0
    } else {
        s.efer & EFER_LMA == 0 && s.segs.first().is_none_or(|cs| cs.l == 0)
    };
    if !ok || s.cr4 & cr4_reserved != 0 || !cr0_valid(s.cr0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `APIC_BASE` rules for a host-initiated write: no reserved bits (0-7, 9, and physical
/// address bits above MAXPHYADDR; EXTD unless the guest has x2APIC), and not EXTD without EN.
pub fn check_apic_base(new: u64, old: u64, reserved_pa: u64, x2apic: bool) -> KResult<()> {
    if new == old {
        return Ok(());
    }
    let mut reserved = reserved_pa | 0x2ff;
    if !x2apic {
        reserved |= apic::EXTD;
    }
    let invalid_mode = new & apic::EXTD != 0 && new & apic::EN == 0;
    if new & reserved != 0 || invalid_mode {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `KVM_SET_VCPU_EVENTS` validation: only known flags; the payload, SMM and triple-fault
/// parts need capabilities this backend does not offer (SMM is accepted when it asks for
/// nothing); an injected exception must be a valid exception vector other than NMI.
pub fn check_events(e: &KvmVcpuEvents) -> KResult<()> {
    let known = KVM_VCPUEVENT_VALID_NMI_PENDING
        | KVM_VCPUEVENT_VALID_SIPI_VECTOR
        | KVM_VCPUEVENT_VALID_SHADOW
        | KVM_VCPUEVENT_VALID_SMM
        | KVM_VCPUEVENT_VALID_PAYLOAD
        | KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
    if e.flags & !known != 0
        || e.flags & (KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT) != 0
    {
        return Err(Errno::EINVAL);
    }
    if e.flags & KVM_VCPUEVENT_VALID_SMM != 0
        && (e.smi.smm != 0 || e.smi.pending != 0 || e.smi.smm_inside_nmi != 0)
    {
        return Err(Errno::EINVAL);
    }
    if e.exception.injected != 0 && (e.exception.nr > 31 || u32::from(e.exception.nr) == NMI_VECTOR)
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// XSETBV's rules for XCR0: x87 always set, AVX needs SSE, and nothing the guest's CPUID
/// does not announce.
pub fn check_xcr0(xcr0: u64, guest_allowed: u64) -> KResult<()> {
    if xcr0 & XFEATURE_FP == 0
        || (xcr0 & XFEATURE_YMM != 0 && xcr0 & XFEATURE_SSE == 0)
        || xcr0 & !(guest_allowed | XFEATURE_FP) != 0
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `KVM_SET_XSAVE` validation of a standard-format image: the XSAVE header may only name
/// components the backend supports, must not use the compacted format, its reserved bytes must
/// be zero, and MXCSR must not set reserved bits.
pub fn check_xsave(img: &[u8], supported_xcr0: u64) -> KResult<()> {
    let u64_at = |off: usize| {
        img.get(off..off + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let mxcsr = img
        .get(xsave::MXCSR..xsave::MXCSR + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes);
    let header_rest = img
        .get(xsave::XCOMP_BV + 8..xsave::HEADER_END)
        .is_some_and(|b| b.iter().any(|&x| x != 0));
    let bv = u64_at(xsave::XSTATE_BV);
    let comp = u64_at(xsave::XCOMP_BV);
    if bv & !(supported_xcr0 | XFEATURE_FP | XFEATURE_SSE) != 0
        || comp != 0
        || header_rest
        || mxcsr & 0xffff_0000 != 0
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// After the vCPU has run, its CPUID may only be "set" to exactly what it already is (in the
/// same order): anything else is refused, since the guest has observed it.
pub fn frozen_cpuid_matches(current: &[KvmCpuidEntry2], new: &[KvmCpuidEntry2]) -> bool {
    current.len() == new.len()
        && current.iter().zip(new).all(|(a, b)| {
            (a.function, a.index, a.flags, a.eax, a.ebx, a.ecx, a.edx)
                == (b.function, b.index, b.flags, b.eax, b.ebx, b.ecx, b.edx)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpuid_table::cr4_reserved;

    fn base() -> SregsCommon {
        let s = VcpuState::reset(0, 0).unwrap().sregs();
        SregsCommon::from_sregs(&s)
    }

    fn long() -> SregsCommon {
        let mut s = base();
        s.cr0 = cr0::PE | cr0::ET | cr0::PG;
        s.cr4 = cr4::PAE;
        s.efer = EFER_LME | EFER_LMA;
        s.cr3 = 0x1000;
        s
    }

    const RES36: u64 = !0u64 << 36;

    #[test]
    fn reset_state() {
        let v = VcpuState::reset(0, 0).unwrap();
        let s = v.sregs();
        assert_eq!(s.cr0, 0x6000_0010);
        assert_eq!(s.apic_base, 0xfee0_0900);
        assert_eq!(
            (s.cs.base, s.cs.selector, s.cs.limit),
            (0xffff_0000, 0xf000, 0xffff)
        );
        assert_eq!(s.ds.r#type, 3);
        assert_eq!(s.tr.r#type, 3);
        assert_eq!(VcpuState::reset(1, 0).unwrap().apic_base, 0xfee0_0800);
        assert_eq!(v.xsave_get::<2>(0), [0x7f, 0x03]);
    }

    #[test]
    fn cr0_rules() {
        assert!(cr0_valid(0x6000_0010));
        assert!(cr0_valid(0x8000_0011));
        assert!(!cr0_valid(0x8000_0010), "PG without PE");
        assert!(!cr0_valid(0x2000_0010), "NW without CD");
        assert!(!cr0_valid(1 << 32));
        assert!(!cr0_valid(0x6000_0010 | 1 << 40));
    }

    #[test]
    fn long_mode_rules() {
        let rsv = cr4_reserved(&[]);
        assert_eq!(check_sregs(&long(), rsv, RES36), Ok(()));
        let mut s = long();
        s.cr4 = 0;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "no PAE");
        let mut s = long();
        s.efer = EFER_LME;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "no LMA");
        let mut s = long();
        s.cr0 = 0x11;
        assert_eq!(
            check_sregs(&s, rsv, RES36),
            Err(Errno::EINVAL),
            "LMA, no PG"
        );
        s.efer = EFER_LMA;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "LMA only");
        s.efer = EFER_LME;
        assert_eq!(check_sregs(&s, rsv, RES36), Ok(()), "LME without paging");
        let mut s = long();
        s.cr3 = 1 << 52;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "cr3");
        s.cr3 = (1 << 36) - 0x1000;
        assert_eq!(check_sregs(&s, rsv, RES36), Ok(()));
        let mut s = base();
        s.segs[0].l = 1;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "cs.l");
        let mut s = base();
        s.cr4 = cr4::VMXE;
        assert_eq!(check_sregs(&s, rsv, RES36), Err(Errno::EINVAL), "VMXE");
        s.cr4 = cr4::PAE | cr4::PSE;
        assert_eq!(check_sregs(&s, rsv, RES36), Ok(()));
    }

    #[test]
    fn apic_base_rules() {
        let old = 0xfee0_0900;
        assert_eq!(check_apic_base(old, old, RES36, false), Ok(()));
        assert_eq!(check_apic_base(0xfee0_0800, old, RES36, false), Ok(()));
        assert_eq!(
            check_apic_base(0xfee0_0d00, old, RES36, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_apic_base(0xfee0_0d00, old, RES36, true), Ok(()));
        assert_eq!(
            check_apic_base(0xfee0_0500, old, RES36, true),
            Err(Errno::EINVAL),
            "EXTD without EN"
        );
        assert_eq!(
            check_apic_base(0xfee0_0901, old, RES36, true),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_apic_base(1 << 40 | 0x900, old, RES36, true),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn segments_round_trip_like_svm() {
        let s = KvmSegment {
            base: 0x1000,
            limit: 0xffff_ffff,
            selector: 0x10,
            r#type: 0xb,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
        assert_eq!(VmcbSeg::from_kvm(&s).to_kvm(SegKind::Cs), s);
        let d = KvmSegment {
            r#type: 2,
            l: 0,
            ..s
        };
        assert_eq!(VmcbSeg::from_kvm(&d).to_kvm(SegKind::Data).r#type, 3);
        let u = KvmSegment {
            unusable: 1,
            db: 1,
            ..d
        };
        let got = VmcbSeg::from_kvm(&u).to_kvm(SegKind::Ss);
        assert_eq!((got.present, got.unusable, got.db), (0, 1, 0));
        let tr = KvmSegment {
            r#type: 9,
            s: 0,
            ..s
        };
        assert_eq!(VmcbSeg::from_kvm(&tr).to_kvm(SegKind::Tr).r#type, 0xb);
    }

    #[test]
    fn event_rules() {
        let ok = KvmVcpuEvents {
            flags: KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW,
            ..Default::default()
        };
        assert_eq!(check_events(&ok), Ok(()));
        for bit in [4, 5, 6, 7, 10, 31] {
            let e = KvmVcpuEvents {
                flags: ok.flags | 1 << bit,
                ..ok
            };
            assert_eq!(check_events(&e), Err(Errno::EINVAL), "bit {bit}");
        }
        let mut e = ok;
        e.exception.injected = 1;
        for (nr, want) in [(2, false), (32, false), (255, false), (14, true), (0, true)] {
            e.exception.nr = nr;
            assert_eq!(check_events(&e).is_ok(), want, "vector {nr}");
        }
        let mut e = ok;
        e.exception.nr = 32;
        assert_eq!(check_events(&e), Ok(()), "not injected");
        let mut e = ok;
        e.flags |= KVM_VCPUEVENT_VALID_SMM;
        assert_eq!(check_events(&e), Ok(()));
        e.smi.smm = 1;
        assert_eq!(check_events(&e), Err(Errno::EINVAL));
    }

    #[test]
    fn nmis_collapse() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        v.queue_nmi();
        v.queue_nmi();
        v.queue_nmi();
        assert_eq!(v.get_events().nmi.pending, 2);
        v.events.nmi_masked = true;
        assert_eq!(v.get_events().nmi.pending, 1);
    }

    #[test]
    fn exception_reporting() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        v.events.exception = Exception {
            injected: true,
            nr: 3,
            ..Default::default()
        };
        assert_eq!(v.get_events().exception.injected, 0, "#BP is not reported");
        v.events.exception.nr = 14;
        assert_eq!(v.get_events().exception.injected, 1);
    }

    #[test]
    fn debugreg_rules() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        let d = v.debugregs();
        assert_eq!((d.dr6, d.dr7), (0xffff_0ff0, 0x400));
        for bad in [
            KvmDebugregs { flags: 1, ..d },
            KvmDebugregs { dr6: 1 << 32, ..d },
            KvmDebugregs { dr7: 1 << 32, ..d },
        ] {
            assert_eq!(v.set_debugregs(&bad), Err(Errno::EINVAL));
        }
        let good = KvmDebugregs {
            db: [!0; 4],
            dr6: 0,
            dr7: 0xffff_ffff,
            reserved: [1; 9],
            ..d
        };
        assert_eq!(v.set_debugregs(&good), Ok(()));
        assert_eq!(v.debugregs().dr7, 0xffff_ffff);
    }

    #[test]
    fn xcr0_rules() {
        assert_eq!(check_xcr0(1, 0), Ok(()));
        assert_eq!(check_xcr0(3, 0), Err(Errno::EINVAL), "SSE not announced");
        assert_eq!(check_xcr0(0, 7), Err(Errno::EINVAL), "no x87");
        assert_eq!(check_xcr0(5, 7), Err(Errno::EINVAL), "AVX without SSE");
        assert_eq!(check_xcr0(7, 7), Ok(()));
        assert_eq!(check_xcr0(1 << 63 | 1, 7), Err(Errno::EINVAL));
    }

    #[test]
    fn xsave_rules() {
        let v = VcpuState::reset(0, 0).unwrap();
        assert_eq!(check_xsave(v.xsave.bytes(), 7), Ok(()));
        let mut img = v.xsave.bytes().to_vec();
        img[xsave::XSTATE_BV] = 0x7;
        assert_eq!(check_xsave(&img, 7), Ok(()));
        img[xsave::XSTATE_BV] = 0x8;
        assert_eq!(check_xsave(&img, 7), Err(Errno::EINVAL));
        let mut img = v.xsave.bytes().to_vec();
        img[xsave::XCOMP_BV + 7] = 0x80;
        assert_eq!(check_xsave(&img, 7), Err(Errno::EINVAL));
        let mut img = v.xsave.bytes().to_vec();
        img[xsave::HEADER_END - 1] = 1;
        assert_eq!(check_xsave(&img, 7), Err(Errno::EINVAL));
        let mut img = v.xsave.bytes().to_vec();
        img[xsave::MXCSR + 2] = 1;
        assert_eq!(check_xsave(&img, 7), Err(Errno::EINVAL));
    }

    #[test]
    fn frozen_cpuid() {
        let a = [KvmCpuidEntry2 {
            function: 1,
            eax: 5,
            ..Default::default()
        }];
        let mut b = a;
        assert!(frozen_cpuid_matches(&a, &b));
        b[0].padding = [1; 3];
        assert!(frozen_cpuid_matches(&a, &b), "padding does not count");
        b[0].ebx = 1;
        assert!(!frozen_cpuid_matches(&a, &b));
        assert!(!frozen_cpuid_matches(&a, &[]));
    }
}
