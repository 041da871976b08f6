//! Flexible-array arguments: a header followed by entries, in one guarded buffer.
//!
//! `struct kvm_cpuid2`, `struct kvm_msrs` and `struct kvm_msr_list` end in a C flexible array
//! whose length the header's count field gives. [`FlexBuf`] holds the header and room for a
//! fixed number of entries in one [`GuardedBuf`], so the count may be set to anything (the hostile
//! tests do) without the kernel being able to write past the buffer.

use crate::errno::Errno;
use crate::fd::Fd;
use crate::mem::GuardedBuf;
use core::marker::PhantomData;
use kvmport_core::abi::x86::{KvmCpuid2, KvmCpuidEntry2, KvmMsrEntry, KvmMsrList, KvmMsrs};
use kvmport_core::abi::{KvmIrqRouting, KvmIrqRoutingEntry};
use std::io;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The fixed header of a flexible-array argument, with its entry count.
pub trait FlexHeader: FromBytes + IntoBytes + Immutable {
    /// The entry count.
    fn count(&self) -> u32;
    /// Sets the entry count.
    fn set_count(&mut self, n: u32);
}

impl FlexHeader for KvmCpuid2 {
    fn count(&self) -> u32 {
        self.nent
    }
    fn set_count(&mut self, n: u32) {
        self.nent = n;
    }
}

impl FlexHeader for KvmMsrs {
    fn count(&self) -> u32 {
        self.nmsrs
    }
    fn set_count(&mut self, n: u32) {
        self.nmsrs = n;
    }
}

impl FlexHeader for KvmIrqRouting {
    fn count(&self) -> u32 {
        self.nr
    }
    fn set_count(&mut self, n: u32) {
        self.nr = n;
    }
}

impl FlexHeader for KvmMsrList {
    fn count(&self) -> u32 {
        self.nmsrs
    }
    fn set_count(&mut self, n: u32) {
        self.nmsrs = n;
    }
}

/// A header `H` followed by room for `capacity` entries `E`, ending at a guard page.
pub struct FlexBuf<H, E> {
    buf: GuardedBuf,
    cap: usize,
    _p: PhantomData<fn() -> (H, E)>,
}

/// `struct kvm_cpuid2` with entries (`KVM_GET_SUPPORTED_CPUID`, `KVM_SET_CPUID2`, ...).
pub type CpuidBuf = FlexBuf<KvmCpuid2, KvmCpuidEntry2>;
/// `struct kvm_msrs` with entries (`KVM_GET_MSRS`, `KVM_SET_MSRS`).
pub type MsrsBuf = FlexBuf<KvmMsrs, KvmMsrEntry>;
/// `struct kvm_msr_list` with indices (`KVM_GET_MSR_INDEX_LIST`, ...).
pub type MsrListBuf = FlexBuf<KvmMsrList, u32>;
/// `struct kvm_irq_routing` with entries (`KVM_SET_GSI_ROUTING`).
pub type IrqRoutingBuf = FlexBuf<KvmIrqRouting, KvmIrqRoutingEntry>;

impl<H: FlexHeader, E: FromBytes + IntoBytes + Immutable> FlexBuf<H, E> {
    /// A zeroed buffer with room for `cap` entries; the count is 0.
    pub fn new(cap: usize) -> io::Result<Self> {
        let buf = GuardedBuf::new(size_of::<H>() + cap * size_of::<E>())?;
        Ok(FlexBuf {
            buf,
            cap,
            _p: PhantomData,
        })
    }

    /// A zeroed buffer with room for `cap` entries and the count set to `cap`.
    pub fn with_count(cap: usize) -> io::Result<Self> {
        let mut b = Self::new(cap)?;
        b.set_count(u32::try_from(cap).unwrap_or(u32::MAX));
        Ok(b)
    }

    /// A buffer holding exactly `entries`, with the count set to their number.
    pub fn from_entries(entries: &[E]) -> io::Result<Self> {
        let mut b = Self::with_count(entries.len())?;
        for (i, e) in entries.iter().enumerate() {
            b.set_entry(i, e);
        }
        Ok(b)
    }

    /// Room for this many entries.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The header as it is now.
    pub fn header(&self) -> H {
        self.buf.read(0)
    }

    /// Overwrites the header.
    pub fn set_header(&mut self, h: &H) {
        self.buf.write(0, h);
    }

    /// The header's entry count.
    pub fn count(&self) -> u32 {
        self.header().count()
    }

    /// Sets the header's entry count (any value; it is not checked against the capacity).
    pub fn set_count(&mut self, n: u32) {
        let mut h = self.header();
        h.set_count(n);
        self.set_header(&h);
    }

    fn entry_off(&self, i: usize) -> usize {
        assert!(i < self.cap, "entry {i} beyond capacity {}", self.cap);
        size_of::<H>() + i * size_of::<E>()
    }

    /// Entry `i`. Panics if `i >= capacity`.
    pub fn entry(&self, i: usize) -> E {
        self.buf.read(self.entry_off(i))
    }

    /// Overwrites entry `i`. Panics if `i >= capacity`.
    pub fn set_entry(&mut self, i: usize, e: &E) {
        let off = self.entry_off(i);
        self.buf.write(off, e);
    }

    /// The first `min(count, capacity)` entries.
    pub fn entries(&self) -> Vec<E> {
        let n = (self.count() as usize).min(self.cap);
        (0..n).map(|i| self.entry(i)).collect()
    }

    /// Sets every byte (header and entries) to `b`.
    pub fn fill(&mut self, b: u8) {
        self.buf.fill(b);
    }

    /// The underlying buffer.
    pub fn buf(&self) -> &GuardedBuf {
        &self.buf
    }

    /// The user address of the header.
    pub fn addr(&self) -> u64 {
        self.buf.addr()
    }

    /// Issues `cmd` with this buffer as the argument (see [`Fd::ioctl_buf`]).
    pub fn ioctl(&mut self, fd: &Fd, cmd: u32) -> Result<i64, Errno> {
        fd.ioctl_buf(cmd, &mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_layout() {
        let e = KvmCpuidEntry2 {
            function: 7,
            index: 1,
            eax: 0xaa,
            ..Default::default()
        };
        let b = CpuidBuf::from_entries(&[e, e]).unwrap();
        assert_eq!(b.count(), 2);
        assert_eq!(b.buf().len(), 8 + 2 * 40);
        assert_eq!(b.entry(1).eax, 0xaa);
        assert_eq!(b.entries().len(), 2);
    }

    #[test]
    fn msr_list_layout() {
        let b = MsrListBuf::with_count(3).unwrap();
        assert_eq!(b.buf().len(), 4 + 3 * 4);
        assert_eq!(b.count(), 3);
    }
}
