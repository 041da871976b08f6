//! The AMD SVM backend: identification, per-CPU enablement, capabilities, the x86 system and
//! VM commands, and vCPU state with its validation. The world switch (VMCB, `VMRUN`, exit
//! handling) and nested paging are the next pieces of work: [`Svm`]'s `vcpu_run` returns
//! `ENOSYS` until then.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::{
    KVM_GET_CLOCK, KVM_GET_CPUID2, KVM_GET_DEBUGREGS, KVM_GET_EMULATED_CPUID, KVM_GET_IRQCHIP,
    KVM_GET_MSR_FEATURE_INDEX_LIST, KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, KVM_GET_SREGS2,
    KVM_GET_SUPPORTED_CPUID, KVM_GET_VCPU_EVENTS, KVM_GET_XCRS, KVM_GET_XSAVE, KVM_GET_XSAVE2,
    KVM_INTERRUPT, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_NMI, KVM_SET_CLOCK, KVM_SET_CPUID,
    KVM_SET_CPUID2, KVM_SET_DEBUGREGS, KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_IRQCHIP, KVM_SET_MSRS,
    KVM_SET_SREGS2, KVM_SET_TSS_ADDR, KVM_SET_VCPU_EVENTS, KVM_SET_XCRS, KVM_SET_XSAVE,
    KVM_TRANSLATE,
};
use kvmport_core::abi::x86::{
    KVM_MAX_CPUID_ENTRIES, KVM_MAX_XCRS, KVM_NR_INTERRUPTS, KVM_SREGS2_FLAGS_PDPTRS_VALID,
    KVM_USER_MEM_SLOTS, KVM_X86_DEFAULT_VM, KvmCpuid, KvmCpuid2, KvmCpuidEntry, KvmCpuidEntry2,
    KvmDebugregs, KvmFpu, KvmMsrEntry, KvmMsrList, KvmMsrs, KvmRegs, KvmSregs, KvmSregs2,
    KvmVcpuEvents, KvmXcr, KvmXcrs, KvmXsave,
};
use kvmport_core::abi::{
    KVM_CLOCK_HOST_TSC, KVM_CLOCK_REALTIME, KVM_CLOCK_TSC_STABLE, KvmClockData, KvmEnableCap,
    KvmInterrupt, KvmIrqLevel, KvmIrqchip, KvmTranslation,
};
use kvmport_core::arch::{ArchLimits, Completion, Exit, RunCtx};
use kvmport_core::fam::{self, TooSmall};
use kvmport_core::kalloc::{vec_filled, vec_from_fn, vec_push};
use kvmport_core::memslot::{Gfn, SlotChange, SlotLimits};
use kvmport_core::os::{Page, UserAddr};
use kvmport_core::vm::VmInfo;
use kvmport_core::{Arch, Errno, KResult, Os, user};
use zerocopy::FromZeros;

use crate::cpuid::{Features, Leaf};
use crate::cpuid_table::{self, cr4};
use crate::hw::{
    EFER_LMA, EFER_SVME, Hw, MSR_EFER, MSR_UCODE_REV, MSR_VM_CR, MSR_VM_HSAVE_PA, RealHw,
    VM_CR_SVMDIS,
};
use crate::msr::{self, MsrHost};
use crate::state::{SregsCommon, VcpuState, cr0, frozen_cpuid_matches, xsave};

/// Most vCPUs per VM (kvm_amd's `KVM_MAX_VCPUS` in the reference configuration).
pub const MAX_VCPUS: u32 = 4096;
/// vCPU ids are below this (four ids per vCPU, as KVM allows for sparse APIC ids).
pub const MAX_VCPU_IDS: u32 = MAX_VCPUS * 4;
/// Lowest address at which a three-page real-mode TSS would cross 4 GiB.
const TSS_ADDR_MAX: u64 = 0x1_0000_0000 - 3 * 4096;
/// Size of the XSAVE image `KVM_GET_XSAVE2` writes (`KVM_CAP_XSAVE2`).
pub const XSAVE2_SIZE: usize = core::mem::size_of::<KvmXsave>();

/// What one CPU's enablement changed, so that disabling puts it back.
#[derive(Debug)]
struct PerCpu {
    /// Physical address of this CPU's host-save area.
    hsave_pa: u64,
    /// This backend has enabled SVM here.
    enabled: AtomicBool,
    /// `EFER.SVME` was already set (another hypervisor): leave it set on disable.
    svme_was_set: AtomicBool,
    /// `VM_HSAVE_PA` before enablement.
    prev_hsave: AtomicU64,
}

/// The AMD SVM backend. `H` is the hardware access; the default, [`RealHw`], is what a kernel
/// module uses (`type Arch = kvmport_arch_x86::Svm;`), host tests substitute a fake.
pub struct Svm<H: Hw = RealHw> {
    hw: H,
    features: Features,
    cpus: Vec<PerCpu>,
    /// Owns the host-save pages (an `Os::Page` vector, type-erased since `Svm` is not generic
    /// over the OS). Dropped after every CPU was disabled.
    _hsave_pages: Box<dyn Any + Send + Sync>,
    supported: Vec<KvmCpuidEntry2>,
    supported_xcr0: u64,
    host_xsave: bool,
    host_cr4_reserved: u64,
    msr_list: Vec<u32>,
    efer_ok: u64,
    va_bits: u32,
    tsc_aux: bool,
    maxphyaddr: u32,
}

/// Per-VM state. There are no nested page tables before the world switch; what is kept is
/// the VM's own vCPU-id limit (`KVM_ENABLE_CAP(KVM_CAP_MAX_VCPU_ID)`) and the VM clock.
#[derive(Debug, Default)]
pub struct SvmVm {
    /// vCPU ids must be below this, if non-zero.
    max_vcpu_ids: AtomicU32,
    /// VM clock (`KVM_GET_CLOCK`) minus the host's monotonic clock, in ns (wrapping).
    clock_offset: AtomicU64,
}

/// `kvm_clock_data.flags` bits `KVM_SET_CLOCK` accepts. The VM clock is never in the "TSC
/// stable" master-clock mode, so the wall-clock and host-TSC parts are accepted and ignored,
/// and `KVM_GET_CLOCK` reports none of them.
const CLOCK_VALID_FLAGS: u32 = KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC;

/// Moves `value` to the heap as a type-erased owner, failing with `ENOMEM` instead of
/// aborting (a one-element vector reserved fallibly, then turned into a box without
/// reallocating).
fn try_box_any<T: Send + Sync + 'static>(value: T) -> KResult<Box<dyn Any + Send + Sync>> {
    let mut v = Vec::new();
    v.try_reserve_exact(1).map_err(|_| Errno::ENOMEM)?;
    if core::mem::size_of::<T>() != 0 && v.capacity() != 1 {
        // into_boxed_slice would reallocate (infallibly) to shrink.
        return Err(Errno::ENOMEM);
    }
    v.push(value);
    let b: Box<[T; 1]> = v.into_boxed_slice().try_into().map_err(|_| Errno::ENOMEM)?;
    Ok(b)
}

fn leaf_of<H: Hw>(hw: &H, leaf: u32) -> Leaf {
    hw.cpuid(leaf, 0)
}

impl<H: Hw> Svm<H> {
    /// The hardware access (tests inspect their fake through it).
    pub fn hw(&self) -> &H {
        &self.hw
    }

    /// The SVM features found at probe time.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The `KVM_GET_SUPPORTED_CPUID` table.
    pub fn supported_cpuid(&self) -> &[KvmCpuidEntry2] {
        &self.supported
    }

    fn msr_host(&self) -> MsrHost {
        MsrHost {
            efer_ok: self.efer_ok,
            va_bits: self.va_bits,
            tsc_aux: self.tsc_aux,
            tsc_now: self.hw.rdtsc(),
        }
    }

    fn max_gfn(&self) -> u64 {
        (1u64 << self.maxphyaddr.clamp(13, 63).saturating_sub(12)) - 1
    }

    /// `KVM_GET_EMULATED_CPUID`: like the supported table, but the entries passed in must
    /// have zero padding (`EINVAL`), checked for at most `KVM_MAX_CPUID_ENTRIES` of them.
    fn emulated_cpuid<O: Os>(&self, os: &O, addr: UserAddr) -> KResult<i64> {
        let head: KvmCpuid2 = user::read(os, addr)?;
        if head.nent < 1 {
            return Err(Errno::E2BIG);
        }
        let n = head.nent.min(KVM_MAX_CPUID_ENTRIES) as usize;
        let base = addr.offset(core::mem::size_of::<KvmCpuid2>() as u64)?;
        let given: Vec<KvmCpuidEntry2> = user::read_array(os, base, n)?;
        if given.iter().any(|e| e.padding != [0; 3]) {
            return Err(Errno::EINVAL);
        }
        fam::write::<_, KvmCpuid2>(os, addr, &cpuid_table::emulated(), TooSmall::KeepCount)
            .map(|()| 0)
    }

    /// `KVM_GET_MSRS` on the system fd: the values of feature MSRs.
    fn feature_msrs<O: Os>(&self, os: &O, addr: UserAddr) -> KResult<i64> {
        let (_, mut entries) = fam::read::<_, KvmMsrs>(os, addr)?;
        let mut done = 0usize;
        for e in entries.iter_mut() {
            if e.index != MSR_UCODE_REV {
                break;
            }
            // SAFETY: the microcode patch-level MSR exists on every processor with SVM (probe
            // required it); reading it changes nothing.
            e.data = unsafe { self.hw.rdmsr(MSR_UCODE_REV) };
            done += 1;
        }
        write_msr_entries(os, addr, entries.get(..done).unwrap_or(&[]))?;
        Ok(done as i64)
    }

    fn vcpu_msrs<O: Os>(
        &self,
        os: &O,
        v: &mut VcpuState,
        addr: UserAddr,
        write: bool,
    ) -> KResult<i64> {
        let (_, mut entries) = fam::read::<_, KvmMsrs>(os, addr)?;
        let host = self.msr_host();
        let mut done = 0usize;
        for e in entries.iter_mut() {
            if write {
                if !msr::set(v, &host, e.index, e.data) {
                    break;
                }
            } else {
                match msr::get(v, &host, e.index) {
                    Some(d) => e.data = d,
                    None => break,
                }
            }
            done += 1;
        }
        if !write {
            write_msr_entries(os, addr, entries.get(..done).unwrap_or(&[]))?;
        }
        Ok(done as i64)
    }

    fn set_cpuid(&self, v: &mut VcpuState, mut entries: Vec<KvmCpuidEntry2>) -> KResult<i64> {
        cpuid_table::check(&entries)?;
        if v.ran {
            // The guest has seen its CPUID: only the identical table is accepted (compared
            // with the run-time bits applied, as GET_CPUID2 shows them).
            crate::state::apply_cpuid_runtime(&mut entries, v.cr4, v.apic_base, v.xcr0);
            return if frozen_cpuid_matches(&v.cpuid, &entries) {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            };
        }
        v.set_cpuid(entries, self.supported_xcr0);
        Ok(0)
    }

    fn set_cpuid_v1<O: Os>(&self, os: &O, v: &mut VcpuState, addr: UserAddr) -> KResult<i64> {
        let head: KvmCpuid = user::read(os, addr)?;
        if head.nent > KVM_MAX_CPUID_ENTRIES {
            return Err(Errno::E2BIG);
        }
        let base = addr.offset(core::mem::size_of::<KvmCpuid>() as u64)?;
        let old: Vec<KvmCpuidEntry> = user::read_array(os, base, head.nent as usize)?;
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(old.len())
            .map_err(|_| Errno::ENOMEM)?;
        for e in &old {
            vec_push(
                &mut entries,
                KvmCpuidEntry2 {
                    function: e.function,
                    eax: e.eax,
                    ebx: e.ebx,
                    ecx: e.ecx,
                    edx: e.edx,
                    ..Default::default()
                },
            )?;
        }
        self.set_cpuid(v, entries)
    }

    fn get_sregs2(&self, v: &VcpuState) -> KvmSregs2 {
        let s = v.sregs();
        let pae = s.cr0 & cr0::PG != 0 && s.cr4 & cr4::PAE != 0 && s.efer & EFER_LMA == 0;
        KvmSregs2 {
            cs: s.cs,
            ds: s.ds,
            es: s.es,
            fs: s.fs,
            gs: s.gs,
            ss: s.ss,
            tr: s.tr,
            ldt: s.ldt,
            gdt: s.gdt,
            idt: s.idt,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
            apic_base: s.apic_base,
            flags: if pae {
                KVM_SREGS2_FLAGS_PDPTRS_VALID
            } else {
                0
            },
            pdptrs: if pae { v.pdptrs } else { [0; 4] },
        }
    }

    fn set_sregs2(&self, v: &mut VcpuState, s: &KvmSregs2) -> KResult<()> {
        if s.flags & !KVM_SREGS2_FLAGS_PDPTRS_VALID != 0 {
            return Err(Errno::EINVAL);
        }
        let valid = s.flags & KVM_SREGS2_FLAGS_PDPTRS_VALID != 0;
        let pae = s.cr0 & cr0::PG != 0 && s.cr4 & cr4::PAE != 0 && s.efer & EFER_LMA == 0;
        if valid && !pae {
            return Err(Errno::EINVAL);
        }
        let c = SregsCommon {
            segs: [s.cs, s.ds, s.es, s.fs, s.gs, s.ss, s.tr, s.ldt],
            gdt: s.gdt,
            idt: s.idt,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
            apic_base: s.apic_base,
        };
        v.set_sregs_common(&c, self.host_cr4_reserved)?;
        if valid {
            v.pdptrs = s.pdptrs;
            v.pdptrs_valid = true;
        }
        Ok(())
    }

    fn get_xcrs(&self, v: &VcpuState) -> KvmXcrs {
        let mut x = KvmXcrs::default();
        if self.host_xsave {
            x.nr_xcrs = 1;
            x.xcrs[0] = KvmXcr {
                xcr: 0,
                reserved: 0,
                value: v.xcr0,
            };
        }
        x
    }

    fn set_xcrs(&self, v: &mut VcpuState, x: &KvmXcrs) -> KResult<()> {
        if !self.host_xsave || x.nr_xcrs as usize > KVM_MAX_XCRS || x.flags != 0 {
            return Err(Errno::EINVAL);
        }
        // Only XCR0 exists; its first entry counts, other XCRs are ignored.
        match x.xcrs.iter().take(x.nr_xcrs as usize).find(|e| e.xcr == 0) {
            Some(e) => v.set_xcr0(e.value),
            None => Ok(()),
        }
    }

    fn vcpu_cmd<O: Os>(
        &self,
        os: &O,
        v: &mut VcpuState,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>> {
        let addr = UserAddr(arg);
        let done = |r: KResult<()>| r.map(|()| 0);
        Some(match cmd {
            KVM_GET_SREGS2 => done(user::write(os, addr, &self.get_sregs2(v))),
            KVM_SET_SREGS2 => {
                done(user::read(os, addr).and_then(|s: KvmSregs2| self.set_sregs2(v, &s)))
            }
            KVM_GET_MSRS => self.vcpu_msrs(os, v, addr, false),
            KVM_SET_MSRS => self.vcpu_msrs(os, v, addr, true),
            KVM_SET_CPUID2 => {
                fam::read::<_, KvmCpuid2>(os, addr).and_then(|(_, e)| self.set_cpuid(v, e))
            }
            KVM_SET_CPUID => self.set_cpuid_v1(os, v, addr),
            KVM_GET_CPUID2 => done(fam::write::<_, KvmCpuid2>(
                os,
                addr,
                &v.cpuid,
                TooSmall::KeepCount,
            )),
            KVM_INTERRUPT => done(user::read(os, addr).and_then(|i: KvmInterrupt| {
                if i.irq as usize >= KVM_NR_INTERRUPTS {
                    return Err(Errno::EINVAL);
                }
                v.queue_interrupt(i.irq)
            })),
            KVM_NMI => {
                v.queue_nmi();
                Ok(0)
            }
            KVM_GET_VCPU_EVENTS => done(user::write(os, addr, &v.get_events())),
            KVM_SET_VCPU_EVENTS => {
                done(user::read(os, addr).and_then(|e: KvmVcpuEvents| v.set_events(&e)))
            }
            KVM_GET_DEBUGREGS => done(user::write(os, addr, &v.debugregs())),
            KVM_SET_DEBUGREGS => {
                done(user::read(os, addr).and_then(|d: KvmDebugregs| v.set_debugregs(&d)))
            }
            KVM_GET_XSAVE | KVM_GET_XSAVE2 => done(os.user_copy_out(addr, &v.xsave)),
            KVM_SET_XSAVE => done(self.set_xsave(os, v, addr)),
            KVM_GET_XCRS => done(user::write(os, addr, &self.get_xcrs(v))),
            KVM_SET_XCRS => done(user::read(os, addr).and_then(|x: KvmXcrs| self.set_xcrs(v, &x))),
            KVM_TRANSLATE => done(user::read(os, addr).and_then(|t: KvmTranslation| {
                let out = translate(v, &t)?;
                user::write(os, addr, &out)
            })),
            _ => return None,
        })
    }

    fn set_xsave<O: Os>(&self, os: &O, v: &mut VcpuState, addr: UserAddr) -> KResult<()> {
        let mut img = vec_filled(xsave::SIZE, 0u8)?;
        os.user_copy_in(&mut img, addr)?;
        crate::state::check_xsave(&img, self.supported_xcr0)?;
        v.xsave = img;
        Ok(())
    }
}

/// `KVM_TRANSLATE`. Without paging a linear address is its physical address. With paging the
/// guest's page tables would have to be walked in guest memory, which this backend cannot
/// reach outside `KVM_RUN` yet: `EINVAL` rather than a made-up answer.
fn translate(v: &VcpuState, t: &KvmTranslation) -> KResult<KvmTranslation> {
    if v.cr0 & cr0::PG != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(KvmTranslation {
        linear_address: t.linear_address,
        physical_address: t.linear_address,
        valid: 1,
        writeable: 1,
        usermode: 0,
        pad: [0; 5],
    })
}

fn write_msr_entries<O: Os>(os: &O, addr: UserAddr, entries: &[KvmMsrEntry]) -> KResult<()> {
    let base = addr.offset(core::mem::size_of::<KvmMsrs>() as u64)?;
    user::write_array(os, base, entries)
}

impl<O: Os, H: Hw> Arch<O> for Svm<H> {
    const NAME: &'static str = "svm";
    type Regs = KvmRegs;
    type Sregs = KvmSregs;
    type Fpu = KvmFpu;
    type Vm = SvmVm;
    type Vcpu = VcpuState;

    /// Requires SVM with nested paging (CPUID) not disabled by firmware (`VM_CR.SVMDIS`),
    /// then allocates one host-save page per possible CPU.
    fn probe(os: &O) -> KResult<Self> {
        let hw = H::new();
        let max_ext = hw.cpuid(0x8000_0000, 0).eax;
        let ext1 = if max_ext >= 0x8000_0001 {
            leaf_of(&hw, 0x8000_0001)
        } else {
            Leaf::default()
        };
        let svm_leaf = if max_ext >= 0x8000_000a {
            leaf_of(&hw, 0x8000_000a)
        } else {
            Leaf::default()
        };
        let features = Features::decode(leaf_of(&hw, 1), max_ext, ext1, svm_leaf);
        if !features.svm || !features.npt {
            return Err(Errno::ENODEV);
        }
        // SAFETY: VM_CR exists on every processor whose CPUID reports SVM (checked above);
        // reading it changes nothing.
        let vm_cr = unsafe { hw.rdmsr(MSR_VM_CR) };
        if vm_cr & VM_CR_SVMDIS != 0 {
            return Err(Errno::ENODEV);
        }
        let n = os.cpu_count() as usize;
        let mut pages: Vec<O::Page> = Vec::new();
        pages.try_reserve_exact(n).map_err(|_| Errno::ENOMEM)?;
        for _ in 0..n {
            vec_push(&mut pages, os.page_zalloc()?)?;
        }
        let cpus = vec_from_fn(n, |i| PerCpu {
            hsave_pa: pages.get(i).map_or(0, Page::pa),
            enabled: AtomicBool::new(false),
            svme_was_set: AtomicBool::new(false),
            prev_hsave: AtomicU64::new(0),
        })?;
        let supported = cpuid_table::supported(&hw)?;
        let tsc_aux = cpuid_table::has(&supported, cpuid_table::F_RDTSCP)
            || cpuid_table::has(&supported, cpuid_table::F_RDPID);
        let mut msr_list = Vec::new();
        msr_list
            .try_reserve_exact(msr::SAVED.len() + 1)
            .map_err(|_| Errno::ENOMEM)?;
        msr_list.extend_from_slice(&msr::SAVED);
        if tsc_aux {
            vec_push(&mut msr_list, msr::MSR_TSC_AUX)?;
        }
        let maxphyaddr = if max_ext >= 0x8000_0008 {
            leaf_of(&hw, 0x8000_0008).eax & 0xff
        } else {
            36
        };
        let la57 = hw.cpuid(0, 0).eax >= 7 && hw.cpuid(7, 0).ecx & (1 << 16) != 0;
        Ok(Svm {
            features,
            cpus,
            _hsave_pages: try_box_any(pages)?,
            supported_xcr0: cpuid_table::supported_xcr0(&hw),
            host_xsave: cpuid_table::has(&supported, cpuid_table::F_XSAVE),
            host_cr4_reserved: cpuid_table::cr4_reserved(&supported),
            efer_ok: MsrHost::efer_bits(cpuid_table::has(&supported, cpuid_table::F_FFXSR)),
            va_bits: if la57 { 57 } else { 48 },
            supported,
            msr_list,
            tsc_aux,
            maxphyaddr,
            hw,
        })
    }

    /// Sets `EFER.SVME` and points `VM_HSAVE_PA` at this CPU's host-save page, remembering
    /// both previous values for [`Arch::cpu_disable`].
    fn cpu_enable(&self, _os: &O, cpu: u32) -> KResult<()> {
        let pc = self.cpus.get(cpu as usize).ok_or(Errno::EINVAL)?;
        if pc.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        // SAFETY: VM_CR exists on processors with SVM (probe checked CPUID); a read changes
        // nothing.
        let vm_cr = unsafe { self.hw.rdmsr(MSR_VM_CR) };
        if vm_cr & VM_CR_SVMDIS != 0 {
            return Err(Errno::ENODEV);
        }
        // SAFETY: EFER and VM_HSAVE_PA exist on every processor with SVM; reads change
        // nothing.
        let (efer, prev_hsave) =
            unsafe { (self.hw.rdmsr(MSR_EFER), self.hw.rdmsr(MSR_VM_HSAVE_PA)) };
        pc.svme_was_set
            .store(efer & EFER_SVME != 0, Ordering::Relaxed);
        pc.prev_hsave.store(prev_hsave, Ordering::Relaxed);
        // SAFETY: this runs on `cpu` with preemption disabled (the `Arch` contract); setting
        // SVME is allowed because VM_CR.SVMDIS is clear, and only makes the SVM instructions
        // available; VM_HSAVE_PA gets the page-aligned address of a zeroed page this backend
        // owns until after `cpu_disable`.
        unsafe {
            self.hw.wrmsr(MSR_EFER, efer | EFER_SVME);
            self.hw.wrmsr(MSR_VM_HSAVE_PA, pc.hsave_pa);
        }
        pc.enabled.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Restores `VM_HSAVE_PA`, and clears `EFER.SVME` unless it was set before enablement.
    fn cpu_disable(&self, _os: &O, cpu: u32) {
        let Some(pc) = self.cpus.get(cpu as usize) else {
            return;
        };
        if !pc.enabled.swap(false, Ordering::Relaxed) {
            return;
        }
        // SAFETY: this runs on `cpu` with preemption disabled; no guest runs here any more,
        // so the host-save area is unused; the previous VM_HSAVE_PA value was read from this
        // MSR, and clearing SVME only removes the SVM instructions this backend set up.
        unsafe {
            self.hw
                .wrmsr(MSR_VM_HSAVE_PA, pc.prev_hsave.load(Ordering::Relaxed));
            if !pc.svme_was_set.load(Ordering::Relaxed) {
                let efer = self.hw.rdmsr(MSR_EFER);
                self.hw.wrmsr(MSR_EFER, efer & !EFER_SVME);
            }
        }
    }

    fn limits(&self) -> ArchLimits {
        ArchLimits {
            max_vcpus: MAX_VCPUS,
            max_vcpu_ids: MAX_VCPU_IDS,
            nr_vcpus: MAX_VCPUS,
            slots: SlotLimits {
                // No SMM, so a single address space.
                address_spaces: 1,
                // CAST: 32764 fits a u16.
                slots: KVM_USER_MEM_SLOTS as u16,
                max_gfn: self.max_gfn(),
                readonly: true,
            },
            vcpu_mmap_pages: 3,
            pio_page: Some(1),
            sync_regs: 0,
        }
    }

    /// The x86 capabilities: 1 (or a size) for what this backend implements, 0 for what it
    /// does not yet (in-kernel irqchip, HLT exits, SMM, sync regs, guest debugging).
    fn check_extension(&self, cap: u64, _vm: Option<&SvmVm>) -> Option<i64> {
        let xsave = i64::from(self.host_xsave);
        Some(match Cap::from_raw(cap)? {
            Cap::Irqchip
            | Cap::Hlt
            | Cap::X86Smm
            | Cap::SyncRegs
            | Cap::SetGuestDebug
            | Cap::SplitIrqchip
            | Cap::ExceptionPayload
            | Cap::X86TripleFaultEvent => 0,
            Cap::SetTssAddr
            | Cap::SetIdentityMapAddr
            | Cap::ExtCpuid
            | Cap::ExtEmulCpuid
            | Cap::MpState
            | Cap::VcpuEvents
            | Cap::Debugregs
            | Cap::UserNmi
            | Cap::GetMsrFeatures
            | Cap::Sregs2 => 1,
            Cap::Xsave | Cap::Xcrs => xsave,
            Cap::Xsave2 => XSAVE2_SIZE as i64,
            Cap::VmTypes => 1 << KVM_X86_DEFAULT_VM,
            Cap::AdjustClock => i64::from(CLOCK_VALID_FLAGS),
            _ => return None,
        })
    }

    fn system_ioctl(&self, os: &O, cmd: u32, arg: u64) -> Option<KResult<i64>> {
        let addr = UserAddr(arg);
        Some(match cmd {
            KVM_GET_MSR_INDEX_LIST => {
                fam::write::<_, KvmMsrList>(os, addr, &self.msr_list, TooSmall::WriteCount)
                    .map(|()| 0)
            }
            KVM_GET_MSR_FEATURE_INDEX_LIST => {
                fam::write::<_, KvmMsrList>(os, addr, &msr::FEATURES, TooSmall::WriteCount)
                    .map(|()| 0)
            }
            KVM_GET_SUPPORTED_CPUID => {
                fam::write::<_, KvmCpuid2>(os, addr, &self.supported, TooSmall::KeepCount)
                    .map(|()| 0)
            }
            KVM_GET_EMULATED_CPUID => self.emulated_cpuid(os, addr),
            KVM_GET_MSRS => self.feature_msrs(os, addr),
            _ => return None,
        })
    }

    /// Only the default VM type; the VM clock starts at zero.
    fn vm_create(&self, os: &O, vm_type: u64) -> KResult<SvmVm> {
        if vm_type != KVM_X86_DEFAULT_VM {
            return Err(Errno::EINVAL);
        }
        Ok(SvmVm {
            max_vcpu_ids: AtomicU32::new(0),
            clock_offset: AtomicU64::new(0u64.wrapping_sub(os.time_monotonic_ns())),
        })
    }

    /// `KVM_SET_TSS_ADDR` (accepted and ignored: SVM runs real mode natively, no TSS is
    /// needed), `KVM_SET_IDENTITY_MAP_ADDR` (likewise ignored; refused once vCPUs exist), and
    /// the in-kernel irqchip commands, which fail with `ENXIO` (there is none), and the VM
    /// clock (`KVM_GET_CLOCK`/`KVM_SET_CLOCK`: the host's monotonic clock plus an offset).
    fn vm_ioctl(
        &self,
        os: &O,
        vm: &SvmVm,
        info: &VmInfo,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>> {
        Some(match cmd {
            KVM_SET_TSS_ADDR if arg > TSS_ADDR_MAX => Err(Errno::EINVAL),
            KVM_SET_TSS_ADDR => Ok(0),
            KVM_SET_IDENTITY_MAP_ADDR if info.created_vcpus > 0 => Err(Errno::EINVAL),
            KVM_SET_IDENTITY_MAP_ADDR => user::read::<_, u64>(os, UserAddr(arg)).map(|_| 0),
            // There is no in-kernel interrupt controller: the argument is read (EFAULT), then
            // the command has nothing to act on.
            KVM_IRQ_LINE | KVM_IRQ_LINE_STATUS => {
                user::read::<_, KvmIrqLevel>(os, UserAddr(arg)).and(Err(Errno::ENXIO))
            }
            KVM_GET_IRQCHIP | KVM_SET_IRQCHIP => {
                user::read::<_, KvmIrqchip>(os, UserAddr(arg)).and(Err(Errno::ENXIO))
            }
            KVM_GET_CLOCK => {
                let now = os.time_monotonic_ns();
                let data = KvmClockData {
                    clock: now.wrapping_add(vm.clock_offset.load(Ordering::Relaxed)),
                    ..Default::default()
                };
                user::write(os, UserAddr(arg), &data).map(|()| 0)
            }
            KVM_SET_CLOCK => user::read::<_, KvmClockData>(os, UserAddr(arg)).and_then(|d| {
                if d.flags & !CLOCK_VALID_FLAGS != 0 {
                    return Err(Errno::EINVAL);
                }
                let off = d.clock.wrapping_sub(os.time_monotonic_ns());
                vm.clock_offset.store(off, Ordering::Relaxed);
                Ok(0)
            }),
            _ => return None,
        })
    }

    /// `KVM_CAP_MAX_VCPU_ID`: lowers the vCPU-id limit of this VM, once (setting the same value
    /// again is accepted). Other capabilities are not enableable.
    fn vm_enable_cap(&self, _os: &O, vm: &SvmVm, cap: &KvmEnableCap) -> KResult<()> {
        if cap.flags != 0 || cap.cap != Cap::MaxVcpuId.raw() {
            return Err(Errno::EINVAL);
        }
        let want = u32::try_from(cap.args[0])
            .ok()
            .filter(|&n| n <= MAX_VCPU_IDS)
            .ok_or(Errno::EINVAL)?;
        match vm
            .max_vcpu_ids
            .compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(cur) if cur == want => Ok(()),
            Err(_) => Err(Errno::EINVAL),
        }
    }

    /// Nothing to do yet: without nested page tables there are no stage-2 mappings to drop
    /// or write-protect.
    fn vm_slots_changed(&self, _os: &O, _vm: &SvmVm, _change: SlotChange) {}

    /// Nothing to do yet, for the same reason as [`Arch::vm_slots_changed`].
    fn vm_dirty_rearm(&self, _os: &O, _vm: &SvmVm, _as_id: u16, _first: Gfn, _count: u64) {}

    /// Refuses ids at or above the VM's own limit, if one was set.
    fn vcpu_create(&self, _os: &O, vm: &SvmVm, id: u32) -> KResult<VcpuState> {
        let limit = vm.max_vcpu_ids.load(Ordering::Acquire);
        if limit != 0 && id >= limit {
            return Err(Errno::EINVAL);
        }
        VcpuState::reset(id, self.hw.rdtsc())
    }

    fn vcpu_get_regs(&self, v: &VcpuState) -> KResult<KvmRegs> {
        Ok(v.regs)
    }

    /// RFLAGS bit 1 always reads as one; a pending (not yet delivered) exception is dropped,
    /// since it belonged to the old instruction pointer.
    fn vcpu_set_regs(&self, v: &mut VcpuState, regs: &KvmRegs) -> KResult<()> {
        v.regs = *regs;
        v.regs.rflags |= 2;
        v.events.exception.pending = false;
        Ok(())
    }

    fn vcpu_get_sregs(&self, v: &VcpuState) -> KResult<KvmSregs> {
        Ok(v.sregs())
    }

    /// Validated as a whole before anything changes; a set bit in `interrupt_bitmap` (the
    /// lowest) queues that external interrupt.
    fn vcpu_set_sregs(&self, v: &mut VcpuState, s: &KvmSregs) -> KResult<()> {
        v.set_sregs_common(&SregsCommon::from_sregs(s), self.host_cr4_reserved)?;
        let first = s
            .interrupt_bitmap
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize);
        if let Some(vec) = first {
            // CAST: below KVM_NR_INTERRUPTS.
            v.queue_interrupt(vec as u32)?;
        }
        Ok(())
    }

    /// The x87/SSE state from the XSAVE image. MXCSR reads as 0, as on KVM (it is only in
    /// `KVM_GET_XSAVE`).
    fn vcpu_get_fpu(&self, v: &VcpuState) -> KResult<KvmFpu> {
        let mut f = KvmFpu::new_zeroed();
        for (i, r) in f.fpr.iter_mut().enumerate() {
            *r = v.xsave_get::<16>(xsave::ST + 16 * i);
        }
        for (i, r) in f.xmm.iter_mut().enumerate() {
            *r = v.xsave_get::<16>(xsave::XMM + 16 * i);
        }
        f.fcw = u16::from_le_bytes(v.xsave_get(xsave::FCW));
        f.fsw = u16::from_le_bytes(v.xsave_get(xsave::FSW));
        f.ftwx = v.xsave_get::<1>(xsave::FTW)[0];
        f.last_opcode = u16::from_le_bytes(v.xsave_get(xsave::FOP));
        f.last_ip = u64::from_le_bytes(v.xsave_get(xsave::FIP));
        f.last_dp = u64::from_le_bytes(v.xsave_get(xsave::FDP));
        Ok(f)
    }

    /// Writes the x87/SSE registers into the XSAVE image; MXCSR is ignored, as on KVM.
    fn vcpu_set_fpu(&self, v: &mut VcpuState, f: &KvmFpu) -> KResult<()> {
        for (i, r) in f.fpr.iter().enumerate() {
            v.xsave_put(xsave::ST + 16 * i, r);
        }
        for (i, r) in f.xmm.iter().enumerate() {
            v.xsave_put(xsave::XMM + 16 * i, r);
        }
        v.xsave_put(xsave::FCW, &f.fcw.to_le_bytes());
        v.xsave_put(xsave::FSW, &f.fsw.to_le_bytes());
        v.xsave_put(xsave::FTW, &[f.ftwx]);
        v.xsave_put(xsave::FOP, &f.last_opcode.to_le_bytes());
        v.xsave_put(xsave::FIP, &f.last_ip.to_le_bytes());
        v.xsave_put(xsave::FDP, &f.last_dp.to_le_bytes());
        Ok(())
    }

    fn vcpu_get_mp_state(&self, _v: &VcpuState) -> KResult<u32> {
        Ok(kvmport_core::abi::KVM_MP_STATE_RUNNABLE)
    }

    /// Without an in-kernel local APIC only `RUNNABLE` is meaningful.
    fn vcpu_set_mp_state(&self, _v: &mut VcpuState, state: u32) -> KResult<()> {
        if state != kvmport_core::abi::KVM_MP_STATE_RUNNABLE {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn vcpu_ioctl(
        &self,
        os: &O,
        _vm: &SvmVm,
        v: &mut VcpuState,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>> {
        self.vcpu_cmd(os, v, cmd, arg)
    }

    /// There is never an access to complete: [`Arch::vcpu_run`] produces no exits yet.
    fn vcpu_complete(&self, _ctx: &mut RunCtx<'_, O, Self>, _done: Completion) -> KResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Not implemented yet: the world switch (VMCB set-up from [`VcpuState`], `VMRUN` with
    /// interrupts disabled, exit decoding, nested paging) is the next piece of work. Until then
    /// `KVM_RUN` fails with `ENOSYS` rather than pretending to run the guest.
    fn vcpu_run(&self, _ctx: &mut RunCtx<'_, O, Self>) -> KResult<Exit> {
        Err(Errno::ENOSYS)
    }
}

/// Makes [`Svm`] usable as [`kvmport_core::Platform::Arch`] without naming the OS.
const _: () = {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    let _ = assert_send_sync::<Svm>;
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_box_any_owns_its_value() {
        let b = try_box_any(alloc::vec![1u8, 2, 3]).unwrap();
        let v = b.downcast_ref::<[Vec<u8>; 1]>().unwrap();
        assert_eq!(v[0], [1, 2, 3]);
        assert!(try_box_any(()).is_ok());
    }

    #[test]
    fn emulated_table_is_a_bare_leaf_0() {
        assert_eq!(cpuid_table::emulated()[0], KvmCpuidEntry2::default());
    }
}
