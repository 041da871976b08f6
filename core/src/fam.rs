//! Flexible-array commands: a header holding a count, followed in user memory by that many
//! entries (`struct kvm_cpuid2`, `struct kvm_msrs`, `struct kvm_msr_list`, ...). Written once
//! here so that every backend gets Linux's `E2BIG` rules right.

use alloc::vec::Vec;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::x86::{
    KVM_MAX_CPUID_ENTRIES, KvmCpuid, KvmCpuid2, KvmCpuidEntry, KvmCpuidEntry2, KvmMsrEntry,
    KvmMsrList, KvmMsrs,
};
use crate::errno::{Errno, KResult};
use crate::os::{Os, UserAddr};
use crate::user;

/// A flexible-array header.
pub trait Fam: FromBytes + IntoBytes + Immutable {
    /// The entry type that follows the header.
    type Entry: FromBytes + IntoBytes + Immutable + Clone;
    /// The largest count accepted as input; above it the command fails with `E2BIG`.
    const MAX: u32;
    /// The header's count field.
    fn count(&self) -> u32;
    /// A header with count `n` and every other field zero.
    fn with_count(n: u32) -> Self;
}

impl Fam for KvmCpuid2 {
    type Entry = KvmCpuidEntry2;
    /// Linux's `KVM_MAX_CPUID_ENTRIES` (arch/x86/include/asm/kvm_host.h).
    const MAX: u32 = KVM_MAX_CPUID_ENTRIES;
    fn count(&self) -> u32 {
        self.nent
    }
    fn with_count(n: u32) -> Self {
        KvmCpuid2 {
            nent: n,
            padding: 0,
        }
    }
}

impl Fam for KvmCpuid {
    type Entry = KvmCpuidEntry;
    /// The legacy `KVM_SET_CPUID` shares `KVM_MAX_CPUID_ENTRIES`.
    const MAX: u32 = KVM_MAX_CPUID_ENTRIES;
    fn count(&self) -> u32 {
        self.nent
    }
    fn with_count(n: u32) -> Self {
        KvmCpuid {
            nent: n,
            padding: 0,
        }
    }
}

impl Fam for KvmMsrs {
    type Entry = KvmMsrEntry;
    /// One below Linux's `MAX_IO_MSRS` (256, arch/x86/kvm/x86.c): `nmsrs >= 256` is `E2BIG`.
    const MAX: u32 = 255;
    fn count(&self) -> u32 {
        self.nmsrs
    }
    fn with_count(n: u32) -> Self {
        KvmMsrs { nmsrs: n, pad: 0 }
    }
}

impl Fam for KvmMsrList {
    type Entry = u32;
    /// Output only: the caller's capacity is not bounded.
    const MAX: u32 = u32::MAX;
    fn count(&self) -> u32 {
        self.nmsrs
    }
    fn with_count(n: u32) -> Self {
        KvmMsrList { nmsrs: n }
    }
}

fn entries_at<H: Fam>(addr: UserAddr) -> KResult<UserAddr> {
    addr.offset(core::mem::size_of::<H>() as u64)
}

/// Reads an input list (`KVM_SET_CPUID2`, `KVM_SET_MSRS`): the header, `E2BIG` if its count
/// exceeds `H::MAX`, then the entries. `EFAULT` for unreadable memory, `ENOMEM` if the
/// entries cannot be allocated.
pub fn read<O: Os, H: Fam>(os: &O, addr: UserAddr) -> KResult<(H, Vec<H::Entry>)> {
    let head: H = user::read(os, addr)?;
    if head.count() > H::MAX {
        return Err(Errno::E2BIG);
    }
    let entries = user::read_array(os, entries_at::<H>(addr)?, head.count() as usize)?;
    Ok((head, entries))
}

/// How a command reports an output buffer that is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooSmall {
    /// Write the needed count back into the header, then fail with `E2BIG`
    /// (`KVM_GET_MSR_INDEX_LIST`, `KVM_GET_MSR_FEATURE_INDEX_LIST`).
    WriteCount,
    /// Fail with `E2BIG` and leave the header as it was (`KVM_GET_SUPPORTED_CPUID`,
    /// `KVM_GET_CPUID2`).
    KeepCount,
}

/// Writes an output list: the header's count is the caller's capacity; on success the entries
/// and then a header with the real count are written.
pub fn write<O: Os, H: Fam>(
    os: &O,
    addr: UserAddr,
    entries: &[H::Entry],
    too_small: TooSmall,
) -> KResult<()> {
    let head: H = user::read(os, addr)?;
    let n = u32::try_from(entries.len()).map_err(|_| Errno::E2BIG)?;
    if too_small == TooSmall::WriteCount {
        user::write(os, addr, &H::with_count(n))?;
    }
    if head.count() < n {
        return Err(Errno::E2BIG);
    }
    user::write_array(os, entries_at::<H>(addr)?, entries)?;
    user::write(os, addr, &H::with_count(n))
}
