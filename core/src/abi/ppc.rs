//! PowerPC structs, ONE_REG ids and ioctl numbers, from
//! `arch/powerpc/include/uapi/asm/kvm.h`, `asm/ioctl.h` and the ppc parts of
//! `<linux/kvm.h>` (Linux 6.1).
//!
//! PowerPC encodes ioctl commands differently from asm-generic (3 direction
//! bits with `NONE` = 1, `READ` = 2, `WRITE` = 4, and a 13-bit size), so this
//! module has its own [`ioc`] and builds its numbers with it. Any
//! [`super::ioctl`] command whose argument has the same size on ppc can be
//! converted with [`from_generic`].
//!
//! Only `kvm_regs` and `kvm_fpu` are provided; the ppc `kvm_sregs` (a
//! union of Book3S/BookE state) is not.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::KVMIO;
use super::{KVM_REG_PPC, KVM_REG_SIZE_U32, KVM_REG_SIZE_U64, KVM_REG_SIZE_U128};

/// ppc `_IOC_NONE`.
pub const IOC_NONE: u32 = 1;
/// ppc `_IOC_READ`.
pub const IOC_READ: u32 = 2;
/// ppc `_IOC_WRITE`.
pub const IOC_WRITE: u32 = 4;
/// ppc `_IOC_SIZEBITS`.
pub const IOC_SIZEBITS: u32 = 13;
/// ppc `_IOC_DIRBITS`.
pub const IOC_DIRBITS: u32 = 3;

/// Builds a ppc ioctl command (`_IOC(dir, type, nr, size)`); `size` is
/// truncated to 13 bits and `dir` to 3.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    ((dir & ((1 << IOC_DIRBITS) - 1)) << 29)
        | (((size as u32) & ((1 << IOC_SIZEBITS) - 1)) << 16)
        | ((ty & 0xff) << 8)
        | (nr & 0xff)
}

/// ppc `_IO(KVMIO, nr)`.
pub const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, KVMIO, nr, 0)
}

/// ppc `_IOR(KVMIO, nr, T)`.
pub const fn ior<T>(nr: u32) -> u32 {
    ioc(IOC_READ, KVMIO, nr, core::mem::size_of::<T>())
}

/// ppc `_IOW(KVMIO, nr, T)`.
pub const fn iow<T>(nr: u32) -> u32 {
    ioc(IOC_WRITE, KVMIO, nr, core::mem::size_of::<T>())
}

/// ppc `_IOWR(KVMIO, nr, T)`.
pub const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, KVMIO, nr, core::mem::size_of::<T>())
}

/// Re-encodes an asm-generic command (as in [`super::ioctl`]) for ppc,
/// keeping type, number and size. Only valid when the argument struct has
/// the same size on ppc.
pub const fn from_generic(cmd: u32) -> u32 {
    let gdir = super::ioctl::ioc_dir(cmd);
    let mut dir = 0;
    if gdir == super::ioctl::IOC_NONE {
        dir = IOC_NONE;
    }
    if gdir & super::ioctl::IOC_READ != 0 {
        dir |= IOC_READ;
    }
    if gdir & super::ioctl::IOC_WRITE != 0 {
        dir |= IOC_WRITE;
    }
    ioc(
        dir,
        super::ioctl::ioc_type(cmd),
        super::ioctl::ioc_nr(cmd),
        super::ioctl::ioc_size(cmd) as usize,
    )
}

/// vCPU mmap page offset of the coalesced MMIO ring on ppc.
pub const KVM_COALESCED_MMIO_PAGE_OFFSET: u64 = 1;

/// `struct kvm_regs` (ppc): the `KVM_GET/SET_REGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRegs {
    /// Program counter (NIP).
    pub pc: u64,
    /// Condition register.
    pub cr: u64,
    /// Count register.
    pub ctr: u64,
    /// Link register.
    pub lr: u64,
    /// Fixed-point exception register.
    pub xer: u64,
    /// Machine state register.
    pub msr: u64,
    /// SRR0.
    pub srr0: u64,
    /// SRR1.
    pub srr1: u64,
    /// Process id.
    pub pid: u64,
    /// SPRG0.
    pub sprg0: u64,
    /// SPRG1.
    pub sprg1: u64,
    /// SPRG2.
    pub sprg2: u64,
    /// SPRG3.
    pub sprg3: u64,
    /// SPRG4.
    pub sprg4: u64,
    /// SPRG5.
    pub sprg5: u64,
    /// SPRG6.
    pub sprg6: u64,
    /// SPRG7.
    pub sprg7: u64,
    /// GPR0..GPR31.
    pub gpr: [u64; 32],
}

/// `struct kvm_fpu` (ppc): the `KVM_GET/SET_FPU` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmFpu {
    /// FPR0..FPR31.
    pub fpr: [u64; 32],
}

/// `struct kvm_ppc_pvinfo`: the `KVM_PPC_GET_PVINFO` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmPpcPvinfo {
    /// `KVM_PPC_PVINFO_FLAGS_*`.
    pub flags: u32,
    /// Hypercall instruction sequence.
    pub hcall: [u32; 4],
    /// Reserved.
    pub pad: [u8; 108],
}

/// PV info flag: EV_IDLE supported.
pub const KVM_PPC_PVINFO_FLAGS_EV_IDLE: u32 = 1 << 0;
/// Number of page sizes in the SMMU info arrays.
pub const KVM_PPC_PAGE_SIZES_MAX_SZ: usize = 8;
/// SMMU info flag: real-mode page sizes.
pub const KVM_PPC_PAGE_SIZES_REAL: u64 = 0x0000_0001;
/// SMMU info flag: 1T segments.
pub const KVM_PPC_1T_SEGMENTS: u64 = 0x0000_0002;
/// SMMU info flag: no hashed page table.
pub const KVM_PPC_NO_HASH: u64 = 0x0000_0004;

/// `struct kvm_ppc_one_page_size`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPpcOnePageSize {
    /// Page shift (or 0).
    pub page_shift: u32,
    /// HPTE encoding.
    pub pte_enc: u32,
}

/// `struct kvm_ppc_one_seg_page_size`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPpcOneSegPageSize {
    /// Base page shift of the segment (or 0).
    pub page_shift: u32,
    /// SLB encoding.
    pub slb_enc: u32,
    /// Actual page sizes.
    pub enc: [KvmPpcOnePageSize; KVM_PPC_PAGE_SIZES_MAX_SZ],
}

/// `struct kvm_ppc_smmu_info`: the `KVM_PPC_GET_SMMU_INFO` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPpcSmmuInfo {
    /// `KVM_PPC_*` flags.
    pub flags: u64,
    /// SLB size.
    pub slb_size: u32,
    /// Storage keys for data.
    pub data_keys: u16,
    /// Storage keys for instructions.
    pub instr_keys: u16,
    /// Segment page sizes.
    pub sps: [KvmPpcOneSegPageSize; KVM_PPC_PAGE_SIZES_MAX_SZ],
}

/// `struct kvm_ppc_resize_hpt`: the `KVM_PPC_RESIZE_HPT_*` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPpcResizeHpt {
    /// Flags.
    pub flags: u64,
    /// log2 of the new HPT size.
    pub shift: u32,
    /// Padding.
    pub pad: u32,
}

// ONE_REG ids.

/// ONE_REG id: HIOR.
pub const KVM_REG_PPC_HIOR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x1;
/// ONE_REG id: DAR.
pub const KVM_REG_PPC_DAR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xc;
/// ONE_REG id: DSISR.
pub const KVM_REG_PPC_DSISR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xd;
/// ONE_REG id: FPR0 (FPR`n` = FPR0 + n).
pub const KVM_REG_PPC_FPR0: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x20;
/// ONE_REG id: VR0 (VR`n` = VR0 + n).
pub const KVM_REG_PPC_VR0: u64 = KVM_REG_PPC | KVM_REG_SIZE_U128 | 0x40;
/// ONE_REG id: VSCR.
pub const KVM_REG_PPC_VSCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0x81;
/// ONE_REG id: VPA address.
pub const KVM_REG_PPC_VPA_ADDR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x82;
/// ONE_REG id: TB offset.
pub const KVM_REG_PPC_TB_OFFSET: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0x9c;
/// ONE_REG id: LPCR (32-bit).
pub const KVM_REG_PPC_LPCR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xb5;
/// ONE_REG id: LPCR (64-bit).
pub const KVM_REG_PPC_LPCR_64: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb5;
/// ONE_REG id: PPR.
pub const KVM_REG_PPC_PPR: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb6;
/// ONE_REG id: architecture compatibility level.
pub const KVM_REG_PPC_ARCH_COMPAT: u64 = KVM_REG_PPC | KVM_REG_SIZE_U32 | 0xb7;
/// ONE_REG id: decrementer expiry.
pub const KVM_REG_PPC_DEC_EXPIRY: u64 = KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xbe;

/// ONE_REG id of FPR`n` (`KVM_REG_PPC_FPR(n)`; `n` masked to 0..31).
pub const fn fpr(n: u64) -> u64 {
    KVM_REG_PPC_FPR0 + (n & 31)
}

/// ONE_REG id of VR`n` (`KVM_REG_PPC_VR(n)`; `n` masked to 0..31).
pub const fn vr(n: u64) -> u64 {
    KVM_REG_PPC_VR0 + (n & 31)
}

// ioctl numbers in the ppc encoding.

/// vCPU: `KVM_GET_REGS` with the ppc [`KvmRegs`].
pub const KVM_GET_REGS: u32 = ior::<KvmRegs>(0x81);
/// vCPU: `KVM_SET_REGS` with the ppc [`KvmRegs`].
pub const KVM_SET_REGS: u32 = iow::<KvmRegs>(0x82);
/// vCPU: `KVM_GET_FPU` with the ppc [`KvmFpu`].
pub const KVM_GET_FPU: u32 = ior::<KvmFpu>(0x8c);
/// vCPU: `KVM_SET_FPU` with the ppc [`KvmFpu`].
pub const KVM_SET_FPU: u32 = iow::<KvmFpu>(0x8d);
/// System: `KVM_CREATE_VM` in the ppc encoding.
pub const KVM_CREATE_VM: u32 = io(0x01);
/// VM: `KVM_CREATE_VCPU` in the ppc encoding.
pub const KVM_CREATE_VCPU: u32 = io(0x41);
/// vCPU: `KVM_RUN` in the ppc encoding.
pub const KVM_RUN: u32 = io(0x80);
/// VM: `KVM_PPC_GET_PVINFO` in the ppc encoding.
pub const KVM_PPC_GET_PVINFO: u32 = iow::<KvmPpcPvinfo>(0xa1);
/// VM: `KVM_PPC_GET_SMMU_INFO` in the ppc encoding.
pub const KVM_PPC_GET_SMMU_INFO: u32 = ior::<KvmPpcSmmuInfo>(0xa6);

assert_size! {
    KvmRegs => 392,
    KvmFpu => 256,
    KvmPpcPvinfo => 128,
    KvmPpcOnePageSize => 8,
    KvmPpcOneSegPageSize => 72,
    KvmPpcSmmuInfo => 592,
    KvmPpcResizeHpt => 16,
}

zeroed_default!(KvmPpcPvinfo);
