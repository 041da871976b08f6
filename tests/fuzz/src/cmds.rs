//! Which commands the fuzzer sends to which kind of fd, and which `GET` output feeds which
//! `SET` (the replay corpus). All numbers come from [`kvmport_core::abi::ioctl`].

use kvmport_core::abi::ioctl::*;

/// Commands of the system fd.
pub const SYS: &[u32] = &[
    KVM_GET_API_VERSION,
    KVM_CREATE_VM,
    KVM_GET_MSR_INDEX_LIST,
    KVM_CHECK_EXTENSION,
    KVM_GET_VCPU_MMAP_SIZE,
    KVM_GET_SUPPORTED_CPUID,
    KVM_GET_EMULATED_CPUID,
    KVM_GET_MSR_FEATURE_INDEX_LIST,
    KVM_GET_SUPPORTED_HV_CPUID,
    KVM_X86_GET_MCE_CAP_SUPPORTED,
    KVM_GET_MSRS,
    KVM_GET_DEVICE_ATTR,
    KVM_HAS_DEVICE_ATTR,
];

/// Commands of a VM fd.
pub const VM: &[u32] = &[
    KVM_CREATE_VCPU,
    KVM_CHECK_EXTENSION,
    KVM_ENABLE_CAP,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_USER_MEMORY_REGION2,
    KVM_SET_MEMORY_REGION,
    KVM_SET_MEMORY_ALIAS,
    KVM_GET_DIRTY_LOG,
    KVM_CLEAR_DIRTY_LOG,
    KVM_SET_NR_MMU_PAGES,
    KVM_GET_NR_MMU_PAGES,
    KVM_SET_TSS_ADDR,
    KVM_SET_IDENTITY_MAP_ADDR,
    KVM_CREATE_IRQCHIP,
    KVM_IRQ_LINE,
    KVM_IRQ_LINE_STATUS,
    KVM_GET_IRQCHIP,
    KVM_SET_IRQCHIP,
    KVM_CREATE_PIT,
    KVM_CREATE_PIT2,
    KVM_GET_PIT,
    KVM_SET_PIT,
    KVM_GET_PIT2,
    KVM_SET_PIT2,
    KVM_REGISTER_COALESCED_MMIO,
    KVM_UNREGISTER_COALESCED_MMIO,
    KVM_SET_GSI_ROUTING,
    KVM_REINJECT_CONTROL,
    KVM_IRQFD,
    KVM_SET_BOOT_CPU_ID,
    KVM_IOEVENTFD,
    KVM_XEN_HVM_CONFIG,
    KVM_SET_CLOCK,
    KVM_GET_CLOCK,
    KVM_SET_TSC_KHZ,
    KVM_GET_TSC_KHZ,
    KVM_SIGNAL_MSI,
    KVM_SET_PMU_EVENT_FILTER,
    KVM_MEMORY_ENCRYPT_OP,
    KVM_MEMORY_ENCRYPT_REG_REGION,
    KVM_MEMORY_ENCRYPT_UNREG_REGION,
    KVM_HYPERV_EVENTFD,
    KVM_X86_SET_MSR_FILTER,
    KVM_RESET_DIRTY_RINGS,
    KVM_XEN_HVM_GET_ATTR,
    KVM_XEN_HVM_SET_ATTR,
    KVM_GET_STATS_FD,
    KVM_XEN_HVM_EVTCHN_SEND,
    KVM_SET_MEMORY_ATTRIBUTES,
    KVM_CREATE_GUEST_MEMFD,
    KVM_CREATE_DEVICE,
    KVM_SET_DEVICE_ATTR,
    KVM_GET_DEVICE_ATTR,
    KVM_HAS_DEVICE_ATTR,
];

/// Commands of a vCPU fd (`KVM_RUN` is a step of its own, see the fuzz loop).
pub const VCPU: &[u32] = &[
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_TRANSLATE,
    KVM_INTERRUPT,
    KVM_GET_MSRS,
    KVM_SET_MSRS,
    KVM_SET_CPUID,
    KVM_SET_SIGNAL_MASK,
    KVM_GET_FPU,
    KVM_SET_FPU,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_SET_CPUID2,
    KVM_GET_CPUID2,
    KVM_TPR_ACCESS_REPORTING,
    KVM_SET_VAPIC_ADDR,
    KVM_GET_MP_STATE,
    KVM_SET_MP_STATE,
    KVM_NMI,
    KVM_SET_GUEST_DEBUG,
    KVM_X86_SETUP_MCE,
    KVM_X86_SET_MCE,
    KVM_GET_VCPU_EVENTS,
    KVM_SET_VCPU_EVENTS,
    KVM_GET_DEBUGREGS,
    KVM_SET_DEBUGREGS,
    KVM_GET_XSAVE,
    KVM_SET_XSAVE,
    KVM_GET_XCRS,
    KVM_SET_XCRS,
    KVM_KVMCLOCK_CTRL,
    KVM_GET_ONE_REG,
    KVM_SET_ONE_REG,
    KVM_GET_REG_LIST,
    KVM_SMI,
    KVM_GET_NESTED_STATE,
    KVM_SET_NESTED_STATE,
    KVM_XEN_VCPU_GET_ATTR,
    KVM_XEN_VCPU_SET_ATTR,
    KVM_GET_SREGS2,
    KVM_SET_SREGS2,
    KVM_GET_XSAVE2,
    KVM_ENABLE_CAP,
    KVM_GET_STATS_FD,
    KVM_SET_TSC_KHZ,
    KVM_GET_TSC_KHZ,
    KVM_GET_SUPPORTED_HV_CPUID,
    KVM_MEMORY_ENCRYPT_OP,
    KVM_SET_DEVICE_ATTR,
    KVM_GET_DEVICE_ATTR,
    KVM_HAS_DEVICE_ATTR,
    KVM_CHECK_EXTENSION,
];

/// Commands of device fds (and whatever else lands in the "other" pool).
pub const OTHER: &[u32] = &[
    KVM_SET_DEVICE_ATTR,
    KVM_GET_DEVICE_ATTR,
    KVM_HAS_DEVICE_ATTR,
    KVM_CREATE_GUEST_MEMFD,
];

/// Other architectures' commands: every fd should refuse them on x86.
pub const FOREIGN: &[u32] = &[
    KVM_S390_ENABLE_SIE,
    KVM_S390_UCAS_MAP,
    KVM_S390_VCPU_FAULT,
    KVM_S390_INTERRUPT,
    KVM_S390_STORE_STATUS,
    KVM_S390_SET_INITIAL_PSW,
    KVM_S390_INITIAL_RESET,
    KVM_S390_MEM_OP,
    KVM_S390_IRQ,
    KVM_S390_GET_IRQ_STATE,
    KVM_S390_GET_SKEYS,
    KVM_S390_PV_COMMAND,
    KVM_ARM_SET_DEVICE_ADDR,
    KVM_ARM_VCPU_INIT,
    KVM_ARM_PREFERRED_TARGET,
    KVM_ARM_VCPU_FINALIZE,
    KVM_PPC_GET_PVINFO,
    KVM_PPC_GET_SMMU_INFO,
    KVM_PPC_ALLOCATE_HTAB,
    KVM_PPC_RESIZE_HPT_PREPARE,
    KVM_PPC_SVM_OFF,
    KVM_DIRTY_TLB,
];

/// Commands that set vCPU register state (left out by `--no-state`).
pub const STATE_SETTERS: &[u32] = &[
    KVM_SET_REGS,
    KVM_SET_SREGS,
    KVM_SET_SREGS2,
    KVM_SET_FPU,
    KVM_SET_LAPIC,
    KVM_SET_MP_STATE,
    KVM_SET_VCPU_EVENTS,
    KVM_SET_DEBUGREGS,
    KVM_SET_XSAVE,
    KVM_SET_XCRS,
    KVM_SET_MSRS,
    KVM_SET_NESTED_STATE,
    KVM_SET_GUEST_DEBUG,
    KVM_SET_ONE_REG,
    KVM_INTERRUPT,
    KVM_NMI,
    KVM_SMI,
    KVM_X86_SET_MCE,
];

/// `(GET, SET)` pairs: a successful `GET`'s output is kept and later replayed, mutated, into
/// the `SET`.
pub const PAIRS: &[(u32, u32)] = &[
    (KVM_GET_REGS, KVM_SET_REGS),
    (KVM_GET_SREGS, KVM_SET_SREGS),
    (KVM_GET_SREGS2, KVM_SET_SREGS2),
    (KVM_GET_FPU, KVM_SET_FPU),
    (KVM_GET_LAPIC, KVM_SET_LAPIC),
    (KVM_GET_MP_STATE, KVM_SET_MP_STATE),
    (KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS),
    (KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS),
    (KVM_GET_XSAVE, KVM_SET_XSAVE),
    (KVM_GET_XSAVE2, KVM_SET_XSAVE),
    (KVM_GET_XCRS, KVM_SET_XCRS),
    (KVM_GET_CPUID2, KVM_SET_CPUID2),
    (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2),
    (KVM_GET_EMULATED_CPUID, KVM_SET_CPUID2),
    (KVM_GET_MSRS, KVM_SET_MSRS),
    (KVM_GET_NESTED_STATE, KVM_SET_NESTED_STATE),
    (KVM_GET_CLOCK, KVM_SET_CLOCK),
    (KVM_GET_IRQCHIP, KVM_SET_IRQCHIP),
    (KVM_GET_PIT, KVM_SET_PIT),
    (KVM_GET_PIT2, KVM_SET_PIT2),
    (KVM_XEN_HVM_GET_ATTR, KVM_XEN_HVM_SET_ATTR),
    (KVM_XEN_VCPU_GET_ATTR, KVM_XEN_VCPU_SET_ATTR),
    (KVM_GET_ONE_REG, KVM_SET_ONE_REG),
    (KVM_GET_DEVICE_ATTR, KVM_SET_DEVICE_ATTR),
];

/// The `SET` a `GET`'s output feeds, if any.
pub fn replay_target(get: u32) -> Option<u32> {
    PAIRS.iter().find(|p| p.0 == get).map(|p| p.1)
}

/// x86 instruction snippets sprinkled over guest memory, so that random guest code reaches
/// the interesting exits more often than pure noise would.
pub const GUEST_SNIPPETS: &[&[u8]] = &[
    &[0xf4],                   // hlt
    &[0xe6, 0x80],             // out 0x80, al
    &[0xe4, 0x61],             // in al, 0x61
    &[0xef],                   // out dx, eax
    &[0x0f, 0x01, 0xd9],       // vmmcall
    &[0x0f, 0x01, 0xc1],       // vmcall
    &[0x0f, 0x01, 0xd8],       // vmrun
    &[0x0f, 0x01, 0xdd],       // clgi
    &[0x0f, 0x01, 0xdc],       // stgi
    &[0x0f, 0x01, 0xda],       // vmload
    &[0x0f, 0x01, 0xdb],       // vmsave
    &[0x0f, 0x01, 0xdf],       // invlpga
    &[0x0f, 0x30],             // wrmsr
    &[0x0f, 0x32],             // rdmsr
    &[0x0f, 0xa2],             // cpuid
    &[0x0f, 0x22, 0xc0],       // mov cr0, eax
    &[0x0f, 0x22, 0xe0],       // mov cr4, eax
    &[0x0f, 0x22, 0xd8],       // mov cr3, eax
    &[0x0f, 0x23, 0xf8],       // mov dr7, eax
    &[0x0f, 0x01, 0xd0],       // xgetbv
    &[0x0f, 0x01, 0xd1],       // xsetbv
    &[0x0f, 0x01, 0xf9],       // rdtscp
    &[0x0f, 0x31],             // rdtsc
    &[0x0f, 0x09],             // wbinvd
    &[0x0f, 0x0b],             // ud2
    &[0xcc],                   // int3
    &[0xcd, 0x0d],             // int 0x0d
    &[0xf1],                   // icebp
    &[0xeb, 0xfe],             // jmp $
    &[0xfa],                   // cli
    &[0xfb],                   // sti
    &[0xf3, 0x90],             // pause
    &[0x0f, 0x01, 0xc8],       // monitor
    &[0x0f, 0x01, 0xc9],       // mwait
    &[0xf3, 0x6e],             // rep outsb
    &[0xf3, 0x6c],             // rep insb
    &[0xf3, 0xa4],             // rep movsb
    &[0xa1, 0x00, 0x00, 0xe0], // mov eax, [0xe00000] (MMIO-ish)
    &[0x0f, 0x00, 0xd8],       // ltr ax
    &[0x0f, 0x01, 0x10],       // lgdt [bx+si]
    &[0x0f, 0x01, 0x18],       // lidt [bx+si]
    &[0x0f, 0xae, 0x38],       // clflush [rax]
    &[0x0f, 0x01, 0xf8],       // swapgs
    &[0x0f, 0x05],             // syscall
    &[0x0f, 0x34],             // sysenter
    &[0xcf],                   // iret
    &[0x0f, 0xaa],             // rsm
    &[0x0f, 0x01, 0xee],       // rdpkru
    &[0x0f, 0xc7, 0xf8],       // rdpid / rdseed
];
