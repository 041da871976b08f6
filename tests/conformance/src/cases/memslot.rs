//! `KVM_SET_USER_MEMORY_REGION`: every rule on ids, flags, alignment, overlap, delete, move and
//! modify.
//!
//! Module invariant: no case here creates a vCPU, so no guest ever accesses a slot's memory;
//! that is what makes [`region`] safe with arbitrary user addresses.

use crate::harness::{Case, CaseResult, Ctx, OrFail, cap, need, want_err};
use kvmport_client::{Errno, GuestMem, Vm};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::{
    KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KvmUserspaceMemoryRegion,
};

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    "vm.memslot.create_ok" => create_ok,
    "vm.memslot.flags_unknown_einval" => flags_unknown,
    "vm.memslot.readonly_accepted" => readonly_ok,
    "vm.memslot.log_dirty_accepted" => log_dirty_ok,
    "vm.memslot.unaligned_gpa_einval" => unaligned_gpa,
    "vm.memslot.unaligned_size_einval" => unaligned_size,
    "vm.memslot.unaligned_uaddr_einval" => unaligned_uaddr,
    "vm.memslot.delete_missing_einval" => delete_missing,
    "vm.memslot.delete" => delete,
    "vm.memslot.delete_ignores_other_fields" => delete_other_fields,
    "vm.memslot.slot_id_limits" => slot_ids,
    "vm.memslot.address_space_ids" => address_spaces,
    "vm.memslot.overlap_eexist" => overlap,
    "vm.memslot.adjacent_ok" => adjacent,
    "vm.memslot.aliased_uaddr_ok" => alias,
    "vm.memslot.modify_identical_ok" => modify_noop,
    "vm.memslot.move" => move_slot,
    "vm.memslot.move_onto_other_eexist" => move_overlap,
    "vm.memslot.change_size_einval" => change_size,
    "vm.memslot.change_uaddr_einval" => change_uaddr,
    "vm.memslot.toggle_log_dirty_ok" => toggle_log_dirty,
    "vm.memslot.toggle_readonly_einval" => toggle_readonly,
    "vm.memslot.modify_guest_memfd_flag_einval" => modify_memfd_flag,
    "vm.memslot.gpa_wrap_einval" => gpa_wrap,
    "vm.memslot.gpa_beyond_52_bits_einval" => gpa_too_high,
    "vm.memslot.gpa_high_ok" => gpa_high,
    "vm.memslot.uaddr_kernel_range_einval" => uaddr_kernel,
    "vm.memslot.uaddr_unmapped_accepted" => uaddr_unmapped,
    "vm.memslot.size_too_large_einval" => size_too_large,
    "vm.memslot.fill_all_slots" => fill_all,
];

const MB2: u64 = 2 << 20;

/// A VM and 8 MiB of memory to back its slots.
fn setup(ctx: &Ctx) -> Result<(Vm, GuestMem), String> {
    let (_kvm, vm) = ctx.vm()?;
    let mem = GuestMem::new_aligned(8 << 20, 2 << 20).ctx("mmap")?;
    Ok((vm, mem))
}

/// `KVM_SET_USER_MEMORY_REGION` with an arbitrary user address.
fn region(vm: &Vm, slot: u32, flags: u32, gpa: u64, size: u64, uaddr: u64) -> Result<(), Errno> {
    let r = KvmUserspaceMemoryRegion {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: uaddr,
    };
    // SAFETY: module invariant: no vCPU of `vm` ever runs, so no guest access can reach the range.
    unsafe { vm.set_user_memory_region(&r) }
}

/// Requires success.
fn ok(r: Result<(), Errno>, what: &str) -> CaseResult {
    r.ctx(what)
}

fn create_ok(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "2 MiB at GPA 0")?;
    ok(
        vm.set_region(1, 0, 0x1_0000_0000, 0x1000, &m, MB2),
        "4 KiB at 4 GiB",
    )
}

fn flags_unknown(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    for f in [KVM_MEM_GUEST_MEMFD, 8, 0x10, 0x8000_0000] {
        let r = vm.set_region(1, f, 0x1000_0000, MB2, &m, MB2);
        want_err(r, Errno::EINVAL, &format!("flags {f:#x}"))?;
    }
    Ok(())
}

fn readonly_ok(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    need(&ctx.kvm()?, Cap::ReadonlyMem)?;
    ok(
        vm.set_region(2, KVM_MEM_READONLY, 0x2000_0000, MB2, &m, 0),
        "READONLY",
    )?;
    let f = KVM_MEM_READONLY | KVM_MEM_LOG_DIRTY_PAGES;
    ok(
        vm.set_region(9, f, 0x3800_0000, 0x1000, &m, MB2),
        "READONLY | LOG_DIRTY_PAGES",
    )
}

fn log_dirty_ok(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(
        vm.set_region(3, KVM_MEM_LOG_DIRTY_PAGES, 0x3000_0000, MB2, &m, 0),
        "LOG_DIRTY_PAGES",
    )
}

fn unaligned_gpa(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    for gpa in [0x4000_1001u64, 0x4000_0800, 0x4000_0001] {
        let r = vm.set_region(4, 0, gpa, 0x1000, &m, 0);
        want_err(r, Errno::EINVAL, &format!("gpa {gpa:#x}"))?;
    }
    Ok(())
}

fn unaligned_size(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    for size in [0x1001u64, 0x800, 1] {
        let r = vm.set_region(4, 0, 0x4000_0000, size, &m, 0);
        want_err(r, Errno::EINVAL, &format!("size {size:#x}"))?;
    }
    Ok(())
}

fn unaligned_uaddr(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    for off in [1u64, 0x800, 0xfff] {
        let r = vm.set_region(4, 0, 0x4000_0000, 0x1000, &m, off);
        want_err(r, Errno::EINVAL, &format!("uaddr + {off:#x}"))?;
    }
    Ok(())
}

fn delete_missing(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    want_err(
        vm.set_region(5, 0, 0x5000_0000, 0, &m, 0),
        Errno::EINVAL,
        "size 0, slot 5",
    )?;
    want_err(vm.delete_slot(5), Errno::EINVAL, "all-zero struct, slot 5")
}

fn delete(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(3, 0, 0x3000_0000, MB2, &m, 0), "create")?;
    ok(vm.set_region(3, 0, 0x3000_0000, 0, &m, 0), "delete")?;
    want_err(
        vm.set_region(3, 0, 0x3000_0000, 0, &m, 0),
        Errno::EINVAL,
        "delete again",
    )?;
    ok(
        vm.set_region(4, 0, 0x3000_0000, MB2, &m, 0),
        "another slot on the freed range",
    )?;
    ok(
        vm.set_region(3, 0, 0x5000_0000, MB2, &m, MB2),
        "the deleted id, reused",
    )
}

fn delete_other_fields(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(
        vm.set_region(9, KVM_MEM_LOG_DIRTY_PAGES, 0x3800_0000, 0x1000, &m, 0),
        "create",
    )?;
    ok(
        region(&vm, 9, 0, 0x1234_5000, 0, 0),
        "delete with other gpa, uaddr and flags",
    )?;
    want_err(vm.delete_slot(9), Errno::EINVAL, "delete again")
}

fn slot_ids(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    let nr = cap(&ctx.kvm()?, Cap::NrMemslots)? as u32;
    ok(
        vm.set_region(nr - 1, 0, 0x6000_0000, 0x1000, &m, 0),
        "slot NR_MEMSLOTS - 1",
    )?;
    for (i, slot) in [nr, nr + 1, 0x7fff, 0x8000, 0xffff].into_iter().enumerate() {
        let r = vm.set_region(
            slot,
            0,
            0x6010_0000 + 0x10_0000 * i as u64,
            0x1000,
            &m,
            0x1000,
        );
        want_err(r, Errno::EINVAL, &format!("slot {slot:#x}"))?;
    }
    Ok(())
}

fn address_spaces(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    let n = cap(&ctx.kvm()?, Cap::MultiAddressSpace)?.max(1) as u32;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "AS 0 slot 0")?;
    for as_id in 1..n {
        // The same GPA range may be used again in another address space.
        let r = vm.set_region((as_id << 16) | 5, 0, 0, MB2, &m, MB2);
        ok(
            r,
            &format!("address space {as_id} (MULTI_ADDRESS_SPACE = {n})"),
        )?;
    }
    for as_id in [n, n + 1, 0x8000] {
        let r = vm.set_region((as_id << 16) | 5, 0, 0x5000_0000, 0x1000, &m, 0);
        want_err(
            r,
            Errno::EINVAL,
            &format!("address space {as_id} (MULTI_ADDRESS_SPACE = {n})"),
        )?;
    }
    Ok(())
}

fn overlap(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "slot 0")?;
    want_err(
        vm.set_region(6, 0, 0, MB2, &m, MB2),
        Errno::EEXIST,
        "same range",
    )?;
    want_err(
        vm.set_region(6, 0, 0x1f_f000, 0x2000, &m, MB2),
        Errno::EEXIST,
        "tail overlap",
    )?;
    want_err(
        vm.set_region(6, 0, 0x1000, 0x1000, &m, MB2),
        Errno::EEXIST,
        "inside",
    )?;
    let r = vm.set_region(6, 0, 0, 2 * MB2, &m, MB2);
    want_err(r, Errno::EEXIST, "covering the whole slot")
}

fn adjacent(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(
        vm.set_region(0, 0, 0x20_0000, MB2, &m, 0),
        "slot 0 at 2 MiB",
    )?;
    ok(
        vm.set_region(6, 0, 0x40_0000, 0x1000, &m, MB2),
        "right after",
    )?;
    ok(
        vm.set_region(7, 0, 0x1f_f000, 0x1000, &m, MB2 + 0x1000),
        "right before",
    )
}

fn alias(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "slot 0")?;
    ok(
        vm.set_region(10, 0, 0x8000_0000, MB2, &m, 0),
        "slot 10 on the same host memory",
    )
}

fn modify_noop(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "identical parameters")
}

fn move_slot(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    ok(
        vm.set_region(0, 0, 0x9000_0000, MB2, &m, 0),
        "move to 0x90000000",
    )?;
    ok(
        vm.set_region(6, 0, 0, MB2, &m, MB2),
        "the old range is free",
    )?;
    ok(vm.set_region(0, 0, 0x20_0000, MB2, &m, 0), "move again")
}

fn move_overlap(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "slot 0")?;
    ok(vm.set_region(10, 0, 0x8000_0000, MB2, &m, MB2), "slot 10")?;
    want_err(
        vm.set_region(0, 0, 0x8000_0000, MB2, &m, 0),
        Errno::EEXIST,
        "move onto slot 10",
    )?;
    want_err(
        vm.set_region(0, 0, 0x7fff_f000, MB2, &m, 0),
        Errno::EEXIST,
        "move partly onto it",
    )
}

fn change_size(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    want_err(
        vm.set_region(0, 0, 0, MB2 / 2, &m, 0),
        Errno::EINVAL,
        "shrink",
    )?;
    want_err(
        vm.set_region(0, 0, 0, 2 * MB2, &m, 0),
        Errno::EINVAL,
        "grow",
    )
}

fn change_uaddr(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    want_err(
        vm.set_region(0, 0, 0, MB2, &m, MB2),
        Errno::EINVAL,
        "other uaddr",
    )
}

fn toggle_log_dirty(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    let d = KVM_MEM_LOG_DIRTY_PAGES;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    ok(vm.set_region(0, d, 0, MB2, &m, 0), "LOG_DIRTY on")?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "LOG_DIRTY off")?;
    ok(
        vm.set_region(0, d, 0xa000_0000, MB2, &m, 0),
        "LOG_DIRTY on and move",
    )?;
    ok(
        vm.set_region(0, 0, 0, MB2, &m, 0),
        "LOG_DIRTY off and move back",
    )
}

fn toggle_readonly(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    need(&ctx.kvm()?, Cap::ReadonlyMem)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "slot 0")?;
    ok(
        vm.set_region(2, KVM_MEM_READONLY, 0x2000_0000, MB2, &m, MB2),
        "read-only slot 2",
    )?;
    let r = vm.set_region(0, KVM_MEM_READONLY, 0, MB2, &m, 0);
    want_err(r, Errno::EINVAL, "READONLY on")?;
    want_err(
        vm.set_region(2, 0, 0x2000_0000, MB2, &m, MB2),
        Errno::EINVAL,
        "READONLY off",
    )
}

fn modify_memfd_flag(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(0, 0, 0, MB2, &m, 0), "create")?;
    let r = vm.set_region(0, KVM_MEM_GUEST_MEMFD, 0, MB2, &m, 0);
    want_err(r, Errno::EINVAL, "GUEST_MEMFD through the v1 command")
}

fn gpa_wrap(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    let top = 0xffff_ffff_ffff_f000;
    want_err(
        vm.set_region(7, 0, top, 0x2000, &m, 0),
        Errno::EINVAL,
        "gpa + size wraps",
    )?;
    want_err(
        vm.set_region(7, 0, top, 0x1000, &m, 0),
        Errno::EINVAL,
        "ends exactly at 2^64",
    )
}

fn gpa_too_high(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    for gpa in [1u64 << 52, 1 << 56, 1 << 63] {
        let r = vm.set_region(8, 0, gpa, 0x1000, &m, 0);
        want_err(r, Errno::EINVAL, &format!("gpa {gpa:#x}"))?;
    }
    Ok(())
}

fn gpa_high(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    ok(vm.set_region(8, 0, 1 << 39, 0x1000, &m, 0), "gpa 1 << 39")?;
    ok(
        vm.set_region(9, 0, (1 << 39) - 0x1000, 0x1000, &m, 0x1000),
        "gpa (1 << 39) - 4 KiB",
    )
}

/// A `userspace_addr` in the kernel's part of the address space is `EINVAL`. Where that part
/// starts is the OS's: on Linux (and FreeBSD) everything from the upper canonical half up; on
/// illumos amd64 user space reaches up to `USERLIMIT` (0xFFFFFD8000000000, `sys/vmparam.h`:
/// processes may map memory in the upper half below the kernel), so the addresses are the
/// kernel's from there.
fn uaddr_kernel(ctx: &Ctx) -> CaseResult {
    let (vm, _m) = setup(ctx)?;
    let addrs: &[(u32, u64)] = match kvmport_client::sys::rule() {
        kvmport_client::sys::OsRule::Illumos => &[
            (11, 0xffff_fd80_0000_0000),
            (12, 0xffff_ffff_ffff_f000),
            (13, 0xffff_fe00_0000_0000),
        ],
        _ => &[
            (11, 0xffff_8000_0000_0000),
            (12, 0xffff_ffff_ffff_f000),
            (13, 1 << 63),
        ],
    };
    for &(slot, ua) in addrs {
        let r = region(
            &vm,
            slot,
            0,
            0xb000_0000 + (u64::from(slot) << 20),
            0x1000,
            ua,
        );
        want_err(r, Errno::EINVAL, &format!("uaddr {ua:#x}"))?;
    }
    Ok(())
}

fn uaddr_unmapped(ctx: &Ctx) -> CaseResult {
    let (vm, _m) = setup(ctx)?;
    // A slot is only a promise; the host memory is not looked at until the guest touches it.
    ok(
        region(&vm, 14, 0, 0xb300_0000, 0x10000, 0x3000_0000_0000),
        "unmapped uaddr",
    )?;
    let d = KVM_MEM_LOG_DIRTY_PAGES;
    ok(
        region(&vm, 15, d, 0xb400_0000, 0x10000, 0x3000_0000_0000),
        "unmapped + LOG_DIRTY",
    )?;
    ok(region(&vm, 13, 0, 0xb200_0000, 0x1000, 0), "uaddr NULL")
}

fn size_too_large(ctx: &Ctx) -> CaseResult {
    let (vm, _m) = setup(ctx)?;
    let sizes = [1u64 << 43, (1 << 43) + 0x1000, 1 << 63];
    for size in sizes {
        let r = region(&vm, 16, 0, 0x1000_0000_0000, size, 0x1_0000_0000);
        want_err(
            r,
            Errno::EINVAL,
            &format!("size {size:#x} (2^31 pages or more)"),
        )?;
    }
    Ok(())
}

fn fill_all(ctx: &Ctx) -> CaseResult {
    let (vm, m) = setup(ctx)?;
    let nr = cap(&ctx.kvm()?, Cap::NrMemslots)? as u32;
    for s in 0..nr {
        let r = vm.set_region(s, 0, 0x1_0000_0000 + u64::from(s) * 0x1000, 0x1000, &m, 0);
        r.ctx(&format!("slot {s}"))?;
    }
    let r = vm.set_region(nr, 0, 0x1_0000_0000 + u64::from(nr) * 0x1000, 0x1000, &m, 0);
    want_err(r, Errno::EINVAL, "one more slot id")?;
    ok(vm.delete_slot(nr / 2), "delete one in the middle")?;
    ok(
        vm.set_region(nr / 2, 0, 0x10_0000_0000, 0x1000, &m, 0),
        "reuse its id elsewhere",
    )
}
