//! Virtualization features from CPUID, decoded from the leaves the AMD64 Architecture
//! Programmer's Manual (vol. 2, "SVM feature identification") and the Intel SDM (vol. 2A,
//! CPUID leaf 1) define.

/// CPUID output registers of one leaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// The virtualization features a backend chooses by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// AMD SVM (CPUID Fn8000_0001 ECX bit 2).
    pub svm: bool,
    /// Intel VMX (CPUID Fn0000_0001 ECX bit 5).
    pub vmx: bool,
    /// SVM nested paging (Fn8000_000A EDX bit 0).
    pub npt: bool,
    /// SVM next-RIP save (Fn8000_000A EDX bit 3); absent under QEMU's TCG.
    pub nrip_save: bool,
    /// SVM flush-by-ASID (Fn8000_000A EDX bit 6).
    pub flush_by_asid: bool,
    /// SVM decode assists (Fn8000_000A EDX bit 7).
    pub decode_assists: bool,
    /// Number of SVM ASIDs (Fn8000_000A EBX).
    pub asids: u32,
}

impl Features {
    /// Decodes leaf 1, leaf 0x8000_0001 and (when SVM is present) leaf 0x8000_000A.
    /// `max_ext` is EAX of leaf 0x8000_0000, the highest extended leaf.
    pub fn decode(leaf1: Leaf, max_ext: u32, ext1: Leaf, svm_leaf: Leaf) -> Features {
        let svm = max_ext >= 0x8000_0001 && ext1.ecx & (1 << 2) != 0;
        let svm_info = svm && max_ext >= 0x8000_000a;
        let bit = |n: u32| svm_info && svm_leaf.edx & (1 << n) != 0;
        Features {
            svm,
            vmx: leaf1.ecx & (1 << 5) != 0,
            npt: bit(0),
            nrip_save: bit(3),
            flush_by_asid: bit(6),
            decode_assists: bit(7),
            asids: if svm_info { svm_leaf.ebx } else { 0 },
        }
    }

    /// Reads the features of the CPU this runs on.
    pub fn detect() -> Features {
        let leaf = |n: u32| {
            let r = core::arch::x86_64::__cpuid(n);
            Leaf {
                eax: r.eax,
                ebx: r.ebx,
                ecx: r.ecx,
                edx: r.edx,
            }
        };
        let max_ext = leaf(0x8000_0000).eax;
        let ext1 = if max_ext >= 0x8000_0001 {
            leaf(0x8000_0001)
        } else {
            Leaf::default()
        };
        let svm = if max_ext >= 0x8000_000a {
            leaf(0x8000_000a)
        } else {
            Leaf::default()
        };
        Features::decode(leaf(1), max_ext, ext1, svm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_epyc_under_tcg() {
        // QEMU TCG `-cpu EPYC`: SVM with nested paging, no NRIP save or decode assists.
        let f = Features::decode(
            Leaf {
                ecx: 0x7ed8_320b,
                ..Default::default()
            },
            0x8000_001f,
            Leaf {
                ecx: 0x0040_01f7,
                ..Default::default()
            },
            Leaf {
                eax: 1,
                ebx: 16,
                ecx: 0,
                edx: 0x1,
            },
        );
        assert!(f.svm && f.npt && !f.vmx && !f.nrip_save && !f.decode_assists);
        assert_eq!(f.asids, 16);
    }

    #[test]
    fn svm_leaf_ignored_without_svm() {
        let f = Features::decode(
            Leaf {
                ecx: 1 << 5,
                ..Default::default()
            },
            0x8000_0008,
            Leaf::default(),
            Leaf {
                ebx: 99,
                edx: 0xff,
                ..Default::default()
            },
        );
        assert!(f.vmx && !f.svm && !f.npt);
        assert_eq!(f.asids, 0);
    }

    #[test]
    fn detect_agrees_with_decode_on_this_host() {
        // Whatever this CPU is, detect() must be consistent: no SVM sub-features without SVM.
        let f = Features::detect();
        assert!(f.svm || (!f.npt && !f.nrip_save && f.asids == 0));
    }
}
