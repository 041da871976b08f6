//! The irqchip of one VM: the device models behind the OS's locks, the local APIC of each
//! vCPU, kicks and halting, and the operations the ioctls and the run loop need.
//!
//! Locks, always taken in this order: the APIC table (`apics`, a mutex), the VM-wide chips
//! (`chips`, a mutex), then one APIC (`ApicSlot::lapic`, a spin lock, held only for model
//! operations). Wake-ups (wait queue, kick) are issued with no spin lock held. The PIC's INT
//! output is mirrored in an atomic so that a halted BSP can test it from its wait condition
//! without taking a mutex.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kvmport_core::abi::KvmIrqchipChip;
use kvmport_core::abi::x86::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KvmIoapicState,
    KvmLapicState, KvmPicState,
};
use kvmport_core::arch::Kicker;
use kvmport_core::kalloc::{KArc, vec_push};
use kvmport_core::os::{Lock, WaitQueue};
use kvmport_core::{Errno, KResult, Os};

use super::lapic::Shorthand;
use super::lapic::{Ipi, Lapic, MpState, Write};
use super::pit::Pit;
use super::{ApicSet, Bus, Chips, Routing, default_routes, deliver, msi_message};
use kvmport_core::abi::x86::{KVM_PIT_SPEAKER_DUMMY, KvmPitState2};

/// One vCPU's local APIC and how to wake the vCPU.
pub struct ApicSlot<O: Os> {
    /// The vCPU's ABI id (the APIC's reset ID).
    pub vcpu_id: u32,
    /// The model.
    pub lapic: O::SpinLock<Lapic>,
    /// Where the vCPU sleeps while halted or waiting for a start-up IPI.
    pub wq: O::WaitQueue,
    /// The vCPU's kick handle, once it has run.
    kicker: O::SpinLock<Option<Kicker>>,
}

impl<O: Os> ApicSlot<O> {
    /// Wakes the vCPU: out of a halt, and out of guest mode.
    pub fn wake(&self, os: &O) {
        self.wq.wake_all();
        if let Some(k) = self.kicker.lock().as_ref() {
            k.kick(os);
        }
    }

    /// Records the vCPU's kick handle (first run).
    pub fn set_kicker(&self, k: Kicker) {
        *self.kicker.lock() = Some(k);
    }

    /// Whether the kick handle is known.
    pub fn has_kicker(&self) -> bool {
        self.kicker.lock().is_some()
    }
}

/// The APICs of the table while its lock is held, as the delivery logic sees them.
struct SlotSet<'a, O: Os> {
    os: &'a O,
    slots: &'a [KArc<ApicSlot<O>>],
}

impl<O: Os> ApicSet for SlotSet<'_, O> {
    fn count(&self) -> usize {
        self.slots.len()
    }

    fn with(&mut self, i: usize, f: &mut dyn FnMut(&mut Lapic)) {
        if let Some(s) = self.slots.get(i) {
            f(&mut s.lapic.lock());
        }
    }

    fn kick(&mut self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            s.wake(self.os);
        }
    }
}

/// The in-kernel irqchip of a VM (`KVM_CREATE_IRQCHIP`).
pub struct VmChip<O: Os> {
    apics: O::Mutex<Vec<KArc<ApicSlot<O>>>>,
    chips: O::Mutex<Chips>,
    pic_int: AtomicBool,
    /// `KVM_SET_GSI_ROUTING`'s table; `None` for the default routing. Never held together
    /// with the other locks.
    routing: O::Mutex<Option<Routing>>,
    /// When the PIT's next tick is due (host ns), `u64::MAX` when none: read without the
    /// chips' lock on every entry of vCPU 0, written under it.
    pit_next: AtomicU64,
}

/// What [`VmChip::prepare_entry`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing to deliver, or it was queued in the event model.
    Run,
    /// An interrupt waits for the guest to enable interrupts: open a VINTR window.
    Window,
}

/// Whether the guest can take an external interrupt now.
pub fn can_take_interrupt(st: &crate::state::VcpuState) -> bool {
    let ev = &st.events;
    st.regs.rflags & (1 << 9) != 0
        && !ev.int_shadow
        && !ev.irq_injected
        && !ev.nmi_injected
        && !ev.exception.injected
}

impl<O: Os> VmChip<O> {
    /// A new irqchip in its reset state, with no APICs yet.
    pub fn new() -> KResult<KArc<Self>> {
        KArc::try_new(VmChip {
            apics: Lock::new(Vec::new())?,
            chips: Lock::new(Chips::default())?,
            pic_int: AtomicBool::new(false),
            routing: Lock::new(None)?,
            pit_next: AtomicU64::new(u64::MAX),
        })
    }

    /// Creates and registers the local APIC of vCPU `vcpu_id` with `IA32_APIC_BASE` `base`.
    pub fn add_vcpu(&self, vcpu_id: u32, base: u64) -> KResult<KArc<ApicSlot<O>>> {
        let slot = KArc::try_new(ApicSlot {
            vcpu_id,
            lapic: Lock::new(Lapic::new(vcpu_id, base))?,
            wq: O::WaitQueue::new()?,
            kicker: Lock::new(None)?,
        })?;
        vec_push(&mut self.apics.lock(), slot.try_clone()?)?;
        Ok(slot)
    }

    /// Unregisters an APIC (its vCPU is going away).
    pub fn remove_vcpu(&self, slot: &ApicSlot<O>) {
        self.apics
            .lock()
            .retain(|s| !core::ptr::eq::<ApicSlot<O>>(&**s, slot));
    }

    /// After a change of the chips: mirrors the PIC's INT and wakes the BSP when it is high.
    fn pic_changed(&self, os: &O, chips: &Chips, slots: &[KArc<ApicSlot<O>>]) {
        let int = chips.pic.int_output();
        self.pic_int.store(int, Ordering::SeqCst);
        if int {
            if let Some(bsp) = slots.iter().find(|s| s.vcpu_id == 0) {
                bsp.wake(os);
            }
        }
    }

    /// The PIC's INT output (lock-free, for wait conditions).
    pub fn pic_int(&self) -> bool {
        self.pic_int.load(Ordering::SeqCst)
    }

    /// `KVM_IRQ_LINE`: drives `gsi` through the routing table (the default one until
    /// `KVM_SET_GSI_ROUTING`); the status of `KVM_IRQ_LINE_STATUS`.
    pub fn set_gsi(&self, os: &O, gsi: u32, level: bool) -> i32 {
        let routes = match &*self.routing.lock() {
            None => default_routes(gsi),
            Some(t) => t.routes(gsi),
        };
        let slots = self.apics.lock();
        let mut chips = self.chips.lock();
        let mut set = SlotSet { os, slots: &slots };
        let r = chips.set_routes(&routes, level, &mut Bus { set: &mut set });
        self.pic_changed(os, &chips, &slots);
        r
    }

    /// `KVM_SET_GSI_ROUTING`: `table` replaces the routing.
    pub fn set_routing(&self, table: Routing) {
        let old = self.routing.lock().replace(table);
        // The old table is freed outside the lock.
        drop(old);
    }

    /// `KVM_SIGNAL_MSI`: sends the message of an MSI with `address_lo` and `data`; how many
    /// APICs took it, `None` when the VM has no APIC at all.
    pub fn signal_msi(&self, os: &O, address_lo: u32, data: u32) -> Option<u32> {
        let slots = self.apics.lock();
        if slots.is_empty() {
            return None;
        }
        let mut set = SlotSet { os, slots: &slots };
        Some(deliver(
            &mut set,
            &msi_message(address_lo, data),
            Shorthand::None,
            None,
        ))
    }

    /// `KVM_GET_IRQCHIP` of chip `id` (`EINVAL` for an unknown id).
    pub fn get_chip(&self, id: u32) -> KResult<KvmIrqchipChip> {
        let chips = self.chips.lock();
        let u = match id {
            KVM_IRQCHIP_PIC_MASTER => {
                KvmIrqchipChip::from_value::<KvmPicState>(&chips.pic.master.s)
            }
            KVM_IRQCHIP_PIC_SLAVE => KvmIrqchipChip::from_value::<KvmPicState>(&chips.pic.slave.s),
            KVM_IRQCHIP_IOAPIC => KvmIrqchipChip::from_value::<KvmIoapicState>(&chips.ioapic.s),
            _ => return Err(Errno::EINVAL),
        };
        u.ok_or(Errno::EINVAL)
    }

    /// `KVM_SET_IRQCHIP` of chip `id` (`EINVAL` for an unknown id). The state is taken as
    /// given, as Linux does.
    pub fn set_chip(&self, os: &O, id: u32, chip: &KvmIrqchipChip) -> KResult<()> {
        let slots = self.apics.lock();
        let mut chips = self.chips.lock();
        match id {
            KVM_IRQCHIP_PIC_MASTER => chips.pic.master.s = chip.pic(),
            KVM_IRQCHIP_PIC_SLAVE => chips.pic.slave.s = chip.pic(),
            KVM_IRQCHIP_IOAPIC => chips.ioapic.set_state(&chip.ioapic()),
            _ => return Err(Errno::EINVAL),
        }
        chips.pic.refresh();
        self.pic_changed(os, &chips, &slots);
        Ok(())
    }

    /// `KVM_CREATE_PIT2` (`KVM_PIT_SPEAKER_DUMMY` in `flags` puts port 0x61 in the kernel;
    /// other bits are ignored, as on Linux): `EEXIST` if the VM has one.
    pub fn create_pit(&self, os: &O, flags: u32) -> KResult<()> {
        let mut chips = self.chips.lock();
        if chips.pit.is_some() {
            return Err(Errno::EEXIST);
        }
        chips.pit = Some(Pit::new(
            flags & KVM_PIT_SPEAKER_DUMMY != 0,
            os.time_monotonic_ns(),
        ));
        Ok(())
    }

    /// `KVM_GET_PIT2`: `None` without a PIT.
    pub fn get_pit(&self) -> Option<KvmPitState2> {
        self.chips.lock().pit.as_ref().map(Pit::get_state)
    }

    /// `KVM_SET_PIT2`: `false` without a PIT.
    pub fn set_pit(&self, os: &O, s: &KvmPitState2) -> bool {
        let now = os.time_monotonic_ns();
        let mut chips = self.chips.lock();
        match chips.pit.as_mut() {
            Some(p) => {
                p.set_state(s, now);
                self.pit_changed(p);
                true
            }
            None => false,
        }
    }

    /// Publishes the PIT's next deadline for [`VmChip::poll_pit`]'s lock-free check (called
    /// with the chips' lock held).
    fn pit_changed(&self, p: &Pit) {
        self.pit_next
            .store(p.next_deadline().unwrap_or(u64::MAX), Ordering::Release);
    }

    /// `KVM_REINJECT_CONTROL`: `false` without a PIT.
    pub fn set_pit_reinject(&self, reinject: bool) -> bool {
        match self.chips.lock().pit.as_mut() {
            Some(p) => {
                p.reinject = reinject;
                true
            }
            None => false,
        }
    }

    /// Delivers the PIT's due tick (an edge on GSI 0 through the routing table) and returns
    /// when the next one is due, if counter 0 runs. Called by vCPU 0 before each entry and
    /// while it halts.
    pub fn poll_pit(&self, os: &O, now_ns: u64) -> Option<u64> {
        match self.pit_next.load(Ordering::Acquire) {
            u64::MAX => return None,
            next if now_ns < next => return Some(next),
            _ => {}
        }
        let (ticks, next) = {
            let mut chips = self.chips.lock();
            let p = chips.pit.as_mut()?;
            let ticks = p.poll(now_ns);
            self.pit_changed(p);
            (ticks, p.next_deadline())
        };
        if ticks > 0 {
            self.set_gsi(os, 0, true);
            self.set_gsi(os, 0, false);
        }
        next
    }

    /// A guest port access the PIC pair or the PIT owns, one byte per port for the PIC (the
    /// PIT takes the first byte of a wider access, and reads zero-extend). `data` is the value
    /// written for `OUT`, and receives the bytes read for `IN`. `false` if the port is
    /// neither's.
    pub fn pio(&self, os: &O, port: u16, out: bool, data: &mut [u8]) -> bool {
        if Pit::may_own_port(port) {
            let now = os.time_monotonic_ns();
            let mut chips = self.chips.lock();
            let Some(p) = chips.pit.as_mut().filter(|p| p.owns_port(port)) else {
                return false;
            };
            if out {
                p.port_write(port, data.first().copied().unwrap_or(0), now);
                self.pit_changed(p);
            } else {
                data.fill(0);
                if let Some(b) = data.first_mut() {
                    *b = p.port_read(port, now);
                }
            }
            return true;
        }
        if !super::pic::PicPair::owns_port(port) {
            return false;
        }
        let slots = self.apics.lock();
        let mut chips = self.chips.lock();
        for (i, b) in data.iter_mut().enumerate() {
            // CAST: at most 4 bytes.
            let p = port.wrapping_add(i as u16);
            if out {
                chips.pic.port_write(p, *b);
            } else {
                *b = chips.pic.port_read(p);
            }
        }
        self.pic_changed(os, &chips, &slots);
        true
    }

    /// A guest MMIO access to the IOAPIC window: `Some(value read)` (0 for writes) if `gpa`
    /// is in it.
    pub fn ioapic_mmio(&self, os: &O, gpa: u64, len: usize, write: Option<u64>) -> Option<u64> {
        let slots = self.apics.lock();
        let mut chips = self.chips.lock();
        if !chips.ioapic.contains(gpa) {
            return None;
        }
        let off = gpa.wrapping_sub(chips.ioapic.s.base_address);
        let v = match write {
            Some(val) => {
                let mut set = SlotSet { os, slots: &slots };
                chips
                    .ioapic
                    .mmio_write(off, val, &mut Bus { set: &mut set });
                0
            }
            None => chips.ioapic.mmio_read(off, len),
        };
        Some(v)
    }

    /// Carries out what a local APIC register write asked for: the IOAPIC's EOI of a level
    /// vector, or an IPI from `from`.
    pub fn apic_write_effect(&self, os: &O, from: &ApicSlot<O>, w: Write) {
        match w {
            Write::None => {}
            Write::Eoi(vector) => {
                let slots = self.apics.lock();
                let mut chips = self.chips.lock();
                let mut set = SlotSet { os, slots: &slots };
                chips.ioapic.eoi(vector, &mut Bus { set: &mut set });
            }
            Write::Ipi(Ipi { msg, shorthand }) => {
                let slots = self.apics.lock();
                let src = slots
                    .iter()
                    .position(|s| core::ptr::eq::<ApicSlot<O>>(&**s, from));
                let mut set = SlotSet { os, slots: &slots };
                deliver(&mut set, &msg, shorthand, src);
            }
        }
    }

    /// `KVM_GET_LAPIC`.
    pub fn get_lapic(slot: &ApicSlot<O>, now_ns: u64) -> KvmLapicState {
        slot.lapic.lock().get_state(now_ns)
    }

    /// `KVM_SET_LAPIC`, then wakes the vCPU (something may be pending now).
    pub fn set_lapic(os: &O, slot: &ApicSlot<O>, s: &KvmLapicState, now_ns: u64) {
        slot.lapic.lock().set_state(s, now_ns);
        slot.wake(os);
    }

    /// Before entering the guest: fires the APIC timer, moves accepted NMIs into the event
    /// model, and queues the highest deliverable interrupt (the APIC's, or for the BSP the
    /// PIC's through LINT0) when the guest can take it, acknowledging it in the model.
    pub fn prepare_entry(
        &self,
        slot: &ApicSlot<O>,
        st: &mut crate::state::VcpuState,
        now_ns: u64,
    ) -> Entry {
        let can = can_take_interrupt(st);
        let (vector, nmis, pic_ok) = {
            let mut l = slot.lapic.lock();
            l.base = st.apic_base;
            l.timer_poll(now_ns);
            let nmis = core::mem::take(&mut l.nmi_pending);
            let v = l.pending_vector();
            if let (true, Some(v)) = (can, v) {
                l.ack(v);
            }
            (v, nmis, l.accepts_pic())
        };
        for _ in 0..nmis {
            st.queue_nmi();
        }
        if let Some(v) = vector {
            if !can {
                return Entry::Window;
            }
            st.events.irq_injected = true;
            st.events.irq_nr = v;
            st.events.irq_soft = false;
            return Entry::Run;
        }
        if slot.vcpu_id == 0 && pic_ok && self.pic_int() {
            if !can {
                return Entry::Window;
            }
            let v = {
                let mut chips = self.chips.lock();
                let v = chips.pic.intack();
                self.pic_int.store(chips.pic.int_output(), Ordering::SeqCst);
                v
            };
            st.events.irq_injected = true;
            st.events.irq_nr = v;
            st.events.irq_soft = false;
        }
        Entry::Run
    }

    /// Whether a halted vCPU has something to wake up for (interrupt above the priority,
    /// NMI, INIT, start-up IPI, or the PIC for the BSP).
    pub fn wakeup_pending(&self, slot: &ApicSlot<O>, now_ns: u64) -> bool {
        let mut l = slot.lapic.lock();
        l.timer_poll(now_ns);
        l.pending_vector().is_some()
            || l.nmi_pending > 0
            || l.init_pending
            || matches!(l.mp_state, MpState::SipiReceived(_))
            || (slot.vcpu_id == 0 && l.accepts_pic() && self.pic_int())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irqchip::ioapic::rte;
    use crate::irqchip::lapic::{BASE_ENABLE, reg};
    use crate::state::VcpuState;
    use kvmport_testkit::{HostState, HostedOs as HostOs};

    fn host() -> HostOs {
        HostOs {
            arena: 0,
            state: std::sync::Arc::new(HostState::default()),
        }
    }

    const BASE: u64 = 0xfee0_0000 | BASE_ENABLE;

    fn enable(slot: &ApicSlot<HostOs>) {
        slot.lapic.lock().write_reg(reg::SVR, 0x1ff, 0);
    }

    #[test]
    fn pit_ports_and_ticks_reach_the_pic() {
        let os = host();
        let chip = VmChip::<HostOs>::new().unwrap();
        let _s0 = chip.add_vcpu(0, BASE | (1 << 8)).unwrap();
        // No PIT yet: its ports are not the kernel's.
        assert!(!chip.pio(&os, 0x43, true, &mut [0x34]));
        assert_eq!(chip.poll_pit(&os, 0), None);
        chip.create_pit(&os, 0).unwrap();
        assert_eq!(chip.create_pit(&os, 0), Err(Errno::EEXIST));
        // Without KVM_PIT_SPEAKER_DUMMY port 0x61 stays with user space.
        assert!(!chip.pio(&os, 0x61, false, &mut [0]));
        // Counter 0, mode 2, count 1193 (1 ms).
        let now = os.time_monotonic_ns();
        assert!(chip.pio(&os, 0x43, true, &mut [0x34]));
        assert!(chip.pio(&os, 0x40, true, &mut [0xa9]));
        assert!(chip.pio(&os, 0x40, true, &mut [0x04]));
        let due = chip.poll_pit(&os, now).unwrap();
        assert_eq!(chip.get_chip(KVM_IRQCHIP_PIC_MASTER).unwrap().pic().irr, 0);
        // Its tick is an edge on GSI 0: PIC input 0 (unmasked at reset).
        assert!(chip.poll_pit(&os, due + 1).is_some());
        assert_eq!(
            chip.get_chip(KVM_IRQCHIP_PIC_MASTER).unwrap().pic().irr & 1,
            1
        );
        assert!(chip.pic_int());
    }

    #[test]
    fn irq_line_reaches_the_apic_and_is_injected() {
        let os = host();
        let chip = VmChip::<HostOs>::new().unwrap();
        let s0 = chip.add_vcpu(0, BASE | (1 << 8)).unwrap();
        let s1 = chip.add_vcpu(1, BASE).unwrap();
        enable(&s0);
        enable(&s1);
        let mut io = chip.get_chip(KVM_IRQCHIP_IOAPIC).unwrap().ioapic();
        io.redirtbl[10] = 0x55 | (1u64 << 56);
        chip.set_chip(
            &os,
            KVM_IRQCHIP_IOAPIC,
            &KvmIrqchipChip::from_value(&io).unwrap(),
        )
        .unwrap();
        // PIC (unmasked at reset) and IOAPIC each count one.
        assert_eq!(chip.set_gsi(&os, 10, true), 2);
        let mut st = VcpuState::reset(1, 0).unwrap();
        st.apic_base = BASE;
        assert!(chip.wakeup_pending(&s1, 0));
        // IF clear: a window is needed.
        assert_eq!(chip.prepare_entry(&s1, &mut st, 0), Entry::Window);
        st.regs.rflags |= 1 << 9;
        assert_eq!(chip.prepare_entry(&s1, &mut st, 0), Entry::Run);
        assert!(st.events.irq_injected);
        assert_eq!(st.events.irq_nr, 0x55);
        assert_eq!(s1.lapic.lock().get(reg::ISR + 0x20), 1 << 21);
    }

    #[test]
    fn pic_reaches_the_bsp_through_lint0() {
        let os = host();
        let chip = VmChip::<HostOs>::new().unwrap();
        let s0 = chip.add_vcpu(0, BASE | (1 << 8)).unwrap();
        let mut out = [0x11u8];
        for (port, v) in [
            (0x20u16, 0x11u8),
            (0x21, 0x20),
            (0x21, 4),
            (0x21, 1),
            (0x21, 0),
        ] {
            out[0] = v;
            assert!(chip.pio(&os, port, true, &mut out));
        }
        assert!(!chip.pio(&os, 0x60, true, &mut out));
        chip.set_gsi(&os, 3, true);
        assert!(chip.pic_int());
        let mut st = VcpuState::reset(0, 0).unwrap();
        st.regs.rflags |= 1 << 9;
        assert!(chip.wakeup_pending(&s0, 0));
        assert_eq!(chip.prepare_entry(&s0, &mut st, 0), Entry::Run);
        assert_eq!(st.events.irq_nr, 0x23);
        assert!(!chip.pic_int());
        let mut isr = [0x0bu8];
        chip.pio(&os, 0x20, true, &mut isr);
        chip.pio(&os, 0x20, false, &mut isr);
        assert_eq!(isr[0], 0x08);
    }

    #[test]
    fn ipi_and_level_eoi() {
        let os = host();
        let chip = VmChip::<HostOs>::new().unwrap();
        let s0 = chip.add_vcpu(0, BASE).unwrap();
        let s1 = chip.add_vcpu(1, BASE).unwrap();
        enable(&s0);
        enable(&s1);
        let w = {
            let mut l = s0.lapic.lock();
            l.write_reg(reg::ICR2, 1 << 24, 0);
            l.write_reg(reg::ICR, 0x4061, 0)
        };
        chip.apic_write_effect(&os, &s0, w);
        assert_eq!(s1.lapic.lock().pending_vector(), Some(0x61));
        // A level IOAPIC interrupt, EOIed with the line still up, comes back.
        let mut io = chip.get_chip(KVM_IRQCHIP_IOAPIC).unwrap().ioapic();
        io.redirtbl[16] = 0x70 | rte::LEVEL;
        chip.set_chip(
            &os,
            KVM_IRQCHIP_IOAPIC,
            &KvmIrqchipChip::from_value(&io).unwrap(),
        )
        .unwrap();
        assert_eq!(chip.set_gsi(&os, 16, true), 1);
        let w = {
            let mut l = s0.lapic.lock();
            l.ack(0x70);
            l.write_reg(reg::EOI, 0, 0)
        };
        assert_eq!(w, Write::Eoi(0x70));
        chip.apic_write_effect(&os, &s0, w);
        assert_eq!(s0.lapic.lock().pending_vector(), Some(0x70));
        chip.remove_vcpu(&s1);
        assert_eq!(chip.apics.lock().len(), 1);
    }

    #[test]
    fn chip_ids_and_round_trip() {
        let os = host();
        let chip = VmChip::<HostOs>::new().unwrap();
        assert_eq!(chip.get_chip(3), Err(Errno::EINVAL));
        assert_eq!(
            chip.set_chip(&os, 3, &KvmIrqchipChip::default()),
            Err(Errno::EINVAL)
        );
        let pic = KvmPicState {
            irr: 1,
            imr: 0xfe,
            irq_base: 0x20,
            elcr: 0x5a,
            ..Default::default()
        };
        let u = KvmIrqchipChip::from_value(&pic).unwrap();
        chip.set_chip(&os, KVM_IRQCHIP_PIC_SLAVE, &u).unwrap();
        assert_eq!(chip.get_chip(KVM_IRQCHIP_PIC_SLAVE).unwrap().pic(), pic);
        assert_eq!(
            chip.get_chip(KVM_IRQCHIP_IOAPIC)
                .unwrap()
                .ioapic()
                .base_address,
            0xfec0_0000
        );
        assert_eq!(
            chip.get_chip(KVM_IRQCHIP_PIC_MASTER)
                .unwrap()
                .pic()
                .elcr_mask,
            0xf8
        );
    }
}
