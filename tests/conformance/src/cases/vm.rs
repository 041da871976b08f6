//! The VM fd: vCPU creation, `KVM_ENABLE_CAP`, TSS and identity-map addresses, ioeventfd
//! configuration, the in-kernel irqchip, unknown commands and fd lifetimes.

use crate::guest::{Code, Guest, Mode, run_guarded};
use crate::harness::{Case, CaseResult, Ctx, OrFail, cap, need, want_err, want_ret};
use crate::{check, check_eq};
use kvmport_client::{BadPtr, Errno};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::{
    KVM_EXIT_HLT, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DEASSIGN,
    KVM_IOEVENTFD_FLAG_PIO, KvmIoeventfd,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    "vm.vcpu.create_id0" => vcpu_create,
    "vm.vcpu.duplicate_eexist" => vcpu_duplicate,
    "vm.vcpu.id_limits" => vcpu_id_limits,
    "vm.vcpu.max_vcpus_then_einval" => vcpu_max,
    "vm.vcpu.closed_id_stays_taken" => vcpu_closed_id,
    "vm.vcpu.enable_max_vcpu_id" => vcpu_enable_max_id,
    "vm.enable_cap.unknown_einval" => enable_cap_unknown,
    "vm.enable_cap.manual_protect2_bad_einval" => manual_protect_bad,
    "vm.enable_cap.manual_protect2_ok" => manual_protect_ok,
    "vm.enable_cap.disable_exits" => disable_exits,
    "vm.enable_cap.disable_exits_after_vcpu_accepted" => disable_exits_late,
    "vm.enable_cap.vcpu_fd_einval" => enable_cap_vcpu,
    "vm.tss_addr.ok" => tss_ok,
    "vm.tss_addr.beyond_4g_einval" => tss_bad,
    "vm.identity_map.before_vcpu_ok" => ident_ok,
    "vm.identity_map.after_vcpu_einval" => ident_late,
    "vm.ioeventfd.assign_deassign" => ioev_assign,
    "vm.ioeventfd.collision_eexist" => ioev_collision,
    "vm.ioeventfd.datamatch_no_collision" => ioev_datamatch,
    "vm.ioeventfd.deassign_missing_enoent" => ioev_enoent,
    "vm.ioeventfd.bad_len_einval" => ioev_bad_len,
    "vm.ioeventfd.bad_flags_einval" => ioev_bad_flags,
    "vm.ioeventfd.len0_datamatch_einval" => ioev_len0_datamatch,
    "vm.ioeventfd.addr_wrap_einval" => ioev_wrap,
    "vm.ioeventfd.bad_fd" => ioev_bad_fd,
    "vm.ioeventfd.mmio_len0_ok" => ioev_mmio_len0,
    "vm.irqchip.after_vcpu_einval" => irqchip_late,
    "vm.irqchip.twice_eexist" => irqchip_twice,
    "vm.irqchip.interrupt_enxio" => irqchip_interrupt,
    "vm.unknown_ioctl_enotty" => unknown_ioctl,
    guest "vm.lifetime.vm_fd_closed_vcpu_runs" => vm_closed_vcpu_runs,
    "vm.lifetime.sys_fd_closed_vm_works" => sys_closed,
];

fn vcpu_create(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    let v = vm.create_vcpu(0).ctx("CREATE_VCPU 0")?;
    check!(
        v.fd().raw() >= 0 && v.fd().raw() != vm.fd().raw(),
        "vCPU fd {}",
        v.fd().raw()
    );
    Ok(())
}

fn vcpu_duplicate(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    let _a = vm.create_vcpu(1).ctx("CREATE_VCPU 1")?;
    want_err(
        vm.create_vcpu(1).map(drop),
        Errno::EEXIST,
        "second CREATE_VCPU 1",
    )
}

fn vcpu_id_limits(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let max_id = cap(&kvm, Cap::MaxVcpuId)? as u64;
    vm.create_vcpu(max_id - 1)
        .ctx("CREATE_VCPU MAX_VCPU_ID - 1")?;
    for id in [max_id, 0xffff_ffff, 1 << 32, (1 << 32) | 2, u64::MAX] {
        want_err(
            vm.create_vcpu(id).map(drop),
            Errno::EINVAL,
            &format!("id {id:#x}"),
        )?;
    }
    Ok(())
}

fn vcpu_max(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let max = cap(&kvm, Cap::MaxVcpus)? as u64;
    let max_id = cap(&kvm, Cap::MaxVcpuId)? as u64;
    // Closing a vCPU fd does not destroy the vCPU, so each fd is closed at once.
    for id in 0..max {
        vm.create_vcpu(id).ctx(&format!("CREATE_VCPU {id}"))?;
    }
    if max < max_id {
        want_err(
            vm.create_vcpu(max).map(drop),
            Errno::EINVAL,
            "vCPU number MAX_VCPUS + 1",
        )?;
        want_err(
            vm.create_vcpu(max_id - 1).map(drop),
            Errno::EINVAL,
            "id MAX_VCPU_ID - 1",
        )?;
    }
    want_err(
        vm.create_vcpu(0).map(drop),
        Errno::EINVAL,
        "id 0 again when full",
    )
}

fn vcpu_closed_id(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    drop(vm.create_vcpu(0).ctx("CREATE_VCPU 0")?);
    want_err(
        vm.create_vcpu(0).map(drop),
        Errno::EEXIST,
        "CREATE_VCPU 0 after closing its fd",
    )?;
    vm.create_vcpu(1).ctx("CREATE_VCPU 1")?;
    Ok(())
}

fn vcpu_enable_max_id(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let max_id = cap(&kvm, Cap::MaxVcpuId)? as u64;
    let c = Cap::MaxVcpuId.raw();
    want_ret(
        vm.enable_cap(c, 0, [8, 0, 0, 0]),
        0,
        "ENABLE_CAP MAX_VCPU_ID 8",
    )?;
    want_ret(vm.enable_cap(c, 0, [8, 0, 0, 0]), 0, "same value again")?;
    want_err(
        vm.enable_cap(c, 0, [16, 0, 0, 0]),
        Errno::EINVAL,
        "a different value",
    )?;
    vm.create_vcpu(7).ctx("CREATE_VCPU 7")?;
    want_err(vm.create_vcpu(8).map(drop), Errno::EINVAL, "CREATE_VCPU 8")?;
    check_eq!(
        vm.check_extension(Cap::MaxVcpuId).ctx("CHECK")? as u64,
        max_id,
        "cap after"
    );
    let (_k2, vm2) = ctx.vm()?;
    want_err(
        vm2.enable_cap(c, 0, [max_id + 1, 0, 0, 0]),
        Errno::EINVAL,
        "MAX_VCPU_ID + 1",
    )
}

fn enable_cap_unknown(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    want_err(
        vm.enable_cap(100_000, 0, [0; 4]),
        Errno::EINVAL,
        "cap 100000",
    )
}

fn manual_protect_bad(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::ManualDirtyLogProtect2)?;
    let c = Cap::ManualDirtyLogProtect2.raw();
    want_err(vm.enable_cap(c, 1, [1, 0, 0, 0]), Errno::EINVAL, "flags=1")?;
    for a in [0xff, 2, 4, 1 << 63] {
        want_err(
            vm.enable_cap(c, 0, [a, 0, 0, 0]),
            Errno::EINVAL,
            &format!("args[0]={a:#x}"),
        )?;
    }
    Ok(())
}

fn manual_protect_ok(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let caps = need(&kvm, Cap::ManualDirtyLogProtect2)? as u64;
    let c = Cap::ManualDirtyLogProtect2.raw();
    want_ret(vm.enable_cap(c, 0, [1, 0, 0, 0]), 0, "ENABLE")?;
    if caps & 2 != 0 {
        want_ret(
            vm.enable_cap(c, 0, [3, 0, 0, 0]),
            0,
            "ENABLE | INITIALLY_SET",
        )?;
    }
    want_ret(vm.enable_cap(c, 0, [0, 0, 0, 0]), 0, "disable")?;
    let _v = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    want_ret(
        vm.enable_cap(c, 0, [1, 0, 0, 0]),
        0,
        "ENABLE after a vCPU exists",
    )
}

fn disable_exits(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let mask = need(&kvm, Cap::X86DisableExits)? as u64;
    let c = Cap::X86DisableExits.raw();
    want_ret(vm.enable_cap(c, 0, [0, 0, 0, 0]), 0, "args[0]=0")?;
    want_ret(vm.enable_cap(c, 0, [mask, 0, 0, 0]), 0, "the reported mask")?;
    let bad = 1u64 << (!mask).trailing_zeros();
    want_err(
        vm.enable_cap(c, 0, [bad, 0, 0, 0]),
        Errno::EINVAL,
        &format!("bit {bad:#x}"),
    )?;
    want_err(
        vm.enable_cap(c, 0, [1 << 31, 0, 0, 0]),
        Errno::EINVAL,
        "bit 31",
    )?;
    want_err(vm.enable_cap(c, 1, [0, 0, 0, 0]), Errno::EINVAL, "flags=1")
}

/// After a vCPU exists, Linux 6.12 (the reference) still accepts KVM_CAP_X86_DISABLE_EXITS:
/// its api.rst documents EINVAL only for invalid bits, and `kvm_vm_ioctl_enable_cap` has no
/// created_vcpus check (the new setting applies to vCPUs created later). Invalid bits are
/// rejected before anything else. Linux 6.14 (commit 04cd8f8628d8) started rejecting any
/// use after vCPU creation; the host kernel has that change (see known-differences).
fn disable_exits_late(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let mask = need(&kvm, Cap::X86DisableExits)? as u64;
    let _v = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    let c = Cap::X86DisableExits.raw();
    want_err(
        vm.enable_cap(c, 0, [mask | 1 << 31, 0, 0, 0]),
        Errno::EINVAL,
        "the reported mask plus bit 31",
    )?;
    want_ret(vm.enable_cap(c, 0, [0, 0, 0, 0]), 0, "args[0]=0")?;
    want_ret(vm.enable_cap(c, 0, [mask, 0, 0, 0]), 0, "the reported mask")?;
    // A vCPU created afterwards is still fine.
    vm.create_vcpu(1).ctx("CREATE_VCPU 1 after DISABLE_EXITS")?;
    Ok(())
}

fn enable_cap_vcpu(ctx: &Ctx) -> CaseResult {
    let (_kvm, _vm, vcpu) = ctx.vcpu()?;
    want_err(
        vcpu.enable_cap(100_000, 0, [0; 4]),
        Errno::EINVAL,
        "cap 100000",
    )?;
    want_err(
        vcpu.enable_cap(100_000, 1, [0; 4]),
        Errno::EINVAL,
        "cap 100000 flags=1",
    )?;
    let c = Cap::ManualDirtyLogProtect2.raw();
    want_err(
        vcpu.enable_cap(c, 0, [1, 0, 0, 0]),
        Errno::EINVAL,
        "VM-only MANUAL_DIRTY_LOG_PROTECT2",
    )
}

fn tss_ok(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    want_ret(vm.set_tss_addr(0xfffb_d000), 0, "0xfffbd000")?;
    want_ret(vm.set_tss_addr(0xfffb_d000), 0, "again")?;
    let _v = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    want_ret(vm.set_tss_addr(0xfffb_d000), 0, "after a vCPU")
}

fn tss_bad(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    want_err(
        vm.set_tss_addr(0xffff_f000),
        Errno::EINVAL,
        "0xfffff000 (TSS crosses 4 GiB)",
    )?;
    want_err(vm.set_tss_addr(1 << 32), Errno::EINVAL, "1 << 32")?;
    want_err(vm.set_tss_addr(u64::MAX), Errno::EINVAL, "~0")
}

fn ident_ok(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    want_ret(vm.set_identity_map_addr(0xfffb_c000), 0, "0xfffbc000")?;
    want_ret(vm.set_identity_map_addr(0xfffb_c000), 0, "again")
}

fn ident_late(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm, _vcpu) = ctx.vcpu()?;
    want_err(
        vm.set_identity_map_addr(0xfffb_c000),
        Errno::EINVAL,
        "after a vCPU",
    )?;
    let r = vm
        .fd()
        .ioctl_bad_ptr(KVM_SET_IDENTITY_MAP_ADDR, BadPtr::Null);
    want_err(
        r,
        Errno::EINVAL,
        "NULL pointer after a vCPU (the vCPU check comes first)",
    )
}

/// A new non-blocking eventfd.
pub fn eventfd() -> Result<OwnedFd, String> {
    // SAFETY: eventfd has no memory preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: eventfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads an eventfd's counter (0 if it was not signalled).
pub fn eventfd_count(fd: &OwnedFd) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live u64.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
    if n == 8 { v } else { 0 }
}

/// A PIO ioeventfd request.
pub fn pio_ioev(fd: &OwnedFd, port: u64, len: u32, flags: u32, datamatch: u64) -> KvmIoeventfd {
    KvmIoeventfd {
        datamatch,
        addr: port,
        len,
        fd: fd.as_raw_fd(),
        flags: flags | KVM_IOEVENTFD_FLAG_PIO,
        ..Default::default()
    }
}

fn ioev_assign(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    let e = pio_ioev(&efd, 0x600, 4, 0, 0);
    want_ret(vm.ioeventfd(&e), 0, "assign PIO 0x600/4")?;
    let d = pio_ioev(&efd, 0x600, 4, KVM_IOEVENTFD_FLAG_DEASSIGN, 0);
    want_ret(vm.ioeventfd(&d), 0, "deassign")?;
    want_ret(vm.ioeventfd(&e), 0, "assign again after deassign")
}

fn ioev_collision(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let (a, b) = (eventfd()?, eventfd()?);
    want_ret(vm.ioeventfd(&pio_ioev(&a, 0x600, 4, 0, 0)), 0, "first")?;
    let r = vm.ioeventfd(&pio_ioev(&a, 0x600, 4, 0, 0));
    want_err(r, Errno::EEXIST, "same fd, port and length again")?;
    let r = vm.ioeventfd(&pio_ioev(&b, 0x600, 4, 0, 0));
    want_err(
        r,
        Errno::EEXIST,
        "another eventfd on the same port and length",
    )?;
    let r = vm.ioeventfd(&pio_ioev(&b, 0x600, 4, KVM_IOEVENTFD_FLAG_DATAMATCH, 7));
    want_err(r, Errno::EEXIST, "a datamatch entry under a wildcard")?;
    want_ret(
        vm.ioeventfd(&pio_ioev(&b, 0x600, 2, 0, 0)),
        0,
        "same port, other length",
    )
}

fn ioev_datamatch(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let (a, b) = (eventfd()?, eventfd()?);
    let dm = KVM_IOEVENTFD_FLAG_DATAMATCH;
    want_ret(
        vm.ioeventfd(&pio_ioev(&a, 0x600, 4, dm, 1)),
        0,
        "datamatch 1",
    )?;
    want_ret(
        vm.ioeventfd(&pio_ioev(&b, 0x600, 4, dm, 2)),
        0,
        "datamatch 2",
    )?;
    want_err(
        vm.ioeventfd(&pio_ioev(&b, 0x600, 4, dm, 2)),
        Errno::EEXIST,
        "datamatch 2 again",
    )
}

fn ioev_enoent(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    let d = pio_ioev(&efd, 0x600, 4, KVM_IOEVENTFD_FLAG_DEASSIGN, 0);
    want_err(vm.ioeventfd(&d), Errno::ENOENT, "deassign never assigned")?;
    want_ret(vm.ioeventfd(&pio_ioev(&efd, 0x600, 4, 0, 0)), 0, "assign")?;
    want_ret(vm.ioeventfd(&d), 0, "deassign")?;
    want_err(vm.ioeventfd(&d), Errno::ENOENT, "deassign twice")?;
    let d2 = pio_ioev(&efd, 0x601, 4, KVM_IOEVENTFD_FLAG_DEASSIGN, 0);
    want_err(vm.ioeventfd(&d2), Errno::ENOENT, "deassign another port")
}

fn ioev_bad_len(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    for len in [3, 5, 16, u32::MAX] {
        let r = vm.ioeventfd(&pio_ioev(&efd, 0x600, len, 0, 0));
        want_err(r, Errno::EINVAL, &format!("len {len}"))?;
    }
    Ok(())
}

fn ioev_bad_flags(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    for f in [1u32 << 5, 1 << 31] {
        let r = vm.ioeventfd(&pio_ioev(&efd, 0x600, 4, f, 0));
        want_err(r, Errno::EINVAL, &format!("flag {f:#x}"))?;
    }
    Ok(())
}

fn ioev_len0_datamatch(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    let r = vm.ioeventfd(&pio_ioev(&efd, 0x600, 0, KVM_IOEVENTFD_FLAG_DATAMATCH, 1));
    want_err(r, Errno::EINVAL, "len 0 with DATAMATCH")
}

fn ioev_wrap(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    let mut e = pio_ioev(&efd, u64::MAX - 1, 4, 0, 0);
    e.flags = 0;
    want_err(
        vm.ioeventfd(&e),
        Errno::EINVAL,
        "MMIO addr ~0-1 + len 4 wraps",
    )
}

fn ioev_bad_fd(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Ioeventfd)?;
    let efd = eventfd()?;
    let mut e = pio_ioev(&efd, 0x600, 4, 0, 0);
    e.fd = -1;
    want_err(vm.ioeventfd(&e), Errno::EBADF, "fd -1")?;
    e.fd = vm.fd().raw();
    want_err(
        vm.ioeventfd(&e),
        Errno::EINVAL,
        "fd of a non-eventfd (the VM fd)",
    )
}

fn ioev_mmio_len0(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::IoeventfdNoLength)?;
    let efd = eventfd()?;
    let e = KvmIoeventfd {
        addr: 0x1000_0000,
        len: 0,
        fd: efd.as_raw_fd(),
        ..Default::default()
    };
    want_ret(vm.ioeventfd(&e), 0, "MMIO len 0 (any length)")?;
    let d = KvmIoeventfd {
        flags: KVM_IOEVENTFD_FLAG_DEASSIGN,
        ..e
    };
    want_ret(vm.ioeventfd(&d), 0, "deassign")
}

fn irqchip_late(ctx: &Ctx) -> CaseResult {
    let (kvm, vm, _vcpu) = ctx.vcpu()?;
    need(&kvm, Cap::Irqchip)?;
    want_err(
        vm.create_irqchip(),
        Errno::EINVAL,
        "CREATE_IRQCHIP after a vCPU",
    )
}

fn irqchip_twice(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")?;
    want_err(vm.create_irqchip(), Errno::EEXIST, "twice")
}

fn irqchip_interrupt(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")?;
    let vcpu = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    want_err(
        vcpu.interrupt(32),
        Errno::ENXIO,
        "KVM_INTERRUPT with an in-kernel irqchip",
    )
}

fn unknown_ioctl(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    let fd = vm.fd();
    want_err(fd.ioctl_val(io(0x0f), 0), Errno::ENOTTY, "_IO(0xAE, 0x0f)")?;
    want_err(fd.ioctl_val(io(0xff), 0), Errno::ENOTTY, "_IO(0xAE, 0xff)")?;
    want_err(
        fd.ioctl_bad_ptr(0x1201, BadPtr::Null),
        Errno::ENOTTY,
        "_IO(0x12, 0x01)",
    )
}

fn vm_closed_vcpu_runs(ctx: &Ctx) -> CaseResult {
    // hlt; hlt
    let g = Guest::new(ctx, Mode::Real, &Code::new().op(&[0xF4, 0xF4]))?;
    let Guest {
        kvm,
        vm,
        vcpu,
        run,
        mem,
    } = g;
    drop(vm);
    drop(kvm);
    drop(mem);
    let r = vcpu.get_regs().ctx("GET_REGS with the VM fd closed")?;
    check_eq!(r.rip, 0, "rip");
    for i in 0..2 {
        run_guarded(&vcpu, &run)?.ctx("KVM_RUN with the VM fd closed")?;
        check_eq!(run.exit_reason(), KVM_EXIT_HLT, "exit reason of run {i}");
    }
    Ok(())
}

fn sys_closed(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    drop(kvm);
    vm.create_vcpu(0)
        .ctx("CREATE_VCPU with the system fd closed")?;
    check_eq!(
        vm.check_extension(Cap::UserMemory).ctx("CHECK_EXTENSION")?,
        1,
        "USER_MEMORY"
    );
    Ok(())
}
