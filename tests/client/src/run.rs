//! [`RunMap`]: the `mmap` of a vCPU fd (`struct kvm_run`, the PIO data page, ...).

use kvmport_core::abi::{KvmRun, KvmRunExitInternal, KvmRunExitIo, KvmRunExitMmio};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Offset of `immediate_exit` in `struct kvm_run`.
pub const RUN_IMMEDIATE_EXIT: usize = core::mem::offset_of!(KvmRun, immediate_exit);
/// Offset of `exit_reason` in `struct kvm_run`.
pub const RUN_EXIT_REASON: usize = core::mem::offset_of!(KvmRun, exit_reason);
/// Offset of the exit union in `struct kvm_run`.
pub const RUN_EXIT: usize = core::mem::offset_of!(KvmRun, exit);
/// Offset of `kvm_valid_regs` in `struct kvm_run`.
pub const RUN_VALID_REGS: usize = core::mem::offset_of!(KvmRun, kvm_valid_regs);
/// Offset of `kvm_dirty_regs` in `struct kvm_run`.
pub const RUN_DIRTY_REGS: usize = core::mem::offset_of!(KvmRun, kvm_dirty_regs);
/// Offset of the `s` (sync regs) area in `struct kvm_run`.
pub const RUN_SYNC: usize = core::mem::offset_of!(KvmRun, s);

/// A `MAP_SHARED` mapping of a vCPU fd at offset 0, unmapped on drop.
///
/// The kernel writes the page during `KVM_RUN` (possibly on another thread than the one reading
/// it), so every access is a volatile copy or an atomic byte access, never a reference.
///
/// # Invariants
/// `ptr..ptr+len` is a live shared mapping owned by this value.
#[derive(Debug)]
pub struct RunMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value and only accessed through volatile copies and
// atomics, so it may be used from any thread.
unsafe impl Send for RunMap {}
// SAFETY: as above; no reference into the mapping is ever created.
unsafe impl Sync for RunMap {}

impl RunMap {
    /// Maps `len` bytes of the vCPU fd `fd` at offset 0 (`PROT_READ | PROT_WRITE`,
    /// `MAP_SHARED`).
    pub fn map(fd: i32, len: usize) -> io::Result<RunMap> {
        // SAFETY: a new shared mapping at an address the kernel picks; it aliases no Rust object.
        let p = unsafe {
            crate::sys::mmap(
                fd,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                0,
            )?
        };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        // INVARIANT: the mapping was just created for this value.
        Ok(RunMap { ptr, len })
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `len` bytes from offset `off`. Panics if out of bounds.
    pub fn read_bytes(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.len),
            "read beyond kvm_run map"
        );
        (0..len)
            // SAFETY: `off + i < self.len`: inside the mapping (invariant).
            .map(|i| unsafe { self.ptr.as_ptr().add(off + i).read_volatile() })
            .collect()
    }

    /// Copies `data` to offset `off`. Panics if out of bounds.
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        assert!(
            off.checked_add(data.len()).is_some_and(|e| e <= self.len),
            "write beyond kvm_run map"
        );
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `off + i < self.len`: inside the mapping (invariant).
            unsafe { self.ptr.as_ptr().add(off + i).write_volatile(*b) };
        }
    }

    /// Reads a `T` at offset `off`.
    pub fn read<T: FromBytes>(&self, off: usize) -> T {
        T::read_from_bytes(&self.read_bytes(off, size_of::<T>())).expect("size matches")
    }

    /// Writes `v` at offset `off`.
    pub fn write<T: IntoBytes + Immutable>(&self, off: usize, v: &T) {
        self.write_bytes(off, v.as_bytes());
    }

    fn byte(&self, off: usize) -> &AtomicU8 {
        assert!(off < self.len);
        // SAFETY: `off` is inside the live mapping (invariant); an `AtomicU8` has no alignment
        // requirement and every bit pattern is valid; atomics may alias memory the kernel
        // writes concurrently. The reference lives no longer than `&self`.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU8>() }
    }

    /// `run->immediate_exit`.
    pub fn immediate_exit(&self) -> u8 {
        self.byte(RUN_IMMEDIATE_EXIT).load(Ordering::SeqCst)
    }

    /// Sets `run->immediate_exit` (safe to call from another thread while the vCPU runs).
    pub fn set_immediate_exit(&self, v: u8) {
        self.byte(RUN_IMMEDIATE_EXIT).store(v, Ordering::SeqCst);
    }

    /// `run->exit_reason`.
    pub fn exit_reason(&self) -> u32 {
        self.read(RUN_EXIT_REASON)
    }

    /// Sets `run->exit_reason`.
    pub fn set_exit_reason(&self, v: u32) {
        self.write(RUN_EXIT_REASON, &v);
    }

    /// The exit union read as `T` (for example [`KvmRunExitIo`]).
    pub fn exit<T: FromBytes>(&self) -> T {
        self.read(RUN_EXIT)
    }

    /// `run->io` (`KVM_EXIT_IO`).
    pub fn io(&self) -> KvmRunExitIo {
        self.exit()
    }

    /// `run->mmio` (`KVM_EXIT_MMIO`).
    pub fn mmio(&self) -> KvmRunExitMmio {
        self.exit()
    }

    /// `run->internal` (`KVM_EXIT_INTERNAL_ERROR`).
    pub fn internal(&self) -> KvmRunExitInternal {
        self.exit()
    }

    /// Fills `run->mmio.data` (the answer to an MMIO read). At most 8 bytes.
    pub fn set_mmio_data(&self, data: &[u8]) {
        assert!(data.len() <= 8);
        self.write_bytes(RUN_EXIT + core::mem::offset_of!(KvmRunExitMmio, data), data);
    }

    /// The bytes of a `KVM_EXIT_IO` in the PIO data area: `size * count` bytes at
    /// `data_offset`.
    pub fn pio_data(&self, io: &KvmRunExitIo) -> Vec<u8> {
        let len = usize::from(io.size) * io.count as usize;
        self.read_bytes(io.data_offset as usize, len)
    }

    /// Fills the PIO data area of a `KVM_EXIT_IO` (the answer to an `IN`).
    pub fn set_pio_data(&self, io: &KvmRunExitIo, data: &[u8]) {
        self.write_bytes(io.data_offset as usize, data);
    }
}

impl Drop for RunMap {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value and nothing refers to it any more.
        unsafe { crate::sys::munmap(self.ptr.as_ptr(), self.len) };
    }
}
