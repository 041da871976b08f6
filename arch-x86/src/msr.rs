//! The MSRs this backend keeps for a guest, and the policy for each: which are reported by
//! `KVM_GET_MSR_INDEX_LIST`, and what a host-initiated (`KVM_SET_MSRS`) write may set.
//!
//! MSR numbers and formats: AMD64 APM vol. 2 (chapters 6, 7 and appendix A).

use crate::hw::{EFER_FFXSR, EFER_LMA, EFER_LME, EFER_NX, EFER_SCE, MSR_EFER, MSR_UCODE_REV};
use crate::state::{VcpuState, check_apic_base, seg};

/// `TSC`: the time-stamp counter.
pub const MSR_TSC: u32 = 0x10;
/// `APIC_BASE`.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// `SYSENTER_CS`.
pub const MSR_SYSENTER_CS: u32 = 0x174;
/// `SYSENTER_ESP`.
pub const MSR_SYSENTER_ESP: u32 = 0x175;
/// `SYSENTER_EIP`.
pub const MSR_SYSENTER_EIP: u32 = 0x176;
/// `PAT`: page attribute table.
pub const MSR_PAT: u32 = 0x277;
/// `STAR`.
pub const MSR_STAR: u32 = 0xc000_0081;
/// `LSTAR`.
pub const MSR_LSTAR: u32 = 0xc000_0082;
/// `CSTAR`.
pub const MSR_CSTAR: u32 = 0xc000_0083;
/// `SFMASK`.
pub const MSR_SFMASK: u32 = 0xc000_0084;
/// `FS.base`.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// `GS.base`.
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// `KernelGSbase`.
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// `TSC_AUX`.
pub const MSR_TSC_AUX: u32 = 0xc000_0103;

/// The PAT value at reset: WB, WT, UC-, UC repeated.
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// The microcode revision a guest sees until user space sets one.
pub const UCODE_REV_RESET: u64 = 0x1_0000_0000;

/// MSRs reported by `KVM_GET_MSR_INDEX_LIST` (state user space must save and restore). EFER,
/// FS/GS base and `APIC_BASE` are also accessible but travel in `kvm_sregs`; `TSC_AUX` is
/// added when the host has RDTSCP.
pub const SAVED: [u32; 10] = [
    MSR_SYSENTER_CS,
    MSR_SYSENTER_ESP,
    MSR_SYSENTER_EIP,
    MSR_STAR,
    MSR_CSTAR,
    MSR_KERNEL_GS_BASE,
    MSR_SFMASK,
    MSR_LSTAR,
    MSR_TSC,
    MSR_PAT,
];

/// Feature MSRs (`KVM_GET_MSR_FEATURE_INDEX_LIST`, readable with `KVM_GET_MSRS` on the
/// system fd).
pub const FEATURES: [u32; 1] = [MSR_UCODE_REV];

/// Host facts the MSR policy depends on.
#[derive(Clone, Copy, Debug)]
pub struct MsrHost {
    /// EFER bits a host-initiated write may set.
    pub efer_ok: u64,
    /// Width of canonical virtual addresses (48, or 57 with 5-level paging).
    pub va_bits: u32,
    /// The host has RDTSCP/RDPID, so `TSC_AUX` exists.
    pub tsc_aux: bool,
    /// The TSC right now.
    pub tsc_now: u64,
}

impl MsrHost {
    /// The EFER bits this backend lets a guest use: SCE, LME, LMA, NX, and FFXSR when the host
    /// has it.
    pub fn efer_bits(ffxsr: bool) -> u64 {
        EFER_SCE | EFER_LME | EFER_LMA | EFER_NX | if ffxsr { EFER_FFXSR } else { 0 }
    }
}

/// MSR values kept outside the rest of [`VcpuState`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrState {
    /// Guest TSC minus host TSC (wrapping).
    pub tsc_offset: u64,
    /// `SYSENTER_CS`.
    pub sysenter_cs: u64,
    /// `SYSENTER_ESP`.
    pub sysenter_esp: u64,
    /// `SYSENTER_EIP`.
    pub sysenter_eip: u64,
    /// `STAR`.
    pub star: u64,
    /// `LSTAR`.
    pub lstar: u64,
    /// `CSTAR`.
    pub cstar: u64,
    /// `SFMASK`.
    pub sfmask: u64,
    /// `KernelGSbase`.
    pub kernel_gs_base: u64,
    /// `PAT`.
    pub pat: u64,
    /// `TSC_AUX`.
    pub tsc_aux: u64,
    /// Microcode revision.
    pub ucode_rev: u64,
}

impl MsrState {
    /// Values at RESET; the guest TSC starts at zero.
    pub fn reset(tsc_now: u64) -> MsrState {
        MsrState {
            tsc_offset: 0u64.wrapping_sub(tsc_now),
            pat: PAT_RESET,
            ucode_rev: UCODE_REV_RESET,
            ..Default::default()
        }
    }
}

/// Whether `v` is canonical for `bits`-bit virtual addresses.
pub fn is_canonical(v: u64, bits: u32) -> bool {
    canonicalize(v, bits) == v
}

/// Sign-extends bit `bits - 1` of `v` upwards.
pub fn canonicalize(v: u64, bits: u32) -> u64 {
    let shift = 64u32.saturating_sub(bits).min(63);
    // CAST: reinterpreting for the arithmetic shift that sign-extends.
    (((v << shift) as i64) >> shift) as u64
}

/// Whether `pat` holds only valid memory types (UC, WC, WT, WP, WB, UC-) in every entry.
pub fn pat_valid(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|&b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Reads MSR `index` for user space (`KVM_GET_MSRS`); `None` if the backend does not keep it.
pub fn get(v: &VcpuState, host: &MsrHost, index: u32) -> Option<u64> {
    let m = &v.msrs;
    Some(match index {
        MSR_TSC => host.tsc_now.wrapping_add(m.tsc_offset),
        MSR_APIC_BASE => v.apic_base,
        MSR_UCODE_REV => m.ucode_rev,
        MSR_SYSENTER_CS => m.sysenter_cs,
        MSR_SYSENTER_ESP => m.sysenter_esp,
        MSR_SYSENTER_EIP => m.sysenter_eip,
        MSR_PAT => m.pat,
        MSR_EFER => v.efer,
        MSR_STAR => m.star,
        MSR_LSTAR => m.lstar,
        MSR_CSTAR => m.cstar,
        MSR_SFMASK => m.sfmask,
        MSR_FS_BASE => v.segs.get(seg::FS).map_or(0, |s| s.base),
        MSR_GS_BASE => v.segs.get(seg::GS).map_or(0, |s| s.base),
        MSR_KERNEL_GS_BASE => m.kernel_gs_base,
        MSR_TSC_AUX if host.tsc_aux => m.tsc_aux,
        _ => return None,
    })
}

/// A host-initiated write of MSR `index` (`KVM_SET_MSRS`). `false` if the backend does not
/// keep the MSR or refuses the value (then nothing changed).
pub fn set(v: &mut VcpuState, host: &MsrHost, index: u32, data: u64) -> bool {
    let canonical = is_canonical(data, host.va_bits);
    let m = &mut v.msrs;
    match index {
        MSR_TSC => m.tsc_offset = data.wrapping_sub(host.tsc_now),
        MSR_APIC_BASE => {
            let x2 = crate::cpuid_table::has(&v.cpuid, crate::cpuid_table::F_X2APIC);
            if check_apic_base(data, v.apic_base, v.reserved_pa(), x2).is_err() {
                return false;
            }
            v.apic_base = data;
            v.update_cpuid_runtime();
        }
        MSR_UCODE_REV => m.ucode_rev = data,
        MSR_SYSENTER_CS => m.sysenter_cs = data,
        MSR_SYSENTER_ESP => m.sysenter_esp = canonicalize(data, host.va_bits),
        MSR_SYSENTER_EIP => m.sysenter_eip = canonicalize(data, host.va_bits),
        MSR_PAT if pat_valid(data) => m.pat = data,
        MSR_EFER if data & !host.efer_ok == 0 => {
            // LMA follows CR0.PG and EFER.LME; a write cannot change it.
            v.efer = (data & !EFER_LMA) | (v.efer & EFER_LMA);
        }
        MSR_STAR => m.star = data,
        MSR_LSTAR if canonical => m.lstar = data,
        MSR_CSTAR if canonical => m.cstar = data,
        MSR_SFMASK => m.sfmask = data,
        MSR_KERNEL_GS_BASE if canonical => m.kernel_gs_base = data,
        MSR_FS_BASE | MSR_GS_BASE if canonical => {
            let i = if index == MSR_FS_BASE {
                seg::FS
            } else {
                seg::GS
            };
            if let Some(s) = v.segs.get_mut(i) {
                s.base = data;
            }
        }
        // Bits 63:32 of TSC_AUX are reserved.
        MSR_TSC_AUX if host.tsc_aux && data >> 32 == 0 => m.tsc_aux = data,
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> MsrHost {
        MsrHost {
            efer_ok: MsrHost::efer_bits(false),
            va_bits: 48,
            tsc_aux: true,
            tsc_now: 1000,
        }
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0xffff_8000_0000_0000, 48));
        assert!(is_canonical(0x0000_7fff_ffff_ffff, 48));
        assert!(!is_canonical(0x0000_8000_0000_0000, 48));
        assert!(is_canonical(0x0000_8000_0000_0000, 57));
        assert_eq!(
            canonicalize(0x0000_8000_0000_0000, 48),
            0xffff_8000_0000_0000
        );
    }

    #[test]
    fn pat_types() {
        assert!(pat_valid(PAT_RESET));
        assert!(!pat_valid((PAT_RESET & !0xff) | 2));
        assert!(!pat_valid(PAT_RESET | 3 << 56));
    }

    #[test]
    fn efer_host_writes() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        let h = host();
        assert!(set(&mut v, &h, MSR_EFER, 0xd01));
        assert_eq!(get(&v, &h, MSR_EFER), Some(0x901), "LMA is not settable");
        assert!(!set(&mut v, &h, MSR_EFER, 1 << 20));
        assert!(!set(&mut v, &h, MSR_EFER, 1 << 12), "no nested SVM");
        assert_eq!(v.efer, 0x901);
    }

    #[test]
    fn tsc_is_offset() {
        let mut v = VcpuState::reset(0, 500).unwrap();
        let mut h = host();
        assert_eq!(get(&v, &h, MSR_TSC), Some(500));
        assert!(set(&mut v, &h, MSR_TSC, 10));
        h.tsc_now = 1100;
        assert_eq!(get(&v, &h, MSR_TSC), Some(110));
    }

    #[test]
    fn address_msrs() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        let h = host();
        assert!(!set(&mut v, &h, MSR_LSTAR, 0x0000_8000_0000_0000));
        assert!(set(&mut v, &h, MSR_LSTAR, 0xffff_8000_1234_5000));
        assert!(set(&mut v, &h, MSR_SYSENTER_EIP, 0x0000_8000_0000_0000));
        assert_eq!(get(&v, &h, MSR_SYSENTER_EIP), Some(0xffff_8000_0000_0000));
        assert!(set(&mut v, &h, MSR_FS_BASE, 0x1234));
        assert_eq!(v.sregs().fs.base, 0x1234);
        assert!(!set(&mut v, &h, MSR_TSC_AUX, 1 << 32));
        assert!(!set(&mut v, &h, 0x1234_5678, 0));
        assert_eq!(get(&v, &h, 0x1234_5678), None);
    }
}
