//! Hostile input: NULL and unmapped pointers for every struct-taking command, arrays that run
//! into an inaccessible page, commands on the wrong kind of fd, fds used from a forked child, and
//! touching the vCPU mapping beyond its size.

use crate::guest::{Code, Guest, Mode};
use crate::harness::{Case, CaseResult, Ctx, OrFail, need, want_err};
use crate::{check, check_eq};
use kvmport_client::{BadPtr, CpuidBuf, Errno, Fd, GuardedBuf, MsrListBuf, MsrsBuf};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::KvmRegs;
use kvmport_core::abi::{KVM_EXIT_HLT, KvmEnableCap};

const SYS: u8 = 0;
const VM: u8 = 1;
const VCPU: u8 = 2;

/// Runs `f` on an fd of kind `FD` (a fresh VM without vCPUs for `VM`).
fn on_fd<const FD: u8>(ctx: &Ctx, f: impl FnOnce(&Fd) -> CaseResult) -> CaseResult {
    match FD {
        SYS => f(ctx.kvm()?.fd()),
        VM => f(ctx.vm()?.1.fd()),
        _ => f(ctx.vcpu()?.2.fd()),
    }
}

/// Requires `EFAULT` from `CMD` on an fd of kind `FD` with a NULL (`WILD` false) or unmapped
/// (`WILD` true) argument. `CAP` (0: none) must be reported for the command to exist.
fn bad_ptr<const FD: u8, const CMD: u32, const WILD: bool, const CAP: u32>(
    ctx: &Ctx,
) -> CaseResult {
    if let Some(c) = Cap::from_raw(u64::from(CAP)).filter(|_| CAP != 0) {
        need(&ctx.kvm()?, c)?;
    }
    let p = if WILD { BadPtr::Unmapped } else { BadPtr::Null };
    on_fd::<FD>(ctx, |fd| {
        want_err(fd.ioctl_bad_ptr(CMD, p), Errno::EFAULT, &format!("{p:?}"))
    })
}

/// A NULL and an unmapped-pointer case for each command.
macro_rules! ptr_cases {
    ($($fd:ident $cmd:ident $cap:literal $name:literal;)*) => {
        &[$(
            Case {
                name: concat!("hostile.null_ptr.", $name),
                guest: false,
                run: bad_ptr::<$fd, $cmd, false, $cap>,
            },
            Case {
                name: concat!("hostile.wild_ptr.", $name),
                guest: false,
                run: bad_ptr::<$fd, $cmd, true, $cap>,
            },
        )*]
    };
}

/// The NULL/unmapped pointer cases.
pub static PTR_CASES: &[Case] = ptr_cases! {
    SYS KVM_GET_MSR_INDEX_LIST 0 "get_msr_index_list";
    SYS KVM_GET_MSR_FEATURE_INDEX_LIST 153 "get_msr_feature_index_list";
    SYS KVM_GET_SUPPORTED_CPUID 0 "get_supported_cpuid";
    SYS KVM_GET_EMULATED_CPUID 95 "get_emulated_cpuid";
    VM KVM_SET_USER_MEMORY_REGION 0 "set_user_memory_region";
    VM KVM_GET_DIRTY_LOG 0 "get_dirty_log";
    VM KVM_CLEAR_DIRTY_LOG 168 "clear_dirty_log";
    VM KVM_SET_IDENTITY_MAP_ADDR 37 "set_identity_map_addr";
    VM KVM_IOEVENTFD 36 "ioeventfd";
    VM KVM_ENABLE_CAP 98 "vm_enable_cap";
    VM KVM_IRQ_LINE 0 "irq_line";
    VM KVM_GET_CLOCK 39 "get_clock";
    VM KVM_SET_CLOCK 39 "set_clock";
    VCPU KVM_GET_REGS 0 "get_regs";
    VCPU KVM_SET_REGS 0 "set_regs";
    VCPU KVM_GET_SREGS 0 "get_sregs";
    VCPU KVM_SET_SREGS 0 "set_sregs";
    VCPU KVM_GET_SREGS2 200 "get_sregs2";
    VCPU KVM_SET_SREGS2 200 "set_sregs2";
    VCPU KVM_GET_FPU 0 "get_fpu";
    VCPU KVM_SET_FPU 0 "set_fpu";
    VCPU KVM_GET_MSRS 0 "get_msrs";
    VCPU KVM_SET_MSRS 0 "set_msrs";
    VCPU KVM_SET_CPUID2 0 "set_cpuid2";
    VCPU KVM_GET_CPUID2 0 "get_cpuid2";
    VCPU KVM_GET_MP_STATE 14 "get_mp_state";
    VCPU KVM_SET_MP_STATE 14 "set_mp_state";
    VCPU KVM_GET_VCPU_EVENTS 41 "get_vcpu_events";
    VCPU KVM_SET_VCPU_EVENTS 41 "set_vcpu_events";
    VCPU KVM_GET_DEBUGREGS 50 "get_debugregs";
    VCPU KVM_SET_DEBUGREGS 50 "set_debugregs";
    VCPU KVM_GET_XSAVE 55 "get_xsave";
    VCPU KVM_SET_XSAVE 55 "set_xsave";
    VCPU KVM_GET_XSAVE2 208 "get_xsave2";
    VCPU KVM_GET_XCRS 56 "get_xcrs";
    VCPU KVM_SET_XCRS 56 "set_xcrs";
    VCPU KVM_INTERRUPT 0 "interrupt";
    VCPU KVM_ENABLE_CAP 54 "vcpu_enable_cap";
    VCPU KVM_TRANSLATE 0 "translate";
    VCPU KVM_SET_GUEST_DEBUG 23 "set_guest_debug";
};

/// Requires `want` from `CMD` on an fd of kind `FD` (argument NULL: a command the fd does not
/// implement fails before looking at it).
fn wrong_fd<const FD: u8, const CMD: u32, const ENOTTY: bool>(ctx: &Ctx) -> CaseResult {
    let want = if ENOTTY { Errno::ENOTTY } else { Errno::EINVAL };
    on_fd::<FD>(ctx, |fd| {
        want_err(fd.ioctl_bad_ptr(CMD, BadPtr::Null), want, "wrong fd")
    })
}

/// One case per command issued on a kind of fd that does not implement it.
macro_rules! wrong_fd_cases {
    ($($fd:ident $cmd:ident $enotty:literal $name:literal;)*) => {
        &[$(
            Case { name: concat!("hostile.wrong_fd.", $name), guest: false, run: wrong_fd::<$fd, $cmd, $enotty> },
        )*]
    };
}

/// The wrong-fd cases. The system fd answers EINVAL, the VM fd ENOTTY, the vCPU fd EINVAL.
pub static WRONG_FD_CASES: &[Case] = wrong_fd_cases! {
    SYS KVM_RUN false "sys.run";
    SYS KVM_GET_REGS false "sys.get_regs";
    SYS KVM_CREATE_VCPU false "sys.create_vcpu";
    SYS KVM_SET_USER_MEMORY_REGION false "sys.set_user_memory_region";
    SYS KVM_SET_TSS_ADDR false "sys.set_tss_addr";
    SYS KVM_ENABLE_CAP false "sys.enable_cap";
    VM KVM_RUN true "vm.run";
    VM KVM_GET_REGS true "vm.get_regs";
    VM KVM_GET_API_VERSION true "vm.get_api_version";
    VM KVM_CREATE_VM true "vm.create_vm";
    VM KVM_GET_VCPU_MMAP_SIZE true "vm.get_vcpu_mmap_size";
    VM KVM_GET_MSR_INDEX_LIST true "vm.get_msr_index_list";
    VM KVM_GET_SUPPORTED_CPUID true "vm.get_supported_cpuid";
    VCPU KVM_CREATE_VCPU false "vcpu.create_vcpu";
    VCPU KVM_CREATE_VM false "vcpu.create_vm";
    VCPU KVM_GET_API_VERSION false "vcpu.get_api_version";
    VCPU KVM_CHECK_EXTENSION false "vcpu.check_extension";
    VCPU KVM_GET_VCPU_MMAP_SIZE false "vcpu.get_vcpu_mmap_size";
    VCPU KVM_GET_MSR_INDEX_LIST false "vcpu.get_msr_index_list";
    VCPU KVM_GET_SUPPORTED_CPUID false "vcpu.get_supported_cpuid";
    VCPU KVM_SET_USER_MEMORY_REGION false "vcpu.set_user_memory_region";
    VCPU KVM_SET_TSS_ADDR false "vcpu.set_tss_addr";
    VCPU KVM_IOEVENTFD false "vcpu.ioeventfd";
};

/// The other hostile cases.
pub static CASES: &[Case] = crate::cases![
    "hostile.wild_ptr.set_signal_mask" => signal_mask_wild,
    "hostile.wrong_fd.sys.enable_cap_valid_struct" => sys_enable_cap,
    "hostile.wrong_fd.sys.get_regs_valid_buffer" => sys_get_regs,
    "hostile.unknown_ioctl.vcpu_einval" => vcpu_unknown,
    "hostile.guard.msr_index_list_entries" => guard_msr_list,
    "hostile.guard.supported_cpuid_entries" => guard_cpuid,
    "hostile.guard.get_msrs_entries" => guard_get_msrs,
    "hostile.guard.set_cpuid2_entries" => guard_set_cpuid,
    "hostile.guard.get_xsave2_short" => guard_xsave2,
    guest "hostile.fork.vcpu_fd_eio" => fork_vcpu,
    "hostile.fork.vm_fd_eio" => fork_vm,
    "hostile.fork.sys_fd_works" => fork_sys,
    "hostile.mmap.beyond_size_sigbus" => mmap_beyond,
];

fn signal_mask_wild(ctx: &Ctx) -> CaseResult {
    let v = ctx.vcpu()?.2;
    want_err(
        v.fd().ioctl_bad_ptr(KVM_SET_SIGNAL_MASK, BadPtr::Unmapped),
        Errno::EFAULT,
        "unmapped",
    )
}

fn sys_enable_cap(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let c = KvmEnableCap {
        cap: Cap::ManualDirtyLogProtect2.raw(),
        args: [1, 0, 0, 0],
        ..Default::default()
    };
    want_err(
        kvm.fd().ioctl_write(KVM_ENABLE_CAP, &c),
        Errno::EINVAL,
        "ENABLE_CAP on /dev/kvm",
    )
}

fn sys_get_regs(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    want_err(
        kvm.fd().ioctl_read::<KvmRegs>(KVM_GET_REGS),
        Errno::EINVAL,
        "GET_REGS on /dev/kvm",
    )
}

fn vcpu_unknown(ctx: &Ctx) -> CaseResult {
    let v = ctx.vcpu()?.2;
    let fd = v.fd();
    want_err(fd.ioctl_val(io(0x0f), 0), Errno::EINVAL, "_IO(0xAE, 0x0f)")?;
    want_err(fd.ioctl_val(io(0xff), 0), Errno::EINVAL, "_IO(0xAE, 0xff)")?;
    want_err(
        fd.ioctl_bad_ptr(0x1201, BadPtr::Null),
        Errno::EINVAL,
        "_IO(0x12, 0x01)",
    )
}

fn guard_msr_list(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let n = kvm.msr_index_list().ctx("GET_MSR_INDEX_LIST")?.len() as u32;
    // Room for the header only: the entries would land in the guard page.
    let mut b = MsrListBuf::new(0).ctx("buffer")?;
    b.set_count(4096);
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_MSR_INDEX_LIST),
        Errno::EFAULT,
        "entries unmapped",
    )?;
    check_eq!(b.count(), n, "nmsrs written back before the fault");
    Ok(())
}

fn guard_cpuid(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::new(0).ctx("buffer")?;
    b.set_count(256);
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID),
        Errno::EFAULT,
        "entries unmapped",
    )?;
    check_eq!(b.count(), 256, "nent after EFAULT");
    Ok(())
}

fn guard_get_msrs(ctx: &Ctx) -> CaseResult {
    let v = ctx.vcpu()?.2;
    let mut b = MsrsBuf::new(0).ctx("buffer")?;
    b.set_count(1);
    want_err(
        v.get_msrs(&mut b),
        Errno::EFAULT,
        "GET_MSRS entries unmapped",
    )?;
    want_err(
        v.set_msrs(&mut b),
        Errno::EFAULT,
        "SET_MSRS entries unmapped",
    )
}

fn guard_set_cpuid(ctx: &Ctx) -> CaseResult {
    let v = ctx.vcpu()?.2;
    let mut b = CpuidBuf::new(0).ctx("buffer")?;
    b.set_count(1);
    want_err(
        v.set_cpuid2(&mut b),
        Errno::EFAULT,
        "SET_CPUID2 entries unmapped",
    )
}

fn guard_xsave2(ctx: &Ctx) -> CaseResult {
    let size = need(&ctx.kvm()?, Cap::Xsave2)? as usize;
    let v = ctx.vcpu()?.2;
    let mut b = GuardedBuf::new(size - 8).ctx("buffer")?;
    want_err(
        v.fd().ioctl_buf(KVM_GET_XSAVE2, &mut b),
        Errno::EFAULT,
        "buffer 8 bytes short",
    )
}

/// Runs `f` in a forked child of this (single-threaded) case process and returns its result.
fn in_child(f: impl FnOnce() -> CaseResult) -> CaseResult {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the case process has no other threads, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let msg = match f() {
            Ok(()) => String::new(),
            Err(e) => e,
        };
        // SAFETY: writes a live buffer to our pipe, then leaves without running destructors
        // or atexit handlers that belong to the parent.
        unsafe {
            libc::write(fds[1], msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closes our copy of the write end, which nothing else uses.
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reads into a live buffer.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    let mut status = 0;
    // SAFETY: closes our read end and reaps our own child.
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    check!(libc::WIFEXITED(status), "child died (status {status:#x})");
    if out.is_empty() {
        Ok(())
    } else {
        Err(format!("in the child: {}", String::from_utf8_lossy(&out)))
    }
}

fn fork_vcpu(ctx: &Ctx) -> CaseResult {
    let g = Guest::new(ctx, Mode::Long64, &Code::new().op(&[0xF4]))?; // hlt
    in_child(|| {
        let fd = g.vcpu.fd();
        want_err(g.vcpu.get_regs(), Errno::EIO, "GET_REGS")?;
        want_err(g.vcpu.run(), Errno::EIO, "KVM_RUN")?;
        want_err(g.vcpu.get_mp_state(), Errno::EIO, "GET_MP_STATE")?;
        want_err(
            fd.ioctl_val(io(0xff), 0),
            Errno::EIO,
            "unknown _IO(0xAE, 0xff)",
        )?;
        want_err(
            fd.ioctl_val(KVM_CHECK_EXTENSION, 3),
            Errno::EIO,
            "CHECK_EXTENSION",
        )
    })?;
    // The parent still owns the VM.
    g.run_hlt()?;
    check_eq!(g.run.exit_reason(), KVM_EXIT_HLT, "exit in the parent");
    Ok(())
}

fn fork_vm(ctx: &Ctx) -> CaseResult {
    let (_kvm, vm) = ctx.vm()?;
    let mem = kvmport_client::GuestMem::new(0x1000).ctx("mmap")?;
    in_child(|| {
        want_err(
            vm.check_extension(Cap::UserMemory),
            Errno::EIO,
            "CHECK_EXTENSION",
        )?;
        want_err(vm.create_vcpu(1).map(drop), Errno::EIO, "CREATE_VCPU")?;
        want_err(
            vm.add_memory(0, 0, 0, &mem),
            Errno::EIO,
            "SET_USER_MEMORY_REGION",
        )?;
        want_err(
            vm.fd().ioctl_val(io(0xff), 0),
            Errno::EIO,
            "unknown _IO(0xAE, 0xff)",
        )?;
        want_err(vm.set_tss_addr(0xfffb_d000), Errno::EIO, "SET_TSS_ADDR")
    })?;
    vm.create_vcpu(1).ctx("CREATE_VCPU in the parent")?;
    Ok(())
}

fn fork_sys(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    in_child(|| {
        check_eq!(kvm.api_version().ctx("GET_API_VERSION")?, 12, "API version");
        check_eq!(
            kvm.check_extension(Cap::UserMemory)
                .ctx("CHECK_EXTENSION")?,
            1,
            "USER_MEMORY"
        );
        let vm = kvm
            .create_vm(0)
            .ctx("CREATE_VM on the inherited system fd")?;
        vm.create_vcpu(0).ctx("CREATE_VCPU in the child's own VM")?;
        Ok(())
    })
}

fn mmap_beyond(ctx: &Ctx) -> CaseResult {
    let (kvm, _vm, vcpu) = ctx.vcpu()?;
    let size = kvm.vcpu_mmap_size().ctx("mmap size")?;
    for (off, len) in [(size, 4096usize), (0x40000, 4096)] {
        // SAFETY: a new shared mapping at an address the kernel picks; it aliases no Rust
        // object and is only touched (in a child) and unmapped here.
        let p = unsafe {
            kvmport_client::sys::mmap(
                vcpu.fd().raw(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                off as i64,
            )
        };
        let p = match p {
            Ok(p) => p.cast::<libc::c_void>(),
            Err(e) => return Err(format!("mmap offset {off:#x}: {e}")),
        };
        // SAFETY: the child only forks; the parent reaps it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: reading the mapping is the point: it must raise SIGBUS; _exit otherwise.
            unsafe {
                let v = std::ptr::read_volatile(p.cast::<u8>());
                libc::_exit(i32::from(v));
            }
        }
        let mut status = 0;
        // SAFETY: reaps our child, then unmaps the mapping created above.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            kvmport_client::sys::munmap(p.cast(), len);
        }
        let sig = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
        check_eq!(
            sig,
            Some(libc::SIGBUS),
            "reading the vCPU mapping at offset {off:#x}"
        );
    }
    Ok(())
}
