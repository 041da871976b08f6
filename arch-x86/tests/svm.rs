//! The SVM backend driven through the real core dispatchers (`kvmport_testkit::Host`), with a
//! fake processor: exact errnos and values for each rule, and the MSR sequence of per-CPU
//! enable/disable.

use std::cell::RefCell;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kvmport_arch_x86::cpuid::Leaf;
use kvmport_arch_x86::hw::{
    EFER_SVME, Hw, MSR_EFER, MSR_UCODE_REV, MSR_VM_CR, MSR_VM_HSAVE_PA, VM_CR_SVMDIS,
};
use kvmport_arch_x86::{Svm, state};
use kvmport_core::Errno;
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::*;
use kvmport_core::abi::{KvmInterrupt, KvmIrqLevel, KvmIrqchip, KvmMpState, KvmTranslation};
use kvmport_testkit::{Host, SYS_FD};
use zerocopy::{FromBytes, Immutable, IntoBytes};

// ------------------------------------------------------------------ the fake processor

/// How the next `FakeHw::new()` is configured (set before `Host::with_arch`).
#[derive(Clone, Copy)]
struct Cfg {
    svm: bool,
    npt: bool,
    svmdis: bool,
    efer: u64,
    hsave: u64,
    /// Enter "guests": `world_switch` runs the thread's [`WORLD`] script.
    world: bool,
}

const HOST_EFER: u64 = 0xd01;

impl Default for Cfg {
    fn default() -> Self {
        Cfg {
            svm: true,
            npt: true,
            svmdis: false,
            efer: HOST_EFER,
            hsave: 0,
            world: false,
        }
    }
}

thread_local! {
    static CFG: RefCell<Cfg> = RefCell::new(Cfg::default());
    /// The log of the last `FakeHw` made on this thread, readable after the backend is gone.
    static LAST_LOG: RefCell<Option<Arc<Mutex<Vec<Op>>>>> = const { RefCell::new(None) };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Rd(u32),
    Wr(u32, u64),
}

/// A fake AMD EPYC-like processor. MSR reads return each CPU's initial value (writes are only
/// logged), modelling CPUs that all start alike.
struct FakeHw {
    cfg: Cfg,
    log: Arc<Mutex<Vec<Op>>>,
    tsc: AtomicU64,
}

const UCODE: u64 = 0x0830_107a;

impl FakeHw {
    fn ops(&self) -> Vec<Op> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Hw for FakeHw {
    fn new() -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        LAST_LOG.with(|l| *l.borrow_mut() = Some(log.clone()));
        FakeHw {
            cfg: CFG.with(|c| *c.borrow()),
            log,
            tsc: AtomicU64::new(1_000_000),
        }
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> Leaf {
        let l = |eax, ebx, ecx, edx| Leaf { eax, ebx, ecx, edx };
        let (auth, enti, camd) = (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        match (leaf, subleaf) {
            (0, _) => l(0x10, auth, camd, enti),
            (1, _) => l(
                0x0083_0f10,
                0x0010_0800,
                0x7ed8_320b | 0x1c00_0000,
                0x178b_fbff,
            ),
            (7, 0) => l(0, 0x219c_91a9, 0x0040_0004, 0),
            (0xd, 0) => l(7, 0x340, 0x340, 0),
            (0xd, 1) => l(0xf, 0, 0, 0),
            (0x8000_0000, _) => l(0x8000_001f, auth, camd, enti),
            (0x8000_0001, _) => {
                let svm = if self.cfg.svm { 1 << 2 } else { 0 };
                l(0x0083_0f10, 0, 0x75c2_37fb | svm, 0x2fd3_fbff)
            }
            (0x8000_0008, _) => l(0x3030, 0, 0, 0),
            (0x8000_000a, _) => l(1, 0x8000, 0, u32::from(self.cfg.npt)),
            _ => Leaf::default(),
        }
    }

    unsafe fn rdmsr(&self, msr: u32) -> u64 {
        self.log.lock().unwrap().push(Op::Rd(msr));
        match msr {
            MSR_VM_CR if self.cfg.svmdis => VM_CR_SVMDIS,
            MSR_EFER => self.cfg.efer,
            MSR_VM_HSAVE_PA => self.cfg.hsave,
            MSR_UCODE_REV => UCODE,
            _ => 0,
        }
    }

    unsafe fn wrmsr(&self, msr: u32, value: u64) {
        self.log.lock().unwrap().push(Op::Wr(msr, value));
    }

    fn rdtsc(&self) -> u64 {
        self.tsc.load(Ordering::SeqCst)
    }

    fn can_world_switch(&self) -> bool {
        self.cfg.world
    }

    unsafe fn world_switch(&self, vmcb_pa: u64, _host_pa: u64, regs: *mut KvmRegs, _vmcb: *mut u8) {
        // The VMCB "physical address" is the test page's host address (testkit's HostPage).
        // SAFETY: the backend passes its own live VMCB page and the vCPU's registers.
        let (vmcb, regs) = unsafe {
            (
                std::slice::from_raw_parts_mut(vmcb_pa as *mut u8, 4096),
                &mut *regs,
            )
        };
        WORLD.with(|w| match w.borrow_mut().as_mut() {
            Some(f) => f(vmcb, regs),
            None => vmcb[0x70..0x78].copy_from_slice(&(-1i64).to_le_bytes()),
        });
    }
}

/// A fake guest: called for each `VMRUN` with the VMCB and the guest registers.
type World = Box<dyn FnMut(&mut [u8], &mut KvmRegs)>;

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

type H = Host<Svm<FakeHw>>;

fn host() -> H {
    CFG.with(|c| *c.borrow_mut() = Cfg::default());
    H::with_arch().unwrap()
}

fn host_with(cfg: Cfg) -> Result<H, Errno> {
    CFG.with(|c| *c.borrow_mut() = cfg);
    H::with_arch()
}

fn hw(h: &H) -> &FakeHw {
    h.sys().arch().hw()
}

fn vcpu() -> (H, i32) {
    let mut h = host();
    let (_vm, v) = h.vm_and_vcpu();
    (h, v)
}

/// Writes a flexible-array header and its entries to fresh user memory.
fn put_list<Hd: IntoBytes + Immutable, E: IntoBytes + Immutable>(
    h: &mut H,
    head: &Hd,
    entries: &[E],
) -> u64 {
    let addr = h.alloc(size_of::<Hd>() + std::mem::size_of_val(entries), 8);
    h.write(addr, head.as_bytes());
    h.write(addr + size_of::<Hd>() as u64, entries.as_bytes());
    addr
}

fn get_entries<Hd, E: FromBytes>(h: &H, addr: u64, n: usize) -> Vec<E> {
    (0..n)
        .map(|i| h.get::<E>(addr + (size_of::<Hd>() + i * size_of::<E>()) as u64))
        .collect()
}

fn get<T: FromBytes + IntoBytes + Immutable>(h: &mut H, fd: i32, cmd: u32) -> T {
    let p = h.put(&T::new_zeroed());
    assert_eq!(h.ioctl(fd, cmd, p), Ok(0), "get {cmd:#x}");
    h.get(p)
}

fn set<T: IntoBytes + Immutable>(h: &mut H, fd: i32, cmd: u32, v: &T) -> Result<i64, Errno> {
    let p = h.put(v);
    h.ioctl(fd, cmd, p)
}

fn cap(h: &mut H, c: Cap) -> i64 {
    h.ioctl(SYS_FD, KVM_CHECK_EXTENSION, u64::from(c.raw()))
        .unwrap()
}

fn supported(h: &mut H) -> Vec<KvmCpuidEntry2> {
    let p = put_list(
        h,
        &KvmCpuid2 {
            nent: 256,
            padding: 0,
        },
        &[KvmCpuidEntry2::default(); 256],
    );
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_SUPPORTED_CPUID, p), Ok(0));
    let n = h.get::<KvmCpuid2>(p).nent as usize;
    get_entries::<KvmCpuid2, _>(h, p, n)
}

fn set_cpuid(h: &mut H, v: i32, e: &[KvmCpuidEntry2]) -> Result<i64, Errno> {
    let p = put_list(
        h,
        &KvmCpuid2 {
            nent: e.len() as u32,
            padding: 0,
        },
        e,
    );
    h.ioctl(v, KVM_SET_CPUID2, p)
}

fn find(e: &[KvmCpuidEntry2], f: u32, i: u32) -> KvmCpuidEntry2 {
    *e.iter()
        .find(|x| x.function == f && x.index == i)
        .unwrap_or_else(|| panic!("leaf {f:#x}.{i}"))
}

fn msr(index: u32, data: u64) -> KvmMsrEntry {
    KvmMsrEntry {
        index,
        reserved: 0,
        data,
    }
}

fn msrs(h: &mut H, fd: i32, cmd: u32, e: &[KvmMsrEntry]) -> (Result<i64, Errno>, Vec<KvmMsrEntry>) {
    let p = put_list(
        h,
        &KvmMsrs {
            nmsrs: e.len() as u32,
            pad: 0,
        },
        e,
    );
    let r = h.ioctl(fd, cmd, p);
    (r, get_entries::<KvmMsrs, _>(h, p, e.len()))
}

// ------------------------------------------------------------------ probe, enable, disable

#[test]
fn enable_and_disable_msr_sequence() {
    let h = host();
    let pages: Vec<u64> = {
        let ops = hw(&h).ops();
        // Probe reads VM_CR; then each of the two CPUs is enabled.
        assert_eq!(ops.first(), Some(&Op::Rd(MSR_VM_CR)));
        let per_cpu = &ops[1..];
        assert_eq!(per_cpu.len(), 10, "{ops:x?}");
        per_cpu
            .chunks(5)
            .map(|c| {
                assert_eq!(
                    &c[..4],
                    &[
                        Op::Rd(MSR_VM_CR),
                        Op::Rd(MSR_EFER),
                        Op::Rd(MSR_VM_HSAVE_PA),
                        Op::Wr(MSR_EFER, HOST_EFER | EFER_SVME),
                    ]
                );
                match c[4] {
                    Op::Wr(MSR_VM_HSAVE_PA, pa) => pa,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    };
    assert!(pages.iter().all(|pa| pa % 4096 == 0 && *pa != 0));
    assert_ne!(pages[0], pages[1], "one host-save page per CPU");
    let state = h.state.clone();
    assert_eq!(h.shutdown(), 0, "host-save pages freed");
    // Unloading disables both CPUs: the save-area pointer goes back to 0 and SVME is cleared.
    let log = LAST_LOG.with(|l| l.borrow().clone()).unwrap();
    let ops = std::mem::take(&mut *log.lock().unwrap());
    let disable = [
        Op::Wr(MSR_VM_HSAVE_PA, 0),
        Op::Rd(MSR_EFER),
        Op::Wr(MSR_EFER, HOST_EFER),
    ];
    assert_eq!(ops, [disable, disable].concat());
    assert_eq!(state.live_pages.load(Ordering::SeqCst), 0);
}

#[test]
fn disable_restores_previous_state() {
    // Another hypervisor had SVM on with its own save area: both are put back.
    let mut h = host_with(Cfg {
        efer: HOST_EFER | EFER_SVME,
        hsave: 0x5000,
        ..Cfg::default()
    })
    .unwrap();
    hw(&h).ops();
    h.sys().cpu_offline(1);
    assert_eq!(hw(&h).ops(), [Op::Wr(MSR_VM_HSAVE_PA, 0x5000)]);
    // A second disable of the same CPU does nothing; enabling again works.
    h.sys().cpu_offline(1);
    assert_eq!(hw(&h).ops(), []);
    assert_eq!(h.sys().cpu_online(1), Ok(()));
    assert_eq!(hw(&h).ops().len(), 5);
    // Without a previous SVME, disable clears it.
    let h2 = host();
    hw(&h2).ops();
    h2.sys().cpu_offline(0);
    assert_eq!(
        hw(&h2).ops(),
        [
            Op::Wr(MSR_VM_HSAVE_PA, 0),
            Op::Rd(MSR_EFER),
            Op::Wr(MSR_EFER, HOST_EFER),
        ]
    );
    assert_eq!(h.sys().cpu_online(7), Err(Errno::EINVAL));
    let _ = h.ioctl(SYS_FD, KVM_GET_API_VERSION, 0);
}

#[test]
fn probe_refuses_without_svm() {
    let no = |cfg| host_with(cfg).err();
    assert_eq!(
        no(Cfg {
            svm: false,
            ..Cfg::default()
        }),
        Some(Errno::ENODEV)
    );
    assert_eq!(
        no(Cfg {
            npt: false,
            ..Cfg::default()
        }),
        Some(Errno::ENODEV)
    );
    assert_eq!(
        no(Cfg {
            svmdis: true,
            ..Cfg::default()
        }),
        Some(Errno::ENODEV)
    );
}

// ------------------------------------------------------------------ capabilities, system fd

#[test]
fn capabilities_and_limits() {
    let mut h = host();
    for (c, want) in [
        (Cap::MaxVcpus, 4096),
        (Cap::MaxVcpuId, 16384),
        (Cap::NrVcpus, 2),
        (Cap::NrMemslots, 32764),
        (Cap::ReadonlyMem, 1),
        (Cap::Irqchip, 1),
        (Cap::IrqInjectStatus, 1),
        (Cap::Hlt, 0),
        (Cap::SyncRegs, 7),
        (Cap::X86UserSpaceMsr, 1),
        (Cap::X86DisableExits, 6),
        (Cap::X86Smm, 0),
        (Cap::SetTssAddr, 1),
        (Cap::SetIdentityMapAddr, 1),
        (Cap::ExtCpuid, 1),
        (Cap::MpState, 1),
        (Cap::VcpuEvents, 1),
        (Cap::Debugregs, 1),
        (Cap::Xsave, 1),
        (Cap::Xcrs, 1),
        (Cap::Xsave2, 4096),
        (Cap::Sregs2, 1),
        (Cap::UserNmi, 1),
        (Cap::GetMsrFeatures, 1),
        (Cap::VmTypes, 1),
        (Cap::UserMemory, 1),
    ] {
        assert_eq!(cap(&mut h, c), want, "{}", c.name());
    }
    assert_eq!(h.ioctl(SYS_FD, KVM_CHECK_EXTENSION, 100_000), Ok(0));
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_VCPU_MMAP_SIZE, 0), Ok(12288));
    // MAXPHYADDR 48: the last frame below 2^48 is the highest.
    let l = h.sys().limits();
    assert_eq!(l.slots.max_gfn, (1 << 36) - 1);
    assert_eq!(l.slots.address_spaces, 1);
}

#[test]
fn msr_index_list_protocol() {
    let mut h = host();
    let p = put_list(&mut h, &KvmMsrList { nmsrs: 0 }, &[0xaaaa_aaaau32; 16]);
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, p),
        Err(Errno::E2BIG)
    );
    let n = h.get::<KvmMsrList>(p).nmsrs;
    assert_eq!(n, 11, "ten saved MSRs and TSC_AUX");
    assert_eq!(get_entries::<KvmMsrList, u32>(&h, p, 1), [0xaaaa_aaaa]);
    h.write(p, &n.to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, p), Ok(0));
    let list: Vec<u32> = get_entries::<KvmMsrList, u32>(&h, p, n as usize);
    for m in [
        0x174,
        0x175,
        0x176,
        0xc000_0081,
        0xc000_0082,
        0xc000_0084,
        0xc000_0102,
        0x10,
    ] {
        assert!(list.contains(&m), "{m:#x}");
    }
    h.write(p, &u32::MAX.to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, p), Ok(0));
    assert_eq!(h.get::<KvmMsrList>(p).nmsrs, n);
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_MSR_INDEX_LIST, 0),
        Err(Errno::EFAULT)
    );
}

#[test]
fn feature_msrs() {
    let mut h = host();
    let p = put_list(&mut h, &KvmMsrList { nmsrs: 0 }, &[0u32; 4]);
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_MSR_FEATURE_INDEX_LIST, p),
        Err(Errno::E2BIG)
    );
    assert_eq!(h.get::<KvmMsrList>(p).nmsrs, 1);
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_MSR_FEATURE_INDEX_LIST, p), Ok(0));
    assert_eq!(get_entries::<KvmMsrList, u32>(&h, p, 1), [MSR_UCODE_REV]);
    let (r, e) = msrs(&mut h, SYS_FD, KVM_GET_MSRS, &[msr(0x8b, 0), msr(0x174, 7)]);
    assert_eq!(r, Ok(1));
    assert_eq!((e[0].data, e[1].data), (UCODE, 7));
}

#[test]
fn supported_cpuid_contents() {
    let mut h = host();
    let e = supported(&mut h);
    let l0 = find(&e, 0, 0);
    assert_eq!((l0.eax, l0.ebx), (0xd, 0x6874_7541));
    let l1 = find(&e, 1, 0);
    assert_ne!(l1.ecx & (1 << 31), 0, "hypervisor bit");
    assert_ne!(
        l1.ecx & (1 << 24),
        0,
        "TSC-deadline timer (in-kernel LAPIC)"
    );
    assert_eq!(l1.ecx & (1 << 21), 0, "no x2APIC (not emulated)");
    assert_eq!(l1.ecx & (1 << 5), 0, "no VMX");
    assert_eq!(l1.ecx & (1 << 27), 0, "no OSXSAVE");
    assert_eq!(l1.ebx, 0x0800, "no APIC id or CPU count");
    let e1 = find(&e, 0x8000_0001, 0);
    assert_eq!(e1.ecx & (1 << 2), 0, "no SVM for the guest");
    assert_ne!(e1.edx & (1 << 29), 0, "long mode");
    let sig = find(&e, 0x4000_0000, 0);
    let bytes: Vec<u8> = [sig.ebx, sig.ecx, sig.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    assert_eq!(bytes, b"KVMKVMKVM\0\0\0");
    assert_eq!(sig.eax, 0x4000_0001);
    let d = find(&e, 0xd, 0);
    assert_eq!((d.eax, d.ebx, d.ecx, d.flags), (7, 832, 832, 1));
    assert_eq!(find(&e, 0x8000_0008, 0).eax, 0x3030);
    assert_eq!(find(&e, 0x8000_0000, 0).eax, 0x8000_0008);
    for x in &e {
        assert_eq!(x.flags & !1, 0);
        if x.function < 0x4000_0000 {
            assert!(x.function <= 0xd);
        }
    }
    // KeepCount protocol: too small is E2BIG with nent untouched.
    let n = e.len();
    let p = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: n as u32 - 1,
            padding: 0,
        },
        &vec![KvmCpuidEntry2::default(); n],
    );
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_SUPPORTED_CPUID, p),
        Err(Errno::E2BIG)
    );
    assert_eq!(h.get::<KvmCpuid2>(p).nent, n as u32 - 1);
    h.write(p, &(n as u32).to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_SUPPORTED_CPUID, p), Ok(0));
}

#[test]
fn emulated_cpuid() {
    let mut h = host();
    let zero = [KvmCpuidEntry2::default(); 4];
    let p = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: 0,
            padding: 0,
        },
        &zero,
    );
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_EMULATED_CPUID, p),
        Err(Errno::E2BIG)
    );
    h.write(p, &4u32.to_le_bytes());
    assert_eq!(h.ioctl(SYS_FD, KVM_GET_EMULATED_CPUID, p), Ok(0));
    assert_eq!(h.get::<KvmCpuid2>(p).nent, 1);
    let dirty = [KvmCpuidEntry2 {
        padding: [0xaaaa_aaaa; 3],
        ..Default::default()
    }; 4];
    let p = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: 4,
            padding: 0,
        },
        &dirty,
    );
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_EMULATED_CPUID, p),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.get::<KvmCpuid2>(p).nent, 4);
    assert_eq!(
        h.ioctl(SYS_FD, KVM_GET_EMULATED_CPUID, 0),
        Err(Errno::EFAULT)
    );
}

// ------------------------------------------------------------------ VM fd

#[test]
fn vm_commands() {
    let mut h = host();
    assert_eq!(h.ioctl(SYS_FD, KVM_CREATE_VM, 1), Err(Errno::EINVAL));
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    assert_eq!(h.ioctl(vm, KVM_SET_TSS_ADDR, 0xfffb_d000), Ok(0));
    assert_eq!(h.ioctl(vm, KVM_SET_TSS_ADDR, 0xffff_d000), Ok(0));
    assert_eq!(
        h.ioctl(vm, KVM_SET_TSS_ADDR, 0xffff_e000),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(vm, KVM_SET_TSS_ADDR, 1 << 32), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, 0),
        Err(Errno::EFAULT)
    );
    let p = h.put(&0xfffb_c000u64);
    assert_eq!(h.ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, p), Ok(0));
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 0), Ok(11));
    assert_eq!(
        h.ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, p),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        h.ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.ioctl(vm, KVM_SET_TSS_ADDR, 0xfffb_d000), Ok(0));
    assert_eq!(h.ioctl(vm, io(0xff), 0), Err(Errno::ENOTTY));
    // No in-kernel irqchip: the argument is read first.
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE, 0), Err(Errno::EFAULT));
    let l = h.put(&KvmIrqLevel { irq: 4, level: 1 });
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE, l), Err(Errno::ENXIO));
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE_STATUS, l), Err(Errno::ENXIO));
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, 0), Err(Errno::EFAULT));
    let c = h.alloc(520, 8);
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, c), Err(Errno::ENXIO));
}

/// The irqchip commands through the core's dispatch, with the errnos measured on Linux.
#[test]
fn irqchip_commands() {
    let mut h = host();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    let c = h.put(&KvmIrqchip::default());
    assert_eq!(h.ioctl(vm, KVM_SET_IRQCHIP, c), Err(Errno::ENXIO));
    assert_eq!(h.ioctl(vm, KVM_CREATE_IRQCHIP, 0), Ok(0));
    assert_eq!(h.ioctl(vm, KVM_CREATE_IRQCHIP, 0), Err(Errno::EEXIST));
    // Reset state: the IOAPIC at 0xfec00000 with every entry masked; the PICs' ELCR masks.
    let mut chip = KvmIrqchip {
        chip_id: KVM_IRQCHIP_IOAPIC,
        ..Default::default()
    };
    let p = h.put(&chip);
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, p), Ok(0));
    let io = h.get::<KvmIrqchip>(p).chip.ioapic();
    assert_eq!(io.base_address, 0xfec0_0000);
    assert!(io.redirtbl.iter().all(|e| *e == 1 << 16));
    chip.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    let p = h.put(&chip);
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, p), Ok(0));
    assert_eq!(h.get::<KvmIrqchip>(p).chip.pic().elcr_mask, 0xde);
    chip.chip_id = 3;
    let p = h.put(&chip);
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, p), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(vm, KVM_SET_IRQCHIP, p), Err(Errno::EINVAL));
    // IRQ_LINE_STATUS: PIC unmasked (1) + IOAPIC masked (-1) = 1; lowering: 1 + 1.
    let l = h.put(&KvmIrqLevel { irq: 0, level: 1 });
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE_STATUS, l), Ok(0));
    assert_eq!(h.get::<KvmIrqLevel>(l).status(), 1);
    let l = h.put(&KvmIrqLevel { irq: 0, level: 0 });
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE_STATUS, l), Ok(0));
    assert_eq!(h.get::<KvmIrqLevel>(l).status(), 2);
    let l = h.put(&KvmIrqLevel { irq: 24, level: 1 });
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE_STATUS, l), Ok(0));
    assert_eq!(h.get::<KvmIrqLevel>(l).status(), -1);
    // Plain IRQ_LINE leaves the argument alone.
    let l = h.put(&KvmIrqLevel { irq: 5, level: 1 });
    assert_eq!(h.ioctl(vm, KVM_IRQ_LINE, l), Ok(0));
    assert_eq!(h.get::<KvmIrqLevel>(l), KvmIrqLevel { irq: 5, level: 1 });
    // vCPUs: the BSP runnable, APs uninitialized; LAPIC state; KVM_INTERRUPT refused.
    let v0 = h.ioctl(vm, KVM_CREATE_VCPU, 0).unwrap() as i32;
    let v1 = h.ioctl(vm, KVM_CREATE_VCPU, 1).unwrap() as i32;
    assert_eq!(h.ioctl(vm, KVM_CREATE_IRQCHIP, 0), Err(Errno::EEXIST));
    assert_eq!(get::<KvmMpState>(&mut h, v0, KVM_GET_MP_STATE).mp_state, 0);
    assert_eq!(get::<KvmMpState>(&mut h, v1, KVM_GET_MP_STATE).mp_state, 1);
    assert_eq!(
        set(&mut h, v1, KVM_SET_MP_STATE, &KvmMpState { mp_state: 5 }),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        set(&mut h, v1, KVM_SET_MP_STATE, &KvmMpState { mp_state: 0 }),
        Ok(0)
    );
    let lapic = get::<KvmLapicState>(&mut h, v1, KVM_GET_LAPIC);
    let word = |s: &KvmLapicState, off: usize| {
        u32::from_le_bytes(s.regs[off..off + 4].try_into().unwrap())
    };
    assert_eq!(word(&lapic, 0x20), 0x0100_0000);
    assert_eq!(word(&lapic, 0x30), 0x0005_0014);
    assert_eq!(word(&lapic, 0xf0), 0xff);
    let mut l2 = lapic;
    l2.regs[0x80] = 0x20;
    assert_eq!(set(&mut h, v1, KVM_SET_LAPIC, &l2), Ok(0));
    assert_eq!(
        get::<KvmLapicState>(&mut h, v1, KVM_GET_LAPIC).regs[0x80],
        0x20
    );
    assert_eq!(
        set(&mut h, v0, KVM_INTERRUPT, &KvmInterrupt { irq: 32 }),
        Err(Errno::ENXIO)
    );
}

#[test]
fn irqchip_after_vcpu_and_lapic_without_irqchip() {
    let mut h = host();
    let (vm, v) = h.vm_and_vcpu();
    assert_eq!(h.ioctl(vm, KVM_CREATE_IRQCHIP, 0), Err(Errno::EINVAL));
    let p = h.put(&<KvmLapicState as zerocopy::FromZeros>::new_zeroed());
    assert_eq!(h.ioctl(v, KVM_GET_LAPIC, p), Err(Errno::EINVAL));
    assert_eq!(h.ioctl(v, KVM_SET_LAPIC, p), Err(Errno::EINVAL));
    assert_eq!(
        set(&mut h, v, KVM_SET_MP_STATE, &KvmMpState { mp_state: 1 }),
        Err(Errno::EINVAL)
    );
}

#[test]
fn translate() {
    let (mut h, v) = vcpu();
    assert_eq!(h.ioctl(v, KVM_TRANSLATE, 0), Err(Errno::EFAULT));
    let t = KvmTranslation {
        linear_address: 0x12_3456,
        ..Default::default()
    };
    let p = h.put(&t);
    assert_eq!(h.ioctl(v, KVM_TRANSLATE, p), Ok(0));
    let g: KvmTranslation = h.get(p);
    assert_eq!(
        (g.physical_address, g.valid, g.writeable),
        (0x12_3456, 1, 1)
    );
    let mut s: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    s.cr0 = 0x8000_0011;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &s), Ok(0));
    assert_eq!(h.ioctl(v, KVM_TRANSLATE, p), Err(Errno::EINVAL));
}

#[test]
fn run_is_not_implemented_yet() {
    let (mut h, v) = vcpu();
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Err(Errno::ENOSYS));
}

// ------------------------------------------------------------------ irqchip in the run loop

/// VMCB offsets the fake guests use (AMD APM vol. 2, appendix B).
mod vmcb {
    pub const MISC1: usize = 0x00c;
    pub const VINTR: usize = 0x060;
    pub const EXITCODE: usize = 0x070;
    pub const EXITINFO1: usize = 0x078;
    pub const EXITINFO2: usize = 0x080;
    pub const EVENTINJ: usize = 0x0a8;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RAX: usize = 0x5f8;
}

fn vmcb_u64(v: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(v[off..off + 8].try_into().unwrap())
}

fn vmcb_set(v: &mut [u8], off: usize, x: u64) {
    v[off..off + 8].copy_from_slice(&x.to_le_bytes());
}

/// One step of a fake guest: sets the exit of one `VMRUN` in its VMCB.
type Step = Box<dyn FnMut(&mut [u8])>;

/// What one fake `VMRUN` saw.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    eventinj: u64,
    vintr: u64,
    misc1: u64,
    rip: u64,
    rax: u64,
}

/// Runs the fake guest: step `i` of `steps` gets the VMCB of the `i`-th `VMRUN` and sets its
/// exit; every entry is recorded.
fn script(steps: Vec<Step>) -> Arc<Mutex<Vec<Entry>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let mut steps = steps.into_iter();
    WORLD.with(|w| {
        *w.borrow_mut() = Some(Box::new(move |v: &mut [u8], _regs: &mut KvmRegs| {
            seen.lock().unwrap().push(Entry {
                eventinj: vmcb_u64(v, vmcb::EVENTINJ),
                vintr: vmcb_u64(v, vmcb::VINTR),
                misc1: vmcb_u64(v, vmcb::MISC1) & 0xffff_ffff,
                rip: vmcb_u64(v, vmcb::RIP),
                rax: vmcb_u64(v, vmcb::RAX),
            });
            match steps.next() {
                Some(mut f) => f(v),
                None => vmcb_set(v, vmcb::EXITCODE, u64::MAX),
            }
        }))
    });
    log
}

/// An `OUT`/`IN` of one byte to `port` at the current RIP (a two-byte instruction).
fn io_exit(port: u16, input: bool) -> Step {
    Box::new(move |v: &mut [u8]| {
        let rip = vmcb_u64(v, vmcb::RIP);
        vmcb_set(v, vmcb::EXITCODE, 0x7b);
        vmcb_set(
            v,
            vmcb::EXITINFO1,
            (u64::from(port) << 16) | (1 << 4) | u64::from(input),
        );
        vmcb_set(v, vmcb::EXITINFO2, rip + 2);
    })
}

/// A world-switching host with an irqchip VM and vCPU 0 at RIP 0x100 with `rflags`.
fn irq_host(rflags: u64) -> (H, i32, i32) {
    kvmport_testkit::contiguous_pages();
    let mut h = host_with(Cfg {
        world: true,
        ..Cfg::default()
    })
    .unwrap();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    assert_eq!(h.ioctl(vm, KVM_CREATE_IRQCHIP, 0), Ok(0));
    let v = h.ioctl(vm, KVM_CREATE_VCPU, 0).unwrap() as i32;
    let mut r = get::<KvmRegs>(&mut h, v, KVM_GET_REGS);
    r.rip = 0x100;
    r.rflags = rflags;
    assert_eq!(set(&mut h, v, KVM_SET_REGS, &r), Ok(0));
    // The master PIC programmed for vectors 0x20-0x27, nothing masked.
    let pic = KvmPicState {
        irq_base: 0x20,
        elcr_mask: 0xf8,
        ..Default::default()
    };
    let c = KvmIrqchip {
        chip_id: KVM_IRQCHIP_PIC_MASTER,
        pad: 0,
        chip: kvmport_core::abi::KvmIrqchipChip::from_value(&pic).unwrap(),
    };
    assert_eq!(set(&mut h, vm, KVM_SET_IRQCHIP, &c), Ok(0));
    (h, vm, v)
}

fn irq_line(h: &mut H, vm: i32, irq: u32, level: u32) {
    assert_eq!(set(h, vm, KVM_IRQ_LINE, &KvmIrqLevel { irq, level }), Ok(0));
}

fn pic_master(h: &mut H, vm: i32) -> KvmPicState {
    let p = h.put(&KvmIrqchip::default());
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, p), Ok(0));
    h.get::<KvmIrqchip>(p).chip.pic()
}

#[test]
fn irqchip_pic_interrupt_is_injected() {
    let (mut h, vm, v) = irq_host(0x202);
    irq_line(&mut h, vm, 3, 1);
    let log = script(vec![io_exit(0x10, false)]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    assert_eq!(
        h.run_get::<u32>(
            v,
            std::mem::offset_of!(kvmport_core::abi::KvmRun, exit_reason)
        ),
        2
    );
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 1);
    // EVENTINJ: valid, external interrupt, vector 0x23.
    assert_eq!(e[0].eventinj, 0x8000_0023);
    let m = pic_master(&mut h, vm);
    assert_eq!((m.isr, m.irr), (1 << 3, 0), "acknowledged in the model");
}

#[test]
fn irqchip_window_while_interrupts_are_off() {
    let (mut h, vm, v) = irq_host(0x2);
    irq_line(&mut h, vm, 4, 1);
    let sti: Step = Box::new(|v: &mut [u8]| {
        // The guest executes STI and the window opens.
        vmcb_set(v, vmcb::RFLAGS, 0x202);
        vmcb_set(v, vmcb::EXITCODE, 0x64);
    });
    let log = script(vec![sti, io_exit(0x10, false)]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].eventinj, 0, "IF clear: nothing injected");
    assert_ne!(e[0].vintr & (1 << 8), 0, "V_IRQ for the window");
    assert_ne!(e[0].misc1 & (1 << 4), 0, "VINTR intercepted");
    assert_eq!(e[1].eventinj, 0x8000_0024);
    assert_eq!(e[1].vintr & (1 << 8), 0, "no window any more");
}

#[test]
fn irqchip_pic_ports_are_handled_in_the_kernel() {
    let (mut h, vm, v) = irq_host(0x2);
    let mut r = get::<KvmRegs>(&mut h, v, KVM_GET_REGS);
    r.rax = 0xfb;
    assert_eq!(set(&mut h, v, KVM_SET_REGS, &r), Ok(0));
    // OUT 0x21 (IMR), IN 0x21, then OUT 0x10 for user space.
    let log = script(vec![
        io_exit(0x21, false),
        io_exit(0x21, true),
        io_exit(0x10, false),
    ]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 3, "the PIC accesses did not go to user space");
    assert_eq!(pic_master(&mut h, vm).imr, 0xfb);
    assert_eq!(e[2].rax & 0xff, 0xfb, "IN read the IMR back");
    assert_eq!(e[2].rip, 0x104);
}

#[test]
fn irqchip_hlt_stays_in_the_kernel_until_the_timer() {
    let (mut h, vm, v) = irq_host(0x202);
    let _ = vm;
    // LAPIC: software-enabled, one-shot timer (divide by 1) with vector 0x50, 1000 ns.
    let mut l = get::<KvmLapicState>(&mut h, v, KVM_GET_LAPIC);
    let mut put = |off: usize, x: u32| l.regs[off..off + 4].copy_from_slice(&x.to_le_bytes());
    put(0xf0, 0x1ff);
    put(0x3e0, 0xb);
    put(0x320, 0x50);
    put(0x380, 1000);
    assert_eq!(set(&mut h, v, KVM_SET_LAPIC, &l), Ok(0));
    let state = h.state.clone();
    let hlt: Step = Box::new(move |v: &mut [u8]| {
        // Time passes while the guest halts.
        state.time_ns.store(5000, Ordering::SeqCst);
        vmcb_set(v, vmcb::EXITCODE, 0x78);
    });
    let log = script(vec![hlt, io_exit(0x10, false)]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 2, "HLT did not exit to user space");
    assert_eq!(e[0].eventinj, 0);
    assert_eq!(
        e[1].eventinj, 0x8000_0050,
        "the timer interrupt after the HLT"
    );
    assert_eq!(e[1].rip, 0x101, "RIP past the HLT");
    assert_eq!(get::<KvmMpState>(&mut h, v, KVM_GET_MP_STATE).mp_state, 0);
}

// ------------------------------------------------------------------ registers

#[test]
fn regs() {
    let (mut h, v) = vcpu();
    let r: KvmRegs = get(&mut h, v, KVM_GET_REGS);
    assert_eq!((r.rip, r.rflags, r.rdx, r.rax), (0xfff0, 2, 0x600, 0));
    for (set_to, want) in [(0u64, 2u64), (0x200, 0x202), (0x1000, 0x1002), (!0, !0)] {
        let r = KvmRegs {
            rflags: set_to,
            rip: 0x1234,
            ..r
        };
        assert_eq!(set(&mut h, v, KVM_SET_REGS, &r), Ok(0));
        let g: KvmRegs = get(&mut h, v, KVM_GET_REGS);
        assert_eq!((g.rflags, g.rip), (want, 0x1234));
    }
}

fn long_sregs(init: &KvmSregs) -> KvmSregs {
    let code = KvmSegment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 8,
        r#type: 0xb,
        present: 1,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = KvmSegment {
        selector: 0x10,
        r#type: 3,
        l: 0,
        db: 1,
        ..code
    };
    KvmSregs {
        cs: code,
        ds: data,
        es: data,
        ss: data,
        fs: data,
        gs: data,
        cr0: 0x8000_0011,
        cr3: 0x1000,
        cr4: 0x20,
        efer: 0x500,
        ..*init
    }
}

fn reject(h: &mut H, v: i32, s: &KvmSregs, what: &str) {
    let before: KvmSregs = get(h, v, KVM_GET_SREGS);
    assert_eq!(set(h, v, KVM_SET_SREGS, s), Err(Errno::EINVAL), "{what}");
    let after: KvmSregs = get(h, v, KVM_GET_SREGS);
    assert_eq!(after, before, "{what}: state changed");
}

#[test]
fn sregs_initial_and_roundtrip() {
    let (mut h, v) = vcpu();
    let s: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x6000_0010, 0, 0, 0));
    assert_eq!(s.apic_base, 0xfee0_0900);
    assert_eq!(
        (s.cs.base, s.cs.selector, s.cs.limit),
        (0xffff_0000, 0xf000, 0xffff)
    );
    assert_eq!(
        (s.ds.base, s.ds.limit, s.ds.r#type, s.ds.present),
        (0, 0xffff, 3, 1)
    );
    assert_eq!((s.gdt.limit, s.idt.limit), (0xffff, 0xffff));
    let l = long_sregs(&s);
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &l), Ok(0));
    let g: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    assert_eq!(g, l);
    // 32-bit paging without PAE is fine.
    let mut p = s;
    p.cr0 = 0x8000_0011;
    p.cr3 = 0x20000;
    p.cs.l = 0;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &p), Ok(0));
    // EFER bits are not checked here (only by KVM_SET_MSRS).
    p.efer = 1 << 20 | 1 << 12;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &p), Ok(0));
    let g: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    assert_eq!(g.efer, 1 << 20 | 1 << 12);
    // A TPR with reserved bits is ignored.
    p.cr8 = 0x1f;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &p), Ok(0));
    assert_eq!(get::<KvmSregs>(&mut h, v, KVM_GET_SREGS).cr8, 0);
    p.cr8 = 5;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &p), Ok(0));
    assert_eq!(get::<KvmSregs>(&mut h, v, KVM_GET_SREGS).cr8, 5);
}

#[test]
fn sregs_rejects_inconsistent_state() {
    let (mut h, v) = vcpu();
    let init: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    let long = long_sregs(&init);
    let mut cs_l = init;
    cs_l.cs.l = 1;
    let cases = [
        (
            "PG without PE",
            KvmSregs {
                cr0: 0x8000_0000 | 0x6000_0010 & !1,
                ..init
            },
        ),
        (
            "cr0 bit 32",
            KvmSregs {
                cr0: init.cr0 | 1 << 32,
                ..init
            },
        ),
        (
            "cr0 bit 40",
            KvmSregs {
                cr0: init.cr0 | 1 << 40,
                ..init
            },
        ),
        (
            "NW without CD",
            KvmSregs {
                cr0: 0x2000_0010,
                ..init
            },
        ),
        ("LME|LMA, PG, no PAE", KvmSregs { cr4: 0, ..long }),
        (
            "LME without LMA",
            KvmSregs {
                efer: 0x100,
                ..long
            },
        ),
        ("LMA without PG", KvmSregs { cr0: 0x11, ..long }),
        (
            "LMA only",
            KvmSregs {
                cr0: 0x11,
                efer: 0x400,
                ..long
            },
        ),
        (
            "cr3 beyond MAXPHYADDR",
            KvmSregs {
                cr3: 1 << 52,
                ..long
            },
        ),
        (
            "cr3 beyond the default 36 bits",
            KvmSregs {
                cr3: 1 << 36,
                ..long
            },
        ),
        ("cs.l outside long mode", cs_l),
        (
            "cr4 bit 63",
            KvmSregs {
                cr4: 1 << 63,
                ..init
            },
        ),
        (
            "cr4 bit 32",
            KvmSregs {
                cr4: 1 << 32,
                ..init
            },
        ),
        (
            "cr4 VMXE",
            KvmSregs {
                cr4: 1 << 13,
                ..init
            },
        ),
        (
            "cr4 SMXE",
            KvmSregs {
                cr4: 1 << 14,
                ..init
            },
        ),
        (
            "cr4 PKE (not offered)",
            KvmSregs {
                cr4: 1 << 22,
                ..init
            },
        ),
        (
            "x2APIC without CPUID",
            KvmSregs {
                apic_base: 0xfee0_0d00,
                ..init
            },
        ),
        (
            "APIC reserved bit",
            KvmSregs {
                apic_base: 0xfee0_0901,
                ..init
            },
        ),
        (
            "APIC above MAXPHYADDR",
            KvmSregs {
                apic_base: 1 << 40 | 0x900,
                ..init
            },
        ),
    ];
    for (what, s) in cases {
        reject(&mut h, v, &s, what);
    }
}

#[test]
fn cr4_rules_follow_guest_cpuid() {
    let (mut h, v) = vcpu();
    let init: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    // Before KVM_SET_CPUID2 only the host's limits apply.
    let osx = KvmSregs {
        cr4: 1 << 18,
        ..init
    };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &osx), Ok(0));
    let smep = KvmSregs {
        cr4: 1 << 20,
        ..init
    };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &smep), Ok(0));
    // A CPUID without XSAVE or SMEP makes those bits reserved.
    let leaf1 = KvmCpuidEntry2 {
        function: 1,
        edx: 1 << 6,
        ..Default::default()
    };
    assert_eq!(set_cpuid(&mut h, v, &[leaf1]), Ok(0));
    reject(&mut h, v, &osx, "OSXSAVE without XSAVE");
    reject(&mut h, v, &smep, "SMEP without SMEP");
    // With the supported table both are fine, and OSXSAVE shows in CPUID.
    let e = supported(&mut h);
    assert_eq!(set_cpuid(&mut h, v, &e), Ok(0));
    assert_eq!(
        set(
            &mut h,
            v,
            KVM_SET_SREGS,
            &KvmSregs {
                cr4: 1 << 18 | 1 << 20,
                ..init
            }
        ),
        Ok(0)
    );
    let p = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: 256,
            padding: 0,
        },
        &[KvmCpuidEntry2::default(); 256],
    );
    assert_eq!(h.ioctl(v, KVM_GET_CPUID2, p), Ok(0));
    let got = get_entries::<KvmCpuid2, KvmCpuidEntry2>(&h, p, e.len());
    assert_ne!(find(&got, 1, 0).ecx & (1 << 27), 0, "OSXSAVE mirrors CR4");
    // The supported table has MAXPHYADDR 48: a CR3 at 2^40 is now legal.
    let long = KvmSregs {
        cr3: 1 << 40,
        ..long_sregs(&init)
    };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &long), Ok(0));
    // x2APIC is not offered (no in-kernel APIC), so EXTD stays reserved.
    reject(
        &mut h,
        v,
        &KvmSregs {
            apic_base: 0xfee0_0d00,
            ..long
        },
        "x2APIC",
    );
}

#[test]
fn interrupt_bitmap_queues_an_interrupt() {
    let (mut h, v) = vcpu();
    let mut s: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    s.interrupt_bitmap[1] = 1 << 3 | 1 << 9;
    assert_eq!(set(&mut h, v, KVM_SET_SREGS, &s), Ok(0));
    let e: KvmVcpuEvents = get(&mut h, v, KVM_GET_VCPU_EVENTS);
    assert_eq!((e.interrupt.injected, e.interrupt.nr), (1, 67));
    let g: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    assert_eq!(g.interrupt_bitmap, [0, 1 << 3, 0, 0]);
}

#[test]
fn sregs2() {
    let (mut h, v) = vcpu();
    let s: KvmSregs2 = get(&mut h, v, KVM_GET_SREGS2);
    assert_eq!((s.cr0, s.flags, s.apic_base), (0x6000_0010, 0, 0xfee0_0900));
    let bad = KvmSregs2 { flags: 2, ..s };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS2, &bad), Err(Errno::EINVAL));
    let not_pae = KvmSregs2 { flags: 1, ..s };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS2, &not_pae), Err(Errno::EINVAL));
    let pae = KvmSregs2 {
        flags: 1,
        cr0: 0x8000_0011,
        cr4: 0x20,
        cr3: 0x3000,
        pdptrs: [0x1001, 0x2001, 0x3001, 0x4001],
        ..s
    };
    assert_eq!(set(&mut h, v, KVM_SET_SREGS2, &pae), Ok(0));
    let g: KvmSregs2 = get(&mut h, v, KVM_GET_SREGS2);
    assert_eq!((g.flags, g.pdptrs, g.cr3), (1, pae.pdptrs, 0x3000));
    let plain: KvmSregs = get(&mut h, v, KVM_GET_SREGS);
    assert_eq!(plain.cr4, 0x20);
    assert_eq!(h.ioctl(v, KVM_GET_SREGS2, 0), Err(Errno::EFAULT));
}

// ------------------------------------------------------------------ FPU, XSAVE, XCRs

#[test]
fn fpu_and_xsave() {
    let (mut h, v) = vcpu();
    let f: KvmFpu = get(&mut h, v, KVM_GET_FPU);
    assert_eq!((f.fcw, f.fsw, f.ftwx, f.mxcsr), (0x37f, 0, 0, 0));
    let mut n = f;
    n.fcw = 0x27f;
    n.fsw = 0x3800;
    n.ftwx = 0x80;
    n.last_opcode = 0x1d9;
    n.last_ip = 0x1234;
    n.last_dp = 0x5678;
    n.mxcsr = 0x1fbf;
    n.xmm[3] = [0x5a; 16];
    n.fpr[7][..10].copy_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    assert_eq!(set(&mut h, v, KVM_SET_FPU, &n), Ok(0));
    let g: KvmFpu = get(&mut h, v, KVM_GET_FPU);
    assert_eq!(g, KvmFpu { mxcsr: 0, ..n });
    let x: KvmXsave = get(&mut h, v, KVM_GET_XSAVE);
    assert_eq!(x.region[6], 0x1f80, "SET_FPU leaves MXCSR alone");
    assert_eq!(x.region[0] & 0xffff, 0x27f);
    // SET_XSAVE round trip, visible through GET_FPU.
    let mut y = x;
    y.region[44] = 0x1122_3344;
    y.region[6] = 0x1f00;
    y.region[128] = 3;
    assert_eq!(set(&mut h, v, KVM_SET_XSAVE, &y), Ok(0));
    let g: KvmXsave = get(&mut h, v, KVM_GET_XSAVE);
    assert_eq!(g.region[..], y.region[..]);
    let f: KvmFpu = get(&mut h, v, KVM_GET_FPU);
    assert_eq!(f.xmm[1][..4], 0x1122_3344u32.to_le_bytes());
    // Invalid images.
    for (i, val, what) in [
        (128usize, 1u32 << 9, "XSTATE_BV bit 9"),
        (131, 1 << 31, "XCOMP_BV compacted"),
        (135, 1, "reserved header"),
        (6, 0x1_0000, "MXCSR bit 16"),
    ] {
        let mut b = y;
        b.region[i] = val;
        assert_eq!(
            set(&mut h, v, KVM_SET_XSAVE, &b),
            Err(Errno::EINVAL),
            "{what}"
        );
    }
    // GET_XSAVE2 writes exactly KVM_CAP_XSAVE2 bytes.
    let p = h.alloc(4096 + 64, 8);
    h.write(p + 4096, &[0xaa; 64]);
    assert_eq!(h.ioctl(v, KVM_GET_XSAVE2, p), Ok(0));
    assert_eq!(h.read(p + 4096, 64), [0xaa; 64]);
    let end = h.alloc_at_end(4096 - 8);
    assert_eq!(h.ioctl(v, KVM_GET_XSAVE2, end), Err(Errno::EFAULT));
}

fn xcrs(h: &mut H, v: i32, entries: &[(u32, u64)], nr: u32, flags: u32) -> Result<i64, Errno> {
    let mut x = KvmXcrs {
        nr_xcrs: nr,
        flags,
        ..Default::default()
    };
    for (i, &(xcr, value)) in entries.iter().enumerate() {
        x.xcrs[i] = KvmXcr {
            xcr,
            reserved: 0,
            value,
        };
    }
    set(h, v, KVM_SET_XCRS, &x)
}

fn xcr0(h: &mut H, v: i32) -> u64 {
    let x: KvmXcrs = get(h, v, KVM_GET_XCRS);
    assert_eq!((x.nr_xcrs, x.flags, x.xcrs[0].xcr), (1, 0, 0));
    x.xcrs[0].value
}

#[test]
fn xcr_rules() {
    let (mut h, v) = vcpu();
    assert_eq!(xcr0(&mut h, v), 1);
    assert_eq!(
        xcrs(&mut h, v, &[(0, 3)], 1, 0),
        Err(Errno::EINVAL),
        "before CPUID"
    );
    assert_eq!(
        xcrs(&mut h, v, &[(0, 0)], 1, 0),
        Err(Errno::EINVAL),
        "x87 clear"
    );
    assert_eq!(
        xcrs(&mut h, v, &[(0, 1)], 1, 1),
        Err(Errno::EINVAL),
        "flags"
    );
    assert_eq!(
        xcrs(&mut h, v, &[(0, 1)], 17, 0),
        Err(Errno::EINVAL),
        "nr 17"
    );
    assert_eq!(xcrs(&mut h, v, &[(0, 1)], 16, 0), Ok(0));
    assert_eq!(xcrs(&mut h, v, &[], 0, 0), Ok(0));
    let e = supported(&mut h);
    assert_eq!(set_cpuid(&mut h, v, &e), Ok(0));
    assert_eq!(xcrs(&mut h, v, &[(0, 3)], 1, 0), Ok(0));
    assert_eq!(xcr0(&mut h, v), 3);
    assert_eq!(xcrs(&mut h, v, &[(0, 7)], 1, 0), Ok(0));
    assert_eq!(xcr0(&mut h, v), 7);
    assert_eq!(
        xcrs(&mut h, v, &[(0, 5)], 1, 0),
        Err(Errno::EINVAL),
        "AVX without SSE"
    );
    assert_eq!(
        xcrs(&mut h, v, &[(0, 1 << 63 | 1)], 1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(xcrs(&mut h, v, &[(1, 5), (0, 1)], 2, 0), Ok(0));
    assert_eq!(xcr0(&mut h, v), 1);
    assert_eq!(
        xcrs(&mut h, v, &[(0, 0), (0, 1)], 2, 0),
        Err(Errno::EINVAL),
        "first XCR0 counts"
    );
    assert_eq!(xcr0(&mut h, v), 1);
}

// ------------------------------------------------------------------ MSRs

#[test]
fn msr_roundtrip_and_partial() {
    let (mut h, v) = vcpu();
    let set_to = [
        msr(0x174, 0x10),
        msr(0x175, 0x8000),
        msr(0x176, 0x1234_5678),
        msr(0xc000_0081, 0x0023_0010_0000_0000),
        msr(0xc000_0082, 0xffff_8000_1234_5000),
        msr(0xc000_0084, 0x4700),
        msr(0xc000_0102, 0xffff_8880_0000_0000),
        msr(0x277, 0x0007_0406_0007_0406),
    ];
    assert_eq!(msrs(&mut h, v, KVM_SET_MSRS, &set_to).0, Ok(8));
    let zeroed: Vec<_> = set_to.iter().map(|e| msr(e.index, 0)).collect();
    let (r, got) = msrs(&mut h, v, KVM_GET_MSRS, &zeroed);
    assert_eq!(r, Ok(8));
    assert_eq!(got, set_to);
    // Stop at the first MSR the backend does not keep.
    let (r, _) = msrs(
        &mut h,
        v,
        KVM_SET_MSRS,
        &[msr(0x174, 8), msr(0x1234_5678, 8), msr(0x175, 8)],
    );
    assert_eq!(r, Ok(1));
    let aa = 0xaaaa_aaaa_aaaa_aaaa;
    let (r, got) = msrs(
        &mut h,
        v,
        KVM_GET_MSRS,
        &[
            msr(0x174, aa),
            msr(0x175, aa),
            msr(0x1234_5678, aa),
            msr(0x176, aa),
        ],
    );
    assert_eq!(r, Ok(2));
    assert_eq!((got[0].data, got[1].data, got[3].data), (8, 0x8000, aa));
    let (r, got) = msrs(
        &mut h,
        v,
        KVM_GET_MSRS,
        &[msr(0x1234_5678, aa), msr(0x174, aa)],
    );
    assert_eq!((r, got[1].data), (Ok(0), aa));
    // Refused values stop the list too.
    let (r, _) = msrs(&mut h, v, KVM_SET_MSRS, &[msr(0x277, 2), msr(0x174, 1)]);
    assert_eq!(r, Ok(0), "PAT type 2 is reserved");
    let (r, _) = msrs(&mut h, v, KVM_SET_MSRS, &[msr(0xc000_0082, 1 << 47)]);
    assert_eq!(r, Ok(0), "non-canonical LSTAR");
}

#[test]
fn msr_count_limits() {
    let (mut h, v) = vcpu();
    let e = vec![msr(0x174, 0xaaaa); 256];
    let p = put_list(&mut h, &KvmMsrs { nmsrs: 256, pad: 0 }, &e);
    for n in [256u32, 257, u32::MAX] {
        h.write(p, &n.to_le_bytes());
        assert_eq!(h.ioctl(v, KVM_GET_MSRS, p), Err(Errno::E2BIG));
        assert_eq!(h.ioctl(v, KVM_SET_MSRS, p), Err(Errno::E2BIG));
    }
    assert_eq!(
        get_entries::<KvmMsrs, KvmMsrEntry>(&h, p, 1)[0].data,
        0xaaaa
    );
    h.write(p, &255u32.to_le_bytes());
    assert_eq!(h.ioctl(v, KVM_SET_MSRS, p), Ok(255));
    assert_eq!(h.ioctl(v, KVM_GET_MSRS, p), Ok(255));
    h.write(p, &0u32.to_le_bytes());
    assert_eq!(h.ioctl(v, KVM_GET_MSRS, p), Ok(0));
    assert_eq!(h.ioctl(v, KVM_SET_MSRS, 0), Err(Errno::EFAULT));
    // Header readable, entries not.
    let end = h.alloc_at_end(8);
    h.write(end, &1u32.to_le_bytes());
    assert_eq!(h.ioctl(v, KVM_GET_MSRS, end), Err(Errno::EFAULT));
}

#[test]
fn msr_efer_and_tsc() {
    let (mut h, v) = vcpu();
    assert_eq!(
        msrs(&mut h, v, KVM_SET_MSRS, &[msr(0xc000_0080, 0xd01)]).0,
        Ok(1)
    );
    let (_, g) = msrs(&mut h, v, KVM_GET_MSRS, &[msr(0xc000_0080, 0)]);
    assert_eq!(g[0].data, 0x901, "LMA not settable");
    assert_eq!(
        msrs(&mut h, v, KVM_SET_MSRS, &[msr(0xc000_0080, 1 << 20)]).0,
        Ok(0)
    );
    assert_eq!(
        msrs(&mut h, v, KVM_SET_MSRS, &[msr(0xc000_0080, 1 << 12)]).0,
        Ok(0)
    );
    assert_eq!(get::<KvmSregs>(&mut h, v, KVM_GET_SREGS).efer, 0x901);
    // The guest TSC starts at 0 and follows the host's.
    let (_, g) = msrs(&mut h, v, KVM_GET_MSRS, &[msr(0x10, 0)]);
    assert_eq!(g[0].data, 0);
    hw(&h).tsc.fetch_add(500, Ordering::SeqCst);
    assert_eq!(msrs(&mut h, v, KVM_SET_MSRS, &[msr(0x10, 7)]).0, Ok(1));
    hw(&h).tsc.fetch_add(3, Ordering::SeqCst);
    let (_, g) = msrs(&mut h, v, KVM_GET_MSRS, &[msr(0x10, 0)]);
    assert_eq!(g[0].data, 10);
    // APIC_BASE through MSRs follows the same rules as through sregs.
    assert_eq!(
        msrs(&mut h, v, KVM_SET_MSRS, &[msr(0x1b, 0xfee0_0d00)]).0,
        Ok(0)
    );
    assert_eq!(
        msrs(&mut h, v, KVM_SET_MSRS, &[msr(0x1b, 0xfee0_0800)]).0,
        Ok(1)
    );
    assert_eq!(
        get::<KvmSregs>(&mut h, v, KVM_GET_SREGS).apic_base,
        0xfee0_0800
    );
}

// ------------------------------------------------------------------ MP state, events, debug

#[test]
fn mp_state_without_irqchip() {
    let (mut h, v) = vcpu();
    assert_eq!(get::<KvmMpState>(&mut h, v, KVM_GET_MP_STATE).mp_state, 0);
    assert_eq!(
        set(&mut h, v, KVM_SET_MP_STATE, &KvmMpState { mp_state: 0 }),
        Ok(0)
    );
    for s in (1..=10).chain([u32::MAX]) {
        assert_eq!(
            set(&mut h, v, KVM_SET_MP_STATE, &KvmMpState { mp_state: s }),
            Err(Errno::EINVAL)
        );
    }
}

#[test]
fn vcpu_events() {
    let (mut h, v) = vcpu();
    let e: KvmVcpuEvents = get(&mut h, v, KVM_GET_VCPU_EVENTS);
    assert_eq!(
        e,
        KvmVcpuEvents {
            flags: KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW,
            ..Default::default()
        }
    );
    let mut x = e;
    x.exception.injected = 1;
    x.exception.nr = 14;
    x.exception.has_error_code = 1;
    x.exception.error_code = 2;
    x.interrupt.injected = 1;
    x.interrupt.nr = 0x30;
    x.interrupt.shadow = 1;
    x.nmi.masked = 1;
    assert_eq!(set(&mut h, v, KVM_SET_VCPU_EVENTS, &x), Ok(0));
    let g: KvmVcpuEvents = get(&mut h, v, KVM_GET_VCPU_EVENTS);
    let ex = g.exception;
    assert_eq!(
        (ex.injected, ex.nr, ex.has_error_code, ex.error_code),
        (1, 14, 1, 2)
    );
    let i = g.interrupt;
    assert_eq!((i.injected, i.nr, i.soft, i.shadow), (1, 0x30, 0, 3));
    assert_eq!(g.nmi.masked, 1);
    // A pending exception without the payload capability is dropped.
    let mut p = e;
    p.exception.pending = 1;
    p.exception.nr = 6;
    assert_eq!(set(&mut h, v, KVM_SET_VCPU_EVENTS, &p), Ok(0));
    let g: KvmVcpuEvents = get(&mut h, v, KVM_GET_VCPU_EVENTS);
    assert_eq!(
        (g.exception.injected, g.exception.pending, g.exception.nr),
        (0, 0, 6)
    );
    // NMI pending needs its flag.
    let mut n = e;
    n.nmi.pending = 1;
    n.flags = 0;
    assert_eq!(set(&mut h, v, KVM_SET_VCPU_EVENTS, &n), Ok(0));
    assert_eq!(
        get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS)
            .nmi
            .pending,
        0
    );
    n.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
    assert_eq!(set(&mut h, v, KVM_SET_VCPU_EVENTS, &n), Ok(0));
    assert_eq!(
        get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS)
            .nmi
            .pending,
        1
    );
    // Bad flags and vectors change nothing.
    let before: KvmVcpuEvents = get(&mut h, v, KVM_GET_VCPU_EVENTS);
    for bit in [4, 5, 6, 7, 10, 31] {
        let b = KvmVcpuEvents {
            flags: e.flags | 1 << bit,
            ..e
        };
        assert_eq!(
            set(&mut h, v, KVM_SET_VCPU_EVENTS, &b),
            Err(Errno::EINVAL),
            "flag {bit}"
        );
    }
    for nr in [2u8, 32, 255] {
        let mut b = e;
        b.exception.injected = 1;
        b.exception.nr = nr;
        assert_eq!(
            set(&mut h, v, KVM_SET_VCPU_EVENTS, &b),
            Err(Errno::EINVAL),
            "vector {nr}"
        );
    }
    let mut smm = e;
    smm.flags |= KVM_VCPUEVENT_VALID_SMM;
    smm.smi.smm = 1;
    assert_eq!(
        set(&mut h, v, KVM_SET_VCPU_EVENTS, &smm),
        Err(Errno::EINVAL)
    );
    assert_eq!(get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS), before);
    assert_eq!(cap(&mut h, Cap::X86Smm), 0);
}

#[test]
fn interrupt_and_nmi() {
    let (mut h, v) = vcpu();
    for irq in [256u32, u32::MAX] {
        assert_eq!(
            set(&mut h, v, KVM_INTERRUPT, &KvmInterrupt { irq }),
            Err(Errno::EINVAL)
        );
    }
    assert_eq!(
        set(&mut h, v, KVM_INTERRUPT, &KvmInterrupt { irq: 32 }),
        Ok(0)
    );
    let i = get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS).interrupt;
    assert_eq!((i.injected, i.nr, i.soft), (1, 32, 0));
    assert_eq!(
        set(&mut h, v, KVM_INTERRUPT, &KvmInterrupt { irq: 33 }),
        Ok(0)
    );
    assert_eq!(
        get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS)
            .interrupt
            .nr,
        33
    );
    assert_eq!(h.ioctl(v, KVM_INTERRUPT, 0), Err(Errno::EFAULT));
    assert_eq!(h.ioctl(v, KVM_NMI, 0), Ok(0));
    let n = get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS).nmi;
    assert_eq!((n.injected, n.pending, n.masked), (0, 1, 0));
    assert_eq!(h.ioctl(v, KVM_NMI, 1), Ok(0));
    assert_eq!(h.ioctl(v, KVM_NMI, 0), Ok(0));
    assert_eq!(
        get::<KvmVcpuEvents>(&mut h, v, KVM_GET_VCPU_EVENTS)
            .nmi
            .pending,
        2
    );
}

#[test]
fn debugregs() {
    let (mut h, v) = vcpu();
    let d: KvmDebugregs = get(&mut h, v, KVM_GET_DEBUGREGS);
    assert_eq!(
        (d.db, d.dr6, d.dr7, d.flags),
        ([0; 4], 0xffff_0ff0, 0x400, 0)
    );
    for bad in [
        KvmDebugregs { flags: 1, ..d },
        KvmDebugregs { flags: 2, ..d },
        KvmDebugregs {
            dr6: d.dr6 | 1 << 32,
            ..d
        },
        KvmDebugregs {
            dr7: d.dr7 | 1 << 32,
            ..d
        },
    ] {
        assert_eq!(set(&mut h, v, KVM_SET_DEBUGREGS, &bad), Err(Errno::EINVAL));
    }
    assert_eq!(get::<KvmDebugregs>(&mut h, v, KVM_GET_DEBUGREGS), d);
    let good = KvmDebugregs {
        db: [0x1000, 0x2000, !0, 0x4000],
        dr6: 0,
        dr7: 0xffff_ffff,
        reserved: [1; 9],
        ..d
    };
    assert_eq!(set(&mut h, v, KVM_SET_DEBUGREGS, &good), Ok(0));
    let g: KvmDebugregs = get(&mut h, v, KVM_GET_DEBUGREGS);
    assert_eq!(
        (g.db, g.dr6, g.dr7, g.reserved),
        (good.db, 0, 0xffff_ffff, [0; 9])
    );
}

// ------------------------------------------------------------------ CPUID

#[test]
fn cpuid2_set_get_and_limits() {
    let (mut h, v) = vcpu();
    let e = supported(&mut h);
    assert_eq!(set_cpuid(&mut h, v, &e), Ok(0));
    let n = e.len();
    // KeepCount: E2BIG leaves the header and entries alone.
    let p = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: n as u32 - 1,
            padding: 0,
        },
        &vec![
            KvmCpuidEntry2 {
                function: 0x5555_5555,
                ..Default::default()
            };
            n + 5
        ],
    );
    assert_eq!(h.ioctl(v, KVM_GET_CPUID2, p), Err(Errno::E2BIG));
    assert_eq!(h.get::<KvmCpuid2>(p).nent, n as u32 - 1);
    assert_eq!(
        get_entries::<KvmCpuid2, KvmCpuidEntry2>(&h, p, 1)[0].function,
        0x5555_5555
    );
    h.write(p, &(n as u32 + 5).to_le_bytes());
    assert_eq!(h.ioctl(v, KVM_GET_CPUID2, p), Ok(0));
    assert_eq!(h.get::<KvmCpuid2>(p).nent, n as u32);
    let got = get_entries::<KvmCpuid2, KvmCpuidEntry2>(&h, p, n);
    for f in [0, 0x4000_0000, 0x8000_0000] {
        assert_eq!(find(&got, f, 0), find(&e, f, 0));
    }
    // Input limits.
    let dummy: Vec<KvmCpuidEntry2> = (0..257)
        .map(|i| KvmCpuidEntry2 {
            function: 0x4fff_0000 + i,
            ..Default::default()
        })
        .collect();
    assert_eq!(set_cpuid(&mut h, v, &dummy), Err(Errno::E2BIG));
    assert_eq!(set_cpuid(&mut h, v, &dummy[..256]), Ok(0));
    assert_eq!(set_cpuid(&mut h, v, &[]), Ok(0));
    assert_eq!(h.ioctl(v, KVM_SET_CPUID2, 0), Err(Errno::EFAULT));
    // An unsupported virtual-address width.
    let va = KvmCpuidEntry2 {
        function: 0x8000_0008,
        eax: 0x2830,
        ..Default::default()
    };
    assert_eq!(set_cpuid(&mut h, v, &[va]), Err(Errno::EINVAL));
}

#[test]
fn legacy_set_cpuid() {
    let (mut h, v) = vcpu();
    let old = [KvmCpuidEntry {
        function: 0,
        eax: 1,
        ..Default::default()
    }];
    let p = put_list(
        &mut h,
        &KvmCpuid {
            nent: 1,
            padding: 0,
        },
        &old,
    );
    assert_eq!(h.ioctl(v, KVM_SET_CPUID, p), Ok(0));
    let q = put_list(
        &mut h,
        &KvmCpuid2 {
            nent: 4,
            padding: 0,
        },
        &[KvmCpuidEntry2::default(); 4],
    );
    assert_eq!(h.ioctl(v, KVM_GET_CPUID2, q), Ok(0));
    assert_eq!(h.get::<KvmCpuid2>(q).nent, 1);
    assert_eq!(get_entries::<KvmCpuid2, KvmCpuidEntry2>(&h, q, 1)[0].eax, 1);
    let big = put_list(
        &mut h,
        &KvmCpuid {
            nent: 257,
            padding: 0,
        },
        &old,
    );
    assert_eq!(h.ioctl(v, KVM_SET_CPUID, big), Err(Errno::E2BIG));
}

#[test]
fn cpuid_frozen_once_run_rule() {
    // The vCPU cannot run yet (no world switch), so the rule is checked on the state directly.
    let mut s = state::VcpuState::reset(0, 0).unwrap();
    let e = [KvmCpuidEntry2 {
        function: 1,
        eax: 0x600,
        ..Default::default()
    }];
    s.set_cpuid(e.to_vec(), 7);
    s.ran = true;
    assert!(state::frozen_cpuid_matches(&s.cpuid, &s.cpuid.clone()));
    let mut changed = s.cpuid.clone();
    changed[0].ebx ^= 1;
    assert!(!state::frozen_cpuid_matches(&s.cpuid, &changed));
    assert!(!state::frozen_cpuid_matches(&s.cpuid, &[]));
}

#[test]
fn vm_max_vcpu_id() {
    let mut h = host();
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    let en = |h: &mut H, cap: Cap, flags: u32, arg: u64| {
        let c = kvmport_core::abi::KvmEnableCap {
            cap: cap.raw(),
            flags,
            args: [arg, 0, 0, 0],
            ..Default::default()
        };
        set(h, vm, KVM_ENABLE_CAP, &c)
    };
    assert_eq!(en(&mut h, Cap::MaxVcpuId, 0, 16385), Err(Errno::EINVAL));
    assert_eq!(
        en(&mut h, Cap::MaxVcpuId, 1, 8),
        Err(Errno::EINVAL),
        "flags"
    );
    assert_eq!(en(&mut h, Cap::MaxVcpuId, 0, 8), Ok(0));
    assert_eq!(en(&mut h, Cap::MaxVcpuId, 0, 8), Ok(0), "same value");
    assert_eq!(
        en(&mut h, Cap::MaxVcpuId, 0, 16),
        Err(Errno::EINVAL),
        "changed"
    );
    assert_eq!(en(&mut h, Cap::X86Smm, 0, 1), Err(Errno::EINVAL));
    assert!(h.ioctl(vm, KVM_CREATE_VCPU, 7).is_ok());
    assert_eq!(h.ioctl(vm, KVM_CREATE_VCPU, 8), Err(Errno::EINVAL));
    assert_eq!(
        h.ioctl(vm, KVM_CHECK_EXTENSION, u64::from(Cap::MaxVcpuId.raw())),
        Ok(16384)
    );
}

#[test]
fn vm_clock() {
    let mut h = host();
    assert_eq!(cap(&mut h, Cap::AdjustClock), 14);
    let vm = h.ioctl(SYS_FD, KVM_CREATE_VM, 0).unwrap() as i32;
    assert_eq!(h.ioctl(vm, KVM_GET_CLOCK, 0), Err(Errno::EFAULT));
    assert_eq!(h.ioctl(vm, KVM_SET_CLOCK, 0), Err(Errno::EFAULT));
    let c = kvmport_core::abi::KvmClockData {
        clock: 5_000,
        ..Default::default()
    };
    let p = h.put(&c);
    assert_eq!(h.ioctl(vm, KVM_SET_CLOCK, p), Ok(0));
    let out = h.alloc(size_of::<kvmport_core::abi::KvmClockData>(), 8);
    h.write(out, &[0xaa; 48]);
    assert_eq!(h.ioctl(vm, KVM_GET_CLOCK, out), Ok(0));
    let g: kvmport_core::abi::KvmClockData = h.get(out);
    // The hosted OS's monotonic clock stands still.
    assert_eq!((g.clock, g.flags, g.realtime, g.host_tsc), (5_000, 0, 0, 0));
    let bad = kvmport_core::abi::KvmClockData { flags: 1, ..c };
    let p = h.put(&bad);
    assert_eq!(h.ioctl(vm, KVM_SET_CLOCK, p), Err(Errno::EINVAL));
}

/// A 32-bit flat protected-mode vCPU at RIP 0x100 over 64 KiB of RAM at GPA 0 holding `code`.
fn prot32_guest(h: &mut H, vm: i32, v: i32, code: &[u8]) {
    let ram = h.alloc(0x10000, 4096);
    h.write(ram + 0x100, code);
    let region = kvmport_core::abi::KvmUserspaceMemoryRegion {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 0x10000,
        userspace_addr: ram,
    };
    assert_eq!(set(h, vm, KVM_SET_USER_MEMORY_REGION, &region), Ok(0));
    let mut s = get::<KvmSregs>(h, v, KVM_GET_SREGS);
    let seg = |selector: u16, r#type: u8| KvmSegment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        r#type,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.cs = seg(8, 0xb);
    for d in [&mut s.ds, &mut s.es, &mut s.ss, &mut s.fs, &mut s.gs] {
        *d = seg(0x10, 3);
    }
    s.cr0 |= 1;
    assert_eq!(set(h, v, KVM_SET_SREGS, &s), Ok(0));
}

/// A nested page fault on `gpa`.
fn npf_exit(gpa: u64, write: bool) -> Step {
    Box::new(move |v: &mut [u8]| {
        vmcb_set(v, vmcb::EXITCODE, 0x400);
        vmcb_set(v, vmcb::EXITINFO1, 1 | (u64::from(write) << 1));
        vmcb_set(v, vmcb::EXITINFO2, gpa);
    })
}

#[test]
fn irqchip_apic_and_ioapic_mmio_in_the_kernel() {
    let (mut h, vm, v) = irq_host(0x2);
    // mov eax, [0xfee00030]; mov [0xfec00000], eax; out 0x10, al
    let code = [
        0xa1, 0x30, 0x00, 0xe0, 0xfe, 0xa3, 0x00, 0x00, 0xc0, 0xfe, 0xe6, 0x10,
    ];
    prot32_guest(&mut h, vm, v, &code);
    let log = script(vec![
        npf_exit(0xfee0_0030, false),
        npf_exit(0xfec0_0000, true),
        io_exit(0x10, false),
    ]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 3, "the MMIO accesses did not go to user space");
    assert_eq!(e[1].rip, 0x105);
    assert_eq!(e[1].rax, 0x0005_0014, "the APIC version register");
    assert_eq!(e[2].rip, 0x10a);
    // IOREGSEL took the low byte of the value written.
    let p = h.put(&KvmIrqchip {
        chip_id: KVM_IRQCHIP_IOAPIC,
        ..Default::default()
    });
    assert_eq!(h.ioctl(vm, KVM_GET_IRQCHIP, p), Ok(0));
    assert_eq!(h.get::<KvmIrqchip>(p).chip.ioapic().ioregsel, 0x14);
}

#[test]
fn irqchip_ipi_from_icr_write_reaches_the_other_apic() {
    let (mut h, vm, v) = irq_host(0x2);
    let v1 = h.ioctl(vm, KVM_CREATE_VCPU, 1).unwrap() as i32;
    let mut l = get::<KvmLapicState>(&mut h, v1, KVM_GET_LAPIC);
    l.regs[0xf0..0xf4].copy_from_slice(&0x1ffu32.to_le_bytes());
    assert_eq!(set(&mut h, v1, KVM_SET_LAPIC, &l), Ok(0));
    // mov dword [0xfee00310], 0x01000000; mov dword [0xfee00300], 0x4041; out 0x10, al
    let mut code = vec![0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0, 0, 0, 1];
    code.extend_from_slice(&[0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x41, 0x40, 0, 0]);
    code.extend_from_slice(&[0xe6, 0x10]);
    prot32_guest(&mut h, vm, v, &code);
    let log = script(vec![
        npf_exit(0xfee0_0310, true),
        npf_exit(0xfee0_0300, true),
        io_exit(0x10, false),
    ]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    assert_eq!(log.lock().unwrap().len(), 3);
    let l = get::<KvmLapicState>(&mut h, v1, KVM_GET_LAPIC);
    let irr2 = u32::from_le_bytes(l.regs[0x220..0x224].try_into().unwrap());
    assert_eq!(irr2, 1 << 1, "vector 0x41 requested in APIC 1");
    let l0 = get::<KvmLapicState>(&mut h, v, KVM_GET_LAPIC);
    assert_eq!(&l0.regs[0x310..0x314], &[0, 0, 0, 1], "ICR2 as written");
}

#[test]
fn irqchip_init_sipi_starts_an_ap() {
    let (mut h, vm, v) = irq_host(0x2);
    let v1 = h.ioctl(vm, KVM_CREATE_VCPU, 1).unwrap() as i32;
    assert_eq!(get::<KvmMpState>(&mut h, v1, KVM_GET_MP_STATE).mp_state, 1);
    // ICR2 = APIC 1; ICR = INIT (assert); ICR = start-up, vector 0x9a; out 0x10, al
    let mut code = vec![0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0, 0, 0, 1];
    code.extend_from_slice(&[0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0, 0]);
    code.extend_from_slice(&[0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x9a, 0x46, 0, 0]);
    code.extend_from_slice(&[0xe6, 0x10]);
    prot32_guest(&mut h, vm, v, &code);
    let _log = script(vec![
        npf_exit(0xfee0_0310, true),
        npf_exit(0xfee0_0300, true),
        npf_exit(0xfee0_0300, true),
        io_exit(0x10, false),
    ]);
    assert_eq!(h.ioctl(v, KVM_RUN, 0), Ok(0));
    // The AP's first run starts it in real mode at 0x9a000.
    let log = script(vec![io_exit(0x10, false)]);
    assert_eq!(h.ioctl(v1, KVM_RUN, 0), Ok(0));
    let e = log.lock().unwrap().clone();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rip, 0);
    let s = get::<KvmSregs>(&mut h, v1, KVM_GET_SREGS);
    assert_eq!((s.cs.selector, s.cs.base), (0x9a00, 0x9a000));
    assert_eq!(s.cr0 & 1, 0, "real mode");
    assert_eq!(get::<KvmMpState>(&mut h, v1, KVM_GET_MP_STATE).mp_state, 0);
    // The AP's APIC was reset by INIT: software-disabled.
    let l = get::<KvmLapicState>(&mut h, v1, KVM_GET_LAPIC);
    assert_eq!(l.regs[0xf0..0xf4], 0xffu32.to_le_bytes());
}
