//! Memory the fuzzer hands to the kernel: guarded regions and an unmapped hole.
//!
//! Every pointer the fuzzer passes in an ioctl argument points into one of these regions, at
//! NULL, at a kernel address or into the hole, never into its own heap or stack: whatever the
//! kernel writes through it can at worst scribble over a region or fault on a guard page.

/// The page size the fuzzer assumes (x86-64, arm64 with 4 KiB pages).
pub const PAGE: usize = 4096;

/// An anonymous read-write mapping with a `PROT_NONE` page on each side.
pub struct Region {
    /// First usable byte.
    pub ptr: *mut u8,
    /// Usable length (a multiple of [`PAGE`]).
    pub len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up to pages) between two guard pages. Panics when the address
    /// space is exhausted, which ends the fuzzing child (it is restarted).
    pub fn new(len: usize) -> Self {
        let len = len.div_ceil(PAGE) * PAGE;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + 2 * PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(base != libc::MAP_FAILED, "mmap of {len} bytes failed");
        // SAFETY: the middle of the mapping just made.
        let ptr = unsafe { base.cast::<u8>().add(PAGE) };
        // SAFETY: as above.
        let r = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
        assert!(r == 0, "mprotect failed");
        Region { ptr, len }
    }

    /// The address of byte `off`.
    pub fn addr(&self, off: usize) -> u64 {
        self.ptr as u64 + off as u64
    }

    /// One past the last usable byte: the first byte of the trailing guard page.
    pub fn end(&self) -> u64 {
        self.ptr as u64 + self.len as u64
    }

    /// Copies `data` to offset `off` (clipped to the region).
    pub fn write(&self, off: usize, data: &[u8]) {
        if off >= self.len {
            return;
        }
        let n = data.len().min(self.len - off);
        // SAFETY: `off + n` is within the usable part, which stays mapped read-write unless
        // [`Region::set_prot`] made it otherwise; callers restore the protection first.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), n) };
    }

    /// Copies `n` bytes out of offset `off` (clipped to the region).
    pub fn read(&self, off: usize, n: usize) -> Vec<u8> {
        if off >= self.len {
            return Vec::new();
        }
        let n = n.min(self.len - off);
        let mut v = vec![0u8; n];
        // SAFETY: within the usable, readable part.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), v.as_mut_ptr(), n) };
        v
    }

    /// Changes the protection of the whole usable part.
    pub fn set_prot(&self, prot: i32) {
        // SAFETY: the usable part of our own mapping.
        unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) };
    }

    /// Replaces the usable part with fresh zero pages (`MAP_FIXED` over the same range), as a
    /// host would when remapping guest memory behind KVM's back.
    pub fn remap(&self) {
        // SAFETY: replaces our own mapping at the same address and length.
        unsafe {
            libc::mmap(
                self.ptr.cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
    }

    /// Drops the pages' contents (`MADV_DONTNEED`).
    pub fn discard(&self) {
        // SAFETY: our own mapping.
        unsafe { libc::madvise(self.ptr.cast(), self.len, libc::MADV_DONTNEED) };
    }
}

/// The start of an address range that was mapped once and unmapped again: nothing lives there
/// unless a later mapping happens to reuse it.
pub fn hole(len: usize) -> u64 {
    // SAFETY: a fresh mapping, unmapped again at once.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return 0x1000_0000;
        }
        libc::munmap(p, len);
        p as u64
    }
}
