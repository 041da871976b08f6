//! Architecture-neutral structs and constants of `<linux/kvm.h>`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::x86::{KvmGuestDebugArch, KvmIoapicState, KvmPicState};

/// The KVM ioctl type byte (`KVMIO`).
pub const KVMIO: u32 = 0xAE;
/// The value `KVM_GET_API_VERSION` returns.
pub const KVM_API_VERSION: i32 = 12;

// ---------------------------------------------------------------------------
// Memory slots.
// ---------------------------------------------------------------------------

/// Memory-slot flag: track dirty pages (`KVM_GET_DIRTY_LOG`).
pub const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1 << 0;
/// Memory-slot flag: the guest may not write the slot (writes exit as MMIO).
pub const KVM_MEM_READONLY: u32 = 1 << 1;
/// Memory-slot flag: the slot is backed by a guest_memfd (Linux 6.8+,
/// `KVM_SET_USER_MEMORY_REGION2` only).
pub const KVM_MEM_GUEST_MEMFD: u32 = 1 << 2;
/// Largest number of pages in one memory slot (kernel-internal
/// `KVM_MEM_MAX_NR_PAGES` = 2^31 - 1; not in the uapi headers).
pub const KVM_MEM_MAX_NR_PAGES: u64 = (1 << 31) - 1;
/// The memory attribute "private" (`KVM_MEMORY_ATTRIBUTE_PRIVATE`, Linux 6.8+).
pub const KVM_MEMORY_ATTRIBUTE_PRIVATE: u64 = 1 << 3;

/// `struct kvm_memory_region`: the obsolete `KVM_SET_MEMORY_REGION` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMemoryRegion {
    /// Slot number.
    pub slot: u32,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// Guest-physical start address.
    pub guest_phys_addr: u64,
    /// Size in bytes.
    pub memory_size: u64,
}

/// `struct kvm_userspace_memory_region`: the `KVM_SET_USER_MEMORY_REGION`
/// argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmUserspaceMemoryRegion {
    /// Slot number (address space in bits 16..31).
    pub slot: u32,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// Guest-physical start address.
    pub guest_phys_addr: u64,
    /// Size in bytes (0 deletes the slot).
    pub memory_size: u64,
    /// Start of the backing memory in the user's address space.
    pub userspace_addr: u64,
}

/// `struct kvm_userspace_memory_region2`: the `KVM_SET_USER_MEMORY_REGION2`
/// argument (Linux 6.8+, not in the 6.1 headers; layout from api.rst).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmUserspaceMemoryRegion2 {
    /// Slot number (address space in bits 16..31).
    pub slot: u32,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// Guest-physical start address.
    pub guest_phys_addr: u64,
    /// Size in bytes (0 deletes the slot).
    pub memory_size: u64,
    /// Start of the backing memory in the user's address space.
    pub userspace_addr: u64,
    /// Offset into the guest_memfd (with `KVM_MEM_GUEST_MEMFD`).
    pub guest_memfd_offset: u64,
    /// The guest_memfd file descriptor (with `KVM_MEM_GUEST_MEMFD`).
    pub guest_memfd: u32,
    /// Reserved, must be zero.
    pub pad1: u32,
    /// Reserved, must be zero.
    pub pad2: [u64; 14],
}

/// `struct kvm_memory_attributes`: the `KVM_SET_MEMORY_ATTRIBUTES` argument
/// (Linux 6.8+).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMemoryAttributes {
    /// Guest-physical start address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// `KVM_MEMORY_ATTRIBUTE_*` bits to set.
    pub attributes: u64,
    /// Reserved, must be zero.
    pub flags: u64,
}

/// `struct kvm_create_guest_memfd`: the `KVM_CREATE_GUEST_MEMFD` argument
/// (Linux 6.8+).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCreateGuestMemfd {
    /// Size of the file in bytes.
    pub size: u64,
    /// Creation flags.
    pub flags: u64,
    /// Reserved, must be zero.
    pub reserved: [u64; 6],
}

/// `struct kvm_dirty_log`: the `KVM_GET_DIRTY_LOG` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDirtyLog {
    /// Slot number.
    pub slot: u32,
    /// Padding.
    pub padding1: u32,
    /// User address of the bitmap, one bit per page (C union of
    /// `void *dirty_bitmap` and `__u64 padding2`).
    pub dirty_bitmap: u64,
}

/// `struct kvm_clear_dirty_log`: the `KVM_CLEAR_DIRTY_LOG` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmClearDirtyLog {
    /// Slot number.
    pub slot: u32,
    /// Number of pages to clear (multiple of 64 unless at the slot end).
    pub num_pages: u32,
    /// First page to clear (multiple of 64).
    pub first_page: u64,
    /// User address of the bitmap (C union of `void *` and `__u64`).
    pub dirty_bitmap: u64,
}

/// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` flag: manual dirty-log protection.
pub const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE: u64 = 1 << 0;
/// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` flag: bitmaps start all-set.
pub const KVM_DIRTY_LOG_INITIALLY_SET: u64 = 1 << 1;
/// Dirty-ring entry flag: the GFN is dirty.
pub const KVM_DIRTY_GFN_F_DIRTY: u32 = 1 << 0;
/// Dirty-ring entry flag: the GFN was harvested and is to be reset.
pub const KVM_DIRTY_GFN_F_RESET: u32 = 1 << 1;
/// Mask of the dirty-ring entry flags.
pub const KVM_DIRTY_GFN_F_MASK: u32 = 0x3;

/// `struct kvm_dirty_gfn`: one entry of a vCPU's dirty ring.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDirtyGfn {
    /// `KVM_DIRTY_GFN_F_*` flags.
    pub flags: u32,
    /// Slot (address space in bits 16..31).
    pub slot: u32,
    /// Page offset inside the slot.
    pub offset: u64,
}

// ---------------------------------------------------------------------------
// Interrupts and IRQ routing.
// ---------------------------------------------------------------------------

/// `struct kvm_irq_level`: the `KVM_IRQ_LINE` / `KVM_IRQ_LINE_STATUS`
/// argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqLevel {
    /// GSI in; for `KVM_IRQ_LINE_STATUS` the C union member `status` (an
    /// `i32`) on return, see [`KvmIrqLevel::status`].
    pub irq: u32,
    /// Line level (0 or 1).
    pub level: u32,
}

impl KvmIrqLevel {
    /// The union member `status` (returned by `KVM_IRQ_LINE_STATUS`).
    pub const fn status(&self) -> i32 {
        self.irq as i32
    }
}

byte_union! {
    /// The `chip` union of `struct kvm_irqchip` (512 bytes: `dummy`, or the
    /// x86 [`KvmPicState`] / [`KvmIoapicState`]).
    KvmIrqchipChip, align = 8, size = 512
}

impl KvmIrqchipChip {
    /// The chip as an 8259 PIC state.
    pub fn pic(&self) -> KvmPicState {
        self.read_or_zeroed()
    }

    /// The chip as an IOAPIC state.
    pub fn ioapic(&self) -> KvmIoapicState {
        self.read_or_zeroed()
    }
}

/// `struct kvm_irqchip`: the `KVM_GET_IRQCHIP` / `KVM_SET_IRQCHIP` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqchip {
    /// `KVM_IRQCHIP_*` chip id.
    pub chip_id: u32,
    /// Padding.
    pub pad: u32,
    /// The chip state.
    pub chip: KvmIrqchipChip,
}

/// `struct kvm_interrupt`: the `KVM_INTERRUPT` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmInterrupt {
    /// Interrupt vector (x86) or line state (ppc/mips).
    pub irq: u32,
}

/// irqfd flag: deassign the irqfd.
pub const KVM_IRQFD_FLAG_DEASSIGN: u32 = 1 << 0;
/// irqfd flag: `resamplefd` is valid (level-triggered resampling).
pub const KVM_IRQFD_FLAG_RESAMPLE: u32 = 1 << 1;

/// `struct kvm_irqfd`: the `KVM_IRQFD` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqfd {
    /// The eventfd.
    pub fd: u32,
    /// The GSI to raise.
    pub gsi: u32,
    /// `KVM_IRQFD_FLAG_*`.
    pub flags: u32,
    /// The resample eventfd (with `KVM_IRQFD_FLAG_RESAMPLE`).
    pub resamplefd: u32,
    /// Reserved.
    pub pad: [u8; 16],
}

/// `struct kvm_msi`: the `KVM_SIGNAL_MSI` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsi {
    /// Low 32 bits of the MSI address.
    pub address_lo: u32,
    /// High 32 bits of the MSI address.
    pub address_hi: u32,
    /// MSI data.
    pub data: u32,
    /// `KVM_MSI_VALID_DEVID`.
    pub flags: u32,
    /// Device id (with `KVM_MSI_VALID_DEVID`).
    pub devid: u32,
    /// Reserved.
    pub pad: [u8; 12],
}

/// MSI flag: `devid` is valid.
pub const KVM_MSI_VALID_DEVID: u32 = 1 << 0;

/// IRQ routing entry type: an irqchip pin.
pub const KVM_IRQ_ROUTING_IRQCHIP: u32 = 1;
/// IRQ routing entry type: an MSI.
pub const KVM_IRQ_ROUTING_MSI: u32 = 2;
/// IRQ routing entry type: an s390 adapter interrupt.
pub const KVM_IRQ_ROUTING_S390_ADAPTER: u32 = 3;
/// IRQ routing entry type: a Hyper-V SynIC SINT.
pub const KVM_IRQ_ROUTING_HV_SINT: u32 = 4;
/// IRQ routing entry type: a Xen event channel.
pub const KVM_IRQ_ROUTING_XEN_EVTCHN: u32 = 5;
/// Xen event channel priority: 2-level delivery.
pub const KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL: u32 = u32::MAX;

/// `struct kvm_irq_routing_irqchip`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingIrqchip {
    /// `KVM_IRQCHIP_*` chip id.
    pub irqchip: u32,
    /// Pin on that chip.
    pub pin: u32,
}

/// `struct kvm_irq_routing_msi`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingMsi {
    /// Low 32 bits of the MSI address.
    pub address_lo: u32,
    /// High 32 bits of the MSI address.
    pub address_hi: u32,
    /// MSI data.
    pub data: u32,
    /// Device id (C union with `pad`).
    pub devid: u32,
}

/// `struct kvm_irq_routing_s390_adapter`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingS390Adapter {
    /// Indicator address.
    pub ind_addr: u64,
    /// Summary indicator address.
    pub summary_addr: u64,
    /// Indicator bit offset.
    pub ind_offset: u64,
    /// Summary bit offset.
    pub summary_offset: u32,
    /// Adapter id.
    pub adapter_id: u32,
}

/// `struct kvm_irq_routing_hv_sint`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingHvSint {
    /// Target vCPU.
    pub vcpu: u32,
    /// SINT number.
    pub sint: u32,
}

/// `struct kvm_irq_routing_xen_evtchn`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingXenEvtchn {
    /// Event channel port.
    pub port: u32,
    /// Target vCPU.
    pub vcpu: u32,
    /// Priority (`KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL`).
    pub priority: u32,
}

byte_union! {
    /// The `u` union of `struct kvm_irq_routing_entry` (32 bytes; read it as
    /// [`KvmIrqRoutingIrqchip`], [`KvmIrqRoutingMsi`], ... by `type`).
    KvmIrqRoutingEntryU, align = 8, size = 32
}

/// `struct kvm_irq_routing_entry`: one GSI route.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRoutingEntry {
    /// The GSI.
    pub gsi: u32,
    /// `KVM_IRQ_ROUTING_*` type.
    pub r#type: u32,
    /// Flags.
    pub flags: u32,
    /// Padding.
    pub pad: u32,
    /// Type-specific routing data.
    pub u: KvmIrqRoutingEntryU,
}

/// `struct kvm_irq_routing`: the `KVM_SET_GSI_ROUTING` header, followed in
/// memory by `nr` [`KvmIrqRoutingEntry`] (`entries[]`).
/// 8-aligned like the C struct, whose trailing entries contain `u64`s.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIrqRouting {
    /// Number of entries.
    pub nr: u32,
    /// Flags (must be zero).
    pub flags: u32,
}

// ---------------------------------------------------------------------------
// ioeventfd, coalesced MMIO.
// ---------------------------------------------------------------------------

/// ioeventfd flag: only signal when the written value equals `datamatch`.
pub const KVM_IOEVENTFD_FLAG_DATAMATCH: u32 = 1 << 0;
/// ioeventfd flag: `addr` is a PIO port, not an MMIO address.
pub const KVM_IOEVENTFD_FLAG_PIO: u32 = 1 << 1;
/// ioeventfd flag: deassign.
pub const KVM_IOEVENTFD_FLAG_DEASSIGN: u32 = 1 << 2;
/// ioeventfd flag: s390 virtio-ccw notification.
pub const KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY: u32 = 1 << 3;
/// All valid ioeventfd flags (includes the fast-MMIO bit 4).
pub const KVM_IOEVENTFD_VALID_FLAG_MASK: u32 = (1 << 5) - 1;

/// `struct kvm_ioeventfd`: the `KVM_IOEVENTFD` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmIoeventfd {
    /// Value to match (with `KVM_IOEVENTFD_FLAG_DATAMATCH`).
    pub datamatch: u64,
    /// PIO port or MMIO address.
    pub addr: u64,
    /// Access length: 1, 2, 4 or 8, or 0 for any.
    pub len: u32,
    /// The eventfd.
    pub fd: i32,
    /// `KVM_IOEVENTFD_FLAG_*`.
    pub flags: u32,
    /// Reserved.
    pub pad: [u8; 36],
}

/// `struct kvm_coalesced_mmio_zone`: the `KVM_(UN)REGISTER_COALESCED_MMIO`
/// argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCoalescedMmioZone {
    /// Start address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u32,
    /// 1 for a PIO zone (C union with `pad`).
    pub pio: u32,
}

/// `struct kvm_coalesced_mmio`: one entry of the coalesced MMIO ring.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCoalescedMmio {
    /// Guest-physical address (or port).
    pub phys_addr: u64,
    /// Access length.
    pub len: u32,
    /// 1 for PIO (C union with `pad`).
    pub pio: u32,
    /// Written data.
    pub data: [u8; 8],
}

/// `struct kvm_coalesced_mmio_ring`: the ring header at
/// `KVM_COALESCED_MMIO_PAGE_OFFSET` of the vCPU mmap, followed by
/// [`KVM_COALESCED_MMIO_MAX`] [`KvmCoalescedMmio`] (`coalesced_mmio[]`).
/// 8-aligned like the C struct, whose trailing entries contain `u64`s.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCoalescedMmioRing {
    /// Consumer index (user space).
    pub first: u32,
    /// Producer index (kernel).
    pub last: u32,
}

/// Page size assumed by [`KVM_COALESCED_MMIO_MAX`] (4 KiB).
pub const KVM_PAGE_SIZE: usize = 4096;
/// Entries in the coalesced MMIO ring: `(PAGE_SIZE - sizeof(ring)) /
/// sizeof(struct kvm_coalesced_mmio)` for 4 KiB pages.
pub const KVM_COALESCED_MMIO_MAX: usize = (KVM_PAGE_SIZE
    - core::mem::size_of::<KvmCoalescedMmioRing>())
    / core::mem::size_of::<KvmCoalescedMmio>();

// ---------------------------------------------------------------------------
// Misc vCPU / VM argument structs.
// ---------------------------------------------------------------------------

/// `struct kvm_translation`: the `KVM_TRANSLATE` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmTranslation {
    /// Guest-linear address (in).
    pub linear_address: u64,
    /// Guest-physical address (out).
    pub physical_address: u64,
    /// The translation is valid.
    pub valid: u8,
    /// The page is writeable.
    pub writeable: u8,
    /// The page is user-accessible.
    pub usermode: u8,
    /// Padding.
    pub pad: [u8; 5],
}

/// `struct kvm_signal_mask`: the `KVM_SET_SIGNAL_MASK` header, followed by
/// `len` bytes of `sigset[]`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSignalMask {
    /// Length of the signal set in bytes (8 on Linux).
    pub len: u32,
}

/// vCPU state: runnable.
pub const KVM_MP_STATE_RUNNABLE: u32 = 0;
/// vCPU state: waiting for INIT (x86 APs).
pub const KVM_MP_STATE_UNINITIALIZED: u32 = 1;
/// vCPU state: INIT received, waiting for SIPI.
pub const KVM_MP_STATE_INIT_RECEIVED: u32 = 2;
/// vCPU state: halted.
pub const KVM_MP_STATE_HALTED: u32 = 3;
/// vCPU state: SIPI received.
pub const KVM_MP_STATE_SIPI_RECEIVED: u32 = 4;
/// vCPU state: stopped (s390, arm64).
pub const KVM_MP_STATE_STOPPED: u32 = 5;
/// vCPU state: check-stop (s390).
pub const KVM_MP_STATE_CHECK_STOP: u32 = 6;
/// vCPU state: operating (s390).
pub const KVM_MP_STATE_OPERATING: u32 = 7;
/// vCPU state: load (s390).
pub const KVM_MP_STATE_LOAD: u32 = 8;
/// vCPU state: AP reset hold (SEV-ES).
pub const KVM_MP_STATE_AP_RESET_HOLD: u32 = 9;
/// vCPU state: suspended (arm64 PSCI SYSTEM_SUSPEND).
pub const KVM_MP_STATE_SUSPENDED: u32 = 10;

/// `struct kvm_mp_state`: the `KVM_GET/SET_MP_STATE` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMpState {
    /// `KVM_MP_STATE_*`.
    pub mp_state: u32,
}

/// Guest-debug control: enable debugging.
pub const KVM_GUESTDBG_ENABLE: u32 = 0x0000_0001;
/// Guest-debug control: single-step.
pub const KVM_GUESTDBG_SINGLESTEP: u32 = 0x0000_0002;

/// `struct kvm_guest_debug`: the `KVM_SET_GUEST_DEBUG` argument (with the
/// x86 arch part; see `arm64::KvmGuestDebug` for arm64).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmGuestDebug {
    /// `KVM_GUESTDBG_*` control bits.
    pub control: u32,
    /// Padding.
    pub pad: u32,
    /// Architecture-specific part.
    pub arch: KvmGuestDebugArch,
}

/// `struct kvm_enable_cap`: the `KVM_ENABLE_CAP` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmEnableCap {
    /// The `KVM_CAP_*` number.
    pub cap: u32,
    /// Flags (capability-specific).
    pub flags: u32,
    /// Capability-specific arguments.
    pub args: [u64; 4],
    /// Reserved.
    pub pad: [u8; 64],
}

/// Clock flag: the clock is stable across vCPUs.
pub const KVM_CLOCK_TSC_STABLE: u32 = 2;
/// Clock flag: `realtime` is valid.
pub const KVM_CLOCK_REALTIME: u32 = 1 << 2;
/// Clock flag: `host_tsc` is valid.
pub const KVM_CLOCK_HOST_TSC: u32 = 1 << 3;

/// `struct kvm_clock_data`: the `KVM_GET/SET_CLOCK` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmClockData {
    /// kvmclock value in nanoseconds.
    pub clock: u64,
    /// `KVM_CLOCK_*`.
    pub flags: u32,
    /// Padding.
    pub pad0: u32,
    /// `CLOCK_REALTIME` in nanoseconds (with `KVM_CLOCK_REALTIME`).
    pub realtime: u64,
    /// Host TSC (with `KVM_CLOCK_HOST_TSC`).
    pub host_tsc: u64,
    /// Reserved.
    pub pad: [u32; 4],
}

/// Create-device flag: only test whether the device type is supported.
pub const KVM_CREATE_DEVICE_TEST: u32 = 1;

/// Device type: Freescale MPIC 2.0.
pub const KVM_DEV_TYPE_FSL_MPIC_20: u32 = 1;
/// Device type: Freescale MPIC 4.2.
pub const KVM_DEV_TYPE_FSL_MPIC_42: u32 = 2;
/// Device type: POWER XICS.
pub const KVM_DEV_TYPE_XICS: u32 = 3;
/// Device type: VFIO.
pub const KVM_DEV_TYPE_VFIO: u32 = 4;
/// Device type: ARM GICv2.
pub const KVM_DEV_TYPE_ARM_VGIC_V2: u32 = 5;
/// Device type: s390 floating interrupt controller.
pub const KVM_DEV_TYPE_FLIC: u32 = 6;
/// Device type: ARM GICv3.
pub const KVM_DEV_TYPE_ARM_VGIC_V3: u32 = 7;
/// Device type: ARM GICv3 ITS.
pub const KVM_DEV_TYPE_ARM_VGIC_ITS: u32 = 8;
/// Device type: POWER XIVE.
pub const KVM_DEV_TYPE_XIVE: u32 = 9;
/// Device type: ARM paravirtual time.
pub const KVM_DEV_TYPE_ARM_PV_TIME: u32 = 10;
/// One past the last device type in Linux 6.1 (`KVM_DEV_TYPE_MAX`).
pub const KVM_DEV_TYPE_MAX: u32 = 11;

/// VFIO device attribute group: VFIO groups.
pub const KVM_DEV_VFIO_GROUP: u32 = 1;
/// VFIO group attribute: add a group.
pub const KVM_DEV_VFIO_GROUP_ADD: u64 = 1;
/// VFIO group attribute: delete a group.
pub const KVM_DEV_VFIO_GROUP_DEL: u64 = 2;
/// VFIO group attribute: attach an sPAPR TCE table.
pub const KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE: u64 = 3;

/// `struct kvm_create_device`: the `KVM_CREATE_DEVICE` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCreateDevice {
    /// `KVM_DEV_TYPE_*` (in).
    pub r#type: u32,
    /// The device fd (out).
    pub fd: u32,
    /// `KVM_CREATE_DEVICE_TEST` (in).
    pub flags: u32,
}

/// `struct kvm_device_attr`: the `KVM_SET/GET/HAS_DEVICE_ATTR` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDeviceAttr {
    /// Flags (none defined).
    pub flags: u32,
    /// Device-defined group.
    pub group: u32,
    /// Group-defined attribute.
    pub attr: u64,
    /// User address of the attribute data.
    pub addr: u64,
}

/// `struct kvm_vfio_spapr_tce`: `KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE` data.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVfioSpaprTce {
    /// VFIO group fd.
    pub groupfd: i32,
    /// TCE table fd.
    pub tablefd: i32,
}

/// `struct kvm_arm_device_addr`: the `KVM_ARM_SET_DEVICE_ADDR` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmArmDeviceAddr {
    /// Device id and address type.
    pub id: u64,
    /// Guest-physical base address.
    pub addr: u64,
}

// ---------------------------------------------------------------------------
// ONE_REG.
// ---------------------------------------------------------------------------

/// ONE_REG id: architecture mask.
pub const KVM_REG_ARCH_MASK: u64 = 0xff00_0000_0000_0000;
/// ONE_REG id: generic (architecture-independent) register.
pub const KVM_REG_GENERIC: u64 = 0x0000_0000_0000_0000;
/// ONE_REG id: PowerPC register.
pub const KVM_REG_PPC: u64 = 0x1000_0000_0000_0000;
/// ONE_REG id: x86 register.
pub const KVM_REG_X86: u64 = 0x2000_0000_0000_0000;
/// ONE_REG id: IA-64 register.
pub const KVM_REG_IA64: u64 = 0x3000_0000_0000_0000;
/// ONE_REG id: 32-bit ARM register.
pub const KVM_REG_ARM: u64 = 0x4000_0000_0000_0000;
/// ONE_REG id: s390 register.
pub const KVM_REG_S390: u64 = 0x5000_0000_0000_0000;
/// ONE_REG id: arm64 register.
pub const KVM_REG_ARM64: u64 = 0x6000_0000_0000_0000;
/// ONE_REG id: MIPS register.
pub const KVM_REG_MIPS: u64 = 0x7000_0000_0000_0000;
/// ONE_REG id: RISC-V register.
pub const KVM_REG_RISCV: u64 = 0x8000_0000_0000_0000;
/// ONE_REG id: shift of the size field.
pub const KVM_REG_SIZE_SHIFT: u32 = 52;
/// ONE_REG id: size field mask.
pub const KVM_REG_SIZE_MASK: u64 = 0x00f0_0000_0000_0000;
/// ONE_REG size: 8 bits.
pub const KVM_REG_SIZE_U8: u64 = 0x0000_0000_0000_0000;
/// ONE_REG size: 16 bits.
pub const KVM_REG_SIZE_U16: u64 = 0x0010_0000_0000_0000;
/// ONE_REG size: 32 bits.
pub const KVM_REG_SIZE_U32: u64 = 0x0020_0000_0000_0000;
/// ONE_REG size: 64 bits.
pub const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
/// ONE_REG size: 128 bits.
pub const KVM_REG_SIZE_U128: u64 = 0x0040_0000_0000_0000;
/// ONE_REG size: 256 bits.
pub const KVM_REG_SIZE_U256: u64 = 0x0050_0000_0000_0000;
/// ONE_REG size: 512 bits.
pub const KVM_REG_SIZE_U512: u64 = 0x0060_0000_0000_0000;
/// ONE_REG size: 1024 bits.
pub const KVM_REG_SIZE_U1024: u64 = 0x0070_0000_0000_0000;
/// ONE_REG size: 2048 bits.
pub const KVM_REG_SIZE_U2048: u64 = 0x0080_0000_0000_0000;

/// Size in bytes of the register a ONE_REG id names (`KVM_REG_SIZE(id)`).
pub const fn kvm_reg_size(id: u64) -> usize {
    1usize << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)
}

/// `struct kvm_one_reg`: the `KVM_GET/SET_ONE_REG` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmOneReg {
    /// Register id.
    pub id: u64,
    /// User address of the value.
    pub addr: u64,
}

/// `struct kvm_reg_list`: the `KVM_GET_REG_LIST` header, followed by `n`
/// `u64` register ids (`reg[]`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRegList {
    /// Number of registers (in: capacity, out: count).
    pub n: u64,
}

// ---------------------------------------------------------------------------
// Misc.
// ---------------------------------------------------------------------------

/// `struct kvm_config_tlb`: `KVM_CAP_SW_TLB` configuration (ppc booke).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmConfigTlb {
    /// User address of the MMU-type-specific parameters.
    pub params: u64,
    /// User address of the TLB array.
    pub array: u64,
    /// `KVM_MMU_FSL_BOOKE_*`.
    pub mmu_type: u32,
    /// Size of the array in bytes.
    pub array_len: u32,
}

/// `struct kvm_dirty_tlb`: the `KVM_DIRTY_TLB` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDirtyTlb {
    /// User address of the dirty bitmap.
    pub bitmap: u64,
    /// Number of dirty entries.
    pub num_dirty: u32,
    /// Implicit C tail padding.
    pub _pad0: [u8; 4],
}

/// `struct kvm_enc_region`: the `KVM_MEMORY_ENCRYPT_(UN)REG_REGION` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmEncRegion {
    /// User address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Hyper-V eventfd: mask of the connection id.
pub const KVM_HYPERV_CONN_ID_MASK: u32 = 0x00ff_ffff;
/// Hyper-V eventfd flag: deassign.
pub const KVM_HYPERV_EVENTFD_DEASSIGN: u32 = 1 << 0;

/// `struct kvm_hyperv_eventfd`: the `KVM_HYPERV_EVENTFD` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHypervEventfd {
    /// Connection id.
    pub conn_id: u32,
    /// The eventfd.
    pub fd: i32,
    /// `KVM_HYPERV_EVENTFD_DEASSIGN`.
    pub flags: u32,
    /// Reserved.
    pub padding: [u32; 3],
}

/// `struct kvm_stats_header`: the header at the start of a stats fd.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmStatsHeader {
    /// Flags (zero).
    pub flags: u32,
    /// Size of each descriptor's name, including the NUL.
    pub name_size: u32,
    /// Number of descriptors.
    pub num_desc: u32,
    /// File offset of the id string.
    pub id_offset: u32,
    /// File offset of the descriptors.
    pub desc_offset: u32,
    /// File offset of the data block.
    pub data_offset: u32,
}

/// `struct kvm_stats_desc`: one statistics descriptor, followed by
/// `name_size` bytes of `name[]`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmStatsDesc {
    /// `KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*`.
    pub flags: u32,
    /// Unit exponent.
    pub exponent: i16,
    /// Number of `u64` data items.
    pub size: u16,
    /// Offset of the data in the data block.
    pub offset: u32,
    /// Bucket size (linear histograms).
    pub bucket_size: u32,
}

/// Stats type field shift.
pub const KVM_STATS_TYPE_SHIFT: u32 = 0;
/// Stats type field mask.
pub const KVM_STATS_TYPE_MASK: u32 = 0xF << KVM_STATS_TYPE_SHIFT;
/// Stats type: cumulative counter.
pub const KVM_STATS_TYPE_CUMULATIVE: u32 = 0x0 << KVM_STATS_TYPE_SHIFT;
/// Stats type: instantaneous value.
pub const KVM_STATS_TYPE_INSTANT: u32 = 0x1 << KVM_STATS_TYPE_SHIFT;
/// Stats type: peak value.
pub const KVM_STATS_TYPE_PEAK: u32 = 0x2 << KVM_STATS_TYPE_SHIFT;
/// Stats type: linear histogram.
pub const KVM_STATS_TYPE_LINEAR_HIST: u32 = 0x3 << KVM_STATS_TYPE_SHIFT;
/// Stats type: logarithmic histogram.
pub const KVM_STATS_TYPE_LOG_HIST: u32 = 0x4 << KVM_STATS_TYPE_SHIFT;
/// Stats type: the largest type.
pub const KVM_STATS_TYPE_MAX: u32 = KVM_STATS_TYPE_LOG_HIST;
/// Stats unit field shift.
pub const KVM_STATS_UNIT_SHIFT: u32 = 4;
/// Stats unit field mask.
pub const KVM_STATS_UNIT_MASK: u32 = 0xF << KVM_STATS_UNIT_SHIFT;
/// Stats unit: none.
pub const KVM_STATS_UNIT_NONE: u32 = 0x0 << KVM_STATS_UNIT_SHIFT;
/// Stats unit: bytes.
pub const KVM_STATS_UNIT_BYTES: u32 = 0x1 << KVM_STATS_UNIT_SHIFT;
/// Stats unit: seconds.
pub const KVM_STATS_UNIT_SECONDS: u32 = 0x2 << KVM_STATS_UNIT_SHIFT;
/// Stats unit: cycles.
pub const KVM_STATS_UNIT_CYCLES: u32 = 0x3 << KVM_STATS_UNIT_SHIFT;
/// Stats unit: boolean.
pub const KVM_STATS_UNIT_BOOLEAN: u32 = 0x4 << KVM_STATS_UNIT_SHIFT;
/// Stats unit: the largest unit.
pub const KVM_STATS_UNIT_MAX: u32 = KVM_STATS_UNIT_BOOLEAN;
/// Stats base field shift.
pub const KVM_STATS_BASE_SHIFT: u32 = 8;
/// Stats base field mask.
pub const KVM_STATS_BASE_MASK: u32 = 0xF << KVM_STATS_BASE_SHIFT;
/// Stats base: powers of 10.
pub const KVM_STATS_BASE_POW10: u32 = 0x0 << KVM_STATS_BASE_SHIFT;
/// Stats base: powers of 2.
pub const KVM_STATS_BASE_POW2: u32 = 0x1 << KVM_STATS_BASE_SHIFT;
/// Stats base: the largest base.
pub const KVM_STATS_BASE_MAX: u32 = KVM_STATS_BASE_POW2;

/// `KVM_CREATE_VM` type for s390: user-controlled VM.
pub const KVM_VM_S390_UCONTROL: u64 = 1;
/// `KVM_CREATE_VM` type for ppc: force HV.
pub const KVM_VM_PPC_HV: u64 = 1;
/// `KVM_CREATE_VM` type for ppc: force PR.
pub const KVM_VM_PPC_PR: u64 = 2;
/// `KVM_CREATE_VM` type for MIPS: automatic.
pub const KVM_VM_MIPS_AUTO: u64 = 0;
/// `KVM_CREATE_VM` type for MIPS: VZ ASE.
pub const KVM_VM_MIPS_VZ: u64 = 1;
/// `KVM_CREATE_VM` type for MIPS: trap & emulate.
pub const KVM_VM_MIPS_TE: u64 = 2;
/// `KVM_CREATE_VM` type for arm64: mask of the IPA size field.
pub const KVM_VM_TYPE_ARM_IPA_SIZE_MASK: u64 = 0xff;
/// s390: mmap page offset of the SIE control block.
pub const KVM_S390_SIE_PAGE_OFFSET: u64 = 1;

/// Bus-lock detection: off.
pub const KVM_BUS_LOCK_DETECTION_OFF: u64 = 1 << 0;
/// Bus-lock detection: exit to user space.
pub const KVM_BUS_LOCK_DETECTION_EXIT: u64 = 1 << 1;
/// `KVM_CAP_PMU_CAPABILITY`: disable the vPMU.
pub const KVM_PMU_CAP_DISABLE: u64 = 1 << 0;
/// `KVM_CAP_X2APIC_API`: use 32-bit APIC ids.
pub const KVM_X2APIC_API_USE_32BIT_IDS: u64 = 1 << 0;
/// `KVM_CAP_X2APIC_API`: disable the broadcast quirk.
pub const KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK: u64 = 1 << 1;

assert_size! {
    KvmMemoryRegion => 24,
    KvmUserspaceMemoryRegion => 32,
    KvmUserspaceMemoryRegion2 => 160,
    KvmMemoryAttributes => 32,
    KvmCreateGuestMemfd => 64,
    KvmDirtyLog => 16,
    KvmClearDirtyLog => 24,
    KvmDirtyGfn => 16,
    KvmIrqLevel => 8,
    KvmIrqchipChip => 512,
    KvmIrqchip => 520,
    KvmInterrupt => 4,
    KvmIrqfd => 32,
    KvmMsi => 32,
    KvmIrqRoutingIrqchip => 8,
    KvmIrqRoutingMsi => 16,
    KvmIrqRoutingS390Adapter => 32,
    KvmIrqRoutingHvSint => 8,
    KvmIrqRoutingXenEvtchn => 12,
    KvmIrqRoutingEntryU => 32,
    KvmIrqRoutingEntry => 48,
    KvmIrqRouting => 8,
    KvmIoeventfd => 64,
    KvmCoalescedMmioZone => 16,
    KvmCoalescedMmio => 24,
    KvmCoalescedMmioRing => 8,
    KvmTranslation => 24,
    KvmSignalMask => 4,
    KvmMpState => 4,
    KvmGuestDebug => 72,
    KvmEnableCap => 104,
    KvmClockData => 48,
    KvmCreateDevice => 12,
    KvmDeviceAttr => 24,
    KvmVfioSpaprTce => 8,
    KvmArmDeviceAddr => 16,
    KvmOneReg => 16,
    KvmRegList => 8,
    KvmConfigTlb => 24,
    KvmDirtyTlb => 16,
    KvmEncRegion => 16,
    KvmHypervEventfd => 24,
    KvmStatsHeader => 24,
    KvmStatsDesc => 16,
}
const _: () = assert!(KVM_COALESCED_MMIO_MAX == 170);

zeroed_default!(KvmIoeventfd, KvmEnableCap);
