//! Guest memory that follows user space's mappings (`KVM_CAP_SYNC_MMU`): after user space
//! unmaps, replaces, discards or truncates the memory behind a memslot, the guest sees what the
//! process now maps there, never the page it gave back; memory shared through a memfd is the
//! same memory for the guest and every mapping of the file.
//!
//! Each case puts one page of its own at [`SLOT_GPA`] (slot 1, next to the suite's RAM in slot
//! 0), runs 64-bit guest code that reads it and reports the value with `OUT 0x10, EAX`, changes
//! the page from user space between runs, and runs again. Skipped when the device does not
//! report `KVM_CAP_SYNC_MMU` (then a guest may keep the old page until the slot changes).

use crate::check_hex;
use crate::guest::{Code, Guest, Mode};
use crate::harness::{Case, CaseResult, Ctx, OrFail, need};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::{KVM_EXIT_IO_OUT, KvmUserspaceMemoryRegion};
use std::io;

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    guest "mm.anon.munmap_mmap_fixed_new_page" => remap_fixed,
    guest "mm.anon.madvise_dontneed_reads_zero" => dontneed,
    guest "mm.memfd.shared_with_second_mapping" => memfd_shared,
    guest "mm.memfd.truncate_reads_zero" => memfd_truncate,
];

/// Guest-physical address of the case's page (inside the suite's identity map, outside slot 0).
const SLOT_GPA: u64 = 0x40_0000;
/// Its size: one page.
const LEN: usize = 4096;
/// The port the guest reports values on.
const PORT: u16 = 0x10;

/// A page-sized shared or private mapping this case owns, unmapped on drop. Only touched with
/// volatile accesses (the guest may write it at any time).
struct Map {
    ptr: *mut u8,
}

impl Map {
    /// `mmap(NULL, LEN, RW, flags, fd, 0)`; `fd` -1 with `MAP_ANONYMOUS`.
    fn new(flags: libc::c_int, fd: libc::c_int) -> io::Result<Map> {
        // SAFETY: a new mapping at an address the kernel picks has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map { ptr: p.cast() })
    }

    fn anon() -> io::Result<Map> {
        Self::new(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }

    fn write_u32(&self, off: usize, v: u32) {
        assert!(off + 4 <= LEN);
        // SAFETY: inside the owned mapping; unaligned-safe volatile write of plain bytes.
        unsafe { self.ptr.add(off).cast::<u32>().write_volatile(v) }
    }

    fn read_u32(&self, off: usize) -> u32 {
        assert!(off + 4 <= LEN);
        // SAFETY: inside the owned mapping.
        unsafe { self.ptr.add(off).cast::<u32>().read_volatile() }
    }

    /// Unmaps the page and maps fresh anonymous memory at the same address (`MAP_FIXED`).
    fn replace_anon(&self) -> io::Result<()> {
        // SAFETY: the range is this value's own mapping, holding no Rust object.
        if unsafe { libc::munmap(self.ptr.cast(), LEN) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: maps over the range just unmapped, which this value owns.
        let p = unsafe {
            libc::mmap(
                self.ptr.cast(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != self.ptr.cast() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn madvise_dontneed(&self) -> io::Result<()> {
        // SAFETY: discards the contents of this value's own private mapping.
        if unsafe { libc::madvise(self.ptr.cast(), LEN, libc::MADV_DONTNEED) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value; nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.cast(), LEN) };
    }
}

/// A memfd of one page, closed on drop.
struct Memfd(libc::c_int);

impl Memfd {
    fn new() -> io::Result<Memfd> {
        // SAFETY: the name is a NUL-terminated literal.
        let fd = unsafe { libc::memfd_create(c"kvm-conformance-mm".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let m = Memfd(fd);
        m.truncate(LEN)?;
        Ok(m)
    }

    fn truncate(&self, len: usize) -> io::Result<()> {
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(self.0, len as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn map(&self) -> io::Result<Map> {
        Map::new(libc::MAP_SHARED, self.0)
    }
}

impl Drop for Memfd {
    fn drop(&mut self) {
        // SAFETY: closes our own fd once.
        unsafe { libc::close(self.0) };
    }
}

/// `mov eax, [SLOT_GPA + off]; out PORT, eax`.
fn load_out(code: Code, off: u32) -> Code {
    code.op_d(&[0x8B, 0x04, 0x25], SLOT_GPA as u32 + off) // mov eax, [SLOT_GPA + off]
        .op_b(&[0xE7], PORT as u8) // out 0x10, eax
}

/// The loop `again: mov eax, [SLOT_GPA]; out 0x10, eax; jmp again`.
fn read_loop() -> Code {
    load_out(Code::new(), 0).op_b(&[0xEB], 0xF5) // jmp again (-11)
}

/// A long-mode guest running `code`, with `map` as slot 1 at [`SLOT_GPA`]; skipped without
/// `KVM_CAP_SYNC_MMU`.
fn guest(ctx: &Ctx, code: &Code, map: &Map) -> Result<Guest, String> {
    let g = Guest::new(ctx, Mode::Long64, code)?;
    need(&g.kvm, Cap::SyncMmu)?;
    let r = KvmUserspaceMemoryRegion {
        slot: 1,
        flags: 0,
        guest_phys_addr: SLOT_GPA,
        memory_size: LEN as u64,
        userspace_addr: map.addr(),
    };
    // SAFETY: the page is the case's own raw mapping, holding no Rust object; the case keeps
    // it (or what replaces it at the same address) mapped until the guest is dropped.
    unsafe { g.vm.set_user_memory_region(&r) }.ctx("SET_USER_MEMORY_REGION slot 1")?;
    Ok(g)
}

/// Runs to the next `OUT 0x10, EAX` and returns the value.
fn next_out(g: &Guest) -> Result<u32, String> {
    let io = g.run_io(KVM_EXIT_IO_OUT, 4, PORT, 1)?;
    let d = g.run.pio_data(&io);
    let b: [u8; 4] = d.as_slice().try_into().ctx("OUT data size")?;
    Ok(u32::from_le_bytes(b))
}

fn remap_fixed(ctx: &Ctx) -> CaseResult {
    let map = Map::anon().ctx("mmap")?;
    map.write_u32(0, 0x1111_1111);
    let g = guest(ctx, &read_loop(), &map)?;
    check_hex!(next_out(&g)?, 0x1111_1111u32, "first read");
    map.replace_anon().ctx("munmap + mmap MAP_FIXED")?;
    map.write_u32(0, 0x2222_2222);
    check_hex!(
        next_out(&g)?,
        0x2222_2222u32,
        "read after munmap and mmap(MAP_FIXED) of new memory"
    );
    Ok(())
}

fn dontneed(ctx: &Ctx) -> CaseResult {
    let map = Map::anon().ctx("mmap")?;
    map.write_u32(0, 0x3333_3333);
    let g = guest(ctx, &read_loop(), &map)?;
    check_hex!(next_out(&g)?, 0x3333_3333u32, "first read");
    map.madvise_dontneed().ctx("madvise(MADV_DONTNEED)")?;
    check_hex!(next_out(&g)?, 0u32, "read after madvise(MADV_DONTNEED)");
    check_hex!(
        map.read_u32(0),
        0u32,
        "user space's view after the guest's read"
    );
    Ok(())
}

fn memfd_shared(ctx: &Ctx) -> CaseResult {
    let fd = Memfd::new().ctx("memfd_create + ftruncate")?;
    let slot = fd.map().ctx("mmap MAP_SHARED (slot)")?;
    let view = fd.map().ctx("mmap MAP_SHARED (second view)")?;
    let code = Code::new()
        .op(&[0xC7, 0x04, 0x25]) // mov dword [SLOT_GPA], 0x5a5a5a5a
        .op_d(&[], SLOT_GPA as u32)
        .op_d(&[], 0x5a5a_5a5a);
    let code = load_out(code, 0); // mov eax, [SLOT_GPA]; out 0x10, eax
    let code = load_out(code, 4) // mov eax, [SLOT_GPA + 4]; out 0x10, eax
        .op(&[0xF4]); // hlt
    let g = guest(ctx, &code, &slot)?;
    check_hex!(
        next_out(&g)?,
        0x5a5a_5a5au32,
        "guest's read of its own write"
    );
    check_hex!(
        view.read_u32(0),
        0x5a5a_5a5au32,
        "guest's write seen through a second mapping of the memfd"
    );
    view.write_u32(4, 0x600d_f00d);
    check_hex!(
        next_out(&g)?,
        0x600d_f00du32,
        "user space's write through the second mapping, read by the guest"
    );
    g.run_hlt()?;
    Ok(())
}

fn memfd_truncate(ctx: &Ctx) -> CaseResult {
    let fd = Memfd::new().ctx("memfd_create + ftruncate")?;
    let slot = fd.map().ctx("mmap MAP_SHARED")?;
    slot.write_u32(0, 0x4444_4444);
    let g = guest(ctx, &read_loop(), &slot)?;
    check_hex!(next_out(&g)?, 0x4444_4444u32, "first read");
    fd.truncate(0).ctx("ftruncate to 0")?;
    fd.truncate(LEN).ctx("ftruncate back to a page")?;
    check_hex!(
        next_out(&g)?,
        0u32,
        "read after the memfd was truncated and regrown"
    );
    Ok(())
}
