//! `KVM_CAP_*` extension numbers (`KVM_CHECK_EXTENSION`, `KVM_ENABLE_CAP`).
//!
//! Every capability of the Linux 6.1 `<linux/kvm.h>` plus the later ones up
//! to `KVM_CAP_X86_GUEST_MODE` (238), whose docs say so.

/// A KVM capability number. Variant names are the CamelCase of the C name
/// after `KVM_CAP_`; [`Cap::name`] gives the C name.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cap {
    /// `KVM_CAP_IRQCHIP`.
    Irqchip = 0,
    /// `KVM_CAP_HLT`.
    Hlt = 1,
    /// `KVM_CAP_MMU_SHADOW_CACHE_CONTROL`.
    MmuShadowCacheControl = 2,
    /// `KVM_CAP_USER_MEMORY`.
    UserMemory = 3,
    /// `KVM_CAP_SET_TSS_ADDR`.
    SetTssAddr = 4,
    /// `KVM_CAP_VAPIC`.
    Vapic = 6,
    /// `KVM_CAP_EXT_CPUID`.
    ExtCpuid = 7,
    /// `KVM_CAP_CLOCKSOURCE`.
    Clocksource = 8,
    /// `KVM_CAP_NR_VCPUS`.
    NrVcpus = 9,
    /// `KVM_CAP_NR_MEMSLOTS`.
    NrMemslots = 10,
    /// `KVM_CAP_PIT`.
    Pit = 11,
    /// `KVM_CAP_NOP_IO_DELAY`.
    NopIoDelay = 12,
    /// `KVM_CAP_PV_MMU`.
    PvMmu = 13,
    /// `KVM_CAP_MP_STATE`.
    MpState = 14,
    /// `KVM_CAP_COALESCED_MMIO`.
    CoalescedMmio = 15,
    /// `KVM_CAP_SYNC_MMU`.
    SyncMmu = 16,
    /// `KVM_CAP_IOMMU`.
    Iommu = 18,
    /// `KVM_CAP_DESTROY_MEMORY_REGION_WORKS`.
    DestroyMemoryRegionWorks = 21,
    /// `KVM_CAP_USER_NMI`.
    UserNmi = 22,
    /// `KVM_CAP_SET_GUEST_DEBUG`.
    SetGuestDebug = 23,
    /// `KVM_CAP_REINJECT_CONTROL`.
    ReinjectControl = 24,
    /// `KVM_CAP_IRQ_ROUTING`.
    IrqRouting = 25,
    /// `KVM_CAP_IRQ_INJECT_STATUS`.
    IrqInjectStatus = 26,
    /// `KVM_CAP_ASSIGN_DEV_IRQ`.
    AssignDevIrq = 29,
    /// `KVM_CAP_JOIN_MEMORY_REGIONS_WORKS`.
    JoinMemoryRegionsWorks = 30,
    /// `KVM_CAP_MCE`.
    Mce = 31,
    /// `KVM_CAP_IRQFD`.
    Irqfd = 32,
    /// `KVM_CAP_PIT2`.
    Pit2 = 33,
    /// `KVM_CAP_SET_BOOT_CPU_ID`.
    SetBootCpuId = 34,
    /// `KVM_CAP_PIT_STATE2`.
    PitState2 = 35,
    /// `KVM_CAP_IOEVENTFD`.
    Ioeventfd = 36,
    /// `KVM_CAP_SET_IDENTITY_MAP_ADDR`.
    SetIdentityMapAddr = 37,
    /// `KVM_CAP_XEN_HVM`.
    XenHvm = 38,
    /// `KVM_CAP_ADJUST_CLOCK`.
    AdjustClock = 39,
    /// `KVM_CAP_INTERNAL_ERROR_DATA`.
    InternalErrorData = 40,
    /// `KVM_CAP_VCPU_EVENTS`.
    VcpuEvents = 41,
    /// `KVM_CAP_S390_PSW`.
    S390Psw = 42,
    /// `KVM_CAP_PPC_SEGSTATE`.
    PpcSegstate = 43,
    /// `KVM_CAP_HYPERV`.
    Hyperv = 44,
    /// `KVM_CAP_HYPERV_VAPIC`.
    HypervVapic = 45,
    /// `KVM_CAP_HYPERV_SPIN`.
    HypervSpin = 46,
    /// `KVM_CAP_PCI_SEGMENT`.
    PciSegment = 47,
    /// `KVM_CAP_PPC_PAIRED_SINGLES`.
    PpcPairedSingles = 48,
    /// `KVM_CAP_INTR_SHADOW`.
    IntrShadow = 49,
    /// `KVM_CAP_DEBUGREGS`.
    Debugregs = 50,
    /// `KVM_CAP_X86_ROBUST_SINGLESTEP`.
    X86RobustSinglestep = 51,
    /// `KVM_CAP_PPC_OSI`.
    PpcOsi = 52,
    /// `KVM_CAP_PPC_UNSET_IRQ`.
    PpcUnsetIrq = 53,
    /// `KVM_CAP_ENABLE_CAP`.
    EnableCap = 54,
    /// `KVM_CAP_XSAVE`.
    Xsave = 55,
    /// `KVM_CAP_XCRS`.
    Xcrs = 56,
    /// `KVM_CAP_PPC_GET_PVINFO`.
    PpcGetPvinfo = 57,
    /// `KVM_CAP_PPC_IRQ_LEVEL`.
    PpcIrqLevel = 58,
    /// `KVM_CAP_ASYNC_PF`.
    AsyncPf = 59,
    /// `KVM_CAP_TSC_CONTROL`.
    TscControl = 60,
    /// `KVM_CAP_GET_TSC_KHZ`.
    GetTscKhz = 61,
    /// `KVM_CAP_PPC_BOOKE_SREGS`.
    PpcBookeSregs = 62,
    /// `KVM_CAP_SPAPR_TCE`.
    SpaprTce = 63,
    /// `KVM_CAP_PPC_SMT`.
    PpcSmt = 64,
    /// `KVM_CAP_PPC_RMA`.
    PpcRma = 65,
    /// `KVM_CAP_MAX_VCPUS`.
    MaxVcpus = 66,
    /// `KVM_CAP_PPC_HIOR`.
    PpcHior = 67,
    /// `KVM_CAP_PPC_PAPR`.
    PpcPapr = 68,
    /// `KVM_CAP_SW_TLB`.
    SwTlb = 69,
    /// `KVM_CAP_ONE_REG`.
    OneReg = 70,
    /// `KVM_CAP_S390_GMAP`.
    S390Gmap = 71,
    /// `KVM_CAP_TSC_DEADLINE_TIMER`.
    TscDeadlineTimer = 72,
    /// `KVM_CAP_S390_UCONTROL`.
    S390Ucontrol = 73,
    /// `KVM_CAP_SYNC_REGS`.
    SyncRegs = 74,
    /// `KVM_CAP_PCI_2_3`.
    Pci23 = 75,
    /// `KVM_CAP_KVMCLOCK_CTRL`.
    KvmclockCtrl = 76,
    /// `KVM_CAP_SIGNAL_MSI`.
    SignalMsi = 77,
    /// `KVM_CAP_PPC_GET_SMMU_INFO`.
    PpcGetSmmuInfo = 78,
    /// `KVM_CAP_S390_COW`.
    S390Cow = 79,
    /// `KVM_CAP_PPC_ALLOC_HTAB`.
    PpcAllocHtab = 80,
    /// `KVM_CAP_READONLY_MEM`.
    ReadonlyMem = 81,
    /// `KVM_CAP_IRQFD_RESAMPLE`.
    IrqfdResample = 82,
    /// `KVM_CAP_PPC_BOOKE_WATCHDOG`.
    PpcBookeWatchdog = 83,
    /// `KVM_CAP_PPC_HTAB_FD`.
    PpcHtabFd = 84,
    /// `KVM_CAP_S390_CSS_SUPPORT`.
    S390CssSupport = 85,
    /// `KVM_CAP_PPC_EPR`.
    PpcEpr = 86,
    /// `KVM_CAP_ARM_PSCI`.
    ArmPsci = 87,
    /// `KVM_CAP_ARM_SET_DEVICE_ADDR`.
    ArmSetDeviceAddr = 88,
    /// `KVM_CAP_DEVICE_CTRL`.
    DeviceCtrl = 89,
    /// `KVM_CAP_IRQ_MPIC`.
    IrqMpic = 90,
    /// `KVM_CAP_PPC_RTAS`.
    PpcRtas = 91,
    /// `KVM_CAP_IRQ_XICS`.
    IrqXics = 92,
    /// `KVM_CAP_ARM_EL1_32BIT`.
    ArmEl132bit = 93,
    /// `KVM_CAP_SPAPR_MULTITCE`.
    SpaprMultitce = 94,
    /// `KVM_CAP_EXT_EMUL_CPUID`.
    ExtEmulCpuid = 95,
    /// `KVM_CAP_HYPERV_TIME`.
    HypervTime = 96,
    /// `KVM_CAP_IOAPIC_POLARITY_IGNORED`.
    IoapicPolarityIgnored = 97,
    /// `KVM_CAP_ENABLE_CAP_VM`.
    EnableCapVm = 98,
    /// `KVM_CAP_S390_IRQCHIP`.
    S390Irqchip = 99,
    /// `KVM_CAP_IOEVENTFD_NO_LENGTH`.
    IoeventfdNoLength = 100,
    /// `KVM_CAP_VM_ATTRIBUTES`.
    VmAttributes = 101,
    /// `KVM_CAP_ARM_PSCI_0_2`.
    ArmPsci02 = 102,
    /// `KVM_CAP_PPC_FIXUP_HCALL`.
    PpcFixupHcall = 103,
    /// `KVM_CAP_PPC_ENABLE_HCALL`.
    PpcEnableHcall = 104,
    /// `KVM_CAP_CHECK_EXTENSION_VM`.
    CheckExtensionVm = 105,
    /// `KVM_CAP_S390_USER_SIGP`.
    S390UserSigp = 106,
    /// `KVM_CAP_S390_VECTOR_REGISTERS`.
    S390VectorRegisters = 107,
    /// `KVM_CAP_S390_MEM_OP`.
    S390MemOp = 108,
    /// `KVM_CAP_S390_USER_STSI`.
    S390UserStsi = 109,
    /// `KVM_CAP_S390_SKEYS`.
    S390Skeys = 110,
    /// `KVM_CAP_MIPS_FPU`.
    MipsFpu = 111,
    /// `KVM_CAP_MIPS_MSA`.
    MipsMsa = 112,
    /// `KVM_CAP_S390_INJECT_IRQ`.
    S390InjectIrq = 113,
    /// `KVM_CAP_S390_IRQ_STATE`.
    S390IrqState = 114,
    /// `KVM_CAP_PPC_HWRNG`.
    PpcHwrng = 115,
    /// `KVM_CAP_DISABLE_QUIRKS`.
    DisableQuirks = 116,
    /// `KVM_CAP_X86_SMM`.
    X86Smm = 117,
    /// `KVM_CAP_MULTI_ADDRESS_SPACE`.
    MultiAddressSpace = 118,
    /// `KVM_CAP_GUEST_DEBUG_HW_BPS`.
    GuestDebugHwBps = 119,
    /// `KVM_CAP_GUEST_DEBUG_HW_WPS`.
    GuestDebugHwWps = 120,
    /// `KVM_CAP_SPLIT_IRQCHIP`.
    SplitIrqchip = 121,
    /// `KVM_CAP_IOEVENTFD_ANY_LENGTH`.
    IoeventfdAnyLength = 122,
    /// `KVM_CAP_HYPERV_SYNIC`.
    HypervSynic = 123,
    /// `KVM_CAP_S390_RI`.
    S390Ri = 124,
    /// `KVM_CAP_SPAPR_TCE_64`.
    SpaprTce64 = 125,
    /// `KVM_CAP_ARM_PMU_V3`.
    ArmPmuV3 = 126,
    /// `KVM_CAP_VCPU_ATTRIBUTES`.
    VcpuAttributes = 127,
    /// `KVM_CAP_MAX_VCPU_ID`.
    MaxVcpuId = 128,
    /// `KVM_CAP_X2APIC_API`.
    X2apicApi = 129,
    /// `KVM_CAP_S390_USER_INSTR0`.
    S390UserInstr0 = 130,
    /// `KVM_CAP_MSI_DEVID`.
    MsiDevid = 131,
    /// `KVM_CAP_PPC_HTM`.
    PpcHtm = 132,
    /// `KVM_CAP_SPAPR_RESIZE_HPT`.
    SpaprResizeHpt = 133,
    /// `KVM_CAP_PPC_MMU_RADIX`.
    PpcMmuRadix = 134,
    /// `KVM_CAP_PPC_MMU_HASH_V3`.
    PpcMmuHashV3 = 135,
    /// `KVM_CAP_IMMEDIATE_EXIT`.
    ImmediateExit = 136,
    /// `KVM_CAP_MIPS_VZ`.
    MipsVz = 137,
    /// `KVM_CAP_MIPS_TE`.
    MipsTe = 138,
    /// `KVM_CAP_MIPS_64BIT`.
    Mips64bit = 139,
    /// `KVM_CAP_S390_GS`.
    S390Gs = 140,
    /// `KVM_CAP_S390_AIS`.
    S390Ais = 141,
    /// `KVM_CAP_SPAPR_TCE_VFIO`.
    SpaprTceVfio = 142,
    /// `KVM_CAP_X86_DISABLE_EXITS`.
    X86DisableExits = 143,
    /// `KVM_CAP_ARM_USER_IRQ`.
    ArmUserIrq = 144,
    /// `KVM_CAP_S390_CMMA_MIGRATION`.
    S390CmmaMigration = 145,
    /// `KVM_CAP_PPC_FWNMI`.
    PpcFwnmi = 146,
    /// `KVM_CAP_PPC_SMT_POSSIBLE`.
    PpcSmtPossible = 147,
    /// `KVM_CAP_HYPERV_SYNIC2`.
    HypervSynic2 = 148,
    /// `KVM_CAP_HYPERV_VP_INDEX`.
    HypervVpIndex = 149,
    /// `KVM_CAP_S390_AIS_MIGRATION`.
    S390AisMigration = 150,
    /// `KVM_CAP_PPC_GET_CPU_CHAR`.
    PpcGetCpuChar = 151,
    /// `KVM_CAP_S390_BPB`.
    S390Bpb = 152,
    /// `KVM_CAP_GET_MSR_FEATURES`.
    GetMsrFeatures = 153,
    /// `KVM_CAP_HYPERV_EVENTFD`.
    HypervEventfd = 154,
    /// `KVM_CAP_HYPERV_TLBFLUSH`.
    HypervTlbflush = 155,
    /// `KVM_CAP_S390_HPAGE_1M`.
    S390Hpage1m = 156,
    /// `KVM_CAP_NESTED_STATE`.
    NestedState = 157,
    /// `KVM_CAP_ARM_INJECT_SERROR_ESR`.
    ArmInjectSerrorEsr = 158,
    /// `KVM_CAP_MSR_PLATFORM_INFO`.
    MsrPlatformInfo = 159,
    /// `KVM_CAP_PPC_NESTED_HV`.
    PpcNestedHv = 160,
    /// `KVM_CAP_HYPERV_SEND_IPI`.
    HypervSendIpi = 161,
    /// `KVM_CAP_COALESCED_PIO`.
    CoalescedPio = 162,
    /// `KVM_CAP_HYPERV_ENLIGHTENED_VMCS`.
    HypervEnlightenedVmcs = 163,
    /// `KVM_CAP_EXCEPTION_PAYLOAD`.
    ExceptionPayload = 164,
    /// `KVM_CAP_ARM_VM_IPA_SIZE`.
    ArmVmIpaSize = 165,
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT`.
    ManualDirtyLogProtect = 166,
    /// `KVM_CAP_HYPERV_CPUID`.
    HypervCpuid = 167,
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`.
    ManualDirtyLogProtect2 = 168,
    /// `KVM_CAP_PPC_IRQ_XIVE`.
    PpcIrqXive = 169,
    /// `KVM_CAP_ARM_SVE`.
    ArmSve = 170,
    /// `KVM_CAP_ARM_PTRAUTH_ADDRESS`.
    ArmPtrauthAddress = 171,
    /// `KVM_CAP_ARM_PTRAUTH_GENERIC`.
    ArmPtrauthGeneric = 172,
    /// `KVM_CAP_PMU_EVENT_FILTER`.
    PmuEventFilter = 173,
    /// `KVM_CAP_ARM_IRQ_LINE_LAYOUT_2`.
    ArmIrqLineLayout2 = 174,
    /// `KVM_CAP_HYPERV_DIRECT_TLBFLUSH`.
    HypervDirectTlbflush = 175,
    /// `KVM_CAP_PPC_GUEST_DEBUG_SSTEP`.
    PpcGuestDebugSstep = 176,
    /// `KVM_CAP_ARM_NISV_TO_USER`.
    ArmNisvToUser = 177,
    /// `KVM_CAP_ARM_INJECT_EXT_DABT`.
    ArmInjectExtDabt = 178,
    /// `KVM_CAP_S390_VCPU_RESETS`.
    S390VcpuResets = 179,
    /// `KVM_CAP_S390_PROTECTED`.
    S390Protected = 180,
    /// `KVM_CAP_PPC_SECURE_GUEST`.
    PpcSecureGuest = 181,
    /// `KVM_CAP_HALT_POLL`.
    HaltPoll = 182,
    /// `KVM_CAP_ASYNC_PF_INT`.
    AsyncPfInt = 183,
    /// `KVM_CAP_LAST_CPU`.
    LastCpu = 184,
    /// `KVM_CAP_SMALLER_MAXPHYADDR`.
    SmallerMaxphyaddr = 185,
    /// `KVM_CAP_S390_DIAG318`.
    S390Diag318 = 186,
    /// `KVM_CAP_STEAL_TIME`.
    StealTime = 187,
    /// `KVM_CAP_X86_USER_SPACE_MSR`.
    X86UserSpaceMsr = 188,
    /// `KVM_CAP_X86_MSR_FILTER`.
    X86MsrFilter = 189,
    /// `KVM_CAP_ENFORCE_PV_FEATURE_CPUID`.
    EnforcePvFeatureCpuid = 190,
    /// `KVM_CAP_SYS_HYPERV_CPUID`.
    SysHypervCpuid = 191,
    /// `KVM_CAP_DIRTY_LOG_RING`.
    DirtyLogRing = 192,
    /// `KVM_CAP_X86_BUS_LOCK_EXIT`.
    X86BusLockExit = 193,
    /// `KVM_CAP_PPC_DAWR1`.
    PpcDawr1 = 194,
    /// `KVM_CAP_SET_GUEST_DEBUG2`.
    SetGuestDebug2 = 195,
    /// `KVM_CAP_SGX_ATTRIBUTE`.
    SgxAttribute = 196,
    /// `KVM_CAP_VM_COPY_ENC_CONTEXT_FROM`.
    VmCopyEncContextFrom = 197,
    /// `KVM_CAP_PTP_KVM`.
    PtpKvm = 198,
    /// `KVM_CAP_HYPERV_ENFORCE_CPUID`.
    HypervEnforceCpuid = 199,
    /// `KVM_CAP_SREGS2`.
    Sregs2 = 200,
    /// `KVM_CAP_EXIT_HYPERCALL`.
    ExitHypercall = 201,
    /// `KVM_CAP_PPC_RPT_INVALIDATE`.
    PpcRptInvalidate = 202,
    /// `KVM_CAP_BINARY_STATS_FD`.
    BinaryStatsFd = 203,
    /// `KVM_CAP_EXIT_ON_EMULATION_FAILURE`.
    ExitOnEmulationFailure = 204,
    /// `KVM_CAP_ARM_MTE`.
    ArmMte = 205,
    /// `KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM`.
    VmMoveEncContextFrom = 206,
    /// `KVM_CAP_VM_GPA_BITS`.
    VmGpaBits = 207,
    /// `KVM_CAP_XSAVE2`.
    Xsave2 = 208,
    /// `KVM_CAP_SYS_ATTRIBUTES`.
    SysAttributes = 209,
    /// `KVM_CAP_PPC_AIL_MODE_3`.
    PpcAilMode3 = 210,
    /// `KVM_CAP_S390_MEM_OP_EXTENSION`.
    S390MemOpExtension = 211,
    /// `KVM_CAP_PMU_CAPABILITY`.
    PmuCapability = 212,
    /// `KVM_CAP_DISABLE_QUIRKS2`.
    DisableQuirks2 = 213,
    /// `KVM_CAP_VM_TSC_CONTROL`.
    VmTscControl = 214,
    /// `KVM_CAP_SYSTEM_EVENT_DATA`.
    SystemEventData = 215,
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND`.
    ArmSystemSuspend = 216,
    /// `KVM_CAP_S390_PROTECTED_DUMP`.
    S390ProtectedDump = 217,
    /// `KVM_CAP_X86_TRIPLE_FAULT_EVENT`.
    X86TripleFaultEvent = 218,
    /// `KVM_CAP_X86_NOTIFY_VMEXIT`.
    X86NotifyVmexit = 219,
    /// `KVM_CAP_VM_DISABLE_NX_HUGE_PAGES`.
    VmDisableNxHugePages = 220,
    /// `KVM_CAP_S390_ZPCI_OP`.
    S390ZpciOp = 221,
    /// `KVM_CAP_S390_CPU_TOPOLOGY`.
    S390CpuTopology = 222,
    /// `KVM_CAP_DIRTY_LOG_RING_ACQ_REL`.
    DirtyLogRingAcqRel = 223,
    /// `KVM_CAP_S390_PROTECTED_ASYNC_DISABLE` (added after Linux 6.1; in the 6.8 headers).
    S390ProtectedAsyncDisable = 224,
    /// `KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP` (added after Linux 6.1; in the 6.8 headers).
    DirtyLogRingWithBitmap = 225,
    /// `KVM_CAP_PMU_EVENT_MASKED_EVENTS` (added after Linux 6.1; in the 6.8 headers).
    PmuEventMaskedEvents = 226,
    /// `KVM_CAP_COUNTER_OFFSET` (added after Linux 6.1; in the 6.8 headers).
    CounterOffset = 227,
    /// `KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE` (added after Linux 6.1; in the 6.8 headers).
    ArmEagerSplitChunkSize = 228,
    /// `KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES` (added after Linux 6.1; in the 6.8 headers).
    ArmSupportedBlockSizes = 229,
    /// `KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES` (added after Linux 6.1; in the 6.8 headers).
    ArmSupportedRegMaskRanges = 230,
    /// `KVM_CAP_USER_MEMORY2` (added after Linux 6.1; in the 6.8 headers).
    UserMemory2 = 231,
    /// `KVM_CAP_MEMORY_FAULT_INFO` (added after Linux 6.1; in the 6.8 headers).
    MemoryFaultInfo = 232,
    /// `KVM_CAP_MEMORY_ATTRIBUTES` (added after Linux 6.1; in the 6.8 headers).
    MemoryAttributes = 233,
    /// `KVM_CAP_GUEST_MEMFD` (added after Linux 6.1; in the 6.8 headers).
    GuestMemfd = 234,
    /// `KVM_CAP_VM_TYPES` (added after Linux 6.1; in the 6.8 headers).
    VmTypes = 235,
    /// `KVM_CAP_PRE_FAULT_MEMORY` (added after Linux 6.8).
    PreFaultMemory = 236,
    /// `KVM_CAP_X86_APIC_BUS_CYCLES_NS` (added after Linux 6.8).
    X86ApicBusCyclesNs = 237,
    /// `KVM_CAP_X86_GUEST_MODE` (added after Linux 6.8).
    X86GuestMode = 238,
}

impl Cap {
    /// Every variant, in numeric order.
    pub const ALL: &'static [Cap] = &[
        Cap::Irqchip,
        Cap::Hlt,
        Cap::MmuShadowCacheControl,
        Cap::UserMemory,
        Cap::SetTssAddr,
        Cap::Vapic,
        Cap::ExtCpuid,
        Cap::Clocksource,
        Cap::NrVcpus,
        Cap::NrMemslots,
        Cap::Pit,
        Cap::NopIoDelay,
        Cap::PvMmu,
        Cap::MpState,
        Cap::CoalescedMmio,
        Cap::SyncMmu,
        Cap::Iommu,
        Cap::DestroyMemoryRegionWorks,
        Cap::UserNmi,
        Cap::SetGuestDebug,
        Cap::ReinjectControl,
        Cap::IrqRouting,
        Cap::IrqInjectStatus,
        Cap::AssignDevIrq,
        Cap::JoinMemoryRegionsWorks,
        Cap::Mce,
        Cap::Irqfd,
        Cap::Pit2,
        Cap::SetBootCpuId,
        Cap::PitState2,
        Cap::Ioeventfd,
        Cap::SetIdentityMapAddr,
        Cap::XenHvm,
        Cap::AdjustClock,
        Cap::InternalErrorData,
        Cap::VcpuEvents,
        Cap::S390Psw,
        Cap::PpcSegstate,
        Cap::Hyperv,
        Cap::HypervVapic,
        Cap::HypervSpin,
        Cap::PciSegment,
        Cap::PpcPairedSingles,
        Cap::IntrShadow,
        Cap::Debugregs,
        Cap::X86RobustSinglestep,
        Cap::PpcOsi,
        Cap::PpcUnsetIrq,
        Cap::EnableCap,
        Cap::Xsave,
        Cap::Xcrs,
        Cap::PpcGetPvinfo,
        Cap::PpcIrqLevel,
        Cap::AsyncPf,
        Cap::TscControl,
        Cap::GetTscKhz,
        Cap::PpcBookeSregs,
        Cap::SpaprTce,
        Cap::PpcSmt,
        Cap::PpcRma,
        Cap::MaxVcpus,
        Cap::PpcHior,
        Cap::PpcPapr,
        Cap::SwTlb,
        Cap::OneReg,
        Cap::S390Gmap,
        Cap::TscDeadlineTimer,
        Cap::S390Ucontrol,
        Cap::SyncRegs,
        Cap::Pci23,
        Cap::KvmclockCtrl,
        Cap::SignalMsi,
        Cap::PpcGetSmmuInfo,
        Cap::S390Cow,
        Cap::PpcAllocHtab,
        Cap::ReadonlyMem,
        Cap::IrqfdResample,
        Cap::PpcBookeWatchdog,
        Cap::PpcHtabFd,
        Cap::S390CssSupport,
        Cap::PpcEpr,
        Cap::ArmPsci,
        Cap::ArmSetDeviceAddr,
        Cap::DeviceCtrl,
        Cap::IrqMpic,
        Cap::PpcRtas,
        Cap::IrqXics,
        Cap::ArmEl132bit,
        Cap::SpaprMultitce,
        Cap::ExtEmulCpuid,
        Cap::HypervTime,
        Cap::IoapicPolarityIgnored,
        Cap::EnableCapVm,
        Cap::S390Irqchip,
        Cap::IoeventfdNoLength,
        Cap::VmAttributes,
        Cap::ArmPsci02,
        Cap::PpcFixupHcall,
        Cap::PpcEnableHcall,
        Cap::CheckExtensionVm,
        Cap::S390UserSigp,
        Cap::S390VectorRegisters,
        Cap::S390MemOp,
        Cap::S390UserStsi,
        Cap::S390Skeys,
        Cap::MipsFpu,
        Cap::MipsMsa,
        Cap::S390InjectIrq,
        Cap::S390IrqState,
        Cap::PpcHwrng,
        Cap::DisableQuirks,
        Cap::X86Smm,
        Cap::MultiAddressSpace,
        Cap::GuestDebugHwBps,
        Cap::GuestDebugHwWps,
        Cap::SplitIrqchip,
        Cap::IoeventfdAnyLength,
        Cap::HypervSynic,
        Cap::S390Ri,
        Cap::SpaprTce64,
        Cap::ArmPmuV3,
        Cap::VcpuAttributes,
        Cap::MaxVcpuId,
        Cap::X2apicApi,
        Cap::S390UserInstr0,
        Cap::MsiDevid,
        Cap::PpcHtm,
        Cap::SpaprResizeHpt,
        Cap::PpcMmuRadix,
        Cap::PpcMmuHashV3,
        Cap::ImmediateExit,
        Cap::MipsVz,
        Cap::MipsTe,
        Cap::Mips64bit,
        Cap::S390Gs,
        Cap::S390Ais,
        Cap::SpaprTceVfio,
        Cap::X86DisableExits,
        Cap::ArmUserIrq,
        Cap::S390CmmaMigration,
        Cap::PpcFwnmi,
        Cap::PpcSmtPossible,
        Cap::HypervSynic2,
        Cap::HypervVpIndex,
        Cap::S390AisMigration,
        Cap::PpcGetCpuChar,
        Cap::S390Bpb,
        Cap::GetMsrFeatures,
        Cap::HypervEventfd,
        Cap::HypervTlbflush,
        Cap::S390Hpage1m,
        Cap::NestedState,
        Cap::ArmInjectSerrorEsr,
        Cap::MsrPlatformInfo,
        Cap::PpcNestedHv,
        Cap::HypervSendIpi,
        Cap::CoalescedPio,
        Cap::HypervEnlightenedVmcs,
        Cap::ExceptionPayload,
        Cap::ArmVmIpaSize,
        Cap::ManualDirtyLogProtect,
        Cap::HypervCpuid,
        Cap::ManualDirtyLogProtect2,
        Cap::PpcIrqXive,
        Cap::ArmSve,
        Cap::ArmPtrauthAddress,
        Cap::ArmPtrauthGeneric,
        Cap::PmuEventFilter,
        Cap::ArmIrqLineLayout2,
        Cap::HypervDirectTlbflush,
        Cap::PpcGuestDebugSstep,
        Cap::ArmNisvToUser,
        Cap::ArmInjectExtDabt,
        Cap::S390VcpuResets,
        Cap::S390Protected,
        Cap::PpcSecureGuest,
        Cap::HaltPoll,
        Cap::AsyncPfInt,
        Cap::LastCpu,
        Cap::SmallerMaxphyaddr,
        Cap::S390Diag318,
        Cap::StealTime,
        Cap::X86UserSpaceMsr,
        Cap::X86MsrFilter,
        Cap::EnforcePvFeatureCpuid,
        Cap::SysHypervCpuid,
        Cap::DirtyLogRing,
        Cap::X86BusLockExit,
        Cap::PpcDawr1,
        Cap::SetGuestDebug2,
        Cap::SgxAttribute,
        Cap::VmCopyEncContextFrom,
        Cap::PtpKvm,
        Cap::HypervEnforceCpuid,
        Cap::Sregs2,
        Cap::ExitHypercall,
        Cap::PpcRptInvalidate,
        Cap::BinaryStatsFd,
        Cap::ExitOnEmulationFailure,
        Cap::ArmMte,
        Cap::VmMoveEncContextFrom,
        Cap::VmGpaBits,
        Cap::Xsave2,
        Cap::SysAttributes,
        Cap::PpcAilMode3,
        Cap::S390MemOpExtension,
        Cap::PmuCapability,
        Cap::DisableQuirks2,
        Cap::VmTscControl,
        Cap::SystemEventData,
        Cap::ArmSystemSuspend,
        Cap::S390ProtectedDump,
        Cap::X86TripleFaultEvent,
        Cap::X86NotifyVmexit,
        Cap::VmDisableNxHugePages,
        Cap::S390ZpciOp,
        Cap::S390CpuTopology,
        Cap::DirtyLogRingAcqRel,
        Cap::S390ProtectedAsyncDisable,
        Cap::DirtyLogRingWithBitmap,
        Cap::PmuEventMaskedEvents,
        Cap::CounterOffset,
        Cap::ArmEagerSplitChunkSize,
        Cap::ArmSupportedBlockSizes,
        Cap::ArmSupportedRegMaskRanges,
        Cap::UserMemory2,
        Cap::MemoryFaultInfo,
        Cap::MemoryAttributes,
        Cap::GuestMemfd,
        Cap::VmTypes,
        Cap::PreFaultMemory,
        Cap::X86ApicBusCyclesNs,
        Cap::X86GuestMode,
    ];

    /// The capability with number `v`, if known.
    pub const fn from_raw(v: u64) -> Option<Cap> {
        Some(match v {
            0 => Cap::Irqchip,
            1 => Cap::Hlt,
            2 => Cap::MmuShadowCacheControl,
            3 => Cap::UserMemory,
            4 => Cap::SetTssAddr,
            6 => Cap::Vapic,
            7 => Cap::ExtCpuid,
            8 => Cap::Clocksource,
            9 => Cap::NrVcpus,
            10 => Cap::NrMemslots,
            11 => Cap::Pit,
            12 => Cap::NopIoDelay,
            13 => Cap::PvMmu,
            14 => Cap::MpState,
            15 => Cap::CoalescedMmio,
            16 => Cap::SyncMmu,
            18 => Cap::Iommu,
            21 => Cap::DestroyMemoryRegionWorks,
            22 => Cap::UserNmi,
            23 => Cap::SetGuestDebug,
            24 => Cap::ReinjectControl,
            25 => Cap::IrqRouting,
            26 => Cap::IrqInjectStatus,
            29 => Cap::AssignDevIrq,
            30 => Cap::JoinMemoryRegionsWorks,
            31 => Cap::Mce,
            32 => Cap::Irqfd,
            33 => Cap::Pit2,
            34 => Cap::SetBootCpuId,
            35 => Cap::PitState2,
            36 => Cap::Ioeventfd,
            37 => Cap::SetIdentityMapAddr,
            38 => Cap::XenHvm,
            39 => Cap::AdjustClock,
            40 => Cap::InternalErrorData,
            41 => Cap::VcpuEvents,
            42 => Cap::S390Psw,
            43 => Cap::PpcSegstate,
            44 => Cap::Hyperv,
            45 => Cap::HypervVapic,
            46 => Cap::HypervSpin,
            47 => Cap::PciSegment,
            48 => Cap::PpcPairedSingles,
            49 => Cap::IntrShadow,
            50 => Cap::Debugregs,
            51 => Cap::X86RobustSinglestep,
            52 => Cap::PpcOsi,
            53 => Cap::PpcUnsetIrq,
            54 => Cap::EnableCap,
            55 => Cap::Xsave,
            56 => Cap::Xcrs,
            57 => Cap::PpcGetPvinfo,
            58 => Cap::PpcIrqLevel,
            59 => Cap::AsyncPf,
            60 => Cap::TscControl,
            61 => Cap::GetTscKhz,
            62 => Cap::PpcBookeSregs,
            63 => Cap::SpaprTce,
            64 => Cap::PpcSmt,
            65 => Cap::PpcRma,
            66 => Cap::MaxVcpus,
            67 => Cap::PpcHior,
            68 => Cap::PpcPapr,
            69 => Cap::SwTlb,
            70 => Cap::OneReg,
            71 => Cap::S390Gmap,
            72 => Cap::TscDeadlineTimer,
            73 => Cap::S390Ucontrol,
            74 => Cap::SyncRegs,
            75 => Cap::Pci23,
            76 => Cap::KvmclockCtrl,
            77 => Cap::SignalMsi,
            78 => Cap::PpcGetSmmuInfo,
            79 => Cap::S390Cow,
            80 => Cap::PpcAllocHtab,
            81 => Cap::ReadonlyMem,
            82 => Cap::IrqfdResample,
            83 => Cap::PpcBookeWatchdog,
            84 => Cap::PpcHtabFd,
            85 => Cap::S390CssSupport,
            86 => Cap::PpcEpr,
            87 => Cap::ArmPsci,
            88 => Cap::ArmSetDeviceAddr,
            89 => Cap::DeviceCtrl,
            90 => Cap::IrqMpic,
            91 => Cap::PpcRtas,
            92 => Cap::IrqXics,
            93 => Cap::ArmEl132bit,
            94 => Cap::SpaprMultitce,
            95 => Cap::ExtEmulCpuid,
            96 => Cap::HypervTime,
            97 => Cap::IoapicPolarityIgnored,
            98 => Cap::EnableCapVm,
            99 => Cap::S390Irqchip,
            100 => Cap::IoeventfdNoLength,
            101 => Cap::VmAttributes,
            102 => Cap::ArmPsci02,
            103 => Cap::PpcFixupHcall,
            104 => Cap::PpcEnableHcall,
            105 => Cap::CheckExtensionVm,
            106 => Cap::S390UserSigp,
            107 => Cap::S390VectorRegisters,
            108 => Cap::S390MemOp,
            109 => Cap::S390UserStsi,
            110 => Cap::S390Skeys,
            111 => Cap::MipsFpu,
            112 => Cap::MipsMsa,
            113 => Cap::S390InjectIrq,
            114 => Cap::S390IrqState,
            115 => Cap::PpcHwrng,
            116 => Cap::DisableQuirks,
            117 => Cap::X86Smm,
            118 => Cap::MultiAddressSpace,
            119 => Cap::GuestDebugHwBps,
            120 => Cap::GuestDebugHwWps,
            121 => Cap::SplitIrqchip,
            122 => Cap::IoeventfdAnyLength,
            123 => Cap::HypervSynic,
            124 => Cap::S390Ri,
            125 => Cap::SpaprTce64,
            126 => Cap::ArmPmuV3,
            127 => Cap::VcpuAttributes,
            128 => Cap::MaxVcpuId,
            129 => Cap::X2apicApi,
            130 => Cap::S390UserInstr0,
            131 => Cap::MsiDevid,
            132 => Cap::PpcHtm,
            133 => Cap::SpaprResizeHpt,
            134 => Cap::PpcMmuRadix,
            135 => Cap::PpcMmuHashV3,
            136 => Cap::ImmediateExit,
            137 => Cap::MipsVz,
            138 => Cap::MipsTe,
            139 => Cap::Mips64bit,
            140 => Cap::S390Gs,
            141 => Cap::S390Ais,
            142 => Cap::SpaprTceVfio,
            143 => Cap::X86DisableExits,
            144 => Cap::ArmUserIrq,
            145 => Cap::S390CmmaMigration,
            146 => Cap::PpcFwnmi,
            147 => Cap::PpcSmtPossible,
            148 => Cap::HypervSynic2,
            149 => Cap::HypervVpIndex,
            150 => Cap::S390AisMigration,
            151 => Cap::PpcGetCpuChar,
            152 => Cap::S390Bpb,
            153 => Cap::GetMsrFeatures,
            154 => Cap::HypervEventfd,
            155 => Cap::HypervTlbflush,
            156 => Cap::S390Hpage1m,
            157 => Cap::NestedState,
            158 => Cap::ArmInjectSerrorEsr,
            159 => Cap::MsrPlatformInfo,
            160 => Cap::PpcNestedHv,
            161 => Cap::HypervSendIpi,
            162 => Cap::CoalescedPio,
            163 => Cap::HypervEnlightenedVmcs,
            164 => Cap::ExceptionPayload,
            165 => Cap::ArmVmIpaSize,
            166 => Cap::ManualDirtyLogProtect,
            167 => Cap::HypervCpuid,
            168 => Cap::ManualDirtyLogProtect2,
            169 => Cap::PpcIrqXive,
            170 => Cap::ArmSve,
            171 => Cap::ArmPtrauthAddress,
            172 => Cap::ArmPtrauthGeneric,
            173 => Cap::PmuEventFilter,
            174 => Cap::ArmIrqLineLayout2,
            175 => Cap::HypervDirectTlbflush,
            176 => Cap::PpcGuestDebugSstep,
            177 => Cap::ArmNisvToUser,
            178 => Cap::ArmInjectExtDabt,
            179 => Cap::S390VcpuResets,
            180 => Cap::S390Protected,
            181 => Cap::PpcSecureGuest,
            182 => Cap::HaltPoll,
            183 => Cap::AsyncPfInt,
            184 => Cap::LastCpu,
            185 => Cap::SmallerMaxphyaddr,
            186 => Cap::S390Diag318,
            187 => Cap::StealTime,
            188 => Cap::X86UserSpaceMsr,
            189 => Cap::X86MsrFilter,
            190 => Cap::EnforcePvFeatureCpuid,
            191 => Cap::SysHypervCpuid,
            192 => Cap::DirtyLogRing,
            193 => Cap::X86BusLockExit,
            194 => Cap::PpcDawr1,
            195 => Cap::SetGuestDebug2,
            196 => Cap::SgxAttribute,
            197 => Cap::VmCopyEncContextFrom,
            198 => Cap::PtpKvm,
            199 => Cap::HypervEnforceCpuid,
            200 => Cap::Sregs2,
            201 => Cap::ExitHypercall,
            202 => Cap::PpcRptInvalidate,
            203 => Cap::BinaryStatsFd,
            204 => Cap::ExitOnEmulationFailure,
            205 => Cap::ArmMte,
            206 => Cap::VmMoveEncContextFrom,
            207 => Cap::VmGpaBits,
            208 => Cap::Xsave2,
            209 => Cap::SysAttributes,
            210 => Cap::PpcAilMode3,
            211 => Cap::S390MemOpExtension,
            212 => Cap::PmuCapability,
            213 => Cap::DisableQuirks2,
            214 => Cap::VmTscControl,
            215 => Cap::SystemEventData,
            216 => Cap::ArmSystemSuspend,
            217 => Cap::S390ProtectedDump,
            218 => Cap::X86TripleFaultEvent,
            219 => Cap::X86NotifyVmexit,
            220 => Cap::VmDisableNxHugePages,
            221 => Cap::S390ZpciOp,
            222 => Cap::S390CpuTopology,
            223 => Cap::DirtyLogRingAcqRel,
            224 => Cap::S390ProtectedAsyncDisable,
            225 => Cap::DirtyLogRingWithBitmap,
            226 => Cap::PmuEventMaskedEvents,
            227 => Cap::CounterOffset,
            228 => Cap::ArmEagerSplitChunkSize,
            229 => Cap::ArmSupportedBlockSizes,
            230 => Cap::ArmSupportedRegMaskRanges,
            231 => Cap::UserMemory2,
            232 => Cap::MemoryFaultInfo,
            233 => Cap::MemoryAttributes,
            234 => Cap::GuestMemfd,
            235 => Cap::VmTypes,
            236 => Cap::PreFaultMemory,
            237 => Cap::X86ApicBusCyclesNs,
            238 => Cap::X86GuestMode,
            _ => return None,
        })
    }

    /// The capability number.
    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// The C macro name, e.g. `"KVM_CAP_IRQCHIP"`.
    pub const fn name(self) -> &'static str {
        match self {
            Cap::Irqchip => "KVM_CAP_IRQCHIP",
            Cap::Hlt => "KVM_CAP_HLT",
            Cap::MmuShadowCacheControl => "KVM_CAP_MMU_SHADOW_CACHE_CONTROL",
            Cap::UserMemory => "KVM_CAP_USER_MEMORY",
            Cap::SetTssAddr => "KVM_CAP_SET_TSS_ADDR",
            Cap::Vapic => "KVM_CAP_VAPIC",
            Cap::ExtCpuid => "KVM_CAP_EXT_CPUID",
            Cap::Clocksource => "KVM_CAP_CLOCKSOURCE",
            Cap::NrVcpus => "KVM_CAP_NR_VCPUS",
            Cap::NrMemslots => "KVM_CAP_NR_MEMSLOTS",
            Cap::Pit => "KVM_CAP_PIT",
            Cap::NopIoDelay => "KVM_CAP_NOP_IO_DELAY",
            Cap::PvMmu => "KVM_CAP_PV_MMU",
            Cap::MpState => "KVM_CAP_MP_STATE",
            Cap::CoalescedMmio => "KVM_CAP_COALESCED_MMIO",
            Cap::SyncMmu => "KVM_CAP_SYNC_MMU",
            Cap::Iommu => "KVM_CAP_IOMMU",
            Cap::DestroyMemoryRegionWorks => "KVM_CAP_DESTROY_MEMORY_REGION_WORKS",
            Cap::UserNmi => "KVM_CAP_USER_NMI",
            Cap::SetGuestDebug => "KVM_CAP_SET_GUEST_DEBUG",
            Cap::ReinjectControl => "KVM_CAP_REINJECT_CONTROL",
            Cap::IrqRouting => "KVM_CAP_IRQ_ROUTING",
            Cap::IrqInjectStatus => "KVM_CAP_IRQ_INJECT_STATUS",
            Cap::AssignDevIrq => "KVM_CAP_ASSIGN_DEV_IRQ",
            Cap::JoinMemoryRegionsWorks => "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS",
            Cap::Mce => "KVM_CAP_MCE",
            Cap::Irqfd => "KVM_CAP_IRQFD",
            Cap::Pit2 => "KVM_CAP_PIT2",
            Cap::SetBootCpuId => "KVM_CAP_SET_BOOT_CPU_ID",
            Cap::PitState2 => "KVM_CAP_PIT_STATE2",
            Cap::Ioeventfd => "KVM_CAP_IOEVENTFD",
            Cap::SetIdentityMapAddr => "KVM_CAP_SET_IDENTITY_MAP_ADDR",
            Cap::XenHvm => "KVM_CAP_XEN_HVM",
            Cap::AdjustClock => "KVM_CAP_ADJUST_CLOCK",
            Cap::InternalErrorData => "KVM_CAP_INTERNAL_ERROR_DATA",
            Cap::VcpuEvents => "KVM_CAP_VCPU_EVENTS",
            Cap::S390Psw => "KVM_CAP_S390_PSW",
            Cap::PpcSegstate => "KVM_CAP_PPC_SEGSTATE",
            Cap::Hyperv => "KVM_CAP_HYPERV",
            Cap::HypervVapic => "KVM_CAP_HYPERV_VAPIC",
            Cap::HypervSpin => "KVM_CAP_HYPERV_SPIN",
            Cap::PciSegment => "KVM_CAP_PCI_SEGMENT",
            Cap::PpcPairedSingles => "KVM_CAP_PPC_PAIRED_SINGLES",
            Cap::IntrShadow => "KVM_CAP_INTR_SHADOW",
            Cap::Debugregs => "KVM_CAP_DEBUGREGS",
            Cap::X86RobustSinglestep => "KVM_CAP_X86_ROBUST_SINGLESTEP",
            Cap::PpcOsi => "KVM_CAP_PPC_OSI",
            Cap::PpcUnsetIrq => "KVM_CAP_PPC_UNSET_IRQ",
            Cap::EnableCap => "KVM_CAP_ENABLE_CAP",
            Cap::Xsave => "KVM_CAP_XSAVE",
            Cap::Xcrs => "KVM_CAP_XCRS",
            Cap::PpcGetPvinfo => "KVM_CAP_PPC_GET_PVINFO",
            Cap::PpcIrqLevel => "KVM_CAP_PPC_IRQ_LEVEL",
            Cap::AsyncPf => "KVM_CAP_ASYNC_PF",
            Cap::TscControl => "KVM_CAP_TSC_CONTROL",
            Cap::GetTscKhz => "KVM_CAP_GET_TSC_KHZ",
            Cap::PpcBookeSregs => "KVM_CAP_PPC_BOOKE_SREGS",
            Cap::SpaprTce => "KVM_CAP_SPAPR_TCE",
            Cap::PpcSmt => "KVM_CAP_PPC_SMT",
            Cap::PpcRma => "KVM_CAP_PPC_RMA",
            Cap::MaxVcpus => "KVM_CAP_MAX_VCPUS",
            Cap::PpcHior => "KVM_CAP_PPC_HIOR",
            Cap::PpcPapr => "KVM_CAP_PPC_PAPR",
            Cap::SwTlb => "KVM_CAP_SW_TLB",
            Cap::OneReg => "KVM_CAP_ONE_REG",
            Cap::S390Gmap => "KVM_CAP_S390_GMAP",
            Cap::TscDeadlineTimer => "KVM_CAP_TSC_DEADLINE_TIMER",
            Cap::S390Ucontrol => "KVM_CAP_S390_UCONTROL",
            Cap::SyncRegs => "KVM_CAP_SYNC_REGS",
            Cap::Pci23 => "KVM_CAP_PCI_2_3",
            Cap::KvmclockCtrl => "KVM_CAP_KVMCLOCK_CTRL",
            Cap::SignalMsi => "KVM_CAP_SIGNAL_MSI",
            Cap::PpcGetSmmuInfo => "KVM_CAP_PPC_GET_SMMU_INFO",
            Cap::S390Cow => "KVM_CAP_S390_COW",
            Cap::PpcAllocHtab => "KVM_CAP_PPC_ALLOC_HTAB",
            Cap::ReadonlyMem => "KVM_CAP_READONLY_MEM",
            Cap::IrqfdResample => "KVM_CAP_IRQFD_RESAMPLE",
            Cap::PpcBookeWatchdog => "KVM_CAP_PPC_BOOKE_WATCHDOG",
            Cap::PpcHtabFd => "KVM_CAP_PPC_HTAB_FD",
            Cap::S390CssSupport => "KVM_CAP_S390_CSS_SUPPORT",
            Cap::PpcEpr => "KVM_CAP_PPC_EPR",
            Cap::ArmPsci => "KVM_CAP_ARM_PSCI",
            Cap::ArmSetDeviceAddr => "KVM_CAP_ARM_SET_DEVICE_ADDR",
            Cap::DeviceCtrl => "KVM_CAP_DEVICE_CTRL",
            Cap::IrqMpic => "KVM_CAP_IRQ_MPIC",
            Cap::PpcRtas => "KVM_CAP_PPC_RTAS",
            Cap::IrqXics => "KVM_CAP_IRQ_XICS",
            Cap::ArmEl132bit => "KVM_CAP_ARM_EL1_32BIT",
            Cap::SpaprMultitce => "KVM_CAP_SPAPR_MULTITCE",
            Cap::ExtEmulCpuid => "KVM_CAP_EXT_EMUL_CPUID",
            Cap::HypervTime => "KVM_CAP_HYPERV_TIME",
            Cap::IoapicPolarityIgnored => "KVM_CAP_IOAPIC_POLARITY_IGNORED",
            Cap::EnableCapVm => "KVM_CAP_ENABLE_CAP_VM",
            Cap::S390Irqchip => "KVM_CAP_S390_IRQCHIP",
            Cap::IoeventfdNoLength => "KVM_CAP_IOEVENTFD_NO_LENGTH",
            Cap::VmAttributes => "KVM_CAP_VM_ATTRIBUTES",
            Cap::ArmPsci02 => "KVM_CAP_ARM_PSCI_0_2",
            Cap::PpcFixupHcall => "KVM_CAP_PPC_FIXUP_HCALL",
            Cap::PpcEnableHcall => "KVM_CAP_PPC_ENABLE_HCALL",
            Cap::CheckExtensionVm => "KVM_CAP_CHECK_EXTENSION_VM",
            Cap::S390UserSigp => "KVM_CAP_S390_USER_SIGP",
            Cap::S390VectorRegisters => "KVM_CAP_S390_VECTOR_REGISTERS",
            Cap::S390MemOp => "KVM_CAP_S390_MEM_OP",
            Cap::S390UserStsi => "KVM_CAP_S390_USER_STSI",
            Cap::S390Skeys => "KVM_CAP_S390_SKEYS",
            Cap::MipsFpu => "KVM_CAP_MIPS_FPU",
            Cap::MipsMsa => "KVM_CAP_MIPS_MSA",
            Cap::S390InjectIrq => "KVM_CAP_S390_INJECT_IRQ",
            Cap::S390IrqState => "KVM_CAP_S390_IRQ_STATE",
            Cap::PpcHwrng => "KVM_CAP_PPC_HWRNG",
            Cap::DisableQuirks => "KVM_CAP_DISABLE_QUIRKS",
            Cap::X86Smm => "KVM_CAP_X86_SMM",
            Cap::MultiAddressSpace => "KVM_CAP_MULTI_ADDRESS_SPACE",
            Cap::GuestDebugHwBps => "KVM_CAP_GUEST_DEBUG_HW_BPS",
            Cap::GuestDebugHwWps => "KVM_CAP_GUEST_DEBUG_HW_WPS",
            Cap::SplitIrqchip => "KVM_CAP_SPLIT_IRQCHIP",
            Cap::IoeventfdAnyLength => "KVM_CAP_IOEVENTFD_ANY_LENGTH",
            Cap::HypervSynic => "KVM_CAP_HYPERV_SYNIC",
            Cap::S390Ri => "KVM_CAP_S390_RI",
            Cap::SpaprTce64 => "KVM_CAP_SPAPR_TCE_64",
            Cap::ArmPmuV3 => "KVM_CAP_ARM_PMU_V3",
            Cap::VcpuAttributes => "KVM_CAP_VCPU_ATTRIBUTES",
            Cap::MaxVcpuId => "KVM_CAP_MAX_VCPU_ID",
            Cap::X2apicApi => "KVM_CAP_X2APIC_API",
            Cap::S390UserInstr0 => "KVM_CAP_S390_USER_INSTR0",
            Cap::MsiDevid => "KVM_CAP_MSI_DEVID",
            Cap::PpcHtm => "KVM_CAP_PPC_HTM",
            Cap::SpaprResizeHpt => "KVM_CAP_SPAPR_RESIZE_HPT",
            Cap::PpcMmuRadix => "KVM_CAP_PPC_MMU_RADIX",
            Cap::PpcMmuHashV3 => "KVM_CAP_PPC_MMU_HASH_V3",
            Cap::ImmediateExit => "KVM_CAP_IMMEDIATE_EXIT",
            Cap::MipsVz => "KVM_CAP_MIPS_VZ",
            Cap::MipsTe => "KVM_CAP_MIPS_TE",
            Cap::Mips64bit => "KVM_CAP_MIPS_64BIT",
            Cap::S390Gs => "KVM_CAP_S390_GS",
            Cap::S390Ais => "KVM_CAP_S390_AIS",
            Cap::SpaprTceVfio => "KVM_CAP_SPAPR_TCE_VFIO",
            Cap::X86DisableExits => "KVM_CAP_X86_DISABLE_EXITS",
            Cap::ArmUserIrq => "KVM_CAP_ARM_USER_IRQ",
            Cap::S390CmmaMigration => "KVM_CAP_S390_CMMA_MIGRATION",
            Cap::PpcFwnmi => "KVM_CAP_PPC_FWNMI",
            Cap::PpcSmtPossible => "KVM_CAP_PPC_SMT_POSSIBLE",
            Cap::HypervSynic2 => "KVM_CAP_HYPERV_SYNIC2",
            Cap::HypervVpIndex => "KVM_CAP_HYPERV_VP_INDEX",
            Cap::S390AisMigration => "KVM_CAP_S390_AIS_MIGRATION",
            Cap::PpcGetCpuChar => "KVM_CAP_PPC_GET_CPU_CHAR",
            Cap::S390Bpb => "KVM_CAP_S390_BPB",
            Cap::GetMsrFeatures => "KVM_CAP_GET_MSR_FEATURES",
            Cap::HypervEventfd => "KVM_CAP_HYPERV_EVENTFD",
            Cap::HypervTlbflush => "KVM_CAP_HYPERV_TLBFLUSH",
            Cap::S390Hpage1m => "KVM_CAP_S390_HPAGE_1M",
            Cap::NestedState => "KVM_CAP_NESTED_STATE",
            Cap::ArmInjectSerrorEsr => "KVM_CAP_ARM_INJECT_SERROR_ESR",
            Cap::MsrPlatformInfo => "KVM_CAP_MSR_PLATFORM_INFO",
            Cap::PpcNestedHv => "KVM_CAP_PPC_NESTED_HV",
            Cap::HypervSendIpi => "KVM_CAP_HYPERV_SEND_IPI",
            Cap::CoalescedPio => "KVM_CAP_COALESCED_PIO",
            Cap::HypervEnlightenedVmcs => "KVM_CAP_HYPERV_ENLIGHTENED_VMCS",
            Cap::ExceptionPayload => "KVM_CAP_EXCEPTION_PAYLOAD",
            Cap::ArmVmIpaSize => "KVM_CAP_ARM_VM_IPA_SIZE",
            Cap::ManualDirtyLogProtect => "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT",
            Cap::HypervCpuid => "KVM_CAP_HYPERV_CPUID",
            Cap::ManualDirtyLogProtect2 => "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2",
            Cap::PpcIrqXive => "KVM_CAP_PPC_IRQ_XIVE",
            Cap::ArmSve => "KVM_CAP_ARM_SVE",
            Cap::ArmPtrauthAddress => "KVM_CAP_ARM_PTRAUTH_ADDRESS",
            Cap::ArmPtrauthGeneric => "KVM_CAP_ARM_PTRAUTH_GENERIC",
            Cap::PmuEventFilter => "KVM_CAP_PMU_EVENT_FILTER",
            Cap::ArmIrqLineLayout2 => "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2",
            Cap::HypervDirectTlbflush => "KVM_CAP_HYPERV_DIRECT_TLBFLUSH",
            Cap::PpcGuestDebugSstep => "KVM_CAP_PPC_GUEST_DEBUG_SSTEP",
            Cap::ArmNisvToUser => "KVM_CAP_ARM_NISV_TO_USER",
            Cap::ArmInjectExtDabt => "KVM_CAP_ARM_INJECT_EXT_DABT",
            Cap::S390VcpuResets => "KVM_CAP_S390_VCPU_RESETS",
            Cap::S390Protected => "KVM_CAP_S390_PROTECTED",
            Cap::PpcSecureGuest => "KVM_CAP_PPC_SECURE_GUEST",
            Cap::HaltPoll => "KVM_CAP_HALT_POLL",
            Cap::AsyncPfInt => "KVM_CAP_ASYNC_PF_INT",
            Cap::LastCpu => "KVM_CAP_LAST_CPU",
            Cap::SmallerMaxphyaddr => "KVM_CAP_SMALLER_MAXPHYADDR",
            Cap::S390Diag318 => "KVM_CAP_S390_DIAG318",
            Cap::StealTime => "KVM_CAP_STEAL_TIME",
            Cap::X86UserSpaceMsr => "KVM_CAP_X86_USER_SPACE_MSR",
            Cap::X86MsrFilter => "KVM_CAP_X86_MSR_FILTER",
            Cap::EnforcePvFeatureCpuid => "KVM_CAP_ENFORCE_PV_FEATURE_CPUID",
            Cap::SysHypervCpuid => "KVM_CAP_SYS_HYPERV_CPUID",
            Cap::DirtyLogRing => "KVM_CAP_DIRTY_LOG_RING",
            Cap::X86BusLockExit => "KVM_CAP_X86_BUS_LOCK_EXIT",
            Cap::PpcDawr1 => "KVM_CAP_PPC_DAWR1",
            Cap::SetGuestDebug2 => "KVM_CAP_SET_GUEST_DEBUG2",
            Cap::SgxAttribute => "KVM_CAP_SGX_ATTRIBUTE",
            Cap::VmCopyEncContextFrom => "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM",
            Cap::PtpKvm => "KVM_CAP_PTP_KVM",
            Cap::HypervEnforceCpuid => "KVM_CAP_HYPERV_ENFORCE_CPUID",
            Cap::Sregs2 => "KVM_CAP_SREGS2",
            Cap::ExitHypercall => "KVM_CAP_EXIT_HYPERCALL",
            Cap::PpcRptInvalidate => "KVM_CAP_PPC_RPT_INVALIDATE",
            Cap::BinaryStatsFd => "KVM_CAP_BINARY_STATS_FD",
            Cap::ExitOnEmulationFailure => "KVM_CAP_EXIT_ON_EMULATION_FAILURE",
            Cap::ArmMte => "KVM_CAP_ARM_MTE",
            Cap::VmMoveEncContextFrom => "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM",
            Cap::VmGpaBits => "KVM_CAP_VM_GPA_BITS",
            Cap::Xsave2 => "KVM_CAP_XSAVE2",
            Cap::SysAttributes => "KVM_CAP_SYS_ATTRIBUTES",
            Cap::PpcAilMode3 => "KVM_CAP_PPC_AIL_MODE_3",
            Cap::S390MemOpExtension => "KVM_CAP_S390_MEM_OP_EXTENSION",
            Cap::PmuCapability => "KVM_CAP_PMU_CAPABILITY",
            Cap::DisableQuirks2 => "KVM_CAP_DISABLE_QUIRKS2",
            Cap::VmTscControl => "KVM_CAP_VM_TSC_CONTROL",
            Cap::SystemEventData => "KVM_CAP_SYSTEM_EVENT_DATA",
            Cap::ArmSystemSuspend => "KVM_CAP_ARM_SYSTEM_SUSPEND",
            Cap::S390ProtectedDump => "KVM_CAP_S390_PROTECTED_DUMP",
            Cap::X86TripleFaultEvent => "KVM_CAP_X86_TRIPLE_FAULT_EVENT",
            Cap::X86NotifyVmexit => "KVM_CAP_X86_NOTIFY_VMEXIT",
            Cap::VmDisableNxHugePages => "KVM_CAP_VM_DISABLE_NX_HUGE_PAGES",
            Cap::S390ZpciOp => "KVM_CAP_S390_ZPCI_OP",
            Cap::S390CpuTopology => "KVM_CAP_S390_CPU_TOPOLOGY",
            Cap::DirtyLogRingAcqRel => "KVM_CAP_DIRTY_LOG_RING_ACQ_REL",
            Cap::S390ProtectedAsyncDisable => "KVM_CAP_S390_PROTECTED_ASYNC_DISABLE",
            Cap::DirtyLogRingWithBitmap => "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP",
            Cap::PmuEventMaskedEvents => "KVM_CAP_PMU_EVENT_MASKED_EVENTS",
            Cap::CounterOffset => "KVM_CAP_COUNTER_OFFSET",
            Cap::ArmEagerSplitChunkSize => "KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE",
            Cap::ArmSupportedBlockSizes => "KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES",
            Cap::ArmSupportedRegMaskRanges => "KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES",
            Cap::UserMemory2 => "KVM_CAP_USER_MEMORY2",
            Cap::MemoryFaultInfo => "KVM_CAP_MEMORY_FAULT_INFO",
            Cap::MemoryAttributes => "KVM_CAP_MEMORY_ATTRIBUTES",
            Cap::GuestMemfd => "KVM_CAP_GUEST_MEMFD",
            Cap::VmTypes => "KVM_CAP_VM_TYPES",
            Cap::PreFaultMemory => "KVM_CAP_PRE_FAULT_MEMORY",
            Cap::X86ApicBusCyclesNs => "KVM_CAP_X86_APIC_BUS_CYCLES_NS",
            Cap::X86GuestMode => "KVM_CAP_X86_GUEST_MODE",
        }
    }
}

impl From<Cap> for u32 {
    fn from(c: Cap) -> u32 {
        c.raw()
    }
}

impl TryFrom<u64> for Cap {
    type Error = u64;

    /// Converts a raw number; the error is the unknown number.
    fn try_from(v: u64) -> Result<Cap, u64> {
        Cap::from_raw(v).ok_or(v)
    }
}
