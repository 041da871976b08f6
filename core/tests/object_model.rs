//! The object model and the three dispatchers, driven the way user space drives them: through
//! ioctl commands on fds, with user pointers into a registered arena (anything else faults).

use kvmport_testkit as common;

use std::sync::atomic::Ordering;

use common::{CountingEventFd, Host, SYS_FD, Seen, Step};
use kvmport_core::Errno;
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::{
    KvmCpuid2, KvmCpuidEntry2, KvmFpu, KvmMsrEntry, KvmMsrList, KvmMsrs, KvmRegs, KvmSregs,
};
use kvmport_core::abi::*;
use kvmport_core::arch::{Completion, Exit};
use kvmport_core::memslot::{Gfn, Gpa, SlotChange, SlotId};
use kvmport_core::os::SigMask;
use std::mem::offset_of;

const WILD: u64 = 0xdead_0000;

fn region(slot: u32, flags: u32, gpa: u64, size: u64, uaddr: u64) -> KvmUserspaceMemoryRegion {
    KvmUserspaceMemoryRegion {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: uaddr,
    }
}

// ------------------------------------------------------------------ system fd

#[test]
fn system_fd_basics() {
    let mut h = Host::new();
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_API_VERSION, 0), Ok(12));
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_API_VERSION, 1), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_VCPU_MMAP_SIZE, 0), Ok(3 * 4096));
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_VCPU_MMAP_SIZE, 1),
        Err(Errno::EINVAL)
    );
    // Unknown commands on /dev/kvm, of the KVM type or not, are EINVAL (not ENOTTY).
    assert_eq!(h.ioctl(SYS_FD, io(0x0f), 0), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(SYS_FD, ioc(IOC_NONE, 0x12, 1, 0), 0),
        Err(Errno::EINVAL)
    );
    // vCPU and VM commands on the system fd.
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_REGS, 0), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(SYS_FD, KVM_SET_USER_MEMORY_REGION, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(SYS_FD, KVM_CREATE_VM, 1), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(SYS_FD, KVM_CREATE_VM, 1 << 63), Err(Errno::EINVAL));
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap();
    assert!(vm >= 10);
}

#[test]
fn capabilities() {
    let mut h = Host::new();
    let cap = |h: &mut Host, fd: i32, c: Cap| h.ioctl(fd, KVM_CHECK_EXTENSION, c.raw().into());
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    for fd in [SYS_FD, vm] {
        assert_eq!(cap(&mut h, fd, Cap::UserMemory), Ok(1));
        assert_eq!(cap(&mut h, fd, Cap::ImmediateExit), Ok(1));
        assert_eq!(cap(&mut h, fd, Cap::NrMemslots), Ok(32764));
        assert_eq!(cap(&mut h, fd, Cap::MaxVcpuId), Ok(4096));
        assert_eq!(cap(&mut h, fd, Cap::MaxVcpus), Ok(1024));
        // Recommended vCPUs are capped at the host's CPU count (2 here).
        assert_eq!(cap(&mut h, fd, Cap::NrVcpus), Ok(2));
        assert_eq!(cap(&mut h, fd, Cap::MultiAddressSpace), Ok(2));
        assert_eq!(cap(&mut h, fd, Cap::ReadonlyMem), Ok(1));
        assert_eq!(cap(&mut h, fd, Cap::ManualDirtyLogProtect2), Ok(3));
        assert_eq!(cap(&mut h, fd, Cap::CheckExtensionVm), Ok(1));
        assert_eq!(cap(&mut h, fd, Cap::EnableCap), Ok(1));
        // The backend's own answer wins.
        assert_eq!(cap(&mut h, fd, Cap::Hlt), Ok(1));
        // Capabilities the core does not implement, and unknown numbers, are 0.
        assert_eq!(cap(&mut h, fd, Cap::Irqchip), Ok(0));
        assert_eq!(h.ioctl(fd, KVM_CHECK_EXTENSION, 100_000), Ok(0));
        assert_eq!(h.ioctl(fd, KVM_CHECK_EXTENSION, u64::MAX), Ok(0));
        // The 64-bit argument is not truncated: 2^32 + 3 is not KVM_CAP_USER_MEMORY (3).
        assert_eq!(h.ioctl(fd, KVM_CHECK_EXTENSION, (1 << 32) | 3), Ok(0));
    }
}

#[test]
fn backend_enabled_on_every_cpu_for_the_systems_lifetime() {
    let h = Host::new();
    assert_eq!(h.boot_seen, [Seen::CpuEnable(0), Seen::CpuEnable(1)]);
    let state = h.state.clone();
    let sys = h.sys().try_clone().unwrap();
    assert!(
        state
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("backend scripted enabled"))
    );
    assert_eq!(h.shutdown(), 0);
    // Still referenced: nothing disabled yet.
    assert!(
        !state
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("disabled"))
    );
    let seen_before_drop = sys.arch().seen();
    assert_eq!(seen_before_drop, []);
    drop(sys);
    assert!(
        state
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("backend scripted disabled"))
    );
}

#[test]
fn msr_index_list_writes_the_count_back_on_e2big() {
    let mut h = Host::new();
    for cap in [0u32, 1, 2] {
        let p = h.alloc(4 + 4 * 8, 8);
        h.write(p, &cap.to_le_bytes());
        assert_eq!(
            h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, p),
            Err(Errno::E2BIG)
        );
        assert_eq!(h.get::<KvmMsrList>(p).nmsrs, 3);
        assert_eq!(h.get::<u32>(p + 4), 0, "entries untouched");
    }
    let p = h.alloc(4 + 4 * 8, 8);
    h.write(p, &8u32.to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, p), Ok(0));
    assert_eq!(h.get::<[u32; 4]>(p), [3, 0x174, 0x175, 0x176]);
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, WILD),
        Err(Errno::EFAULT)
    );
}

#[test]
fn supported_cpuid_keeps_the_count_on_e2big() {
    let mut h = Host::new();
    let size = 8 + 2 * std::mem::size_of::<KvmCpuidEntry2>();
    for cap in [0u32, 1] {
        let p = h.alloc(size, 8);
        h.write(p, &cap.to_le_bytes());
        assert_eq!(
            h.ioctl(SYS_FD, KVM_GET_SUPPORTED_CPUID, p),
            Err(Errno::E2BIG)
        );
        assert_eq!(h.get::<KvmCpuid2>(p).nent, cap);
    }
    let p = h.alloc(size, 8);
    h.write(p, &256u32.to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_SUPPORTED_CPUID, p), Ok(0));
    assert_eq!(h.get::<KvmCpuid2>(p).nent, 2);
    assert_eq!(h.get::<KvmCpuidEntry2>(p + 8 + 40).eax, 0x00a0_0f11);
}

// ------------------------------------------------------------------ VM fd

#[test]
fn vm_fd_unknown_and_wrong_kind_commands() {
    let mut h = Host::new();
    let (vm, _) = h.vm_and_vcpu();
    assert_eq!(h.ioctl(vm, io(0x0f), 0), Err(Errno::ENOTTY));
    assert_eq!(
        h.ioctl(vm, ioc(IOC_NONE, 0x12, 1, 0), 0),
        Err(Errno::ENOTTY)
    );
    assert_eq!(h.ioctl(vm, KVM_RUN, 0), Err(Errno::ENOTTY));
    assert_eq!(h.ioctl(vm, KVM_GET_API_VERSION, 0), Err(Errno::ENOTTY));
    assert_eq!(h.ioctl(vm, KVM_CREATE_VM, 0), Err(Errno::ENOTTY));
    assert_eq!(h.ioctl(vm, KVM_GET_REGS, 0), Err(Errno::ENOTTY));
    // Without an in-kernel interrupt controller: the argument is read first (EFAULT), then ENXIO.
    for cmd in [KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS] {
        assert_eq!(h.ioctl(vm, cmd, 0), Err(Errno::EFAULT));
        let p = h.put(&KvmIrqLevel { irq: 4, level: 1 });
        assert_eq!(h.ioctl(vm, cmd, p), Err(Errno::ENXIO));
    }
    // Backend commands reach the backend, with the generic facts it needs.
    assert_eq!(h.ioctl(vm, KVM_SET_TSS_ADDR, 0xfffb_d000), Ok(0));
    assert_eq!(
        h.ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, 0),
        Err(Errno::EINVAL)
    );
    let vm2 = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    assert_eq!(h.ioctl(vm2, KVM_SET_IDENTITY_MAP_ADDR, 0), Ok(0));
}

#[test]
fn vcpu_ids_and_limits() {
    let mut h = Host::new();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    assert!(h.ioctl(vm, KVM_CREATE_VCPU, 0).is_ok());
    assert!(h.ioctl(vm, KVM_CREATE_VCPU, 4095).is_ok());
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 0), Err(Errno::EEXIST));
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 4096), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 1 << 32), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, u64::MAX), Err(Errno::EINVAL));
    for id in 1..1023 {
        h.ioctl(vm, KVM_CREATE_VCPU, id).unwrap();
    }
    // 1024 created: the next one is refused even with a fresh id.
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 2000), Err(Errno::EINVAL));
}

#[test]
fn vcpu_creation_failure_leaves_no_trace() {
    let mut h = Host::new();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    h.state.fail_page_alloc.store(true, Ordering::SeqCst);
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 0), Err(Errno::ENOMEM));
    h.state.fail_page_alloc.store(false, Ordering::SeqCst);
    assert!(h.ioctl(vm, KVM_CREATE_VCPU, 0).is_ok());
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn memory_regions_through_the_ioctl() {
    let mut h = Host::new();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    let set = KVM_SET_USER_MEMORY_REGION;
    assert_eq!(h.ioctl(vm, set, 0), Err(Errno::EFAULT));
    assert_eq!(h.ioctl(vm, set, WILD), Err(Errno::EFAULT));
    let mib = 1 << 20;
    let ok = h.put(&region(0, 0, 0, 2 * mib, 0x7f00_0000_0000));
    assert_eq!(h.ioctl(vm, set, ok), Ok(0));
    h.arch().seen();
    let cases = [
        (
            region(1, 4, 0x100_0000, mib, 0x7f00_1000_0000),
            Errno::EINVAL,
        ),
        (
            region(1, 0, 0x100_0800, mib, 0x7f00_1000_0000),
            Errno::EINVAL,
        ),
        (
            region(1, 0, 0x100_0000, mib + 1, 0x7f00_1000_0000),
            Errno::EINVAL,
        ),
        (
            region(1, 0, 0x100_0000, mib, 0x7f00_1000_0001),
            Errno::EINVAL,
        ),
        (
            region(1, 0, 0x100_0000, mib, 0xffff_8000_0000_0000),
            Errno::EINVAL,
        ),
        (
            region(32764, 0, 0x100_0000, mib, 0x7f00_1000_0000),
            Errno::EINVAL,
        ),
        (
            region(2 << 16, 0, 0x100_0000, mib, 0x7f00_1000_0000),
            Errno::EINVAL,
        ),
        (
            region(1, 0, 0x10_0000, mib, 0x7f00_1000_0000),
            Errno::EEXIST,
        ),
        (region(9, 0, 0, 0, 0), Errno::EINVAL),
    ];
    for (r, e) in cases {
        let p = h.put(&r);
        assert_eq!(h.ioctl(vm, set, p), Err(e), "{r:?}");
    }
    // Nothing reached the backend.
    assert_eq!(h.arch().seen(), []);
    // Address space 1 at the same place is fine; the backend hears of it.
    let as1 = h.put(&region((1 << 16) | 3, 0, 0, 2 * mib, 0x7f00_2000_0000));
    assert_eq!(h.ioctl(vm, set, as1), Ok(0));
    let del = h.put(&region(0, 0, 0, 0, 0));
    assert_eq!(h.ioctl(vm, set, del), Ok(0));
    assert_eq!(
        h.arch().seen(),
        [
            Seen::Slots(SlotChange::Create {
                slot: SlotId { as_id: 1, id: 3 }
            }),
            Seen::Slots(SlotChange::Delete {
                slot: SlotId { as_id: 0, id: 0 },
                base: Gfn(0),
                npages: 512
            }),
        ]
    );
    // The v2 command takes the same rules.
    let r2 = KvmUserspaceMemoryRegion2 {
        slot: 4,
        guest_phys_addr: 0x4000_0000,
        memory_size: mib,
        userspace_addr: 0x7f00_3000_0000,
        ..Default::default()
    };
    let p = h.put(&r2);
    assert_eq!(h.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, p), Ok(0));
    let bad = h.put(&KvmUserspaceMemoryRegion2 {
        flags: KVM_MEM_GUEST_MEMFD,
        slot: 5,
        ..r2
    });
    assert_eq!(
        h.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, bad),
        Err(Errno::EINVAL)
    );
}

#[test]
fn enable_cap_on_the_vm() {
    let mut h = Host::new();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    let manual = Cap::ManualDirtyLogProtect2.raw();
    let mk = |cap, flags, a0| KvmEnableCap {
        cap,
        flags,
        args: [a0, 0, 0, 0],
        ..Default::default()
    };
    assert_eq!(h.ioctl(vm, KVM_ENABLE_CAP, 0), Err(Errno::EFAULT));
    // INITIALLY_SET (2) alone is refused: it needs MANUAL_PROTECT_ENABLE (1).
    for (c, e) in [
        (mk(100_000, 0, 0), Errno::EINVAL),
        (mk(manual, 1, 1), Errno::EINVAL),
        (mk(manual, 0, 4), Errno::EINVAL),
        (mk(manual, 0, 2), Errno::EINVAL),
    ] {
        let p = h.put(&c);
        assert_eq!(h.ioctl(vm, KVM_ENABLE_CAP, p), Err(e));
    }
    for a0 in [3, 1, 0] {
        let p = h.put(&mk(manual, 0, a0));
        assert_eq!(h.ioctl(vm, KVM_ENABLE_CAP, p), Ok(0), "args[0]={a0}");
    }
}

/// A VM with one logging slot of 100 pages at GPA 1 MiB backed by arena memory, and a vCPU.
fn logging_vm(h: &mut Host) -> (i32, i32, u64) {
    let (vm, vcpu) = h.vm_and_vcpu();
    let mem = h.alloc(100 * 4096, 4096);
    let r = h.put(&region(
        1,
        KVM_MEM_LOG_DIRTY_PAGES,
        0x10_0000,
        100 * 4096,
        mem,
    ));
    h.ioctl(vm, KVM_SET_USER_MEMORY_REGION, r).unwrap();
    h.arch().seen();
    (vm, vcpu, mem)
}

fn dirty_log(h: &mut Host, vm: i32, slot: u32) -> Result<[u64; 2], Errno> {
    let bitmap = h.alloc(16, 8);
    let log = h.put(&KvmDirtyLog {
        slot,
        dirty_bitmap: bitmap,
        ..Default::default()
    });
    h.ioctl(vm, KVM_GET_DIRTY_LOG, log)?;
    Ok([h.get::<u64>(bitmap), h.get::<u64>(bitmap + 8)])
}

#[test]
fn dirty_logging_of_guest_writes() {
    let mut h = Host::new();
    let (vm, vcpu, _) = logging_vm(&mut h);
    // Guest writes to pages 0 and 70 of the slot, reads page 5, then halts.
    h.arch().push(Step::Fault {
        gfn: 0x100,
        write: true,
    });
    h.arch().push(Step::Fault {
        gfn: 0x100 + 70,
        write: true,
    });
    h.arch().push(Step::Fault {
        gfn: 0x105,
        write: false,
    });
    h.arch().push(Step::Exit(Exit::Hlt));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
    let faults: Vec<_> = h.arch().seen();
    assert_eq!(
        faults[0],
        Seen::Fault {
            gfn: 0x100,
            ram: true,
            writable: true,
            log_dirty: true
        }
    );
    assert_eq!(dirty_log(&mut h, vm, 1), Ok([1, 1 << 6]));
    assert_eq!(
        h.arch().seen(),
        [Seen::Rearm {
            as_id: 0,
            first: 0x100,
            count: 100
        }]
    );
    // Get-and-clear: the second read is empty, and nothing needs re-arming.
    assert_eq!(dirty_log(&mut h, vm, 1), Ok([0, 0]));
    assert_eq!(h.arch().seen(), []);
    // Errors: out-of-range slot, missing slot, bad pointers.
    assert_eq!(dirty_log(&mut h, vm, 32764), Err(Errno::EINVAL));
    assert_eq!(dirty_log(&mut h, vm, 2 << 16), Err(Errno::EINVAL));
    assert_eq!(dirty_log(&mut h, vm, 7), Err(Errno::ENOENT));
    assert_eq!(h.ioctl(vm, KVM_GET_DIRTY_LOG, WILD), Err(Errno::EFAULT));
    let log = h.put(&KvmDirtyLog {
        slot: 1,
        dirty_bitmap: WILD,
        ..Default::default()
    });
    assert_eq!(h.ioctl(vm, KVM_GET_DIRTY_LOG, log), Err(Errno::EFAULT));
}

#[test]
fn manual_dirty_log_protect() {
    let mut h = Host::new();
    let (vm, vcpu, _) = logging_vm(&mut h);
    let cap = h.put(&KvmEnableCap {
        cap: Cap::ManualDirtyLogProtect2.raw(),
        args: [1, 0, 0, 0],
        ..Default::default()
    });
    h.ioctl(vm, KVM_ENABLE_CAP, cap).unwrap();
    h.arch().push(Step::Fault {
        gfn: 0x101,
        write: true,
    });
    h.arch().push(Step::Fault {
        gfn: 0x100 + 99,
        write: true,
    });
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    h.arch().seen();
    // GET no longer clears.
    assert_eq!(dirty_log(&mut h, vm, 1), Ok([2, 1 << 35]));
    assert_eq!(dirty_log(&mut h, vm, 1), Ok([2, 1 << 35]));
    let clear = |h: &mut Host, slot, first_page, num_pages, mask: [u64; 2]| {
        let bm = h.put(&mask);
        let c = h.put(&KvmClearDirtyLog {
            slot,
            num_pages,
            first_page,
            dirty_bitmap: bm,
        });
        h.ioctl(vm, KVM_CLEAR_DIRTY_LOG, c)
    };
    assert_eq!(clear(&mut h, 1, 1, 64, [!0, 0]), Err(Errno::EINVAL));
    assert_eq!(clear(&mut h, 1, 0, 101, [!0, !0]), Err(Errno::EINVAL));
    assert_eq!(clear(&mut h, 1, 0, 30, [!0, 0]), Err(Errno::EINVAL));
    assert_eq!(clear(&mut h, 1, 128, 0, [0, 0]), Err(Errno::EINVAL));
    assert_eq!(clear(&mut h, 7, 0, 64, [!0, 0]), Err(Errno::ENOENT));
    assert_eq!(clear(&mut h, 32764, 0, 64, [!0, 0]), Err(Errno::EINVAL));
    // Clearing the second word (pages 64..100) only; the bits past page 99 are not ours.
    assert_eq!(clear(&mut h, 1, 64, 36, [!0, 0]), Ok(0));
    assert_eq!(
        h.arch().seen(),
        [Seen::Rearm {
            as_id: 0,
            first: 0x140,
            count: 36
        }]
    );
    assert_eq!(dirty_log(&mut h, vm, 1), Ok([2, 0]));
}

#[test]
fn ioeventfd_consumes_matching_guest_writes() {
    let mut h = Host::new();
    let (vm, vcpu) = h.vm_and_vcpu();
    let efd = CountingEventFd(Default::default());
    h.add_eventfd(20, Some(efd.clone()));
    h.add_eventfd(21, None);
    let mk = |fd, flags, addr, len| KvmIoeventfd {
        addr,
        len,
        fd,
        flags,
        ..Default::default()
    };
    let pio = KVM_IOEVENTFD_FLAG_PIO;
    for (a, e) in [
        (mk(22, pio, 0x60, 1), Errno::EBADF),
        (mk(21, pio, 0x60, 1), Errno::EINVAL),
        (mk(20, pio, 0x60, 3), Errno::EINVAL),
    ] {
        let p = h.put(&a);
        assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, p), Err(e));
    }
    let p = h.put(&mk(20, pio, 0x60, 1));
    assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, p), Ok(0));
    assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, p), Err(Errno::EEXIST));
    let mmio = h.put(&mk(20, 0, 0xd000_0000, 4));
    assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, mmio), Ok(0));

    // OUT to 0x60 and a 4-byte MMIO write are consumed in the kernel; OUT to 0x61 is not.
    h.arch().push(Step::Out(
        vec![0xab],
        Exit::Io {
            port: 0x60,
            size: 1,
            out: true,
            count: 1,
        },
    ));
    h.arch().push(Step::Exit(Exit::Mmio {
        gpa: Gpa(0xd000_0000),
        len: 4,
        write: Some([1, 2, 3, 4, 0, 0, 0, 0]),
    }));
    h.arch().push(Step::Out(
        vec![0xcd],
        Exit::Io {
            port: 0x61,
            size: 1,
            out: true,
            count: 1,
        },
    ));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
    assert_eq!(
        h.run_get::<u32>(vcpu, offset_of!(KvmRun, exit_reason)),
        KVM_EXIT_IO
    );
    assert_eq!(efd.0.load(Ordering::SeqCst), 2);
    assert_eq!(
        h.arch().seen(),
        [
            Seen::Completion(Completion::Io {
                input: false,
                size: 1,
                count: 1
            }),
            Seen::Completion(Completion::Mmio {
                read: false,
                len: 4,
                data: [1, 2, 3, 4, 0, 0, 0, 0]
            }),
        ]
    );
    // Deassign needs the same match; a second deassign finds nothing.
    let de = h.put(&mk(20, pio | KVM_IOEVENTFD_FLAG_DEASSIGN, 0x60, 1));
    assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, de), Ok(0));
    assert_eq!(h.ioctl(vm, KVM_IOEVENTFD, de), Err(Errno::ENOENT));
}

#[test]
fn vm_used_from_another_process_is_eio() {
    let mut h = Host::new();
    let (vm, vcpu) = h.vm_and_vcpu();
    h.state.pid.store(101, Ordering::SeqCst);
    assert_eq!(h.ioctl(vm, KVM_CHECK_EXTENSION, 1), Err(Errno::EIO));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EIO));
    // The system fd has no owner.
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_API_VERSION, 0), Ok(12));
}

// ------------------------------------------------------------------ vCPU fd

#[test]
fn vcpu_fd_unknown_and_wrong_kind_commands() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    assert_eq!(h.ioctl(vcpu, io(0x0f), 0), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(vcpu, ioc(IOC_NONE, 0x12, 1, 0), 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(vcpu, KVM_CREATE_VCPU, 1), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(vcpu, KVM_CREATE_VM, 0), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(vcpu, KVM_SET_USER_MEMORY_REGION, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 1), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(99, KVM_RUN, 0), Err(Errno::EBADF));
}

#[test]
fn register_classes_round_trip_and_validate() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    let regs = KvmRegs {
        rax: 1,
        rbx: 2,
        rip: 0xfff0,
        rflags: 0,
        ..Default::default()
    };
    let p = h.put(&regs);
    assert_eq!(h.ioctl(vcpu, KVM_SET_REGS, p), Ok(0));
    let out = h.alloc(std::mem::size_of::<KvmRegs>(), 8);
    assert_eq!(h.ioctl(vcpu, KVM_GET_REGS, out), Ok(0));
    let got: KvmRegs = h.get(out);
    assert_eq!((got.rax, got.rbx, got.rip, got.rflags), (1, 2, 0xfff0, 2));
    for cmd in [
        KVM_GET_REGS,
        KVM_SET_REGS,
        KVM_GET_SREGS,
        KVM_SET_SREGS,
        KVM_GET_FPU,
        KVM_SET_FPU,
        KVM_GET_MP_STATE,
        KVM_SET_MP_STATE,
    ] {
        assert_eq!(h.ioctl(vcpu, cmd, 0), Err(Errno::EFAULT), "{cmd:#x}");
        assert_eq!(h.ioctl(vcpu, cmd, WILD), Err(Errno::EFAULT), "{cmd:#x}");
    }
    let mut sregs = KvmSregs {
        cr0: 1 << 31,
        ..Default::default()
    };
    let p = h.put(&sregs);
    assert_eq!(h.ioctl(vcpu, KVM_SET_SREGS, p), Err(Errno::EINVAL));
    sregs.cr0 |= 1;
    let p = h.put(&sregs);
    assert_eq!(h.ioctl(vcpu, KVM_SET_SREGS, p), Ok(0));
    let out = h.alloc(std::mem::size_of::<KvmSregs>(), 8);
    h.ioctl(vcpu, KVM_GET_SREGS, out).unwrap();
    assert_eq!(h.get::<KvmSregs>(out).cr0, (1 << 31) | 1);
    let fpu = KvmFpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    let p = h.put(&fpu);
    h.ioctl(vcpu, KVM_SET_FPU, p).unwrap();
    let out = h.alloc(std::mem::size_of::<KvmFpu>(), 8);
    h.ioctl(vcpu, KVM_GET_FPU, out).unwrap();
    assert_eq!(
        (h.get::<KvmFpu>(out).fcw, h.get::<KvmFpu>(out).mxcsr),
        (0x37f, 0x1f80)
    );
    let mp = h.alloc(4, 4);
    h.ioctl(vcpu, KVM_GET_MP_STATE, mp).unwrap();
    assert_eq!(h.get::<u32>(mp), KVM_MP_STATE_RUNNABLE);
    let halted = h.put(&KvmMpState {
        mp_state: KVM_MP_STATE_HALTED,
    });
    assert_eq!(h.ioctl(vcpu, KVM_SET_MP_STATE, halted), Err(Errno::EINVAL));
}

#[test]
fn cpuid_and_msr_lists_on_the_vcpu() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    // SET_CPUID2: 257 entries is E2BIG before any entry is read; 256 is accepted.
    let big = h.alloc(8, 8);
    h.write(big, &257u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_SET_CPUID2, big), Err(Errno::E2BIG));
    let entry = std::mem::size_of::<KvmCpuidEntry2>();
    let full = h.alloc(8 + 256 * entry, 8);
    h.write(full, &256u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_SET_CPUID2, full), Ok(0));
    let two = h.alloc(8 + 2 * entry, 8);
    h.write(two, &2u32.to_le_bytes());
    h.write(two + 8 + 8, &7u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_SET_CPUID2, two), Ok(0));
    // GET_CPUID2 with room for one of two: E2BIG and nent untouched.
    let out = h.alloc(8 + 2 * entry, 8);
    h.write(out, &1u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_GET_CPUID2, out), Err(Errno::E2BIG));
    assert_eq!(h.get::<KvmCpuid2>(out).nent, 1);
    h.write(out, &2u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_GET_CPUID2, out), Ok(0));
    assert_eq!(h.get::<KvmCpuidEntry2>(out + 8).flags, 7);

    // MSRs: 256 is E2BIG; the return value counts entries done up to the first unknown MSR.
    let msrs = |h: &mut Host, list: &[(u32, u64)]| {
        let p = h.alloc(8 + 16 * list.len().max(1), 8);
        h.write(p, &(list.len() as u32).to_le_bytes());
        for (i, (index, data)) in list.iter().enumerate() {
            let e = KvmMsrEntry {
                index: *index,
                reserved: 0,
                data: *data,
            };
            h.write(p + 8 + 16 * i as u64, zerocopy::IntoBytes::as_bytes(&e));
        }
        p
    };
    let p = msrs(&mut h, &[]);
    h.write(p, &256u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_SET_MSRS, p), Err(Errno::E2BIG));
    assert_eq!(h.ioctl(vcpu, KVM_GET_MSRS, p), Err(Errno::E2BIG));
    assert_eq!(h.get::<KvmMsrs>(p).nmsrs, 256);
    let p = msrs(
        &mut h,
        &[(0x174, 0x10), (0x175, 0x20), (0x1234_5678, 1), (0x176, 3)],
    );
    assert_eq!(h.ioctl(vcpu, KVM_SET_MSRS, p), Ok(2));
    let p = msrs(&mut h, &[(0x175, 0), (0x174, 0), (0x176, 0)]);
    assert_eq!(h.ioctl(vcpu, KVM_GET_MSRS, p), Ok(3));
    let got: [KvmMsrEntry; 3] = h.get(p + 8);
    assert_eq!([got[0].data, got[1].data, got[2].data], [0x20, 0x10, 0]);
    assert_eq!(h.ioctl(vcpu, KVM_GET_MSRS, 0), Err(Errno::EFAULT));
    // A header whose entries run past the end of user memory faults.
    let end = h.alloc_at_end(8 + entry);
    h.write(end, &2u32.to_le_bytes());
    assert_eq!(h.ioctl(vcpu, KVM_SET_CPUID2, end), Err(Errno::EFAULT));
}

#[test]
fn enable_cap_and_signal_mask_on_the_vcpu() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    let c = h.put(&KvmEnableCap {
        cap: 1,
        flags: 1,
        ..Default::default()
    });
    assert_eq!(h.ioctl(vcpu, KVM_ENABLE_CAP, c), Err(Errno::EINVAL));
    let c = h.put(&KvmEnableCap {
        cap: 100_000,
        ..Default::default()
    });
    assert_eq!(h.ioctl(vcpu, KVM_ENABLE_CAP, c), Err(Errno::EINVAL));

    let short = h.put(&[4u32, 0, 0]);
    assert_eq!(
        h.ioctl(vcpu, KVM_SET_SIGNAL_MASK, short),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(vcpu, KVM_SET_SIGNAL_MASK, WILD), Err(Errno::EFAULT));
    let mask = h.put(&[8u32, 0xaaaa_5555, 0x1234_5678]);
    assert_eq!(h.ioctl(vcpu, KVM_SET_SIGNAL_MASK, mask), Ok(0));
    // The mask is installed only while the guest runs, and the old one comes back.
    *h.state.sigmask.lock().unwrap() = Some(SigMask([9; 8]));
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(*h.state.sigmask.lock().unwrap(), Some(SigMask([9; 8])));
    assert_eq!(h.ioctl(vcpu, KVM_SET_SIGNAL_MASK, 0), Ok(0));
}

#[test]
fn vcpu_mapping_pages() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    let f = h.vcpu_file(vcpu);
    assert!(f.vcpu().mmap_page(0).is_some());
    assert!(f.vcpu().mmap_page(2).is_some());
    assert!(f.vcpu().mmap_page(3).is_none());
    assert!(f.vcpu().mmap_page(u64::MAX).is_none());
}

// ------------------------------------------------------------------ the run loop

#[test]
fn port_io_out_and_in_through_user_space() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    h.arch().push(Step::Out(
        vec![0x48, 0x69],
        Exit::Io {
            port: 0x3f8,
            size: 1,
            out: true,
            count: 2,
        },
    ));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
    assert_eq!(
        h.run_get::<u32>(vcpu, offset_of!(KvmRun, exit_reason)),
        KVM_EXIT_IO
    );
    let io: KvmRunExitIo = h.run_get(vcpu, offset_of!(KvmRun, exit));
    assert_eq!(
        (io.direction, io.size, io.port, io.count, io.data_offset),
        (KVM_EXIT_IO_OUT, 1, 0x3f8, 2, 4096)
    );
    assert_eq!(h.run_get::<[u8; 2]>(vcpu, 4096), [0x48, 0x69]);

    // An IN: user space puts the data in the PIO page; the next KVM_RUN completes it first.
    h.arch().push(Step::Exit(Exit::Io {
        port: 0x71,
        size: 2,
        out: false,
        count: 1,
    }));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    let io: KvmRunExitIo = h.run_get(vcpu, offset_of!(KvmRun, exit));
    assert_eq!((io.direction, io.size, io.port), (KVM_EXIT_IO_IN, 2, 0x71));
    h.run_set(vcpu, 4096, &0xbeefu16);
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(
        h.run_get::<u32>(vcpu, offset_of!(KvmRun, exit_reason)),
        KVM_EXIT_HLT
    );
    assert_eq!(
        h.arch().seen(),
        [
            Seen::Completion(Completion::Io {
                input: false,
                size: 1,
                count: 2
            }),
            Seen::Completion(Completion::Io {
                input: true,
                size: 2,
                count: 1
            }),
        ]
    );
    let out = h.alloc(std::mem::size_of::<KvmRegs>(), 8);
    h.ioctl(vcpu, KVM_GET_REGS, out).unwrap();
    assert_eq!(h.get::<KvmRegs>(out).rax, 0xbeef);
}

#[test]
fn mmio_read_and_write_through_user_space() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    h.arch().push(Step::Exit(Exit::Mmio {
        gpa: Gpa(0xfee0_0030),
        len: 4,
        write: None,
    }));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(
        h.run_get::<u32>(vcpu, offset_of!(KvmRun, exit_reason)),
        KVM_EXIT_MMIO
    );
    let m: KvmRunExitMmio = h.run_get(vcpu, offset_of!(KvmRun, exit));
    assert_eq!((m.phys_addr, m.len, m.is_write), (0xfee0_0030, 4, 0));
    let data_off = offset_of!(KvmRun, exit) + offset_of!(KvmRunExitMmio, data);
    h.run_set(vcpu, data_off, &[0x14u8, 0, 5, 0, 0xff, 0xff, 0xff, 0xff]);
    h.arch().push(Step::Exit(Exit::Mmio {
        gpa: Gpa(0x1000),
        len: 8,
        write: Some(*b"kvmport!"),
    }));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    let m: KvmRunExitMmio = h.run_get(vcpu, offset_of!(KvmRun, exit));
    assert_eq!(
        (m.phys_addr, m.len, m.is_write, &m.data),
        (0x1000, 8, 1, b"kvmport!")
    );
    let out = h.alloc(std::mem::size_of::<KvmRegs>(), 8);
    h.ioctl(vcpu, KVM_GET_REGS, out).unwrap();
    assert_eq!(h.get::<KvmRegs>(out).rax, 0x0005_0014);
}

#[test]
fn other_exits_reach_user_space() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    let reason = |h: &Host| h.run_get::<u32>(vcpu, offset_of!(KvmRun, exit_reason));
    for (exit, want) in [
        (Exit::Hlt, KVM_EXIT_HLT),
        (Exit::Shutdown, KVM_EXIT_SHUTDOWN),
        (Exit::IrqWindowOpen, KVM_EXIT_IRQ_WINDOW_OPEN),
        (Exit::FailEntry { reason: 0xbad }, KVM_EXIT_FAIL_ENTRY),
        (
            Exit::InternalError {
                suberror: KVM_INTERNAL_ERROR_EMULATION,
                exit_code: None,
            },
            KVM_EXIT_INTERNAL_ERROR,
        ),
        (
            Exit::InternalError {
                suberror: KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
                exit_code: Some(0x7b),
            },
            KVM_EXIT_INTERNAL_ERROR,
        ),
    ] {
        // Host interrupts in between are absorbed by the loop.
        h.arch().push(Step::Exit(Exit::Interrupted));
        h.arch().push(Step::Exit(exit));
        assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
        assert_eq!(reason(&h), want, "{exit:?}");
        if let Exit::FailEntry { .. } = exit {
            let f: KvmRunExitFailEntry = h.run_get(vcpu, offset_of!(KvmRun, exit));
            assert_eq!(f.hardware_entry_failure_reason, 0xbad);
        }
        if let Exit::InternalError {
            suberror,
            exit_code,
        } = exit
        {
            let e: KvmRunExitInternal = h.run_get(vcpu, offset_of!(KvmRun, exit));
            assert_eq!(e.suberror, suberror);
            match exit_code {
                // The exit code and the CPU, as KVM reports an unexpected exit.
                Some(code) => assert_eq!((e.ndata, e.data[0]), (2, code)),
                None => assert_eq!(e.ndata, 0),
            }
        }
    }
    // A backend error is the ioctl's error.
    h.arch().push(Step::Fail(Errno::EFAULT));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EFAULT));
}

#[test]
fn immediate_exit_signals_and_requests() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    let reason_off = offset_of!(KvmRun, exit_reason);
    // immediate_exit: EINTR without entering the guest.
    h.run_set(vcpu, offset_of!(KvmRun, immediate_exit), &1u8);
    h.arch().push(Step::Exit(Exit::Hlt));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EINTR));
    h.run_set(vcpu, offset_of!(KvmRun, immediate_exit), &0u8);
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
    // A signal arriving while the guest runs: EINTR with KVM_EXIT_INTR.
    h.arch().push(Step::Signal);
    h.arch().push(Step::Exit(Exit::Hlt));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EINTR));
    assert_eq!(h.run_get::<u32>(vcpu, reason_off), KVM_EXIT_INTR);
    h.state.signal_pending.store(false, Ordering::SeqCst);
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    // sync-regs bits the backend does not support.
    h.run_set(vcpu, offset_of!(KvmRun, kvm_valid_regs), &1u64);
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EINVAL));
    h.run_set(vcpu, offset_of!(KvmRun, kvm_valid_regs), &0u64);
    // request_interrupt_window reaches the backend.
    h.run_set(vcpu, offset_of!(KvmRun, request_interrupt_window), &1u8);
    h.arch().push(Step::Exit(Exit::IrqWindowOpen));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(h.arch().seen(), [Seen::IrqWindowRequested]);
}

#[test]
fn kicks_stop_the_next_entry() {
    let mut h = Host::new();
    let (_, vcpu) = h.vm_and_vcpu();
    h.arch().push(Step::Enter);
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(h.arch().seen(), [Seen::Entered]);
    assert_eq!(h.state.preempt_depth.load(Ordering::SeqCst), 0);
    // A kick while not in guest mode sends no IPI but makes the next entry bail out.
    let f = h.vcpu_file(vcpu);
    let os = h.sys().os();
    f.vcpu().kick(os);
    assert_eq!(h.state.kicks.load(Ordering::SeqCst), 0);
    h.arch().push(Step::Enter);
    h.arch().push(Step::Enter);
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(h.arch().seen(), [Seen::EnterRefused, Seen::Entered]);
}

#[test]
fn nested_faults_resolve_ram_readonly_and_mmio() {
    let mut h = Host::new();
    let (vm, vcpu) = h.vm_and_vcpu();
    let ram = h.alloc(4 * 4096, 4096);
    let rom = h.alloc(4096, 4096);
    let r = h.put(&region(0, 0, 0, 4 * 4096, ram));
    h.ioctl(vm, KVM_SET_USER_MEMORY_REGION, r).unwrap();
    let r = h.put(&region(1, KVM_MEM_READONLY, 0x10_0000, 4096, rom));
    h.ioctl(vm, KVM_SET_USER_MEMORY_REGION, r).unwrap();
    h.arch().seen();
    for (gfn, write) in [(2, true), (0x100, false), (0x100, true), (0x200, false)] {
        h.arch().push(Step::Fault { gfn, write });
    }
    h.arch().push(Step::Exit(Exit::Hlt));
    h.ioctl(vcpu, KVM_RUN, 0).unwrap();
    assert_eq!(
        h.arch().seen(),
        [
            Seen::Fault {
                gfn: 2,
                ram: true,
                writable: true,
                log_dirty: false
            },
            Seen::Fault {
                gfn: 0x100,
                ram: true,
                writable: false,
                log_dirty: false
            },
            Seen::Fault {
                gfn: 0x100,
                ram: false,
                writable: false,
                log_dirty: false
            },
            Seen::Fault {
                gfn: 0x200,
                ram: false,
                writable: false,
                log_dirty: false
            },
        ]
    );
    // The scripted backend dropped its held pages at once: nothing stays held.
    assert_eq!(h.state.held_pages.load(Ordering::SeqCst), 0);
    // A slot whose user memory is not mapped: the fault is EFAULT, not a crash.
    let r = h.put(&region(2, 0, 0x20_0000, 4096, 0x1000));
    h.ioctl(vm, KVM_SET_USER_MEMORY_REGION, r).unwrap();
    h.arch().push(Step::Fault {
        gfn: 0x200,
        write: false,
    });
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Err(Errno::EFAULT));
}

// ------------------------------------------------------------------ lifetimes

#[test]
fn vcpu_fd_outlives_vm_fd_and_everything_is_freed() {
    let mut h = Host::new();
    let (vm, vcpu) = h.vm_and_vcpu();
    let (vm2, _) = h.vm_and_vcpu();
    h.close(vm);
    // The vCPU still works with its VM fd closed (it holds a reference on the VM).
    let out = h.alloc(std::mem::size_of::<KvmRegs>(), 8);
    assert_eq!(h.ioctl(vcpu, KVM_GET_REGS, out), Ok(0));
    h.arch().push(Step::Exit(Exit::Hlt));
    assert_eq!(h.ioctl(vcpu, KVM_RUN, 0), Ok(0));
    // A closed fd is gone.
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 1), Err(Errno::EBADF));
    // Pages: 3 per vCPU, two vCPUs alive.
    assert_eq!(h.state.live_pages.load(Ordering::SeqCst), 6);
    h.close(vcpu);
    assert_eq!(h.state.live_pages.load(Ordering::SeqCst), 3);
    h.close(vm2);
    // vm2's vCPU fd still holds vm2.
    assert_eq!(h.state.live_pages.load(Ordering::SeqCst), 3);
    assert_eq!(h.shutdown(), 0);
}
