//! Memory the kernel may access on the client's behalf.
//!
//! * [`GuardedBuf`]: an ioctl argument buffer whose last byte is followed by an inaccessible
//!   page, so a kernel that writes past the end gets `EFAULT` instead of corrupting the process.
//! * [`GuestMem`]: anonymous memory registered as guest RAM.
//! * [`unmapped_addr`]: an address that is never accessible.
//!
//! None of them ever hands out a Rust reference into the memory: every access is a volatile
//! copy through a raw pointer, because the kernel (or a running guest) may change the bytes at
//! any time.

use std::io;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The system page size.
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(v).ok().filter(|&p| p > 0).unwrap_or(4096)
    })
}

fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// An anonymous private mapping, unmapped on drop.
///
/// # Invariants
/// `ptr..ptr+len` is a mapping this value owns exclusively; it is only accessed through raw
/// pointers.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is only accessed through volatile
// raw-pointer copies, never through references, so it can move to and be used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; concurrent volatile copies cannot create references that alias.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(len: usize, prot: libc::c_int) -> io::Result<Mapping> {
        // SAFETY: an anonymous mapping at an address the kernel picks has no preconditions.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        // INVARIANT: the mapping is fresh and owned by the new value.
        Ok(Mapping { ptr, len })
    }

    /// Copies `data` to `off` with volatile byte writes. Panics if out of bounds.
    fn write(&self, off: usize, data: &[u8]) {
        let end = off.checked_add(data.len()).expect("offset overflow");
        assert!(
            end <= self.len,
            "write {off:#x}+{:#x} beyond {:#x}",
            data.len(),
            self.len
        );
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `off + i < len`, inside the mapping (invariant); no reference exists.
            unsafe { self.ptr.as_ptr().add(off + i).write_volatile(*b) };
        }
    }

    /// Copies `out.len()` bytes from `off` with volatile byte reads. Panics if out of bounds.
    fn read(&self, off: usize, out: &mut [u8]) {
        let end = off.checked_add(out.len()).expect("offset overflow");
        assert!(
            end <= self.len,
            "read {off:#x}+{:#x} beyond {:#x}",
            out.len(),
            self.len
        );
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `off + i < len`, inside the mapping (invariant); no reference exists.
            *b = unsafe { self.ptr.as_ptr().add(off + i).read_volatile() };
        }
    }

    fn protect(&self, off: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
        assert!(off + len <= self.len);
        // SAFETY: the range is page aligned (callers pass page multiples) and inside the
        // mapping; no reference into it exists, so changing its protection cannot invalidate one.
        let r = unsafe { libc::mprotect(self.ptr.as_ptr().add(off).cast(), len, prot) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value and nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The address of a page that is never accessible (`PROT_NONE`, reserved for the whole life of
/// the process, 64 KiB long). Any kernel access through it fails with `EFAULT`.
pub fn unmapped_addr() -> u64 {
    static ADDR: OnceLock<u64> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let m = Mapping::new(64 * 1024, libc::PROT_NONE).expect("reserve a PROT_NONE area");
        let addr = m.ptr.as_ptr() as u64;
        // The reservation must outlive every use of the address: leak it.
        std::mem::forget(m);
        addr
    })
}

/// A buffer for an ioctl argument whose end touches an inaccessible guard page.
///
/// A kernel that writes (or reads) past the end of the buffer faults on the guard page and fails
/// the command with `EFAULT`, so any command that only accesses memory forward from its argument
/// is harmless when its argument is a `GuardedBuf`, whatever counts the buffer holds. The buffer
/// starts zeroed.
pub struct GuardedBuf {
    map: Mapping,
    off: usize,
    len: usize,
}

impl GuardedBuf {
    /// A zeroed buffer of `len` bytes (at least 1). The buffer starts `len` bytes before a page
    /// boundary, so it is as aligned as `len` is (8-byte aligned when `len` is a multiple of 8).
    pub fn new(len: usize) -> io::Result<GuardedBuf> {
        let len = len.max(1);
        let page = page_size();
        let data_pages = round_up(len, page);
        let map = Mapping::new(data_pages + page, libc::PROT_READ | libc::PROT_WRITE)?;
        map.protect(data_pages, page, libc::PROT_NONE)?;
        Ok(GuardedBuf {
            map,
            off: data_pages - len,
            len,
        })
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: the length is at least 1).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The user address of the first byte, for an ioctl argument.
    pub fn addr(&self) -> u64 {
        self.map.ptr.as_ptr() as u64 + self.off as u64
    }

    /// The user address one past the last byte: the start of the guard page.
    pub fn end_addr(&self) -> u64 {
        self.addr() + self.len as u64
    }

    /// Sets every byte to `b`.
    pub fn fill(&mut self, b: u8) {
        self.map.write(self.off, &vec![b; self.len]);
    }

    /// Copies `data` to offset `off`. Panics if it does not fit.
    pub fn write_bytes(&mut self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len, "write beyond the buffer");
        self.map.write(self.off + off, data);
    }

    /// Copies `len` bytes from offset `off`. Panics if out of bounds.
    pub fn read_bytes(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len, "read beyond the buffer");
        let mut v = vec![0; len];
        self.map.read(self.off + off, &mut v);
        v
    }

    /// All bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.read_bytes(0, self.len)
    }

    /// Reads a `T` at offset `off`. Panics if out of bounds.
    pub fn read<T: FromBytes>(&self, off: usize) -> T {
        let b = self.read_bytes(off, size_of::<T>());
        T::read_from_bytes(&b).expect("size matches")
    }

    /// Writes `v` at offset `off`. Panics if out of bounds.
    pub fn write<T: IntoBytes + Immutable>(&mut self, off: usize, v: &T) {
        self.write_bytes(off, v.as_bytes());
    }
}

/// Anonymous, page-aligned memory for use as guest RAM.
///
/// Clones share the same memory. The memory stays mapped while any clone lives; the client's
/// [`crate::Vm`] and [`crate::Vcpu`] keep a clone of every `GuestMem` registered with the VM, so
/// guest RAM cannot be unmapped (and the address reused) while the guest may still touch it.
#[derive(Clone)]
pub struct GuestMem {
    map: Arc<Mapping>,
}

impl GuestMem {
    /// Maps `len` bytes (rounded up to whole pages), zeroed.
    pub fn new(len: usize) -> io::Result<GuestMem> {
        let len = round_up(len.max(1), page_size());
        let map = Mapping::new(len, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(GuestMem { map: Arc::new(map) })
    }

    /// Maps `len` bytes whose start is aligned to `align` (a power of two, at least a page),
    /// e.g. 2 MiB so that the kernel can use huge pages.
    pub fn new_aligned(len: usize, align: usize) -> io::Result<GuestMem> {
        assert!(align.is_power_of_two() && align >= page_size());
        let len = round_up(len.max(1), page_size());
        let big = Mapping::new(len + align, libc::PROT_READ | libc::PROT_WRITE)?;
        let start = round_up(big.ptr.as_ptr() as usize, align);
        let head = start - big.ptr.as_ptr() as usize;
        let tail = big.len - head - len;
        // Give back the unaligned head and tail; keep `start..start+len`.
        let base = big.ptr.as_ptr();
        std::mem::forget(big);
        // SAFETY: head and tail are page-aligned pieces of the mapping just created and
        // forgotten above; nothing refers to them.
        unsafe {
            if head > 0 {
                libc::munmap(base.cast(), head);
            }
            if tail > 0 {
                libc::munmap(base.add(head + len).cast(), tail);
            }
        }
        let ptr = NonNull::new(start as *mut u8).ok_or_else(|| io::Error::other("NULL"))?;
        // INVARIANT: `start..start+len` is the remaining, exclusively owned part of the mapping.
        Ok(GuestMem {
            map: Arc::new(Mapping { ptr, len }),
        })
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the length is zero (never).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// The user address of the first byte (the `userspace_addr` of a memslot).
    pub fn addr(&self) -> u64 {
        self.map.ptr.as_ptr() as u64
    }

    /// Copies `data` to offset `off`. Panics if out of bounds.
    pub fn write(&self, off: u64, data: &[u8]) {
        self.map.write(usize::try_from(off).expect("offset"), data);
    }

    /// Copies `len` bytes from offset `off`. Panics if out of bounds.
    pub fn read(&self, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.map.read(usize::try_from(off).expect("offset"), &mut v);
        v
    }

    /// Writes `v` at offset `off` (native byte order). Panics if out of bounds.
    pub fn write_obj<T: IntoBytes + Immutable>(&self, off: u64, v: &T) {
        self.write(off, v.as_bytes());
    }

    /// Reads a `T` at offset `off`. Panics if out of bounds.
    pub fn read_obj<T: FromBytes>(&self, off: u64) -> T {
        let b = self.read(off, size_of::<T>());
        T::read_from_bytes(&b).expect("size matches")
    }

    /// Sets `len` bytes at `off` to `b`.
    pub fn fill(&self, off: u64, len: usize, b: u8) {
        self.write(off, &vec![b; len]);
    }
}

impl std::fmt::Debug for GuestMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestMem({:#x}+{:#x})", self.addr(), self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_buf_layout() {
        let mut b = GuardedBuf::new(16).unwrap();
        assert_eq!(b.len(), 16);
        assert_eq!(b.end_addr() % page_size() as u64, 0);
        b.write(8, &0x1122_3344_5566_7788u64);
        assert_eq!(b.read::<u64>(8), 0x1122_3344_5566_7788);
        assert_eq!(b.read::<u64>(0), 0);
    }

    #[test]
    fn guest_mem_aligned() {
        let m = GuestMem::new_aligned(8192, 1 << 21).unwrap();
        assert_eq!(m.addr() % (1 << 21), 0);
        m.write(4095, &[1, 2]);
        assert_eq!(m.read(4094, 4), vec![0, 1, 2, 0]);
    }
}
