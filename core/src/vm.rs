//! The VM object behind a VM fd: memslots, vCPU creation, dirty logging, `KVM_ENABLE_CAP`
//! and the I/O-event bus.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::cap::Cap;
use crate::abi::ioctl::{
    KVM_CHECK_EXTENSION, KVM_CLEAR_DIRTY_LOG, KVM_CREATE_VCPU, KVM_ENABLE_CAP, KVM_GET_DIRTY_LOG,
    KVM_IOEVENTFD, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_SET_USER_MEMORY_REGION,
    KVM_SET_USER_MEMORY_REGION2,
};
use crate::abi::{
    KVM_DIRTY_LOG_INITIALLY_SET, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KvmClearDirtyLog,
    KvmDirtyLog, KvmEnableCap, KvmIoeventfd, KvmIrqLevel, KvmUserspaceMemoryRegion,
    KvmUserspaceMemoryRegion2,
};
use crate::arch::Arch;
use crate::errno::{Errno, KResult};
use crate::ioevent::{Bus, IoBus, Request};
use crate::kalloc::{KArc, vec_filled, vec_push};
use crate::memslot::{DIRTY_LOG_MANUAL_CAPS, Gfn, Memslots, Region, SlotId};
use crate::os::{Lock, Os, UserAddr, UserMmListener, UserMmWatch};
use crate::system::{Outcome, System};
use crate::user;
use crate::vcpu::{Vcpu, VcpuFile};
use crate::{ArchVm, Mutex, Platform};

/// Tells a nested page fault whether the user memory behind the page it resolved may have
/// changed meanwhile: a count of invalidations in progress (between
/// [`UserMmListener::user_range_invalidate`] and its `_end`) and a sequence number bumped at
/// each end. A fault reads [`MmuSeq::begin`] before resolving the page and maps it only if
/// [`MmuSeq::retry`] is false under the backend's table lock (which the invalidation's tear-down
/// also takes), so a page resolved between an invalidation's start and the kernel's removal of
/// the old page is never mapped.
#[derive(Debug, Default)]
pub struct MmuSeq {
    seq: AtomicU64,
    active: AtomicU64,
}

impl MmuSeq {
    /// The sequence number, read before resolving a page.
    pub fn begin(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Whether a page resolved after [`MmuSeq::begin`] gave `begun` must not be mapped: an
    /// invalidation is in progress or one ended since.
    pub fn retry(&self, begun: u64) -> bool {
        self.active.load(Ordering::SeqCst) != 0 || self.seq.load(Ordering::SeqCst) != begun
    }

    fn start(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        // An end whose start came before the watch was registered finds nothing to undo.
        let _ = self
            .active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(1));
    }
}

/// What a backend may know about the generic side of a VM when handling its commands.
#[derive(Clone, Copy, Debug)]
pub struct VmInfo {
    /// vCPUs created so far (some commands are refused once there are any).
    pub created_vcpus: u32,
}

struct VcpuTable<P: Platform> {
    vcpus: Vec<KArc<Vcpu<P>>>,
}

/// A virtual machine.
pub struct Vm<P: Platform> {
    sys: KArc<System<P>>,
    arch: ArchVm<P>,
    owner: u64,
    slots: Mutex<P, Memslots>,
    vcpus: Mutex<P, VcpuTable<P>>,
    iobus: Mutex<P, IoBus<<P::Os as Os>::EventFd>>,
    dirty_manual: AtomicU64,
    /// The glue's registration for invalidations of the creator's user memory
    /// ([`Os::user_mm_watch`]); ended first when the VM is dropped.
    mm_watch: Mutex<P, Option<UserMmWatch>>,
    mmu: MmuSeq,
}

impl<P: Platform> Vm<P> {
    /// `KVM_CREATE_VM` of type `vm_type`.
    pub(crate) fn create(sys: &KArc<System<P>>, vm_type: u64) -> KResult<KArc<Self>> {
        let os = sys.os();
        let arch = sys.arch().vm_create(os, vm_type)?;
        let vm = Vm {
            sys: sys.try_clone()?,
            arch,
            owner: os.process_id(),
            slots: Lock::new(Memslots::new(sys.limits().slots)?)?,
            vcpus: Lock::new(VcpuTable { vcpus: Vec::new() })?,
            iobus: Lock::new(IoBus::default())?,
            dirty_manual: AtomicU64::new(0),
            mm_watch: Lock::new(None)?,
            mmu: MmuSeq::default(),
        };
        let vm = KArc::try_new(vm)?;
        // Registered once the VM has its final address, which the glue may keep until the
        // watch ends in `drop`. A failure drops the VM, which has no watch to end.
        let watch = os.user_mm_watch(&*vm)?;
        *vm.mm_watch.lock() = watch;
        Ok(vm)
    }

    /// The system this VM belongs to.
    pub fn system(&self) -> &KArc<System<P>> {
        &self.sys
    }

    /// The backend's state of this VM.
    pub fn arch_state(&self) -> &ArchVm<P> {
        &self.arch
    }

    pub(crate) fn os(&self) -> &P::Os {
        self.sys.os()
    }

    pub(crate) fn archi(&self) -> &P::Arch {
        self.sys.arch()
    }

    pub(crate) fn slots(&self) -> &Mutex<P, Memslots> {
        &self.slots
    }

    pub(crate) fn mmu(&self) -> &MmuSeq {
        &self.mmu
    }

    pub(crate) fn iobus_write(&self, bus: Bus, addr: u64, data: &[u8]) -> bool {
        let iobus = self.iobus.lock();
        !iobus.is_empty() && iobus.write(bus, addr, data)
    }

    /// `EIO` unless called from the process that created the VM (Linux refuses use of a VM
    /// fd inherited across `fork`).
    pub(crate) fn check_owner(&self) -> KResult<()> {
        if self.os().process_id() == self.owner {
            Ok(())
        } else {
            Err(Errno::EIO)
        }
    }

    /// Number of vCPUs created.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.lock().vcpus.len()
    }

    /// The vCPU with ABI id `id`, if created.
    pub fn vcpu(&self, id: u32) -> Option<KArc<Vcpu<P>>> {
        let table = self.vcpus.lock();
        table
            .vcpus
            .iter()
            .find(|v| v.id() == id)
            .and_then(|v| v.try_clone().ok())
    }

    /// Dispatches a command on a VM fd. Unknown commands get `ENOTTY`, as on Linux.
    pub fn ioctl(this: &KArc<Self>, cmd: u32, arg: u64) -> KResult<Outcome<P>> {
        this.check_owner()?;
        let os = this.os();
        let value = match cmd {
            KVM_CREATE_VCPU => return Self::create_vcpu(this, arg).map(Outcome::Vcpu),
            KVM_CHECK_EXTENSION => this.sys.check_extension(arg, Some(this)),
            KVM_SET_USER_MEMORY_REGION => {
                let r: KvmUserspaceMemoryRegion = user::read(os, UserAddr(arg))?;
                this.set_memory_region(&Region {
                    slot: r.slot,
                    flags: r.flags,
                    guest_phys_addr: r.guest_phys_addr,
                    memory_size: r.memory_size,
                    userspace_addr: r.userspace_addr,
                })?;
                0
            }
            KVM_SET_USER_MEMORY_REGION2 => {
                let r: KvmUserspaceMemoryRegion2 = user::read(os, UserAddr(arg))?;
                this.set_memory_region(&Region {
                    slot: r.slot,
                    flags: r.flags,
                    guest_phys_addr: r.guest_phys_addr,
                    memory_size: r.memory_size,
                    userspace_addr: r.userspace_addr,
                })?;
                0
            }
            KVM_GET_DIRTY_LOG => {
                let log: KvmDirtyLog = user::read(os, UserAddr(arg))?;
                this.get_dirty_log(&log)?;
                0
            }
            KVM_CLEAR_DIRTY_LOG => {
                let log: KvmClearDirtyLog = user::read(os, UserAddr(arg))?;
                this.clear_dirty_log(&log)?;
                0
            }
            KVM_ENABLE_CAP => {
                let cap: KvmEnableCap = user::read(os, UserAddr(arg))?;
                this.enable_cap(&cap)?;
                0
            }
            KVM_IOEVENTFD => {
                let a: KvmIoeventfd = user::read(os, UserAddr(arg))?;
                this.ioeventfd(&a)?;
                0
            }
            KVM_IRQ_LINE | KVM_IRQ_LINE_STATUS => {
                let info = VmInfo {
                    created_vcpus: this.vcpu_count() as u32,
                };
                match this.archi().vm_ioctl(os, &this.arch, &info, cmd, arg) {
                    Some(r) => r?,
                    None => {
                        // A backend without an in-kernel interrupt controller: Linux reads
                        // the argument first, then fails.
                        let _: KvmIrqLevel = user::read(os, UserAddr(arg))?;
                        return Err(Errno::ENXIO);
                    }
                }
            }
            _ => {
                let info = VmInfo {
                    created_vcpus: this.vcpu_count() as u32,
                };
                match this.archi().vm_ioctl(os, &this.arch, &info, cmd, arg) {
                    Some(r) => r?,
                    None => return Err(Errno::ENOTTY),
                }
            }
        };
        Ok(Outcome::Value(value))
    }

    fn create_vcpu(this: &KArc<Self>, id: u64) -> KResult<KArc<VcpuFile<P>>> {
        let limits = this.sys.limits();
        if id >= u64::from(limits.max_vcpu_ids) {
            return Err(Errno::EINVAL);
        }
        // CAST: id < max_vcpu_ids, a u32.
        let id = id as u32;
        let mut table = this.vcpus.lock();
        if table.vcpus.len() >= limits.max_vcpus as usize {
            return Err(Errno::EINVAL);
        }
        let vcpu = Vcpu::create(this, id)?;
        if table.vcpus.iter().any(|v| v.id() == id) {
            return Err(Errno::EEXIST);
        }
        let file = KArc::try_new(VcpuFile::new(this.try_clone()?, vcpu.try_clone()?))?;
        vec_push(&mut table.vcpus, vcpu)?;
        Ok(file)
    }

    /// `KVM_SET_USER_MEMORY_REGION`: validate and apply, then tell the backend.
    pub fn set_memory_region(&self, r: &Region) -> KResult<()> {
        let os = self.os();
        let initially_set =
            self.dirty_manual.load(Ordering::Relaxed) & KVM_DIRTY_LOG_INITIALLY_SET != 0;
        let mut slots = self.slots.lock();
        let change = slots.set(r, |a, l| os.user_range_ok(a, l), initially_set)?;
        self.archi().vm_slots_changed(os, &self.arch, change);
        Ok(())
    }

    fn manual_protect(&self) -> bool {
        self.dirty_manual.load(Ordering::Relaxed) & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE != 0
    }

    fn get_dirty_log(&self, log: &KvmDirtyLog) -> KResult<()> {
        let os = self.os();
        let mut words = Vec::new();
        {
            let slots = self.slots.lock();
            let slot = slots.dirty_slot(log.slot)?;
            let clear = !self.manual_protect();
            slot.dirty_snapshot(&mut words, clear)?;
            if clear && words.iter().any(|w| *w != 0) {
                let as_id = SlotId::from_raw(log.slot).as_id;
                self.archi()
                    .vm_dirty_rearm(os, &self.arch, as_id, slot.base(), slot.npages());
            }
        }
        // Copied out with no core lock held: a fault on user memory takes the process's
        // address-space lock, under which the kernel calls `user_range_invalidate`, which
        // takes the memslot lock.
        user::write_array(os, UserAddr(log.dirty_bitmap), &words)
    }

    /// Checks a `KVM_CLEAR_DIRTY_LOG` argument against the slots: the slot, or Linux's errno.
    fn clear_dirty_check<'s>(
        slots: &'s Memslots,
        log: &KvmClearDirtyLog,
    ) -> KResult<&'s crate::memslot::Slot> {
        // An out-of-range slot is EINVAL in `dirty_slot`, like a misaligned first page, so
        // checking the page first gives Linux's errno for every input.
        if log.first_page % 64 != 0 {
            return Err(Errno::EINVAL);
        }
        let slot = slots.dirty_slot(log.slot)?;
        let npages = slot.npages();
        let num = u64::from(log.num_pages);
        if log.first_page > npages
            || num > npages - log.first_page
            || (num < npages - log.first_page && num % 64 != 0)
        {
            return Err(Errno::EINVAL);
        }
        Ok(slot)
    }

    fn clear_dirty_log(&self, log: &KvmClearDirtyLog) -> KResult<()> {
        let os = self.os();
        // Checked first (Linux's errno order), then the mask is copied in with no core lock
        // held (see `get_dirty_log`), then checked again against the slots as they are now.
        Self::clear_dirty_check(&self.slots.lock(), log)?;
        let num = u64::from(log.num_pages);
        // CAST: num <= npages < 2^31.
        let mut mask: Vec<u64> = vec_filled(num.div_ceil(64) as usize, 0)?;
        os.user_copy_in(
            zerocopy::IntoBytes::as_mut_bytes(mask.as_mut_slice()),
            UserAddr(log.dirty_bitmap),
        )?;
        let slots = self.slots.lock();
        let slot = Self::clear_dirty_check(&slots, log)?;
        // Bits past `num_pages` in the last word are not the caller's to clear.
        if num % 64 != 0 {
            if let Some(last) = mask.last_mut() {
                *last &= (1u64 << (num % 64)) - 1;
            }
        }
        slot.dirty_clear(log.first_page, &mask)?;
        if mask.iter().any(|w| *w != 0) {
            let as_id = SlotId::from_raw(log.slot).as_id;
            let first = Gfn(slot.base().0 + log.first_page);
            self.archi()
                .vm_dirty_rearm(os, &self.arch, as_id, first, num);
        }
        Ok(())
    }

    fn enable_cap(&self, cap: &KvmEnableCap) -> KResult<()> {
        if cap.cap == Cap::ManualDirtyLogProtect2.raw() {
            let arg0 = cap.args[0];
            // Initially-set bitmaps only make sense with manual protection (Linux's rule).
            let allowed = if arg0 & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE != 0 {
                DIRTY_LOG_MANUAL_CAPS
            } else {
                KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
            };
            if cap.flags != 0 || arg0 & !allowed != 0 {
                return Err(Errno::EINVAL);
            }
            self.dirty_manual.store(arg0, Ordering::Relaxed);
            return Ok(());
        }
        self.archi().vm_enable_cap(self.os(), &self.arch, cap)
    }

    fn ioeventfd(&self, a: &KvmIoeventfd) -> KResult<()> {
        let req = Request::parse(a)?;
        let efd = self.os().eventfd_get(req.fd)?;
        let mut bus = self.iobus.lock();
        if req.deassign {
            bus.deassign(&req, &efd)
        } else {
            bus.assign(&req, efd)
        }
    }
}

impl<P: Platform> UserMmListener for Vm<P> {
    /// Finds the memslots whose user memory overlaps `[start, end)` and has the backend drop
    /// the guest frames behind the overlap. Without blocking, the memslot lock is only tried.
    /// Counts the invalidation as in progress first (also when it then fails with `EAGAIN`:
    /// the end comes anyway).
    fn user_range_invalidate(&self, start: u64, end: u64, blockable: bool) -> KResult<()> {
        self.mmu.start();
        let slots = if blockable {
            self.slots.lock()
        } else {
            self.slots.try_lock().ok_or(Errno::EAGAIN)?
        };
        let os = self.os();
        let mut result = Ok(());
        slots.each_user_overlap(start, end, |as_id, first, count| {
            if result.is_ok() {
                result = self
                    .archi()
                    .vm_user_range_invalidate(os, &self.arch, as_id, first, count, blockable);
            }
        });
        result
    }

    fn user_range_invalidate_end(&self, start: u64, end: u64) {
        let _ = (start, end);
        self.mmu.end();
    }
}

impl<P: Platform> Drop for Vm<P> {
    /// Ends the user-memory watch before anything else of the VM goes: afterwards no
    /// invalidation can reach it.
    fn drop(&mut self) {
        // Taken out first, so that the (sleeping) unwatch runs with no core lock held.
        let watch = self.mm_watch.lock().take();
        if let Some(watch) = watch {
            self.sys.os().user_mm_unwatch(watch);
        }
    }
}
