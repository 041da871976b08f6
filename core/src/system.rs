//! The system object behind `/dev/kvm`: backend probe, per-CPU enablement, capabilities and
//! VM creation.

use crate::Platform;
use crate::abi::KVM_API_VERSION;
use crate::abi::cap::Cap;
use crate::abi::ioctl::{
    KVM_CHECK_EXTENSION, KVM_CREATE_VM, KVM_GET_API_VERSION, KVM_GET_VCPU_MMAP_SIZE,
};
use crate::arch::{Arch, ArchLimits};
use crate::errno::{Errno, KResult};
use crate::kalloc::KArc;
use crate::memslot::DIRTY_LOG_MANUAL_CAPS;
use crate::os::{LogLevel, Os, PAGE_SIZE};
use crate::vcpu::VcpuFile;
use crate::vm::Vm;

/// What a command returned: a value, or a new object for which the glue must make a file
/// descriptor (and return its number to user space).
pub enum Outcome<P: Platform> {
    /// A plain return value (0 or positive).
    Value(i64),
    /// `KVM_CREATE_VM` made a VM.
    Vm(KArc<Vm<P>>),
    /// `KVM_CREATE_VCPU` made a vCPU.
    Vcpu(KArc<VcpuFile<P>>),
}

impl<P: Platform> core::fmt::Debug for Outcome<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "Value({v})"),
            Outcome::Vm(_) => f.write_str("Vm"),
            Outcome::Vcpu(_) => f.write_str("Vcpu"),
        }
    }
}

/// The module-wide state: the OS port and the probed backend, enabled on every CPU for as
/// long as this object lives.
pub struct System<P: Platform> {
    os: P::Os,
    arch: P::Arch,
}

impl<P: Platform> System<P> {
    /// Probes the backend and enables it on every online CPU (all or none: on failure the
    /// CPUs already enabled are disabled again). Preemptible context.
    pub fn new(os: P::Os) -> KResult<KArc<Self>> {
        let arch = P::Arch::probe(&os)?;
        if let Err(e) = os.cpu_call_all(&|cpu| arch.cpu_enable(&os, cpu)) {
            Self::disable_all(&os, &arch);
            return Err(e);
        }
        os.log(
            LogLevel::Info,
            format_args!("kvmport: backend {} enabled", P::Arch::NAME),
        );
        // On allocation failure the value is dropped, which disables the CPUs again.
        KArc::try_new(System { os, arch })
    }

    fn disable_all(os: &P::Os, arch: &P::Arch) {
        let _ = os.cpu_call_all(&|cpu| {
            arch.cpu_disable(os, cpu);
            Ok(())
        });
    }

    /// Enables the backend on a CPU coming online (hotplug). Called on that CPU.
    pub fn cpu_online(&self, cpu: u32) -> KResult<()> {
        self.arch.cpu_enable(&self.os, cpu)
    }

    /// Disables the backend on a CPU going offline (hotplug). Called on that CPU.
    pub fn cpu_offline(&self, cpu: u32) {
        self.arch.cpu_disable(&self.os, cpu)
    }

    /// The OS port.
    pub fn os(&self) -> &P::Os {
        &self.os
    }

    /// The backend.
    pub fn arch(&self) -> &P::Arch {
        &self.arch
    }

    /// The backend's limits.
    pub fn limits(&self) -> ArchLimits {
        self.arch.limits()
    }

    /// `KVM_GET_VCPU_MMAP_SIZE`.
    pub fn vcpu_mmap_size(&self) -> usize {
        self.limits().vcpu_mmap_pages as usize * PAGE_SIZE
    }

    /// `KVM_CHECK_EXTENSION`: the backend's answer where it gives one, else the core's.
    pub fn check_extension(&self, cap: u64, vm: Option<&Vm<P>>) -> i64 {
        if let Some(v) = self.arch.check_extension(cap, vm.map(Vm::arch_state)) {
            return v;
        }
        let l = self.limits();
        let Some(cap) = Cap::from_raw(cap) else {
            return 0;
        };
        match cap {
            Cap::UserMemory
            | Cap::UserMemory2
            | Cap::DestroyMemoryRegionWorks
            | Cap::JoinMemoryRegionsWorks
            | Cap::InternalErrorData
            | Cap::Ioeventfd
            | Cap::IoeventfdAnyLength
            | Cap::IoeventfdNoLength
            | Cap::CheckExtensionVm
            | Cap::EnableCapVm
            | Cap::EnableCap
            | Cap::ImmediateExit => 1,
            Cap::NrVcpus => i64::from(l.nr_vcpus.min(self.os.cpu_count())),
            Cap::MaxVcpus => i64::from(l.max_vcpus),
            Cap::MaxVcpuId => i64::from(l.max_vcpu_ids),
            Cap::NrMemslots => i64::from(l.slots.slots),
            Cap::MultiAddressSpace => i64::from(l.slots.address_spaces),
            Cap::ReadonlyMem => i64::from(l.slots.readonly),
            Cap::ManualDirtyLogProtect2 => DIRTY_LOG_MANUAL_CAPS as i64,
            // Held guest pages follow user space's mappings only when the port tells VMs of
            // unmapped or changed user memory.
            Cap::SyncMmu => i64::from(self.os.user_mm_notifies()),
            _ => 0,
        }
    }

    /// Dispatches a command on `/dev/kvm`. Unknown commands get `EINVAL`, as on Linux.
    pub fn ioctl(this: &KArc<Self>, cmd: u32, arg: u64) -> KResult<Outcome<P>> {
        let value = match cmd {
            KVM_GET_API_VERSION => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                i64::from(KVM_API_VERSION)
            }
            KVM_CREATE_VM => return Vm::create(this, arg).map(Outcome::Vm),
            KVM_CHECK_EXTENSION => this.check_extension(arg, None),
            KVM_GET_VCPU_MMAP_SIZE => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                this.vcpu_mmap_size() as i64
            }
            _ => match this.arch.system_ioctl(&this.os, cmd, arg) {
                Some(r) => r?,
                None => return Err(Errno::EINVAL),
            },
        };
        Ok(Outcome::Value(value))
    }
}

impl<P: Platform> Drop for System<P> {
    fn drop(&mut self) {
        Self::disable_all(&self.os, &self.arch);
        self.os.log(
            LogLevel::Info,
            format_args!("kvmport: backend {} disabled", P::Arch::NAME),
        );
    }
}
