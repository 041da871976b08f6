//! Guest memory slots with KVM's semantics.
//!
//! Each address space holds up to `max_slots` slots, indexed by id and kept sorted by guest
//! frame for `O(log n)` lookup. Updates follow the order of checks of Linux's
//! `KVM_SET_USER_MEMORY_REGION`, so that the same bad input gets the same errno. Dirty
//! bitmaps are arrays of atomic words so that vCPUs can mark pages without taking a lock.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::{
    KVM_DIRTY_LOG_INITIALLY_SET, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_MEM_LOG_DIRTY_PAGES,
    KVM_MEM_READONLY,
};
use crate::errno::{Errno, KResult};
use crate::kalloc::{vec_from_fn, vec_insert, vec_push};
use crate::os::{PAGE_SHIFT, PAGE_SIZE, UserAddr};

/// The most pages one slot may span (Linux's `KVM_MEM_MAX_NR_PAGES`).
pub const MAX_SLOT_PAGES: u64 = (1 << 31) - 1;

/// The options `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` accepts (Linux's
/// `KVM_DIRTY_LOG_MANUAL_CAPS`): manual protection, and bitmaps that start all set.
pub const DIRTY_LOG_MANUAL_CAPS: u64 =
    KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;

/// A guest physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gpa(pub u64);

/// A guest frame number (a guest physical address shifted right by [`PAGE_SHIFT`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gfn(pub u64);

impl Gpa {
    /// The frame holding this address.
    pub fn gfn(self) -> Gfn {
        Gfn(self.0 >> PAGE_SHIFT)
    }
}

impl fmt::Debug for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GPA:{:#x}", self.0)
    }
}

impl fmt::Debug for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GFN:{:#x}", self.0)
    }
}

/// A slot's identity: the address space (high 16 bits of the ABI's `slot`) and the id within
/// it (low 16 bits).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SlotId {
    /// Address space (0, or 1 for x86 SMM).
    pub as_id: u16,
    /// Slot number within the address space.
    pub id: u16,
}

impl SlotId {
    /// Splits the ABI's 32-bit `slot` field.
    pub fn from_raw(slot: u32) -> Self {
        // CAST: the two halves of a u32 each fit a u16.
        SlotId {
            as_id: (slot >> 16) as u16,
            id: (slot & 0xffff) as u16,
        }
    }
}

/// A slot's flags, validated on entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SlotFlags(u32);

impl SlotFlags {
    /// Whether dirty-page logging is on.
    pub fn log_dirty(self) -> bool {
        self.0 & KVM_MEM_LOG_DIRTY_PAGES != 0
    }
    /// Whether the guest may only read the slot (writes become MMIO exits).
    pub fn readonly(self) -> bool {
        self.0 & KVM_MEM_READONLY != 0
    }
    /// The ABI value.
    pub fn raw(self) -> u32 {
        self.0
    }
}

/// One memory slot.
#[derive(Debug)]
pub struct Slot {
    id: u16,
    base: Gfn,
    npages: u64,
    uaddr: UserAddr,
    flags: SlotFlags,
    dirty: Option<Vec<AtomicU64>>,
}

impl Slot {
    /// The slot's id within its address space.
    pub fn id(&self) -> u16 {
        self.id
    }
    /// First guest frame.
    pub fn base(&self) -> Gfn {
        self.base
    }
    /// Number of pages.
    pub fn npages(&self) -> u64 {
        self.npages
    }
    /// User address backing the first page.
    pub fn uaddr(&self) -> UserAddr {
        self.uaddr
    }
    /// The slot's flags.
    pub fn flags(&self) -> SlotFlags {
        self.flags
    }
    /// Whether `gfn` lies in this slot.
    pub fn contains(&self, gfn: Gfn) -> bool {
        gfn.0 >= self.base.0 && gfn.0 - self.base.0 < self.npages
    }
    /// The user address backing `gfn`, if it lies in this slot.
    pub fn gfn_to_uaddr(&self, gfn: Gfn) -> Option<UserAddr> {
        if !self.contains(gfn) {
            return None;
        }
        let off = (gfn.0 - self.base.0).checked_mul(PAGE_SIZE as u64)?;
        self.uaddr.0.checked_add(off).map(UserAddr)
    }
    /// Bytes of the user bitmap for this slot (`ALIGN(npages, 64) / 8`).
    pub fn dirty_bitmap_bytes(&self) -> usize {
        // CAST: npages <= MAX_SLOT_PAGES, so the word count fits usize on 64-bit hosts.
        (self.npages.div_ceil(64) * 8) as usize
    }
    /// Marks `gfn` dirty if it lies in this slot and logging is on. Any context, lock-free.
    pub fn mark_dirty(&self, gfn: Gfn) {
        let (Some(bitmap), true) = (&self.dirty, self.contains(gfn)) else {
            return;
        };
        let rel = gfn.0 - self.base.0;
        // CAST: rel < npages <= MAX_SLOT_PAGES, so rel / 64 fits usize.
        if let Some(word) = bitmap.get((rel / 64) as usize) {
            word.fetch_or(1 << (rel % 64), Ordering::Relaxed);
        }
    }
    /// Copies the dirty bitmap into `out` (one u64 per 64 pages), clearing each copied word
    /// when `clear` is set. `ENOENT` if logging is off.
    pub fn dirty_snapshot(&self, out: &mut Vec<u64>, clear: bool) -> KResult<()> {
        let bitmap = self.dirty.as_ref().ok_or(Errno::ENOENT)?;
        out.clear();
        out.try_reserve_exact(bitmap.len())
            .map_err(|_| Errno::ENOMEM)?;
        out.extend(bitmap.iter().map(|w| {
            if clear {
                w.swap(0, Ordering::Relaxed)
            } else {
                w.load(Ordering::Relaxed)
            }
        }));
        Ok(())
    }
    /// Clears the bits set in `mask`, whose bit 0 is page `first_page` (a multiple of 64).
    pub fn dirty_clear(&self, first_page: u64, mask: &[u64]) -> KResult<()> {
        let bitmap = self.dirty.as_ref().ok_or(Errno::ENOENT)?;
        // CAST: first_page <= npages <= MAX_SLOT_PAGES.
        let start = (first_page / 64) as usize;
        for (word, m) in bitmap.iter().skip(start).zip(mask) {
            word.fetch_and(!m, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// What an accepted `KVM_SET_USER_MEMORY_REGION` changed (told to the backend so it can drop
/// or re-protect stage-2 mappings).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotChange {
    /// The same region was set again: nothing changed.
    Unchanged,
    /// A new slot covers `[base, base + npages)`.
    Create {
        /// The slot.
        slot: SlotId,
    },
    /// The slot covering `[base, base + npages)` was removed.
    Delete {
        /// The slot.
        slot: SlotId,
        /// Its former first frame.
        base: Gfn,
        /// Its former size.
        npages: u64,
    },
    /// The slot moved from `old_base`.
    Move {
        /// The slot.
        slot: SlotId,
        /// Its former first frame.
        old_base: Gfn,
        /// Its size.
        npages: u64,
    },
    /// Only the flags changed (dirty logging switched on or off).
    Flags {
        /// The slot.
        slot: SlotId,
        /// The flags before.
        old: SlotFlags,
    },
}

/// A request to set a slot: the fields of `kvm_userspace_memory_region`.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// Address space and id, as in the ABI.
    pub slot: u32,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// Guest physical start.
    pub guest_phys_addr: u64,
    /// Size in bytes; 0 deletes.
    pub memory_size: u64,
    /// Backing user address.
    pub userspace_addr: u64,
}

/// The sorted index entry of a slot.
#[derive(Clone, Copy, Debug)]
struct Span {
    base: u64,
    npages: u64,
    id: u16,
}

/// One address space: slots by id, and spans sorted by base frame.
#[derive(Debug, Default)]
struct Space {
    by_id: Vec<Option<Slot>>,
    sorted: Vec<Span>,
}

impl Space {
    fn get(&self, id: u16) -> Option<&Slot> {
        self.by_id.get(usize::from(id)).and_then(Option::as_ref)
    }

    fn position(&self, id: u16) -> Option<usize> {
        self.sorted.iter().position(|s| s.id == id)
    }

    fn overlaps(&self, id: u16, base: u64, npages: u64) -> bool {
        let end = base.saturating_add(npages);
        // The first span that ends after `base` is the only candidate below `end`, apart from
        // the slot being moved itself.
        let start = self
            .sorted
            .partition_point(|s| s.base.saturating_add(s.npages) <= base);
        self.sorted
            .iter()
            .skip(start)
            .take_while(|s| s.base < end)
            .any(|s| s.id != id)
    }

    fn lookup(&self, gfn: Gfn) -> Option<&Slot> {
        let idx = self
            .sorted
            .partition_point(|s| s.base <= gfn.0)
            .checked_sub(1)?;
        let span = self.sorted.get(idx)?;
        if gfn.0 - span.base < span.npages {
            self.get(span.id)
        } else {
            None
        }
    }

    fn insert_sorted(&mut self, span: Span) -> KResult<()> {
        let at = self.sorted.partition_point(|s| s.base < span.base);
        vec_insert(&mut self.sorted, at, span)
    }
}

/// The limits of a VM's memslots, given by the backend.
#[derive(Clone, Copy, Debug)]
pub struct SlotLimits {
    /// Number of address spaces (`KVM_CAP_MULTI_ADDRESS_SPACE`).
    pub address_spaces: u16,
    /// Slots per address space (`KVM_CAP_NR_MEMSLOTS`).
    pub slots: u16,
    /// Highest guest frame the stage-2 tables can map.
    pub max_gfn: u64,
    /// Whether `KVM_MEM_READONLY` is supported.
    pub readonly: bool,
}

/// All memslots of a VM.
#[derive(Debug)]
pub struct Memslots {
    limits: SlotLimits,
    spaces: Vec<Space>,
    total_pages: u64,
}

impl Memslots {
    /// Empty slots with the given limits.
    pub fn new(limits: SlotLimits) -> KResult<Self> {
        let spaces = vec_from_fn(usize::from(limits.address_spaces), |_| Space::default())?;
        Ok(Memslots {
            limits,
            spaces,
            total_pages: 0,
        })
    }

    /// The limits these slots were made with.
    pub fn limits(&self) -> SlotLimits {
        self.limits
    }

    /// Applies a `KVM_SET_USER_MEMORY_REGION` request. `user_range_ok` is the OS's
    /// `access_ok`; `initially_set` fills new dirty bitmaps with ones
    /// (`KVM_DIRTY_LOG_INITIALLY_SET`).
    pub fn set(
        &mut self,
        r: &Region,
        user_range_ok: impl Fn(UserAddr, u64) -> bool,
        initially_set: bool,
    ) -> KResult<SlotChange> {
        let sid = SlotId::from_raw(r.slot);
        let mut valid = KVM_MEM_LOG_DIRTY_PAGES;
        if self.limits.readonly {
            valid |= KVM_MEM_READONLY;
        }
        if r.flags & !valid != 0 {
            return Err(Errno::EINVAL);
        }
        let page_mask = PAGE_SIZE as u64 - 1;
        if r.memory_size & page_mask != 0 || r.guest_phys_addr & page_mask != 0 {
            return Err(Errno::EINVAL);
        }
        if r.userspace_addr & page_mask != 0
            || !user_range_ok(UserAddr(r.userspace_addr), r.memory_size)
        {
            return Err(Errno::EINVAL);
        }
        if sid.as_id >= self.limits.address_spaces || sid.id >= self.limits.slots {
            return Err(Errno::EINVAL);
        }
        if r.guest_phys_addr.checked_add(r.memory_size).is_none() {
            return Err(Errno::EINVAL);
        }
        let npages = r.memory_size >> PAGE_SHIFT;
        if npages > MAX_SLOT_PAGES {
            return Err(Errno::EINVAL);
        }
        let base = r.guest_phys_addr >> PAGE_SHIFT;
        let flags = SlotFlags(r.flags);
        let total = self.total_pages;
        let space = self
            .spaces
            .get_mut(usize::from(sid.as_id))
            .ok_or(Errno::EINVAL)?;
        let old = space.get(sid.id);

        if npages == 0 {
            let Some(old) = old else {
                return Err(Errno::EINVAL);
            };
            let change = SlotChange::Delete {
                slot: sid,
                base: old.base,
                npages: old.npages,
            };
            let old_pages = old.npages;
            if let Some(pos) = space.position(sid.id) {
                space.sorted.remove(pos);
            }
            if let Some(entry) = space.by_id.get_mut(usize::from(sid.id)) {
                *entry = None;
            }
            self.total_pages = total.saturating_sub(old_pages);
            return Ok(change);
        }

        let change = match old {
            None => {
                if total.checked_add(npages).is_none() {
                    return Err(Errno::EINVAL);
                }
                SlotChange::Create { slot: sid }
            }
            Some(old) => {
                if r.userspace_addr != old.uaddr.0
                    || npages != old.npages
                    || (r.flags ^ old.flags.0) & KVM_MEM_READONLY != 0
                {
                    return Err(Errno::EINVAL);
                }
                if base != old.base.0 {
                    SlotChange::Move {
                        slot: sid,
                        old_base: old.base,
                        npages,
                    }
                } else if flags != old.flags {
                    SlotChange::Flags {
                        slot: sid,
                        old: old.flags,
                    }
                } else {
                    return Ok(SlotChange::Unchanged);
                }
            }
        };
        let placing = matches!(change, SlotChange::Create { .. } | SlotChange::Move { .. });
        if placing && space.overlaps(sid.id, base, npages) {
            return Err(Errno::EEXIST);
        }
        if base + npages - 1 > self.limits.max_gfn {
            return Err(Errno::EINVAL);
        }

        // Build the new dirty bitmap before touching anything, so failure leaves no trace.
        let old_bitmap = space
            .by_id
            .get_mut(usize::from(sid.id))
            .and_then(Option::as_mut)
            .and_then(|s| s.dirty.take());
        let dirty = match (flags.log_dirty(), old_bitmap) {
            (false, _) => None,
            (true, Some(b)) => Some(b),
            (true, None) => {
                // CAST: npages <= MAX_SLOT_PAGES.
                let words = npages.div_ceil(64) as usize;
                let fill = if initially_set { u64::MAX } else { 0 };
                Some(vec_from_fn(words, |_| AtomicU64::new(fill))?)
            }
        };
        if let SlotChange::Move { .. } = change {
            // Re-index first (the only step that can fail), then update the slot in place.
            space.sorted.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            let pos = space.position(sid.id).ok_or(Errno::EINVAL)?;
            space.sorted.remove(pos);
            space.insert_sorted(Span {
                base,
                npages,
                id: sid.id,
            })?;
        }
        if let Some(slot) = space
            .by_id
            .get_mut(usize::from(sid.id))
            .and_then(Option::as_mut)
        {
            // Flags-only or move: the slot keeps its id and backing memory.
            slot.flags = flags;
            slot.dirty = dirty;
            slot.base = Gfn(base);
            return Ok(change);
        }

        // Create: grow the id table if needed, then index the new slot.
        let idx = usize::from(sid.id);
        space.sorted.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        while space.by_id.len() <= idx {
            vec_push(&mut space.by_id, None)?;
        }
        let slot = Slot {
            id: sid.id,
            base: Gfn(base),
            npages,
            uaddr: UserAddr(r.userspace_addr),
            flags,
            dirty,
        };
        space.insert_sorted(Span {
            base,
            npages,
            id: sid.id,
        })?;
        if let Some(entry) = space.by_id.get_mut(idx) {
            *entry = Some(slot);
        }
        self.total_pages = total + npages;
        Ok(change)
    }

    /// The slot with this id, if any.
    pub fn get(&self, sid: SlotId) -> Option<&Slot> {
        self.spaces.get(usize::from(sid.as_id))?.get(sid.id)
    }

    /// The slot of address space `as_id` that contains `gfn`, in `O(log n)`.
    pub fn lookup(&self, as_id: u16, gfn: Gfn) -> Option<&Slot> {
        self.spaces.get(usize::from(as_id))?.lookup(gfn)
    }

    /// Calls `f(as_id, first, count)` for every slot whose user memory overlaps user
    /// addresses `[start, end)`, with the guest frames `[first, first + count)` backed by the
    /// overlap. Allocates nothing.
    pub fn each_user_overlap(&self, start: u64, end: u64, mut f: impl FnMut(u16, Gfn, u64)) {
        let page = PAGE_SIZE as u64;
        for (as_id, space) in self.spaces.iter().enumerate() {
            // CAST: at most `address_spaces` (a u16) spaces.
            let as_id = as_id as u16;
            for slot in space.by_id.iter().flatten() {
                let u0 = slot.uaddr.0;
                let u1 = u0.saturating_add(slot.npages.saturating_mul(page));
                let (lo, hi) = (start.max(u0), end.min(u1));
                if lo >= hi {
                    continue;
                }
                // Whole pages of the slot touched by [lo, hi); the slot's start is aligned.
                let first = (lo - u0) / page;
                let last = (hi - u0).div_ceil(page);
                f(as_id, Gfn(slot.base.0 + first), last - first);
            }
        }
    }

    /// Number of slots in address space `as_id`.
    pub fn count(&self, as_id: u16) -> usize {
        self.spaces
            .get(usize::from(as_id))
            .map_or(0, |s| s.sorted.len())
    }

    /// Total pages over all slots.
    pub fn total_pages(&self) -> u64 {
        self.total_pages
    }

    /// Validates a dirty-log slot argument as `KVM_GET_DIRTY_LOG` and `KVM_CLEAR_DIRTY_LOG`
    /// do: `EINVAL` for an out-of-range id, `ENOENT` for a missing slot or one without
    /// logging.
    pub fn dirty_slot(&self, raw: u32) -> KResult<&Slot> {
        let sid = SlotId::from_raw(raw);
        if sid.as_id >= self.limits.address_spaces || sid.id >= self.limits.slots {
            return Err(Errno::EINVAL);
        }
        match self.get(sid) {
            Some(slot) if slot.dirty.is_some() => Ok(slot),
            _ => Err(Errno::ENOENT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SlotLimits = SlotLimits {
        address_spaces: 2,
        slots: 32764,
        max_gfn: (1 << 40) - 1,
        readonly: true,
    };
    const MIB: u64 = 1 << 20;

    fn ok(_: UserAddr, _: u64) -> bool {
        true
    }

    fn region(slot: u32, gpa: u64, size: u64, uaddr: u64, flags: u32) -> Region {
        Region {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: uaddr,
        }
    }

    fn slots() -> Memslots {
        Memslots::new(LIMITS).unwrap()
    }

    #[test]
    fn user_overlap_ranges() {
        let mut m = slots();
        // Slot 0: gfn 0x100.. backed by user 0x10_0000..0x10_4000 (4 pages);
        // slot 1 of address space 1: gfn 0 backed by 0x10_2000..0x10_3000 (1 page).
        m.set(&region(0, 0x10_0000, 0x4000, 0x10_0000, 0), ok, false)
            .unwrap();
        m.set(&region((1 << 16) | 1, 0, 0x1000, 0x10_2000, 0), ok, false)
            .unwrap();
        let collect = |m: &Memslots, a: u64, b: u64| {
            let mut v = std::vec::Vec::new();
            m.each_user_overlap(a, b, |as_id, g, n| v.push((as_id, g.0, n)));
            v.sort();
            v
        };
        assert_eq!(collect(&m, 0, 0x10_0000), []);
        assert_eq!(collect(&m, 0x10_4000, u64::MAX), []);
        // A partial page counts whole.
        assert_eq!(collect(&m, 0x10_0fff, 0x10_1001), [(0, 0x100, 2)]);
        assert_eq!(collect(&m, 0, u64::MAX), [(0, 0x100, 4), (1, 0, 1)]);
        assert_eq!(
            collect(&m, 0x10_2800, 0x10_2801),
            [(0, 0x102, 1), (1, 0, 1)]
        );
    }

    #[test]
    fn create_lookup_delete() {
        let mut m = slots();
        let c = m
            .set(&region(3, 0x10_0000, 2 * MIB, 0x7000_0000, 0), ok, false)
            .unwrap();
        assert_eq!(
            c,
            SlotChange::Create {
                slot: SlotId { as_id: 0, id: 3 }
            }
        );
        let s = m.lookup(0, Gpa(0x10_0000).gfn()).unwrap();
        assert_eq!((s.id(), s.npages()), (3, 512));
        assert_eq!(s.gfn_to_uaddr(Gfn(0x101)), Some(UserAddr(0x7000_1000)));
        assert!(m.lookup(0, Gfn(0xff)).is_none());
        assert!(m.lookup(0, Gfn(0x100 + 512)).is_none());
        assert!(m.lookup(1, Gfn(0x100)).is_none());
        assert_eq!(m.total_pages(), 512);
        let d = m.set(&region(3, 0, 0, 0, 0), ok, false).unwrap();
        assert_eq!(
            d,
            SlotChange::Delete {
                slot: SlotId { as_id: 0, id: 3 },
                base: Gfn(0x100),
                npages: 512
            }
        );
        assert!(m.lookup(0, Gfn(0x100)).is_none());
        assert_eq!(m.total_pages(), 0);
        // Deleting a slot that does not exist.
        assert_eq!(m.set(&region(3, 0, 0, 0, 0), ok, false), Err(Errno::EINVAL));
    }

    #[test]
    fn validation_errors() {
        let mut m = slots();
        let bad = [
            region(0, 0, MIB, 0x1000, 4),                        // unknown flag
            region(0, 0x800, MIB, 0x1000, 0),                    // unaligned gpa
            region(0, 0, MIB + 1, 0x1000, 0),                    // unaligned size
            region(0, 0, MIB, 0x1001, 0),                        // unaligned uaddr
            region(32764, 0, MIB, 0x1000, 0),                    // id out of range
            region(2 << 16, 0, MIB, 0x1000, 0),                  // address space out of range
            region(0, !0xfff, 0x2000, 0x1000, 0),                // gpa + size overflows
            region(0, 0, (MAX_SLOT_PAGES + 1) << 12, 0x1000, 0), // too many pages
            region(0, 1 << 52, MIB, 0x1000, 0),                  // beyond the highest frame
        ];
        for r in bad {
            assert_eq!(m.set(&r, ok, false), Err(Errno::EINVAL), "{r:?}");
        }
        assert_eq!(
            m.set(&region(0, 0, MIB, 0x1000, 0), |_, _| false, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(m.count(0), 0);
    }

    #[test]
    fn readonly_needs_support() {
        let mut m = Memslots::new(SlotLimits {
            readonly: false,
            ..LIMITS
        })
        .unwrap();
        assert_eq!(
            m.set(&region(0, 0, MIB, 0x1000, KVM_MEM_READONLY), ok, false),
            Err(Errno::EINVAL)
        );
        let mut m = slots();
        m.set(&region(0, 0, MIB, 0x1000, KVM_MEM_READONLY), ok, false)
            .unwrap();
        assert!(m.get(SlotId::from_raw(0)).unwrap().flags().readonly());
    }

    #[test]
    fn overlap_is_eexist_per_address_space() {
        let mut m = slots();
        m.set(&region(0, 0x10_0000, MIB, 0x1000_0000, 0), ok, false)
            .unwrap();
        // Partial overlaps from either side, containment, and exact match.
        for (gpa, size) in [
            (0xf_f000, 0x2000),
            (0x1f_f000, 0x2000),
            (0x10_1000, 0x1000),
            (0, 4 * MIB),
        ] {
            assert_eq!(
                m.set(&region(1, gpa, size, 0x2000_0000, 0), ok, false),
                Err(Errno::EEXIST)
            );
        }
        // Adjacent is fine; so is the same range in address space 1.
        m.set(&region(1, 0x20_0000, MIB, 0x2000_0000, 0), ok, false)
            .unwrap();
        m.set(
            &region((1 << 16) | 1, 0x10_0000, MIB, 0x2000_0000, 0),
            ok,
            false,
        )
        .unwrap();
        assert_eq!(m.lookup(1, Gfn(0x100)).unwrap().id(), 1);
    }

    #[test]
    fn modify_move_and_flags() {
        let mut m = slots();
        let r = region(5, 0x10_0000, MIB, 0x4000_0000, 0);
        m.set(&r, ok, false).unwrap();
        assert_eq!(m.set(&r, ok, false), Ok(SlotChange::Unchanged));
        // Changing the size, the backing address or READONLY of a live slot is refused.
        assert_eq!(
            m.set(&region(5, 0x10_0000, 2 * MIB, 0x4000_0000, 0), ok, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.set(&region(5, 0x10_0000, MIB, 0x5000_0000, 0), ok, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.set(
                &region(5, 0x10_0000, MIB, 0x4000_0000, KVM_MEM_READONLY),
                ok,
                false
            ),
            Err(Errno::EINVAL)
        );
        // Flags only: dirty logging on, then off.
        let c = m.set(
            &region(5, 0x10_0000, MIB, 0x4000_0000, KVM_MEM_LOG_DIRTY_PAGES),
            ok,
            false,
        );
        assert_eq!(
            c,
            Ok(SlotChange::Flags {
                slot: SlotId::from_raw(5),
                old: SlotFlags(0)
            })
        );
        assert!(m.dirty_slot(5).is_ok());
        // Move, keeping the dirty bitmap.
        let c = m.set(
            &region(5, 0x80_0000, MIB, 0x4000_0000, KVM_MEM_LOG_DIRTY_PAGES),
            ok,
            false,
        );
        assert_eq!(
            c,
            Ok(SlotChange::Move {
                slot: SlotId::from_raw(5),
                old_base: Gfn(0x100),
                npages: 256
            })
        );
        assert!(m.lookup(0, Gfn(0x100)).is_none());
        assert_eq!(m.lookup(0, Gfn(0x8ff)).unwrap().id(), 5);
        assert!(m.dirty_slot(5).is_ok());
        m.set(&region(5, 0x80_0000, MIB, 0x4000_0000, 0), ok, false)
            .unwrap();
        assert_eq!(m.dirty_slot(5).map(|_| ()), Err(Errno::ENOENT));
        // A move onto another slot is EEXIST.
        m.set(&region(6, 0, MIB, 0x6000_0000, 0), ok, false)
            .unwrap();
        assert_eq!(
            m.set(&region(5, 0x8_0000, MIB, 0x4000_0000, 0), ok, false),
            Err(Errno::EEXIST)
        );
        // A move that overlaps only its own old place is fine.
        m.set(&region(5, 0x88_0000, MIB, 0x4000_0000, 0), ok, false)
            .unwrap();
    }

    #[test]
    fn dirty_bitmap_marks_snapshots_and_clears() {
        let mut m = slots();
        m.set(
            &region(
                1,
                0x10_0000,
                100 * 4096,
                0x4000_0000,
                KVM_MEM_LOG_DIRTY_PAGES,
            ),
            ok,
            false,
        )
        .unwrap();
        let s = m.dirty_slot(1).unwrap();
        assert_eq!(s.dirty_bitmap_bytes(), 16);
        s.mark_dirty(Gfn(0x100));
        s.mark_dirty(Gfn(0x100 + 65));
        s.mark_dirty(Gfn(0x100 + 100)); // outside: ignored
        let mut out = Vec::new();
        s.dirty_snapshot(&mut out, false).unwrap();
        assert_eq!(out, [1, 2]);
        s.dirty_clear(64, &[2]).unwrap();
        s.dirty_snapshot(&mut out, true).unwrap();
        assert_eq!(out, [1, 0]);
        s.dirty_snapshot(&mut out, false).unwrap();
        assert_eq!(out, [0, 0]);
        assert_eq!(m.dirty_slot(9).map(|_| ()), Err(Errno::ENOENT));
        assert_eq!(m.dirty_slot(32764).map(|_| ()), Err(Errno::EINVAL));
        assert_eq!(m.dirty_slot(2 << 16).map(|_| ()), Err(Errno::EINVAL));
        // Initially-set bitmaps start full.
        m.set(
            &region(2, 0, 64 * 4096, 0x5000_0000, KVM_MEM_LOG_DIRTY_PAGES),
            ok,
            true,
        )
        .unwrap();
        m.dirty_slot(2)
            .unwrap()
            .dirty_snapshot(&mut out, false)
            .unwrap();
        assert_eq!(out, [u64::MAX]);
    }

    #[test]
    fn all_32764_slots_and_logarithmic_lookup() {
        let mut m = slots();
        // Insert in an order that is neither ascending nor descending in gfn.
        for i in 0..32764u32 {
            let id = (i * 7919) % 32764;
            let gpa = u64::from(id) * 0x2000;
            m.set(&region(id, gpa, 0x1000, 0x1000_0000 + gpa, 0), ok, false)
                .unwrap();
        }
        assert_eq!(m.count(0), 32764);
        assert_eq!(
            m.set(&region(32764, 1 << 30, 0x1000, 0x1000, 0), ok, false),
            Err(Errno::EINVAL)
        );
        for id in [0u64, 1, 16381, 32763] {
            assert_eq!(u64::from(m.lookup(0, Gfn(id * 2)).unwrap().id()), id);
            assert!(m.lookup(0, Gfn(id * 2 + 1)).is_none());
        }
    }
}
