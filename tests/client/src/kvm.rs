//! The three kinds of KVM file: [`Kvm`] (the system fd), [`Vm`] and [`Vcpu`].

use crate::errno::Errno;
use crate::fd::{BadPtr, Fd};
use crate::flex::{CpuidBuf, MsrListBuf, MsrsBuf};
use crate::mem::{GuardedBuf, GuestMem};
use crate::run::RunMap;
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::*;
use kvmport_core::abi::x86::{
    KvmDebugregs, KvmFpu, KvmMsrEntry, KvmRegs, KvmSregs, KvmVcpuEvents, KvmXcrs, KvmXsave,
};
use kvmport_core::abi::{
    KvmClearDirtyLog, KvmDirtyLog, KvmEnableCap, KvmInterrupt, KvmIoeventfd, KvmMpState,
    KvmUserspaceMemoryRegion,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The system fd: an open KVM device node.
#[derive(Debug)]
pub struct Kvm {
    fd: Fd,
    path: Arc<PathBuf>,
}

impl Kvm {
    /// Opens the device node at `path` read-write (close-on-exec).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Kvm> {
        Ok(Kvm {
            fd: Fd::new(crate::sys::open(path.as_ref())?),
            path: Arc::new(path.as_ref().to_path_buf()),
        })
    }

    /// The fd, for raw commands.
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// `KVM_GET_API_VERSION`.
    pub fn api_version(&self) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_GET_API_VERSION, 0)
    }

    /// `KVM_CHECK_EXTENSION` for `cap`.
    pub fn check_extension(&self, cap: Cap) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_CHECK_EXTENSION, u64::from(cap.raw()))
    }

    /// `KVM_CHECK_EXTENSION` with a raw argument.
    pub fn check_extension_raw(&self, cap: u64) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_CHECK_EXTENSION, cap)
    }

    /// `KVM_GET_VCPU_MMAP_SIZE`.
    pub fn vcpu_mmap_size(&self) -> Result<usize, Errno> {
        let v = self.fd.ioctl_val(KVM_GET_VCPU_MMAP_SIZE, 0)?;
        usize::try_from(v).map_err(|_| Errno::ERANGE)
    }

    /// `KVM_CREATE_VM` with machine type `ty`.
    pub fn create_vm(&self, ty: u64) -> Result<Vm, Errno> {
        let fd = crate::sys::create(self.fd.raw(), &self.path, KVM_CREATE_VM, ty)?;
        Ok(Vm {
            fd: Fd::new(fd),
            keep: Arc::default(),
            path: self.path.clone(),
        })
    }

    /// `KVM_GET_SUPPORTED_CPUID` into a buffer with room (and count) for `cap` entries.
    pub fn supported_cpuid(&self, cap: usize) -> Result<CpuidBuf, Errno> {
        let mut b = CpuidBuf::with_count(cap).map_err(|_| Errno::ENOMEM)?;
        b.ioctl(&self.fd, KVM_GET_SUPPORTED_CPUID)?;
        Ok(b)
    }

    /// `KVM_GET_MSR_INDEX_LIST` (room for 4096 indices).
    pub fn msr_index_list(&self) -> Result<Vec<u32>, Errno> {
        let mut b = MsrListBuf::with_count(4096).map_err(|_| Errno::ENOMEM)?;
        b.ioctl(&self.fd, KVM_GET_MSR_INDEX_LIST)?;
        Ok(b.entries())
    }
}

/// Guest memory registered with a VM, kept mapped while the VM or any of its vCPUs is open.
type KeepAlive = Arc<Mutex<Vec<GuestMem>>>;

/// A VM fd.
#[derive(Debug)]
pub struct Vm {
    fd: Fd,
    keep: KeepAlive,
    /// The device node, for the illumos rule's clone opens.
    path: Arc<PathBuf>,
}

impl Vm {
    /// The fd, for raw commands.
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// `KVM_CHECK_EXTENSION` on the VM fd.
    pub fn check_extension(&self, cap: Cap) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_CHECK_EXTENSION, u64::from(cap.raw()))
    }

    /// `KVM_CREATE_VCPU` with vCPU id `id`.
    pub fn create_vcpu(&self, id: u64) -> Result<Vcpu, Errno> {
        let fd = crate::sys::create(self.fd.raw(), &self.path, KVM_CREATE_VCPU, id)?;
        Ok(Vcpu {
            fd: Fd::new(fd),
            keep: Arc::clone(&self.keep),
        })
    }

    /// `KVM_ENABLE_CAP` on the VM fd.
    pub fn enable_cap(&self, cap: u32, flags: u32, args: [u64; 4]) -> Result<i64, Errno> {
        let c = KvmEnableCap {
            cap,
            flags,
            args,
            ..Default::default()
        };
        self.fd.ioctl_write(KVM_ENABLE_CAP, &c)
    }

    /// `KVM_SET_USER_MEMORY_REGION` with an arbitrary `userspace_addr`.
    ///
    /// # Safety
    /// Until the slot is deleted or moved away, a guest running in this VM may read and write
    /// `userspace_addr .. userspace_addr + memory_size` of this process: that range must hold no
    /// Rust object (or be unmapped, or belong to a VM whose vCPUs never run).
    pub unsafe fn set_user_memory_region(&self, r: &KvmUserspaceMemoryRegion) -> Result<(), Errno> {
        // SAFETY: the kernel reads exactly one region struct; what the guest may later do with
        // the range is the caller's guarantee.
        unsafe {
            self.fd
                .ioctl_raw(KVM_SET_USER_MEMORY_REGION, core::ptr::from_ref(r) as u64)
        }
        .map(drop)
    }

    /// `KVM_SET_USER_MEMORY_REGION` backed by `size` bytes of `mem` from offset `offset`
    /// (`offset` need not be aligned: the kernel's alignment checks are tested with it). `mem`
    /// stays mapped while this VM or any of its vCPUs is open.
    ///
    /// # Panics
    /// If `offset + size` exceeds `mem`.
    pub fn set_region(
        &self,
        slot: u32,
        flags: u32,
        gpa: u64,
        size: u64,
        mem: &GuestMem,
        offset: u64,
    ) -> Result<(), Errno> {
        assert!(
            offset
                .checked_add(size)
                .is_some_and(|e| e <= mem.len() as u64),
            "region beyond the GuestMem"
        );
        self.keep
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mem.clone());
        let r = KvmUserspaceMemoryRegion {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: mem.addr() + offset,
        };
        // SAFETY: the range lies inside `mem`, which is only accessed through raw pointers and
        // is kept mapped (above) while the VM's fds are open.
        unsafe { self.set_user_memory_region(&r) }
    }

    /// Registers all of `mem` as slot `slot` at `gpa` with `flags`.
    pub fn add_memory(&self, slot: u32, flags: u32, gpa: u64, mem: &GuestMem) -> Result<(), Errno> {
        self.set_region(slot, flags, gpa, mem.len() as u64, mem, 0)
    }

    /// Deletes slot `slot` (`memory_size` 0).
    pub fn delete_slot(&self, slot: u32) -> Result<(), Errno> {
        let r = KvmUserspaceMemoryRegion {
            slot,
            ..Default::default()
        };
        // SAFETY: a deletion maps nothing.
        unsafe { self.set_user_memory_region(&r) }
    }

    /// `KVM_GET_DIRTY_LOG` of `slot` into `bitmap` (the kernel writes one bit per page of the
    /// slot, rounded up to 64 bits; a too-small buffer gives `EFAULT`).
    pub fn get_dirty_log(&self, slot: u32, bitmap: &mut GuardedBuf) -> Result<i64, Errno> {
        let log = KvmDirtyLog {
            slot,
            padding1: 0,
            dirty_bitmap: bitmap.addr(),
        };
        // SAFETY: the kernel reads `log` and writes the bitmap forward from `bitmap.addr()`:
        // into the guarded buffer (plain bytes, raw-pointer access only) or the guard page.
        unsafe {
            self.fd
                .ioctl_raw(KVM_GET_DIRTY_LOG, core::ptr::from_ref(&log) as u64)
        }
    }

    /// `KVM_GET_DIRTY_LOG` of `slot` with an inaccessible bitmap pointer.
    pub fn get_dirty_log_bad(&self, slot: u32, bitmap: BadPtr) -> Result<i64, Errno> {
        let log = KvmDirtyLog {
            slot,
            padding1: 0,
            dirty_bitmap: bitmap.addr(),
        };
        // SAFETY: the kernel reads `log`; the bitmap pointer faults.
        unsafe {
            self.fd
                .ioctl_raw(KVM_GET_DIRTY_LOG, core::ptr::from_ref(&log) as u64)
        }
    }

    /// `KVM_CLEAR_DIRTY_LOG`: clears the bits set in `bitmap` for pages
    /// `first_page .. first_page + num_pages` of `slot`.
    pub fn clear_dirty_log(
        &self,
        slot: u32,
        first_page: u64,
        num_pages: u32,
        bitmap: &GuardedBuf,
    ) -> Result<i64, Errno> {
        self.clear_dirty_log_at(slot, first_page, num_pages, bitmap.addr())
    }

    /// `KVM_CLEAR_DIRTY_LOG` with an inaccessible bitmap pointer.
    pub fn clear_dirty_log_bad(
        &self,
        slot: u32,
        first_page: u64,
        num_pages: u32,
        bitmap: BadPtr,
    ) -> Result<i64, Errno> {
        self.clear_dirty_log_at(slot, first_page, num_pages, bitmap.addr())
    }

    fn clear_dirty_log_at(
        &self,
        slot: u32,
        first_page: u64,
        num_pages: u32,
        bitmap: u64,
    ) -> Result<i64, Errno> {
        let mut c = KvmClearDirtyLog {
            slot,
            num_pages,
            first_page,
            dirty_bitmap: bitmap,
        };
        // SAFETY: the kernel reads `c` and only reads the bitmap (a guarded buffer or an
        // inaccessible address, by the callers' types).
        unsafe {
            self.fd
                .ioctl_raw(KVM_CLEAR_DIRTY_LOG, core::ptr::from_mut(&mut c) as u64)
        }
    }

    /// `KVM_SET_TSS_ADDR`.
    pub fn set_tss_addr(&self, addr: u64) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_SET_TSS_ADDR, addr)
    }

    /// `KVM_SET_IDENTITY_MAP_ADDR`.
    pub fn set_identity_map_addr(&self, addr: u64) -> Result<i64, Errno> {
        self.fd.ioctl_write(KVM_SET_IDENTITY_MAP_ADDR, &addr)
    }

    /// `KVM_IOEVENTFD`.
    pub fn ioeventfd(&self, e: &KvmIoeventfd) -> Result<i64, Errno> {
        self.fd.ioctl_write(KVM_IOEVENTFD, e)
    }

    /// `KVM_CREATE_IRQCHIP`.
    pub fn create_irqchip(&self) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_CREATE_IRQCHIP, 0)
    }
}

/// A vCPU fd.
#[derive(Debug)]
pub struct Vcpu {
    fd: Fd,
    keep: KeepAlive,
}

impl Vcpu {
    /// The fd, for raw commands.
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// Maps `size` bytes of the vCPU fd (use `KVM_GET_VCPU_MMAP_SIZE`): `struct kvm_run` at
    /// offset 0, the PIO data page at `KVM_PIO_PAGE_OFFSET` pages.
    pub fn map_run(&self, size: usize) -> io::Result<RunMap> {
        RunMap::map(self.fd.raw(), size)
    }

    /// `KVM_RUN`.
    pub fn run(&self) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_RUN, 0)
    }

    /// `KVM_GET_REGS`.
    pub fn get_regs(&self) -> Result<KvmRegs, Errno> {
        self.fd.ioctl_read(KVM_GET_REGS)
    }

    /// `KVM_SET_REGS`.
    pub fn set_regs(&self, r: &KvmRegs) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_REGS, r).map(drop)
    }

    /// `KVM_GET_SREGS`.
    pub fn get_sregs(&self) -> Result<KvmSregs, Errno> {
        self.fd.ioctl_read(KVM_GET_SREGS)
    }

    /// `KVM_SET_SREGS`.
    pub fn set_sregs(&self, s: &KvmSregs) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_SREGS, s).map(drop)
    }

    /// `KVM_GET_FPU`.
    pub fn get_fpu(&self) -> Result<KvmFpu, Errno> {
        self.fd.ioctl_read(KVM_GET_FPU)
    }

    /// `KVM_SET_FPU`.
    pub fn set_fpu(&self, f: &KvmFpu) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_FPU, f).map(drop)
    }

    /// `KVM_GET_MP_STATE`.
    pub fn get_mp_state(&self) -> Result<u32, Errno> {
        self.fd
            .ioctl_read::<KvmMpState>(KVM_GET_MP_STATE)
            .map(|m| m.mp_state)
    }

    /// `KVM_SET_MP_STATE`.
    pub fn set_mp_state(&self, mp_state: u32) -> Result<(), Errno> {
        self.fd
            .ioctl_write(KVM_SET_MP_STATE, &KvmMpState { mp_state })
            .map(drop)
    }

    /// `KVM_GET_VCPU_EVENTS`.
    pub fn get_vcpu_events(&self) -> Result<KvmVcpuEvents, Errno> {
        self.fd.ioctl_read(KVM_GET_VCPU_EVENTS)
    }

    /// `KVM_SET_VCPU_EVENTS`.
    pub fn set_vcpu_events(&self, e: &KvmVcpuEvents) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_VCPU_EVENTS, e).map(drop)
    }

    /// `KVM_GET_DEBUGREGS`.
    pub fn get_debugregs(&self) -> Result<KvmDebugregs, Errno> {
        self.fd.ioctl_read(KVM_GET_DEBUGREGS)
    }

    /// `KVM_SET_DEBUGREGS`.
    pub fn set_debugregs(&self, d: &KvmDebugregs) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_DEBUGREGS, d).map(drop)
    }

    /// `KVM_GET_XCRS`.
    pub fn get_xcrs(&self) -> Result<KvmXcrs, Errno> {
        self.fd.ioctl_read(KVM_GET_XCRS)
    }

    /// `KVM_SET_XCRS`.
    pub fn set_xcrs(&self, x: &KvmXcrs) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_XCRS, x).map(drop)
    }

    /// `KVM_GET_XSAVE` (the legacy 4096-byte area).
    pub fn get_xsave(&self) -> Result<KvmXsave, Errno> {
        self.fd.ioctl_read(KVM_GET_XSAVE)
    }

    /// `KVM_SET_XSAVE` with a 4096-byte area.
    pub fn set_xsave(&self, x: &KvmXsave) -> Result<(), Errno> {
        self.fd.ioctl_write(KVM_SET_XSAVE, x).map(drop)
    }

    /// `KVM_GET_MSRS` with the indices in `msrs`; returns how many were read.
    pub fn get_msrs(&self, msrs: &mut MsrsBuf) -> Result<i64, Errno> {
        msrs.ioctl(&self.fd, KVM_GET_MSRS)
    }

    /// `KVM_SET_MSRS`; returns how many were written.
    pub fn set_msrs(&self, msrs: &mut MsrsBuf) -> Result<i64, Errno> {
        msrs.ioctl(&self.fd, KVM_SET_MSRS)
    }

    /// Reads one MSR; `Err(ENOENT)` if KVM read none.
    pub fn get_msr(&self, index: u32) -> Result<u64, Errno> {
        let e = KvmMsrEntry {
            index,
            ..Default::default()
        };
        let mut b = MsrsBuf::from_entries(&[e]).map_err(|_| Errno::ENOMEM)?;
        match self.get_msrs(&mut b)? {
            1 => Ok(b.entry(0).data),
            _ => Err(Errno::ENOENT),
        }
    }

    /// Writes one MSR; `Err(EINVAL)` if KVM wrote none.
    pub fn set_msr(&self, index: u32, data: u64) -> Result<(), Errno> {
        let e = KvmMsrEntry {
            index,
            reserved: 0,
            data,
        };
        let mut b = MsrsBuf::from_entries(&[e]).map_err(|_| Errno::ENOMEM)?;
        match self.set_msrs(&mut b)? {
            1 => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `KVM_SET_CPUID2`.
    pub fn set_cpuid2(&self, cpuid: &mut CpuidBuf) -> Result<i64, Errno> {
        cpuid.ioctl(&self.fd, KVM_SET_CPUID2)
    }

    /// `KVM_GET_CPUID2`.
    pub fn get_cpuid2(&self, cpuid: &mut CpuidBuf) -> Result<i64, Errno> {
        cpuid.ioctl(&self.fd, KVM_GET_CPUID2)
    }

    /// `KVM_INTERRUPT` (user-space irqchip only).
    pub fn interrupt(&self, irq: u32) -> Result<i64, Errno> {
        self.fd.ioctl_write(KVM_INTERRUPT, &KvmInterrupt { irq })
    }

    /// `KVM_NMI`.
    pub fn nmi(&self) -> Result<i64, Errno> {
        self.fd.ioctl_val(KVM_NMI, 0)
    }

    /// `KVM_ENABLE_CAP` on the vCPU fd.
    pub fn enable_cap(&self, cap: u32, flags: u32, args: [u64; 4]) -> Result<i64, Errno> {
        let c = KvmEnableCap {
            cap,
            flags,
            args,
            ..Default::default()
        };
        self.fd.ioctl_write(KVM_ENABLE_CAP, &c)
    }

    /// Number of `GuestMem` areas this vCPU keeps mapped (shared with its VM).
    pub fn kept_memory(&self) -> usize {
        self.keep.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
