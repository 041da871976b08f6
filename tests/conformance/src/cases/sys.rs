//! The system fd: API version, capabilities, mmap size, MSR and CPUID lists, `KVM_CREATE_VM`.

use crate::harness::{Case, CaseResult, Ctx, OrFail, cap, need, want_err, want_ret};
use crate::{check, check_eq, check_hex};
use kvmport_client::{BadPtr, CpuidBuf, Errno, MsrListBuf};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    "sys.api_version" => api_version,
    "sys.api_version.arg_nonzero_einval" => api_version_arg,
    "sys.cap.user_memory" => cap_user_memory,
    "sys.cap.nr_memslots" => cap_nr_memslots,
    "sys.cap.vcpu_limits_ordered" => cap_vcpu_limits,
    "sys.cap.immediate_exit" => cap_immediate_exit,
    "sys.cap.check_extension_vm" => cap_check_extension_vm,
    "sys.cap.unknown_is_zero" => cap_unknown,
    "sys.cap.vm_fd_agrees" => cap_vm_agrees,
    "sys.mmap_size" => mmap_size,
    "sys.mmap_size.arg_nonzero_einval" => mmap_size_arg,
    "sys.msr_index_list.e2big_writes_count" => msr_list_e2big,
    "sys.msr_index_list.exact_fit" => msr_list_exact,
    "sys.msr_index_list.huge_count_ok" => msr_list_huge,
    "sys.msr_index_list.contents" => msr_list_contents,
    "sys.msr_feature_list.e2big_then_ok" => msr_feature_list,
    "sys.supported_cpuid.e2big_nent0" => cpuid_e2big_0,
    "sys.supported_cpuid.e2big_nent1" => cpuid_e2big_1,
    "sys.supported_cpuid.nent256_ok" => cpuid_256,
    "sys.supported_cpuid.exact_fit" => cpuid_exact,
    "sys.supported_cpuid.nent_clamped" => cpuid_clamped,
    "sys.supported_cpuid.kvm_signature" => cpuid_signature,
    "sys.emulated_cpuid.ok_and_e2big" => emulated_cpuid,
    "sys.emulated_cpuid.nonzero_padding_einval" => emulated_cpuid_padding,
    "sys.unknown_ioctl_einval" => unknown_ioctl,
    "sys.create_vm.default" => create_vm_default,
    "sys.create_vm.types" => create_vm_types,
];

fn api_version(ctx: &Ctx) -> CaseResult {
    want_ret(ctx.kvm()?.api_version(), 12, "KVM_GET_API_VERSION")
}

fn api_version_arg(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    want_err(
        kvm.fd().ioctl_val(KVM_GET_API_VERSION, 1),
        Errno::EINVAL,
        "arg 1",
    )
}

fn cap_user_memory(ctx: &Ctx) -> CaseResult {
    check_eq!(cap(&ctx.kvm()?, Cap::UserMemory)?, 1, "KVM_CAP_USER_MEMORY");
    Ok(())
}

fn cap_nr_memslots(ctx: &Ctx) -> CaseResult {
    check_eq!(
        cap(&ctx.kvm()?, Cap::NrMemslots)?,
        32764,
        "KVM_CAP_NR_MEMSLOTS"
    );
    Ok(())
}

fn cap_vcpu_limits(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let nr = cap(&kvm, Cap::NrVcpus)?;
    let max = cap(&kvm, Cap::MaxVcpus)?;
    let max_id = cap(&kvm, Cap::MaxVcpuId)?;
    check!(
        max_id >= max && max >= nr && nr >= 1,
        "want MAX_VCPU_ID >= MAX_VCPUS >= NR_VCPUS >= 1, got {max_id}, {max}, {nr}"
    );
    Ok(())
}

fn cap_immediate_exit(ctx: &Ctx) -> CaseResult {
    check_eq!(
        cap(&ctx.kvm()?, Cap::ImmediateExit)?,
        1,
        "KVM_CAP_IMMEDIATE_EXIT"
    );
    Ok(())
}

fn cap_check_extension_vm(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    check_eq!(
        cap(&kvm, Cap::CheckExtensionVm)?,
        1,
        "KVM_CAP_CHECK_EXTENSION_VM"
    );
    check_eq!(
        vm.check_extension(Cap::UserMemory).ctx("VM fd")?,
        1,
        "USER_MEMORY on the VM fd"
    );
    check_eq!(
        vm.check_extension(Cap::NrMemslots).ctx("VM fd")?,
        32764,
        "NR_MEMSLOTS on VM fd"
    );
    Ok(())
}

fn cap_unknown(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    for c in [100_000u64, 0xffff_ffff, 1 << 32, u64::MAX] {
        want_ret(
            kvm.check_extension_raw(c),
            0,
            &format!("system fd cap {c:#x}"),
        )?;
        want_ret(
            vm.fd().ioctl_val(KVM_CHECK_EXTENSION, c),
            0,
            &format!("VM fd cap {c:#x}"),
        )?;
    }
    Ok(())
}

fn cap_vm_agrees(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    for c in [
        Cap::UserMemory,
        Cap::NrVcpus,
        Cap::MaxVcpus,
        Cap::MaxVcpuId,
        Cap::NrMemslots,
        Cap::ImmediateExit,
        Cap::ReadonlyMem,
        Cap::Ioeventfd,
        Cap::SetTssAddr,
        Cap::SetIdentityMapAddr,
        Cap::ManualDirtyLogProtect2,
        Cap::MultiAddressSpace,
        Cap::SyncRegs,
    ] {
        let s = kvm.check_extension(c).ctx(c.name())?;
        let v = vm.check_extension(c).ctx(c.name())?;
        check_eq!(v, s, "{} on the VM fd vs the system fd", c.name());
    }
    Ok(())
}

fn mmap_size(ctx: &Ctx) -> CaseResult {
    check_eq!(
        ctx.kvm()?.vcpu_mmap_size().ctx("GET_VCPU_MMAP_SIZE")?,
        12288,
        "mmap size"
    );
    Ok(())
}

fn mmap_size_arg(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    want_err(
        kvm.fd().ioctl_val(KVM_GET_VCPU_MMAP_SIZE, 1),
        Errno::EINVAL,
        "arg 1",
    )
}

/// The MSR index list and its length.
fn msr_list(ctx: &Ctx) -> Result<Vec<u32>, String> {
    let list = ctx.kvm()?.msr_index_list().ctx("GET_MSR_INDEX_LIST")?;
    check!(!list.is_empty(), "empty MSR index list");
    Ok(list)
}

fn msr_list_e2big(ctx: &Ctx) -> CaseResult {
    let n = msr_list(ctx)?.len() as u32;
    let kvm = ctx.kvm()?;
    for ask in [0, 1, n - 1] {
        let mut b = MsrListBuf::new(n as usize).ctx("buffer")?;
        b.fill(0xaa);
        b.set_count(ask);
        want_err(
            b.ioctl(kvm.fd(), KVM_GET_MSR_INDEX_LIST),
            Errno::E2BIG,
            &format!("nmsrs={ask}"),
        )?;
        check_eq!(b.count(), n, "nmsrs written back after E2BIG (asked {ask})");
        check_hex!(
            b.entry(0),
            0xaaaa_aaaa,
            "entry 0 after E2BIG (must be untouched)"
        );
    }
    Ok(())
}

fn msr_list_exact(ctx: &Ctx) -> CaseResult {
    let list = msr_list(ctx)?;
    let kvm = ctx.kvm()?;
    let mut b = MsrListBuf::with_count(list.len()).ctx("buffer")?;
    want_ret(b.ioctl(kvm.fd(), KVM_GET_MSR_INDEX_LIST), 0, "nmsrs = n")?;
    check_eq!(b.entries(), list, "list with an exact-size buffer");
    Ok(())
}

fn msr_list_huge(ctx: &Ctx) -> CaseResult {
    let n = msr_list(ctx)?.len() as u32;
    let kvm = ctx.kvm()?;
    let mut b = MsrListBuf::new(4096).ctx("buffer")?;
    b.set_count(u32::MAX);
    want_ret(
        b.ioctl(kvm.fd(), KVM_GET_MSR_INDEX_LIST),
        0,
        "nmsrs = 0xffffffff",
    )?;
    check_eq!(b.count(), n, "nmsrs written back");
    Ok(())
}

fn msr_list_contents(ctx: &Ctx) -> CaseResult {
    let list = msr_list(ctx)?;
    // SYSENTER_CS/ESP/EIP, STAR, LSTAR, CSTAR, SYSCALL_MASK, KERNEL_GS_BASE, TSC.
    for m in [
        0x174u32,
        0x175,
        0x176,
        0xc000_0081,
        0xc000_0082,
        0xc000_0084,
        0xc000_0102,
        0x10,
    ] {
        check!(
            list.contains(&m),
            "MSR {m:#x} missing from the index list {list:x?}"
        );
    }
    let mut s = list.clone();
    s.sort_unstable();
    s.dedup();
    check_eq!(s.len(), list.len(), "duplicates in the MSR index list");
    Ok(())
}

fn msr_feature_list(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    need(&kvm, Cap::GetMsrFeatures)?;
    let mut b = MsrListBuf::new(4096).ctx("buffer")?;
    b.fill(0xaa);
    b.set_count(0);
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_MSR_FEATURE_INDEX_LIST),
        Errno::E2BIG,
        "nmsrs=0",
    )?;
    let n = b.count();
    check!(
        (1..=4096).contains(&n),
        "nmsrs written back after E2BIG: {n}"
    );
    check_hex!(b.entry(0), 0xaaaa_aaaa, "entry 0 after E2BIG");
    b.set_count(n);
    want_ret(
        b.ioctl(kvm.fd(), KVM_GET_MSR_FEATURE_INDEX_LIST),
        0,
        "nmsrs = n",
    )?;
    check_eq!(b.count(), n, "nmsrs after success");
    Ok(())
}

/// `KVM_GET_SUPPORTED_CPUID` with nent 256; returns the entries.
pub fn supported(ctx: &Ctx) -> Result<Vec<kvmport_core::abi::x86::KvmCpuidEntry2>, String> {
    let b = ctx
        .kvm()?
        .supported_cpuid(256)
        .ctx("GET_SUPPORTED_CPUID nent=256")?;
    Ok(b.entries())
}

fn cpuid_e2big(ctx: &Ctx, nent: u32) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::new(1).ctx("buffer")?;
    b.set_count(nent);
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID),
        Errno::E2BIG,
        &format!("nent={nent}"),
    )?;
    check_eq!(
        b.count(),
        nent,
        "nent after E2BIG (must not be written back)"
    );
    Ok(())
}

fn cpuid_e2big_0(ctx: &Ctx) -> CaseResult {
    cpuid_e2big(ctx, 0)
}

fn cpuid_e2big_1(ctx: &Ctx) -> CaseResult {
    cpuid_e2big(ctx, 1)
}

fn cpuid_256(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::with_count(256).ctx("buffer")?;
    want_ret(b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID), 0, "nent=256")?;
    let n = b.count();
    check!((2..=256).contains(&n), "nent written back: {n}");
    let e = b.entries();
    check!(
        e.iter().any(|e| e.function == 0 && e.index == 0),
        "leaf 0 missing"
    );
    check!(
        e.iter().any(|e| e.function == 0x8000_0000),
        "leaf 0x80000000 missing"
    );
    let leaf0 = e
        .iter()
        .find(|e| e.function == 0)
        .map(|e| e.eax)
        .unwrap_or(0);
    check!(leaf0 >= 1, "leaf 0 eax (max basic leaf) {leaf0}");
    for x in &e {
        if x.function < 0x4000_0000 {
            check!(
                x.function <= leaf0,
                "leaf {:#x} beyond leaf 0's max {leaf0:#x}",
                x.function
            );
        }
        if x.flags & !(KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0 {
            return Err(format!(
                "leaf {:#x} has unexpected flags {:#x}",
                x.function, x.flags
            ));
        }
    }
    Ok(())
}

fn cpuid_exact(ctx: &Ctx) -> CaseResult {
    let n = supported(ctx)?.len() as u32;
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::with_count(n as usize).ctx("buffer")?;
    want_ret(b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID), 0, "nent = n")?;
    check_eq!(b.count(), n, "nent after exact fit");
    let mut b = CpuidBuf::with_count(n as usize - 1).ctx("buffer")?;
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID),
        Errno::E2BIG,
        "nent = n - 1",
    )?;
    check_eq!(b.count(), n - 1, "nent after E2BIG");
    Ok(())
}

fn cpuid_clamped(ctx: &Ctx) -> CaseResult {
    let n = supported(ctx)?.len() as u32;
    let kvm = ctx.kvm()?;
    for ask in [257usize, 10_000] {
        let mut b = CpuidBuf::with_count(ask).ctx("buffer")?;
        want_ret(
            b.ioctl(kvm.fd(), KVM_GET_SUPPORTED_CPUID),
            0,
            &format!("nent={ask}"),
        )?;
        check_eq!(b.count(), n, "nent written back (asked {ask})");
    }
    Ok(())
}

fn cpuid_signature(ctx: &Ctx) -> CaseResult {
    let e = supported(ctx)?;
    let l = e
        .iter()
        .find(|e| e.function == 0x4000_0000)
        .ok_or("leaf 0x40000000 missing")?;
    let mut sig = Vec::new();
    for r in [l.ebx, l.ecx, l.edx] {
        sig.extend_from_slice(&r.to_le_bytes());
    }
    check_eq!(
        sig.as_slice(),
        b"KVMKVMKVM\0\0\0",
        "leaf 0x40000000 signature"
    );
    check!(l.eax >= 0x4000_0001, "leaf 0x40000000 eax {:#x}", l.eax);
    check!(
        e.iter().any(|e| e.function == 0x4000_0001),
        "leaf 0x40000001 missing"
    );
    Ok(())
}

fn emulated_cpuid(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::with_count(256).ctx("buffer")?;
    want_ret(b.ioctl(kvm.fd(), KVM_GET_EMULATED_CPUID), 0, "nent=256")?;
    let n = b.count();
    check!((1..=256).contains(&n), "nent written back {n}");
    let mut b = CpuidBuf::new(1).ctx("buffer")?;
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_EMULATED_CPUID),
        Errno::E2BIG,
        "nent=0",
    )?;
    check_eq!(b.count(), 0, "nent after E2BIG");
    Ok(())
}

fn emulated_cpuid_padding(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut b = CpuidBuf::new(256).ctx("buffer")?;
    b.fill(0xaa);
    b.set_count(256);
    want_err(
        b.ioctl(kvm.fd(), KVM_GET_EMULATED_CPUID),
        Errno::EINVAL,
        "entries with 0xaa",
    )?;
    check_eq!(b.count(), 256, "nent after EINVAL");
    Ok(())
}

fn unknown_ioctl(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let fd = kvm.fd();
    want_err(fd.ioctl_val(io(0x0f), 0), Errno::EINVAL, "_IO(0xAE, 0x0f)")?;
    want_err(fd.ioctl_val(io(0xff), 0), Errno::EINVAL, "_IO(0xAE, 0xff)")?;
    want_err(
        fd.ioctl_bad_ptr(0x1201, BadPtr::Null),
        Errno::EINVAL,
        "_IO(0x12, 0x01)",
    )?;
    let iowr8 = ioc(IOC_READ | IOC_WRITE, 0xAE, 0x0f, 8);
    want_err(
        fd.ioctl_bad_ptr(iowr8, BadPtr::Null),
        Errno::EINVAL,
        "_IOWR(0xAE, 0x0f, 8)",
    )
}

fn create_vm_default(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let a = kvm.create_vm(0).ctx("first CREATE_VM")?;
    let b = kvm.create_vm(0).ctx("second CREATE_VM")?;
    check!(a.fd().raw() != b.fd().raw() && a.fd().raw() >= 0, "VM fds");
    // Both VMs are usable and independent: vCPU 0 in each.
    a.create_vcpu(0).ctx("vCPU 0 in VM a")?;
    b.create_vcpu(0).ctx("vCPU 0 in VM b")?;
    Ok(())
}

fn create_vm_types(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    // KVM_CAP_VM_TYPES is a bit mask of the accepted types; without it only type 0 exists.
    let mask = match cap(&kvm, Cap::VmTypes)? {
        0 => 1,
        m => m as u64,
    };
    check!(mask & 1 != 0, "VM_TYPES {mask:#x} lacks the default type");
    let types = [
        1u64,
        2,
        3,
        4,
        5,
        6,
        0x100,
        0x101,
        0x8000_0000,
        1 << 32,
        1 << 63,
        u64::MAX,
    ];
    for t in types {
        let ok = t < 64 && mask & (1 << t) != 0;
        let r = kvm.create_vm(t).map(drop);
        match (ok, r) {
            (true, Ok(())) | (false, Err(Errno::EINVAL)) => {}
            (true, Err(e)) => return Err(format!("type {t:#x} in VM_TYPES {mask:#x} failed: {e}")),
            (false, r) => return Err(format!("type {t:#x}: got {r:?}, want EINVAL")),
        }
    }
    Ok(())
}
