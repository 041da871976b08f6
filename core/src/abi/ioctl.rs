//! KVM ioctl command numbers, built like the kernel's `_IO*` macros.
//!
//! The encoding is asm-generic (x86, arm64, s390x, riscv): 8-bit number,
//! 8-bit type, 14-bit size, 2-bit direction. PowerPC differs; see
//! [`super::ppc::ioc`] and [`super::ppc::from_generic`].
//!
//! Commands whose argument is architecture-specific (`KVM_GET_REGS`, ...) are
//! defined here with the x86_64 struct (the primary target); `arm64`, `ppc`
//! and `s390x` re-define those whose size differs there.

use super::KVMIO;
use super::arm64::KvmVcpuInit;
use super::ppc::{KvmPpcPvinfo, KvmPpcResizeHpt, KvmPpcSmmuInfo};
use super::s390x::{
    KvmPvCmd, KvmS390CmmaLog, KvmS390Interrupt, KvmS390Irq, KvmS390IrqState, KvmS390MemOp,
    KvmS390Psw, KvmS390Skeys, KvmS390UcasMapping,
};
use super::x86::{
    KvmCpuid, KvmCpuid2, KvmDebugregs, KvmFpu, KvmLapicState, KvmMemoryAlias, KvmMsrFilter,
    KvmMsrList, KvmMsrs, KvmNestedState, KvmPitConfig, KvmPitState, KvmPitState2,
    KvmPmuEventFilter, KvmRegs, KvmSregs, KvmSregs2, KvmTprAccessCtl, KvmVapicAddr, KvmVcpuEvents,
    KvmX86Mce, KvmXcrs, KvmXenHvmAttr, KvmXenHvmConfig, KvmXenVcpuAttr, KvmXsave,
};
use super::{
    KvmArmDeviceAddr, KvmClearDirtyLog, KvmClockData, KvmCoalescedMmioZone, KvmCreateDevice,
    KvmCreateGuestMemfd, KvmDeviceAttr, KvmDirtyLog, KvmDirtyTlb, KvmEnableCap, KvmEncRegion,
    KvmGuestDebug, KvmHypervEventfd, KvmInterrupt, KvmIoeventfd, KvmIrqLevel, KvmIrqRouting,
    KvmIrqRoutingXenEvtchn, KvmIrqchip, KvmIrqfd, KvmMemoryAttributes, KvmMemoryRegion, KvmMpState,
    KvmMsi, KvmOneReg, KvmRegList, KvmSignalMask, KvmTranslation, KvmUserspaceMemoryRegion,
    KvmUserspaceMemoryRegion2,
};

/// `_IOC_NONE`: no data transfer.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: user space writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes, user space reads.
pub const IOC_READ: u32 = 2;

/// Bits of the number field.
pub const IOC_NRBITS: u32 = 8;
/// Bits of the type field.
pub const IOC_TYPEBITS: u32 = 8;
/// Bits of the size field.
pub const IOC_SIZEBITS: u32 = 14;
/// Bits of the direction field.
pub const IOC_DIRBITS: u32 = 2;
/// Shift of the number field.
pub const IOC_NRSHIFT: u32 = 0;
/// Shift of the type field.
pub const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
/// Shift of the size field.
pub const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
/// Shift of the direction field.
pub const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;

const fn mask(bits: u32) -> u32 {
    (1 << bits) - 1
}

/// Builds a command (`_IOC(dir, type, nr, size)`). Each field is truncated
/// to its width; every KVM argument struct fits the 14-bit size.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    ((dir & mask(IOC_DIRBITS)) << IOC_DIRSHIFT)
        | (((size as u32) & mask(IOC_SIZEBITS)) << IOC_SIZESHIFT)
        | ((ty & mask(IOC_TYPEBITS)) << IOC_TYPESHIFT)
        | ((nr & mask(IOC_NRBITS)) << IOC_NRSHIFT)
}

/// `_IO(KVMIO, nr)`.
pub const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, KVMIO, nr, 0)
}

/// `_IOR(KVMIO, nr, T)`.
pub const fn ior<T>(nr: u32) -> u32 {
    ioc(IOC_READ, KVMIO, nr, core::mem::size_of::<T>())
}

/// `_IOW(KVMIO, nr, T)`.
pub const fn iow<T>(nr: u32) -> u32 {
    ioc(IOC_WRITE, KVMIO, nr, core::mem::size_of::<T>())
}

/// `_IOWR(KVMIO, nr, T)`.
pub const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, KVMIO, nr, core::mem::size_of::<T>())
}

/// `_IOC_DIR(cmd)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    (cmd >> IOC_DIRSHIFT) & mask(IOC_DIRBITS)
}

/// `_IOC_TYPE(cmd)`.
pub const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> IOC_TYPESHIFT) & mask(IOC_TYPEBITS)
}

/// `_IOC_NR(cmd)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    (cmd >> IOC_NRSHIFT) & mask(IOC_NRBITS)
}

/// `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> u32 {
    (cmd >> IOC_SIZESHIFT) & mask(IOC_SIZEBITS)
}

// ---------------------------------------------------------------------------
// System ioctls (/dev/kvm).
// ---------------------------------------------------------------------------

/// System: returns `KVM_API_VERSION`.
pub const KVM_GET_API_VERSION: u32 = io(0x00);
/// System: creates a VM, returns its fd (argument: machine type).
pub const KVM_CREATE_VM: u32 = io(0x01);
/// System: lists the MSRs `KVM_GET/SET_MSRS` support (x86).
pub const KVM_GET_MSR_INDEX_LIST: u32 = iowr::<KvmMsrList>(0x02);
/// System/VM: whether a `KVM_CAP_*` is available (argument: the cap).
pub const KVM_CHECK_EXTENSION: u32 = io(0x03);
/// System: size of the vCPU mmap area.
pub const KVM_GET_VCPU_MMAP_SIZE: u32 = io(0x04);
/// System: CPUID bits KVM supports (x86).
pub const KVM_GET_SUPPORTED_CPUID: u32 = iowr::<KvmCpuid2>(0x05);
/// System: enables SIE for the process (s390).
pub const KVM_S390_ENABLE_SIE: u32 = io(0x06);
/// System: CPUID bits KVM can emulate (x86).
pub const KVM_GET_EMULATED_CPUID: u32 = iowr::<KvmCpuid2>(0x09);
/// System: lists the feature MSRs (x86).
pub const KVM_GET_MSR_FEATURE_INDEX_LIST: u32 = iowr::<KvmMsrList>(0x0a);

// ---------------------------------------------------------------------------
// VM ioctls.
// ---------------------------------------------------------------------------

/// VM: obsolete memory-region setup.
pub const KVM_SET_MEMORY_REGION: u32 = iow::<KvmMemoryRegion>(0x40);
/// VM: creates a vCPU, returns its fd (argument: vCPU id).
pub const KVM_CREATE_VCPU: u32 = io(0x41);
/// VM: fetches and clears a slot's dirty bitmap.
pub const KVM_GET_DIRTY_LOG: u32 = iow::<KvmDirtyLog>(0x42);
/// VM: obsolete memory alias (x86).
pub const KVM_SET_MEMORY_ALIAS: u32 = iow::<KvmMemoryAlias>(0x43);
/// VM: sets the shadow MMU page count (x86).
pub const KVM_SET_NR_MMU_PAGES: u32 = io(0x44);
/// VM: gets the shadow MMU page count (x86).
pub const KVM_GET_NR_MMU_PAGES: u32 = io(0x45);
/// VM: creates, modifies or deletes a memory slot.
pub const KVM_SET_USER_MEMORY_REGION: u32 = iow::<KvmUserspaceMemoryRegion>(0x46);
/// VM: sets the TSS address (x86; argument: address).
pub const KVM_SET_TSS_ADDR: u32 = io(0x47);
/// VM: sets the EPT identity map address (x86).
pub const KVM_SET_IDENTITY_MAP_ADDR: u32 = iow::<u64>(0x48);
/// VM: memory slot with guest_memfd (Linux 6.8+; not in the 6.1 header).
pub const KVM_SET_USER_MEMORY_REGION2: u32 = iow::<KvmUserspaceMemoryRegion2>(0x49);
/// VM: maps user memory into a ucontrol VM (s390).
pub const KVM_S390_UCAS_MAP: u32 = iow::<KvmS390UcasMapping>(0x50);
/// VM: unmaps user memory from a ucontrol VM (s390).
pub const KVM_S390_UCAS_UNMAP: u32 = iow::<KvmS390UcasMapping>(0x51);
/// vCPU: resolves a ucontrol fault (s390; argument `unsigned long`).
pub const KVM_S390_VCPU_FAULT: u32 = iow::<u64>(0x52);
/// VM: creates the in-kernel irqchip.
pub const KVM_CREATE_IRQCHIP: u32 = io(0x60);
/// VM: sets an interrupt line level.
pub const KVM_IRQ_LINE: u32 = iow::<KvmIrqLevel>(0x61);
/// VM: reads an in-kernel irqchip's state.
pub const KVM_GET_IRQCHIP: u32 = iowr::<KvmIrqchip>(0x62);
/// VM: writes an in-kernel irqchip's state (the header uses `_IOR`).
pub const KVM_SET_IRQCHIP: u32 = ior::<KvmIrqchip>(0x63);
/// VM: creates the in-kernel PIT (obsolete, see `KVM_CREATE_PIT2`).
pub const KVM_CREATE_PIT: u32 = io(0x64);
/// VM: reads the PIT state (obsolete).
pub const KVM_GET_PIT: u32 = iowr::<KvmPitState>(0x65);
/// VM: writes the PIT state (obsolete; the header uses `_IOR`).
pub const KVM_SET_PIT: u32 = ior::<KvmPitState>(0x66);
/// VM: sets an interrupt line level and returns the delivery status.
pub const KVM_IRQ_LINE_STATUS: u32 = iowr::<KvmIrqLevel>(0x67);
/// VM: registers a coalesced MMIO/PIO zone.
pub const KVM_REGISTER_COALESCED_MMIO: u32 = iow::<KvmCoalescedMmioZone>(0x67);
/// VM: unregisters a coalesced MMIO/PIO zone.
pub const KVM_UNREGISTER_COALESCED_MMIO: u32 = iow::<KvmCoalescedMmioZone>(0x68);
/// VM: sets the GSI routing table (header followed by entries).
pub const KVM_SET_GSI_ROUTING: u32 = iow::<KvmIrqRouting>(0x6a);
/// VM: PIT reinjection control (x86).
pub const KVM_REINJECT_CONTROL: u32 = io(0x71);
/// VM: binds an eventfd to a GSI.
pub const KVM_IRQFD: u32 = iow::<KvmIrqfd>(0x76);
/// VM: creates the in-kernel PIT (x86).
pub const KVM_CREATE_PIT2: u32 = iow::<KvmPitConfig>(0x77);
/// VM: selects the boot vCPU (x86; argument: vCPU id).
pub const KVM_SET_BOOT_CPU_ID: u32 = io(0x78);
/// VM: binds an eventfd to a PIO/MMIO address.
pub const KVM_IOEVENTFD: u32 = iow::<KvmIoeventfd>(0x79);
/// VM: Xen HVM configuration (x86).
pub const KVM_XEN_HVM_CONFIG: u32 = iow::<KvmXenHvmConfig>(0x7a);
/// VM: sets the kvmclock.
pub const KVM_SET_CLOCK: u32 = iow::<KvmClockData>(0x7b);
/// VM: reads the kvmclock.
pub const KVM_GET_CLOCK: u32 = ior::<KvmClockData>(0x7c);
/// VM: reads the PIT state (x86).
pub const KVM_GET_PIT2: u32 = ior::<KvmPitState2>(0x9f);
/// VM: writes the PIT state (x86).
pub const KVM_SET_PIT2: u32 = iow::<KvmPitState2>(0xa0);
/// VM: paravirtualization info (ppc).
pub const KVM_PPC_GET_PVINFO: u32 = iow::<KvmPpcPvinfo>(0xa1);
/// VM/vCPU: sets the guest TSC frequency (argument: kHz).
pub const KVM_SET_TSC_KHZ: u32 = io(0xa2);
/// VM/vCPU: returns the guest TSC frequency in kHz.
pub const KVM_GET_TSC_KHZ: u32 = io(0xa3);
/// VM: injects an MSI.
pub const KVM_SIGNAL_MSI: u32 = iow::<KvmMsi>(0xa5);
/// VM: MMU page-size info (ppc).
pub const KVM_PPC_GET_SMMU_INFO: u32 = ior::<KvmPpcSmmuInfo>(0xa6);
/// VM: allocates the hashed page table (ppc; argument `u32` order).
pub const KVM_PPC_ALLOCATE_HTAB: u32 = iowr::<u32>(0xa7);
/// VM: sets a device's base address (arm).
pub const KVM_ARM_SET_DEVICE_ADDR: u32 = iow::<KvmArmDeviceAddr>(0xab);
/// VM: prepares an HPT resize (ppc).
pub const KVM_PPC_RESIZE_HPT_PREPARE: u32 = ior::<KvmPpcResizeHpt>(0xad);
/// VM: commits an HPT resize (ppc).
pub const KVM_PPC_RESIZE_HPT_COMMIT: u32 = ior::<KvmPpcResizeHpt>(0xae);
/// VM: sets the PMU event filter (x86, header followed by events).
pub const KVM_SET_PMU_EVENT_FILTER: u32 = iow::<KvmPmuEventFilter>(0xb2);
/// VM: turns off secure-VM mode (ppc).
pub const KVM_PPC_SVM_OFF: u32 = io(0xb3);
/// VM: reads storage keys (s390).
pub const KVM_S390_GET_SKEYS: u32 = iow::<KvmS390Skeys>(0xb2);
/// VM: writes storage keys (s390).
pub const KVM_S390_SET_SKEYS: u32 = iow::<KvmS390Skeys>(0xb3);
/// VM: reads CMMA bits (s390).
pub const KVM_S390_GET_CMMA_BITS: u32 = iowr::<KvmS390CmmaLog>(0xb8);
/// VM: writes CMMA bits (s390).
pub const KVM_S390_SET_CMMA_BITS: u32 = iow::<KvmS390CmmaLog>(0xb9);
/// VM: memory-encryption (SEV/TDX) command (argument `unsigned long`).
pub const KVM_MEMORY_ENCRYPT_OP: u32 = iowr::<u64>(0xba);
/// VM: registers an encrypted memory region.
pub const KVM_MEMORY_ENCRYPT_REG_REGION: u32 = ior::<KvmEncRegion>(0xbb);
/// VM: unregisters an encrypted memory region.
pub const KVM_MEMORY_ENCRYPT_UNREG_REGION: u32 = ior::<KvmEncRegion>(0xbc);
/// VM: binds an eventfd to a Hyper-V connection id.
pub const KVM_HYPERV_EVENTFD: u32 = iow::<KvmHypervEventfd>(0xbd);
/// VM: clears part of a slot's dirty bitmap.
pub const KVM_CLEAR_DIRTY_LOG: u32 = iowr::<KvmClearDirtyLog>(0xc0);
/// System/vCPU: Hyper-V CPUID leaves (x86).
pub const KVM_GET_SUPPORTED_HV_CPUID: u32 = iowr::<KvmCpuid2>(0xc1);
/// VM: protected-virtualization command (s390).
pub const KVM_S390_PV_COMMAND: u32 = iowr::<KvmPvCmd>(0xc5);
/// VM: sets the MSR filter (x86).
pub const KVM_X86_SET_MSR_FILTER: u32 = iow::<KvmMsrFilter>(0xc6);
/// VM: resets all vCPUs' harvested dirty-ring entries.
pub const KVM_RESET_DIRTY_RINGS: u32 = io(0xc7);
/// VM: reads a Xen attribute (x86).
pub const KVM_XEN_HVM_GET_ATTR: u32 = iowr::<KvmXenHvmAttr>(0xc8);
/// VM: writes a Xen attribute (x86).
pub const KVM_XEN_HVM_SET_ATTR: u32 = iow::<KvmXenHvmAttr>(0xc9);
/// VM/vCPU: returns a binary-stats fd.
pub const KVM_GET_STATS_FD: u32 = io(0xce);
/// VM: sends a Xen event channel (x86).
pub const KVM_XEN_HVM_EVTCHN_SEND: u32 = iow::<KvmIrqRoutingXenEvtchn>(0xd0);
/// VM: sets memory attributes (Linux 6.8+; not in the 6.1 header).
pub const KVM_SET_MEMORY_ATTRIBUTES: u32 = iow::<KvmMemoryAttributes>(0xd2);
/// VM: creates a guest_memfd (Linux 6.8+; not in the 6.1 header).
pub const KVM_CREATE_GUEST_MEMFD: u32 = iowr::<KvmCreateGuestMemfd>(0xd4);
/// VM: creates a device, returns its fd.
pub const KVM_CREATE_DEVICE: u32 = iowr::<KvmCreateDevice>(0xe0);
/// VM/vCPU: enables a capability.
pub const KVM_ENABLE_CAP: u32 = iow::<KvmEnableCap>(0xa3);

// ---------------------------------------------------------------------------
// Device ioctls (fds from KVM_CREATE_DEVICE; also VM, vCPU and system fds
// with KVM_CAP_VM_ATTRIBUTES / VCPU_ATTRIBUTES / SYS_ATTRIBUTES).
// ---------------------------------------------------------------------------

/// Device: sets an attribute.
pub const KVM_SET_DEVICE_ATTR: u32 = iow::<KvmDeviceAttr>(0xe1);
/// Device: gets an attribute.
pub const KVM_GET_DEVICE_ATTR: u32 = iow::<KvmDeviceAttr>(0xe2);
/// Device: tests whether an attribute exists.
pub const KVM_HAS_DEVICE_ATTR: u32 = iow::<KvmDeviceAttr>(0xe3);

// ---------------------------------------------------------------------------
// vCPU ioctls.
// ---------------------------------------------------------------------------

/// vCPU: runs the guest.
pub const KVM_RUN: u32 = io(0x80);
/// vCPU: reads the general-purpose registers (x86_64 struct).
pub const KVM_GET_REGS: u32 = ior::<KvmRegs>(0x81);
/// vCPU: writes the general-purpose registers (x86_64 struct).
pub const KVM_SET_REGS: u32 = iow::<KvmRegs>(0x82);
/// vCPU: reads the special registers (x86_64 struct).
pub const KVM_GET_SREGS: u32 = ior::<KvmSregs>(0x83);
/// vCPU: writes the special registers (x86_64 struct).
pub const KVM_SET_SREGS: u32 = iow::<KvmSregs>(0x84);
/// vCPU: translates a guest-linear address.
pub const KVM_TRANSLATE: u32 = iowr::<KvmTranslation>(0x85);
/// vCPU: injects an interrupt (user-space irqchip).
pub const KVM_INTERRUPT: u32 = iow::<KvmInterrupt>(0x86);
/// vCPU: reads MSRs (x86).
pub const KVM_GET_MSRS: u32 = iowr::<KvmMsrs>(0x88);
/// vCPU: writes MSRs (x86).
pub const KVM_SET_MSRS: u32 = iow::<KvmMsrs>(0x89);
/// vCPU: sets CPUID, legacy format (x86).
pub const KVM_SET_CPUID: u32 = iow::<KvmCpuid>(0x8a);
/// vCPU: sets the signal mask during `KVM_RUN`.
pub const KVM_SET_SIGNAL_MASK: u32 = iow::<KvmSignalMask>(0x8b);
/// vCPU: reads the FPU state (x86_64 struct).
pub const KVM_GET_FPU: u32 = ior::<KvmFpu>(0x8c);
/// vCPU: writes the FPU state (x86_64 struct).
pub const KVM_SET_FPU: u32 = iow::<KvmFpu>(0x8d);
/// vCPU: reads the local APIC (x86).
pub const KVM_GET_LAPIC: u32 = ior::<KvmLapicState>(0x8e);
/// vCPU: writes the local APIC (x86).
pub const KVM_SET_LAPIC: u32 = iow::<KvmLapicState>(0x8f);
/// vCPU: sets CPUID (x86).
pub const KVM_SET_CPUID2: u32 = iow::<KvmCpuid2>(0x90);
/// vCPU: reads CPUID (x86).
pub const KVM_GET_CPUID2: u32 = iowr::<KvmCpuid2>(0x91);
/// vCPU: TPR access reporting (x86).
pub const KVM_TPR_ACCESS_REPORTING: u32 = iowr::<KvmTprAccessCtl>(0x92);
/// vCPU: sets the VAPIC address (x86).
pub const KVM_SET_VAPIC_ADDR: u32 = iow::<KvmVapicAddr>(0x93);
/// VM/vCPU: injects an interrupt (s390).
pub const KVM_S390_INTERRUPT: u32 = iow::<KvmS390Interrupt>(0x94);
/// vCPU: stores status (s390; argument `unsigned long`).
pub const KVM_S390_STORE_STATUS: u32 = iow::<u64>(0x95);
/// vCPU: sets the initial PSW (s390).
pub const KVM_S390_SET_INITIAL_PSW: u32 = iow::<KvmS390Psw>(0x96);
/// vCPU: initial reset (s390).
pub const KVM_S390_INITIAL_RESET: u32 = io(0x97);
/// vCPU: reads the MP state.
pub const KVM_GET_MP_STATE: u32 = ior::<KvmMpState>(0x98);
/// vCPU: writes the MP state.
pub const KVM_SET_MP_STATE: u32 = iow::<KvmMpState>(0x99);
/// vCPU: injects an NMI (x86).
pub const KVM_NMI: u32 = io(0x9a);
/// vCPU: configures guest debugging (x86_64 struct).
pub const KVM_SET_GUEST_DEBUG: u32 = iow::<KvmGuestDebug>(0x9b);
/// vCPU: sets up machine-check emulation (x86).
pub const KVM_X86_SETUP_MCE: u32 = iow::<u64>(0x9c);
/// System: supported MCG_CAP bits (x86).
pub const KVM_X86_GET_MCE_CAP_SUPPORTED: u32 = ior::<u64>(0x9d);
/// vCPU: injects a machine check (x86).
pub const KVM_X86_SET_MCE: u32 = iow::<KvmX86Mce>(0x9e);
/// vCPU: reads pending events (x86).
pub const KVM_GET_VCPU_EVENTS: u32 = ior::<KvmVcpuEvents>(0x9f);
/// vCPU: writes pending events (x86).
pub const KVM_SET_VCPU_EVENTS: u32 = iow::<KvmVcpuEvents>(0xa0);
/// vCPU: reads debug registers (x86).
pub const KVM_GET_DEBUGREGS: u32 = ior::<KvmDebugregs>(0xa1);
/// vCPU: writes debug registers (x86).
pub const KVM_SET_DEBUGREGS: u32 = iow::<KvmDebugregs>(0xa2);
/// vCPU: reads the XSAVE area (x86).
pub const KVM_GET_XSAVE: u32 = ior::<KvmXsave>(0xa4);
/// vCPU: writes the XSAVE area (x86).
pub const KVM_SET_XSAVE: u32 = iow::<KvmXsave>(0xa5);
/// vCPU: reads XCRs (x86).
pub const KVM_GET_XCRS: u32 = ior::<KvmXcrs>(0xa6);
/// vCPU: writes XCRs (x86).
pub const KVM_SET_XCRS: u32 = iow::<KvmXcrs>(0xa7);
/// vCPU: marks shadow TLB entries dirty (ppc booke).
pub const KVM_DIRTY_TLB: u32 = iow::<KvmDirtyTlb>(0xaa);
/// vCPU: reads one register.
pub const KVM_GET_ONE_REG: u32 = iow::<KvmOneReg>(0xab);
/// vCPU: writes one register.
pub const KVM_SET_ONE_REG: u32 = iow::<KvmOneReg>(0xac);
/// vCPU: tells the guest it was paused (kvmclock).
pub const KVM_KVMCLOCK_CTRL: u32 = io(0xad);
/// vCPU: initializes an arm64 vCPU.
pub const KVM_ARM_VCPU_INIT: u32 = iow::<KvmVcpuInit>(0xae);
/// VM: preferred arm64 target.
pub const KVM_ARM_PREFERRED_TARGET: u32 = ior::<KvmVcpuInit>(0xaf);
/// vCPU: lists the ONE_REG ids.
pub const KVM_GET_REG_LIST: u32 = iowr::<KvmRegList>(0xb0);
/// vCPU: reads/writes guest memory (s390).
pub const KVM_S390_MEM_OP: u32 = iow::<KvmS390MemOp>(0xb1);
/// vCPU: injects an interrupt (s390).
pub const KVM_S390_IRQ: u32 = iow::<KvmS390Irq>(0xb4);
/// vCPU: restores pending interrupts (s390).
pub const KVM_S390_SET_IRQ_STATE: u32 = iow::<KvmS390IrqState>(0xb5);
/// vCPU: saves pending interrupts (s390).
pub const KVM_S390_GET_IRQ_STATE: u32 = iow::<KvmS390IrqState>(0xb6);
/// vCPU: injects an SMI (x86).
pub const KVM_SMI: u32 = io(0xb7);
/// vCPU: reads nested virtualization state (x86).
pub const KVM_GET_NESTED_STATE: u32 = iowr::<KvmNestedState>(0xbe);
/// vCPU: writes nested virtualization state (x86).
pub const KVM_SET_NESTED_STATE: u32 = iow::<KvmNestedState>(0xbf);
/// vCPU: finalizes an arm64 feature (argument `int`).
pub const KVM_ARM_VCPU_FINALIZE: u32 = iow::<i32>(0xc2);
/// vCPU: normal reset (s390).
pub const KVM_S390_NORMAL_RESET: u32 = io(0xc3);
/// vCPU: clear reset (s390).
pub const KVM_S390_CLEAR_RESET: u32 = io(0xc4);
/// vCPU: reads a Xen vCPU attribute (x86).
pub const KVM_XEN_VCPU_GET_ATTR: u32 = iowr::<KvmXenVcpuAttr>(0xca);
/// vCPU: writes a Xen vCPU attribute (x86).
pub const KVM_XEN_VCPU_SET_ATTR: u32 = iow::<KvmXenVcpuAttr>(0xcb);
/// vCPU: reads the special registers incl. PDPTRs (x86).
pub const KVM_GET_SREGS2: u32 = ior::<KvmSregs2>(0xcc);
/// vCPU: writes the special registers incl. PDPTRs (x86).
pub const KVM_SET_SREGS2: u32 = iow::<KvmSregs2>(0xcd);
/// vCPU: reads the full XSAVE area (x86, `KVM_CAP_XSAVE2` sized).
pub const KVM_GET_XSAVE2: u32 = ior::<KvmXsave>(0xcf);
/// vCPU: protected-virtualization vCPU command (s390).
pub const KVM_S390_PV_CPU_COMMAND: u32 = iowr::<KvmPvCmd>(0xd0);
