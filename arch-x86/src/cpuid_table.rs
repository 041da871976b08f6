//! CPUID as the guest sees it: the table `KVM_GET_SUPPORTED_CPUID` reports (the host's leaves
//! filtered to what this backend virtualizes) and the facts derived from a vCPU's CPUID (CR4
//! reserved bits, MAXPHYADDR, XCR0 support).
//!
//! Bit positions are from the AMD64 APM vol. 3, appendix E ("Obtaining processor information
//! via the CPUID instruction").

use alloc::vec::Vec;

use kvmport_core::abi::x86::{KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KvmCpuidEntry2};
use kvmport_core::kalloc::vec_push;
use kvmport_core::{Errno, KResult};

use crate::cpuid::Leaf;
use crate::hw::Hw;

/// XCR0 bit: x87 state.
pub const XFEATURE_FP: u64 = 1 << 0;
/// XCR0 bit: SSE state.
pub const XFEATURE_SSE: u64 = 1 << 1;
/// XCR0 bit: AVX (YMM upper halves).
pub const XFEATURE_YMM: u64 = 1 << 2;
/// XCR0 bits this backend can hold in its 4096-byte, standard-format guest XSAVE image.
pub const XFEATURES_HANDLED: u64 = XFEATURE_FP | XFEATURE_SSE | XFEATURE_YMM;
/// Size of the legacy region plus the XSAVE header.
pub const XSAVE_BASE_SIZE: u32 = 512 + 64;
/// Offset of the AVX component in the standard format.
pub const XSAVE_YMM_OFFSET: u32 = 576;
/// Size of the AVX component.
pub const XSAVE_YMM_SIZE: u32 = 256;

/// CPUID feature bits used here, as (leaf, subleaf, register, bit).
#[derive(Clone, Copy, Debug)]
pub struct Bit(u32, u32, Reg, u32);

/// A CPUID output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// Leaf 1 ECX: VMX.
pub const F_VMX: Bit = Bit(1, 0, Reg::Ecx, 5);
/// Leaf 1 ECX: PCID.
pub const F_PCID: Bit = Bit(1, 0, Reg::Ecx, 17);
/// Leaf 1 ECX: x2APIC.
pub const F_X2APIC: Bit = Bit(1, 0, Reg::Ecx, 21);
/// Leaf 1 ECX: XSAVE.
pub const F_XSAVE: Bit = Bit(1, 0, Reg::Ecx, 26);
/// Leaf 1 ECX: OSXSAVE (mirrors CR4.OSXSAVE at run time).
pub const F_OSXSAVE: Bit = Bit(1, 0, Reg::Ecx, 27);
/// Leaf 1 EDX: on-chip APIC (mirrors `APIC_BASE.EN` at run time).
pub const F_APIC: Bit = Bit(1, 0, Reg::Edx, 9);
/// Leaf 7 EBX: FSGSBASE.
pub const F_FSGSBASE: Bit = Bit(7, 0, Reg::Ebx, 0);
/// Leaf 7 EBX: SMEP.
pub const F_SMEP: Bit = Bit(7, 0, Reg::Ebx, 7);
/// Leaf 7 EBX: SMAP.
pub const F_SMAP: Bit = Bit(7, 0, Reg::Ebx, 20);
/// Leaf 7 ECX: UMIP.
pub const F_UMIP: Bit = Bit(7, 0, Reg::Ecx, 2);
/// Leaf 7 ECX: PKU.
pub const F_PKU: Bit = Bit(7, 0, Reg::Ecx, 3);
/// Leaf 7 ECX: CET shadow stacks.
pub const F_SHSTK: Bit = Bit(7, 0, Reg::Ecx, 7);
/// Leaf 7 ECX: 5-level paging.
pub const F_LA57: Bit = Bit(7, 0, Reg::Ecx, 16);
/// Leaf 7 EDX: CET indirect branch tracking.
pub const F_IBT: Bit = Bit(7, 0, Reg::Edx, 20);
/// Leaf 7 subleaf 1 EAX: linear address masking.
pub const F_LAM: Bit = Bit(7, 1, Reg::Eax, 26);
/// Leaf 0x8000_0001 EDX: RDTSCP.
pub const F_RDTSCP: Bit = Bit(0x8000_0001, 0, Reg::Edx, 27);
/// Leaf 0x8000_0001 EDX: FFXSR.
pub const F_FFXSR: Bit = Bit(0x8000_0001, 0, Reg::Edx, 25);
/// Leaf 7 ECX: RDPID.
pub const F_RDPID: Bit = Bit(7, 0, Reg::Ecx, 22);

/// The first entry for `function`/`index` (the index only counts for entries flagged
/// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX`), as the processor's CPUID would pick it.
pub fn find(entries: &[KvmCpuidEntry2], function: u32, index: u32) -> Option<&KvmCpuidEntry2> {
    entries.iter().find(|e| {
        e.function == function
            && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0 || e.index == index)
    })
}

/// Whether `entries` report feature `bit`.
pub fn has(entries: &[KvmCpuidEntry2], bit: Bit) -> bool {
    let Bit(function, index, reg, n) = bit;
    find(entries, function, index).is_some_and(|e| {
        let v = match reg {
            Reg::Eax => e.eax,
            Reg::Ebx => e.ebx,
            Reg::Ecx => e.ecx,
            Reg::Edx => e.edx,
        };
        v & (1 << n) != 0
    })
}

/// Sets or clears feature `bit` in the matching entry of `entries`, if there is one.
pub fn change(entries: &mut [KvmCpuidEntry2], bit: Bit, on: bool) {
    let Bit(function, index, reg, n) = bit;
    if let Some(e) = entries.iter_mut().find(|e| {
        e.function == function
            && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0 || e.index == index)
    }) {
        let v = match reg {
            Reg::Eax => &mut e.eax,
            Reg::Ebx => &mut e.ebx,
            Reg::Ecx => &mut e.ecx,
            Reg::Edx => &mut e.edx,
        };
        if on {
            *v |= 1 << n;
        } else {
            *v &= !(1 << n);
        }
    }
}

/// CR4 bits (APM vol. 2, "CR4 register").
pub mod cr4 {
    /// Virtual-8086 mode extensions.
    pub const VME: u64 = 1 << 0;
    /// Protected-mode virtual interrupts.
    pub const PVI: u64 = 1 << 1;
    /// Time-stamp disable.
    pub const TSD: u64 = 1 << 2;
    /// Debugging extensions.
    pub const DE: u64 = 1 << 3;
    /// Page-size extensions.
    pub const PSE: u64 = 1 << 4;
    /// Physical-address extension.
    pub const PAE: u64 = 1 << 5;
    /// Machine-check enable.
    pub const MCE: u64 = 1 << 6;
    /// Page-global enable.
    pub const PGE: u64 = 1 << 7;
    /// Performance-counter enable.
    pub const PCE: u64 = 1 << 8;
    /// FXSAVE/FXRSTOR support.
    pub const OSFXSR: u64 = 1 << 9;
    /// Unmasked SIMD exceptions.
    pub const OSXMMEXCPT: u64 = 1 << 10;
    /// User-mode instruction prevention.
    pub const UMIP: u64 = 1 << 11;
    /// 5-level paging.
    pub const LA57: u64 = 1 << 12;
    /// VMX enable (Intel).
    pub const VMXE: u64 = 1 << 13;
    /// FSGSBASE instructions.
    pub const FSGSBASE: u64 = 1 << 16;
    /// Process-context identifiers.
    pub const PCIDE: u64 = 1 << 17;
    /// XSAVE and extended states.
    pub const OSXSAVE: u64 = 1 << 18;
    /// Supervisor-mode execution prevention.
    pub const SMEP: u64 = 1 << 20;
    /// Supervisor-mode access prevention.
    pub const SMAP: u64 = 1 << 21;
    /// Protection keys.
    pub const PKE: u64 = 1 << 22;
    /// Control-flow enforcement.
    pub const CET: u64 = 1 << 23;
    /// Linear address masking for supervisor pointers.
    pub const LAM_SUP: u64 = 1 << 28;
    /// Every bit with an architectural meaning KVM accepts at all.
    pub const KNOWN: u64 = VME
        | PVI
        | TSD
        | DE
        | PSE
        | PAE
        | MCE
        | PGE
        | PCE
        | OSFXSR
        | OSXMMEXCPT
        | UMIP
        | LA57
        | VMXE
        | FSGSBASE
        | PCIDE
        | OSXSAVE
        | SMEP
        | SMAP
        | PKE
        | CET
        | LAM_SUP;
}

/// CR4 bits that are reserved given the CPUID `entries`: the bits with no architectural
/// meaning, and those whose feature `entries` lack.
pub fn cr4_reserved(entries: &[KvmCpuidEntry2]) -> u64 {
    let mut r = !cr4::KNOWN;
    let gated = [
        (F_XSAVE, cr4::OSXSAVE),
        (F_SMEP, cr4::SMEP),
        (F_SMAP, cr4::SMAP),
        (F_FSGSBASE, cr4::FSGSBASE),
        (F_PKU, cr4::PKE),
        (F_LA57, cr4::LA57),
        (F_UMIP, cr4::UMIP),
        (F_VMX, cr4::VMXE),
        (F_PCID, cr4::PCIDE),
        (F_LAM, cr4::LAM_SUP),
    ];
    for (bit, cr4) in gated {
        if !has(entries, bit) {
            r |= cr4;
        }
    }
    if !has(entries, F_SHSTK) && !has(entries, F_IBT) {
        r |= cr4::CET;
    }
    r
}

/// The guest's MAXPHYADDR: leaf 0x8000_0008 EAX\[7:0\] when leaf 0x8000_0000 reaches it, else
/// 36 (the architectural default).
pub fn maxphyaddr(entries: &[KvmCpuidEntry2]) -> u32 {
    let reaches = find(entries, 0x8000_0000, 0).is_some_and(|e| e.eax >= 0x8000_0008);
    match find(entries, 0x8000_0008, 0) {
        Some(e) if reaches => e.eax & 0xff,
        _ => 36,
    }
}

/// Bits `[bits, 63]`: reserved physical-address bits for a MAXPHYADDR of `bits`.
pub fn reserved_pa_bits(bits: u32) -> u64 {
    if bits >= 64 { 0 } else { !0u64 << bits }
}

/// The XCR0 bits the CPUID `entries` announce (leaf 0xD subleaf 0, EDX:EAX).
pub fn xcr0_announced(entries: &[KvmCpuidEntry2]) -> u64 {
    find(entries, 0xd, 0).map_or(0, |e| (u64::from(e.edx) << 32) | u64::from(e.eax))
}

/// Size of a standard-format XSAVE image holding the components of `xcr0`.
pub fn xsave_size(xcr0: u64) -> u32 {
    if xcr0 & XFEATURE_YMM != 0 {
        XSAVE_YMM_OFFSET + XSAVE_YMM_SIZE
    } else {
        XSAVE_BASE_SIZE
    }
}

/// Validates a new guest CPUID table (`KVM_SET_CPUID2`): a virtual-address width other than
/// 0, 48 or 57 in leaf 0x8000_0008 cannot be honoured.
pub fn check(entries: &[KvmCpuidEntry2]) -> KResult<()> {
    if let Some(e) = find(entries, 0x8000_0008, 0) {
        let va = (e.eax >> 8) & 0xff;
        if va != 0 && va != 48 && va != 57 {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

// Feature masks of the supported table: what a guest may use without this backend doing
// anything beyond running it under SVM with nested paging.

/// Leaf 1 ECX: SSE3, PCLMULQDQ, SSSE3, CX16, PCID, SSE4.1, SSE4.2, MOVBE, POPCNT, AES, XSAVE,
/// RDRAND.
const L1_ECX: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 9)
    | (1 << 13)
    | (1 << 17)
    | (1 << 19)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 25)
    | (1 << 26)
    | (1 << 30);
/// Leaf 1 ECX, AVX-state features: FMA, AVX, F16C.
const L1_ECX_AVX: u32 = (1 << 12) | (1 << 28) | (1 << 29);
/// Leaf 1 ECX: the hypervisor-present bit.
const L1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: the TSC-deadline timer, emulated by the in-kernel local APIC whatever the
/// host has (AMD processors have none), as Linux KVM reports it.
const L1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EDX: FPU, VME, DE, PSE, TSC, MSR, PAE, CX8, APIC, SEP, PGE, CMOV, PAT, PSE36,
/// CLFLUSH, MMX, FXSR, SSE, SSE2.
const L1_EDX: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 9)
    | (1 << 11)
    | (1 << 13)
    | (1 << 15)
    | (1 << 16)
    | (1 << 17)
    | (1 << 19)
    | (1 << 23)
    | (1 << 24)
    | (1 << 25)
    | (1 << 26);
/// Leaf 7 EBX: FSGSBASE, BMI1, SMEP, BMI2, ERMS, INVPCID, RDSEED, ADX, SMAP, CLFLUSHOPT, CLWB,
/// SHA.
const L7_EBX: u32 = (1 << 0)
    | (1 << 3)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20)
    | (1 << 23)
    | (1 << 24)
    | (1 << 29);
/// Leaf 7 EBX, AVX-state features: AVX2.
const L7_EBX_AVX: u32 = 1 << 5;
/// Leaf 7 ECX: GFNI, RDPID.
const L7_ECX: u32 = (1 << 8) | (1 << 22);
/// Leaf 7 ECX, AVX-state features: VAES, VPCLMULQDQ.
const L7_ECX_AVX: u32 = (1 << 9) | (1 << 10);
/// Leaf 0xD subleaf 1 EAX: XSAVEOPT, XSAVEC, XGETBV with ECX=1.
const LD1_EAX: u32 = (1 << 0) | (1 << 1) | (1 << 2);
/// Leaf 0x8000_0001 ECX: LAHF/SAHF, CR8 legacy, ABM, SSE4A, misaligned SSE, PREFETCHW, TBM.
const LE1_ECX: u32 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 21);
/// Leaf 0x8000_0001 ECX, AVX-state features: XOP, FMA4.
const LE1_ECX_AVX: u32 = (1 << 11) | (1 << 16);
/// Leaf 0x8000_0001 EDX: SYSCALL, NX, MMX extensions, FFXSR, 1-GiB pages, RDTSCP, LM, 3DNow!
/// extensions, 3DNow!, plus the leaf 1 EDX bits AMD mirrors here.
const LE1_EDX: u32 = (1 << 11)
    | (1 << 20)
    | (1 << 22)
    | (1 << 25)
    | (1 << 26)
    | (1 << 27)
    | (1 << 29)
    | (1 << 30)
    | (1 << 31)
    | (L1_EDX & 0x0183_f3ff);

/// The hypervisor signature leaf's "KVMKVMKVM\0\0\0" in EBX, ECX, EDX.
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];

fn entry(function: u32, index: u32, flags: u32, l: Leaf) -> KvmCpuidEntry2 {
    KvmCpuidEntry2 {
        function,
        index,
        flags,
        eax: l.eax,
        ebx: l.ebx,
        ecx: l.ecx,
        edx: l.edx,
        padding: [0; 3],
    }
}

/// The XCR0 bits this backend supports for guests on this host.
pub fn supported_xcr0<H: Hw>(hw: &H) -> u64 {
    let max = hw.cpuid(0, 0).eax;
    if max < 0xd || hw.cpuid(1, 0).ecx & (1 << 26) == 0 {
        return 0;
    }
    let d = hw.cpuid(0xd, 0);
    ((u64::from(d.edx) << 32) | u64::from(d.eax)) & XFEATURES_HANDLED
}

/// Builds the `KVM_GET_SUPPORTED_CPUID` table from the host's CPUID.
pub fn supported<H: Hw>(hw: &H) -> KResult<Vec<KvmCpuidEntry2>> {
    let mut t = Vec::new();
    let sig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    let l0 = hw.cpuid(0, 0);
    let max_basic = l0.eax.min(0xd);
    let xcr0 = supported_xcr0(hw);
    let avx = xcr0 & XFEATURE_YMM != 0;
    let avx_if = |m: u32| if avx { m } else { 0 };
    vec_push(
        &mut t,
        entry(
            0,
            0,
            0,
            Leaf {
                eax: max_basic,
                ..l0
            },
        ),
    )?;
    if max_basic >= 1 {
        let h = hw.cpuid(1, 0);
        let l = Leaf {
            eax: h.eax,
            ebx: h.ebx & 0xffff,
            ecx: (h.ecx & (L1_ECX | avx_if(L1_ECX_AVX))) | L1_ECX_HYPERVISOR | L1_ECX_TSC_DEADLINE,
            edx: h.edx & L1_EDX,
        };
        vec_push(&mut t, entry(1, 0, 0, l))?;
    }
    if max_basic >= 7 {
        let h = hw.cpuid(7, 0);
        let l = Leaf {
            eax: 0,
            ebx: h.ebx & (L7_EBX | avx_if(L7_EBX_AVX)),
            ecx: h.ecx & (L7_ECX | avx_if(L7_ECX_AVX)),
            edx: 0,
        };
        vec_push(&mut t, entry(7, 0, sig, l))?;
    }
    if max_basic >= 0xd && xcr0 != 0 {
        let size = xsave_size(xcr0);
        // CAST: XFEATURES_HANDLED fits in the low half.
        let l = Leaf {
            eax: xcr0 as u32,
            ebx: size,
            ecx: size,
            edx: 0,
        };
        vec_push(&mut t, entry(0xd, 0, sig, l))?;
        let h = hw.cpuid(0xd, 1);
        let l = Leaf {
            eax: h.eax & LD1_EAX,
            ..Leaf::default()
        };
        vec_push(&mut t, entry(0xd, 1, sig, l))?;
        if avx {
            let l = Leaf {
                eax: XSAVE_YMM_SIZE,
                ebx: XSAVE_YMM_OFFSET,
                ..Leaf::default()
            };
            vec_push(&mut t, entry(0xd, 2, sig, l))?;
        }
    }
    let [ebx, ecx, edx] = KVM_SIGNATURE;
    let l = Leaf {
        eax: 0x4000_0001,
        ebx,
        ecx,
        edx,
    };
    vec_push(&mut t, entry(0x4000_0000, 0, 0, l))?;
    // No paravirtual features yet.
    vec_push(&mut t, entry(0x4000_0001, 0, 0, Leaf::default()))?;
    let e0 = hw.cpuid(0x8000_0000, 0);
    let max_ext = if e0.eax >= 0x8000_0000 {
        e0.eax.min(0x8000_0008)
    } else {
        0x8000_0000
    };
    vec_push(
        &mut t,
        entry(0x8000_0000, 0, 0, Leaf { eax: max_ext, ..e0 }),
    )?;
    for f in 0x8000_0001..=max_ext {
        let h = hw.cpuid(f, 0);
        let l = match f {
            0x8000_0001 => Leaf {
                eax: h.eax,
                ebx: 0,
                ecx: h.ecx & (LE1_ECX | avx_if(LE1_ECX_AVX)),
                edx: h.edx & LE1_EDX,
            },
            // Brand string and cache/TLB descriptions pass through.
            0x8000_0002..=0x8000_0006 => h,
            // Physical and virtual address sizes; the guest-physical size field (0) means
            // "same as the physical size".
            0x8000_0008 => Leaf {
                eax: h.eax & 0xffff,
                ..Leaf::default()
            },
            _ => Leaf::default(),
        };
        vec_push(&mut t, entry(f, 0, 0, l))?;
    }
    Ok(t)
}

/// The `KVM_GET_EMULATED_CPUID` table: features the backend emulates beyond the hardware's.
/// There are none yet, so the table is only a leaf 0 whose maximum leaf is 0.
pub fn emulated() -> [KvmCpuidEntry2; 1] {
    [KvmCpuidEntry2::default()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(function: u32, index: u32, flags: u32, eax: u32, ebx: u32, ecx: u32) -> KvmCpuidEntry2 {
        KvmCpuidEntry2 {
            function,
            index,
            flags,
            eax,
            ebx,
            ecx,
            ..Default::default()
        }
    }

    #[test]
    fn find_honours_the_significant_index_flag() {
        let t = [
            e(7, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 5, 0, 0),
            e(4, 0, 0, 9, 0, 0),
        ];
        assert!(find(&t, 7, 0).is_none());
        assert_eq!(find(&t, 7, 1).map(|x| x.eax), Some(5));
        // Without the flag any index matches.
        assert_eq!(find(&t, 4, 3).map(|x| x.eax), Some(9));
    }

    #[test]
    fn cr4_reserved_follows_features() {
        let none = cr4_reserved(&[]);
        for b in [
            cr4::OSXSAVE,
            cr4::SMEP,
            cr4::SMAP,
            cr4::VMXE,
            cr4::LA57,
            cr4::PCIDE,
            cr4::CET,
            1 << 14,
            1 << 32,
            1 << 63,
        ] {
            assert_ne!(none & b, 0, "{b:#x}");
        }
        for b in [cr4::PAE, cr4::PSE, cr4::OSFXSR, cr4::PGE, cr4::MCE] {
            assert_eq!(none & b, 0, "{b:#x}");
        }
        let t = [
            e(1, 0, 0, 0, 0, 1 << 26),
            e(7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 1 << 7, 0),
        ];
        let r = cr4_reserved(&t);
        assert_eq!(r & (cr4::OSXSAVE | cr4::SMEP), 0);
        assert_ne!(r & cr4::SMAP, 0);
    }

    #[test]
    fn maxphyaddr_needs_the_extended_leaf() {
        assert_eq!(maxphyaddr(&[]), 36);
        let leaf8 = e(0x8000_0008, 0, 0, 0x3030, 0, 0);
        assert_eq!(maxphyaddr(&[leaf8]), 36);
        let max = e(0x8000_0000, 0, 0, 0x8000_0008, 0, 0);
        assert_eq!(maxphyaddr(&[max, leaf8]), 48);
        assert_eq!(reserved_pa_bits(48), 0xffff_0000_0000_0000);
        assert_eq!(reserved_pa_bits(64), 0);
    }

    #[test]
    fn virtual_address_width_checked() {
        assert_eq!(check(&[e(0x8000_0008, 0, 0, 0x3028, 0, 0)]), Ok(()));
        assert_eq!(check(&[e(0x8000_0008, 0, 0, 0x3928, 0, 0)]), Ok(()));
        assert_eq!(check(&[e(0x8000_0008, 0, 0, 0x0028, 0, 0)]), Ok(()));
        assert_eq!(
            check(&[e(0x8000_0008, 0, 0, 0x2028, 0, 0)]),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn xsave_sizes() {
        assert_eq!(xsave_size(3), 576);
        assert_eq!(xsave_size(7), 832);
    }

    #[test]
    fn change_sets_and_clears() {
        let mut t = [e(1, 0, 0, 0, 0, 0)];
        change(&mut t, F_OSXSAVE, true);
        assert!(has(&t, F_OSXSAVE));
        change(&mut t, F_OSXSAVE, false);
        assert!(!has(&t, F_OSXSAVE));
    }
}
