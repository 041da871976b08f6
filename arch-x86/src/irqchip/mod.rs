//! The in-kernel x86 interrupt controller of `KVM_CREATE_IRQCHIP`: the PC's 8259A pair
//! ([`pic`]), the I/O APIC ([`ioapic`]), a local APIC per vCPU ([`lapic`]), the default GSI
//! routing and message delivery between them (this module), and their place in a VM with
//! locks, kicks and halting ([`vmchip`]).
//!
//! The device models are pure logic: no allocation, no locks, no time source (the caller
//! passes `now_ns`), and any register value a guest or user space writes is accepted without
//! panicking.
//!
//! Default routing, as Linux KVM sets it up at `KVM_CREATE_IRQCHIP` (api.rst: "IRQ routing
//! for GSIs 0-15 is set to both PIC and IOAPIC; GSI 16-23 only go to the IOAPIC"): GSI `n`
//! below 16 drives PIC input `n` and IOAPIC pin `n`; GSI 16-23 drive IOAPIC pin `n`. GSI 0
//! goes to IOAPIC pin 0 (measured on this machine's KVM: `KVM_IRQ_LINE` of GSI 0 sets IOAPIC
//! IRR bit 0); the ISA-IRQ0-on-pin-2 override of ACPI's MADT is something VMMs such as QEMU
//! program themselves with `KVM_SET_GSI_ROUTING`.

pub mod ioapic;
pub mod lapic;
pub mod pic;
pub mod vmchip;

use ioapic::{DeliveryMode, Ioapic, Message, Sink};
use lapic::{Lapic, Shorthand};
use pic::PicPair;

/// GSIs of the default routing.
pub const NR_GSIS: u32 = 24;

/// The VM-wide chips: the PIC pair and the IOAPIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chips {
    /// The 8259A pair.
    pub pic: PicPair,
    /// The I/O APIC.
    pub ioapic: Ioapic,
}

/// Combines the per-chip results of one `KVM_IRQ_LINE_STATUS` into its `status`: the sum of
/// the non-negative results, or -1 if every chip reported the interrupt masked or
/// undeliverable (or there was no route). Measured on Linux: GSI 0 raised with the PIC
/// unmasked and the IOAPIC pin masked gives 1, lowered gives 2 (both chips report 1).
pub fn combine(results: &[i32]) -> i32 {
    let mut sum: Option<i32> = None;
    for r in results.iter().copied().filter(|r| *r >= 0) {
        sum = Some(sum.unwrap_or(0).saturating_add(r));
    }
    sum.unwrap_or(-1)
}

impl Chips {
    /// Drives `gsi` to `level` through the default routing; returns the
    /// `KVM_IRQ_LINE_STATUS` status.
    pub fn set_gsi(&mut self, gsi: u32, level: bool, sink: &mut dyn Sink) -> i32 {
        if gsi >= NR_GSIS {
            return -1;
        }
        let io = self.ioapic.set_line(gsi, level, sink);
        if gsi < 16 {
            let p = self.pic.set_irq(gsi, level);
            combine(&[io, p])
        } else {
            combine(&[io])
        }
    }
}

/// The local APICs of a VM as the delivery logic sees them: indexed `0..count()`, each reached
/// for the length of one closure (the VM keeps each behind its own lock).
pub trait ApicSet {
    /// How many APICs there are.
    fn count(&self) -> usize;
    /// Runs `f` on APIC `i` (nothing if there is none).
    fn with(&mut self, i: usize, f: &mut dyn FnMut(&mut Lapic));
    /// APIC `i` got something to do: wake its vCPU.
    fn kick(&mut self, i: usize);
}

/// Delivers `msg` to the APICs it addresses (with `shorthand`, relative to the sender `src`);
/// returns how many accepted. Lowest-priority messages go to the addressed APIC with the
/// lowest task priority (the first of equals).
pub fn deliver(
    set: &mut dyn ApicSet,
    msg: &Message,
    shorthand: Shorthand,
    src: Option<usize>,
) -> u32 {
    let targets = |set: &mut dyn ApicSet, i: usize| -> bool {
        let mut hit = false;
        set.with(i, &mut |l| {
            hit = match shorthand {
                Shorthand::None => l.matches(msg.dest, msg.logical),
                Shorthand::SelfOnly => Some(i) == src,
                Shorthand::AllIncludingSelf => true,
                Shorthand::AllExcludingSelf => Some(i) != src,
            };
        });
        hit
    };
    let n = set.count();
    let mut accepted = 0u32;
    if msg.mode == DeliveryMode::LowestPriority && shorthand == Shorthand::None {
        let mut best: Option<(u32, usize)> = None;
        for i in 0..n {
            if !targets(set, i) {
                continue;
            }
            let mut prio = 0u32;
            set.with(i, &mut |l| prio = l.get(lapic::reg::TPR) & 0xff);
            if best.is_none_or(|(p, _)| prio < p) {
                best = Some((prio, i));
            }
        }
        if let Some((_, i)) = best {
            accepted += accept_one(set, i, msg);
        }
        return accepted;
    }
    for i in 0..n {
        if targets(set, i) {
            accepted += accept_one(set, i, msg);
        }
    }
    accepted
}

fn accept_one(set: &mut dyn ApicSet, i: usize, msg: &Message) -> u32 {
    let mut ok = false;
    set.with(i, &mut |l| ok = l.accept(msg));
    if ok {
        set.kick(i);
    }
    u32::from(ok)
}

/// The IOAPIC's view of an [`ApicSet`].
pub struct Bus<'a> {
    /// The APICs.
    pub set: &'a mut dyn ApicSet,
}

impl Sink for Bus<'_> {
    fn deliver(&mut self, msg: &Message) -> u32 {
        deliver(self.set, msg, Shorthand::None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use ioapic::rte;

    /// APICs in a vector, with the kicks recorded.
    struct Apics {
        l: Vec<Lapic>,
        kicks: Vec<usize>,
    }

    impl ApicSet for Apics {
        fn count(&self) -> usize {
            self.l.len()
        }
        fn with(&mut self, i: usize, f: &mut dyn FnMut(&mut Lapic)) {
            if let Some(l) = self.l.get_mut(i) {
                f(l);
            }
        }
        fn kick(&mut self, i: usize) {
            self.kicks.push(i);
        }
    }

    fn apics(n: u32) -> Apics {
        let mut l = Vec::new();
        for id in 0..n {
            let mut a = Lapic::new(id, 0xfee0_0000 | lapic::BASE_ENABLE);
            a.write_reg(lapic::reg::SVR, 0x1ff, 0);
            a.write_reg(lapic::reg::LDR, (1 << id) << 24, 0);
            l.push(a);
        }
        Apics {
            l,
            kicks: Vec::new(),
        }
    }

    fn msg(vector: u8, mode: DeliveryMode, logical: bool, dest: u8) -> Message {
        Message {
            vector,
            mode,
            logical,
            dest,
            level: false,
        }
    }

    #[test]
    fn combine_rules() {
        assert_eq!(combine(&[-1, 1]), 1);
        assert_eq!(combine(&[1, 1]), 2);
        assert_eq!(combine(&[-1, -1]), -1);
        assert_eq!(combine(&[0, -1]), 0);
        assert_eq!(combine(&[]), -1);
    }

    #[test]
    fn default_routing() {
        let mut c = Chips::default();
        let mut a = apics(1);
        // Reset state: PIC unmasked (IMR 0), IOAPIC masked.
        assert_eq!(c.set_gsi(0, true, &mut Bus { set: &mut a }), 1);
        assert_eq!(c.ioapic.s.irr, 1, "GSI 0 is IOAPIC pin 0");
        assert_eq!(c.pic.master.s.irr, 1);
        assert_eq!(c.set_gsi(0, false, &mut Bus { set: &mut a }), 2);
        assert_eq!(c.set_gsi(9, true, &mut Bus { set: &mut a }), 1);
        assert_eq!(c.pic.slave.s.irr, 2);
        assert_eq!(c.set_gsi(20, true, &mut Bus { set: &mut a }), -1);
        assert_eq!(c.ioapic.s.irr, 1 << 20 | 1 << 9);
        assert_eq!(c.set_gsi(24, true, &mut Bus { set: &mut a }), -1);
        assert_eq!(c.set_gsi(u32::MAX, true, &mut Bus { set: &mut a }), -1);
    }

    #[test]
    fn ioapic_to_lapic_and_eoi_back() {
        let mut c = Chips::default();
        let mut a = apics(2);
        c.ioapic.s.redirtbl[5] = 0x45 | rte::LEVEL | (1u64 << 56);
        // The IOAPIC's one APIC plus the (unmasked) PIC input.
        assert_eq!(c.set_gsi(5, true, &mut Bus { set: &mut a }), 2);
        assert_eq!(a.kicks, [1]);
        assert_eq!(a.l[1].pending_vector(), Some(0x45));
        assert_eq!(a.l[0].pending_vector(), None);
        a.l[1].ack(0x45);
        let w = a.l[1].write_reg(lapic::reg::EOI, 0, 0);
        assert_eq!(w, lapic::Write::Eoi(0x45));
        c.set_gsi(5, false, &mut Bus { set: &mut a });
        c.ioapic.eoi(0x45, &mut Bus { set: &mut a });
        assert_eq!(c.ioapic.s.redirtbl[5] & rte::REMOTE_IRR, 0);
    }

    #[test]
    fn physical_logical_broadcast() {
        let mut a = apics(4);
        let m = msg(0x50, DeliveryMode::Fixed, false, 2);
        assert_eq!(deliver(&mut a, &m, Shorthand::None, None), 1);
        let m = msg(0x51, DeliveryMode::Fixed, true, 0b1010);
        assert_eq!(deliver(&mut a, &m, Shorthand::None, None), 2);
        assert_eq!(a.l[1].pending_vector(), Some(0x51));
        assert_eq!(a.l[3].pending_vector(), Some(0x51));
        let m = msg(0x52, DeliveryMode::Fixed, false, 0xff);
        assert_eq!(deliver(&mut a, &m, Shorthand::None, None), 4);
        assert_eq!(a.kicks, [2, 1, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn shorthands() {
        let mut a = apics(3);
        let m = msg(0x60, DeliveryMode::Fixed, false, 0);
        assert_eq!(deliver(&mut a, &m, Shorthand::SelfOnly, Some(1)), 1);
        assert_eq!(a.l[1].pending_vector(), Some(0x60));
        assert_eq!(deliver(&mut a, &m, Shorthand::AllExcludingSelf, Some(1)), 2);
        assert_eq!(deliver(&mut a, &m, Shorthand::AllIncludingSelf, Some(1)), 3);
    }

    #[test]
    fn lowest_priority_picks_one() {
        let mut a = apics(3);
        a.l[0].write_reg(lapic::reg::TPR, 0x20, 0);
        a.l[2].write_reg(lapic::reg::TPR, 0x10, 0);
        a.l[1].write_reg(lapic::reg::TPR, 0x30, 0);
        let m = msg(0x70, DeliveryMode::LowestPriority, true, 0xff);
        assert_eq!(deliver(&mut a, &m, Shorthand::None, None), 1);
        assert_eq!(a.kicks, [2]);
    }

    #[test]
    fn nmi_init_sipi_delivery() {
        let mut a = apics(2);
        let m = msg(0, DeliveryMode::Nmi, false, 1);
        assert_eq!(deliver(&mut a, &m, Shorthand::None, None), 1);
        assert_eq!(a.l[1].nmi_pending, 1);
        let init = msg(0, DeliveryMode::Init, false, 0);
        deliver(&mut a, &init, Shorthand::AllExcludingSelf, Some(0));
        assert_eq!(a.l[1].mp_state, lapic::MpState::InitReceived);
        assert_eq!(a.l[0].mp_state, lapic::MpState::Runnable);
        let sipi = msg(0x9f, DeliveryMode::StartUp, false, 0);
        deliver(&mut a, &sipi, Shorthand::AllExcludingSelf, Some(0));
        assert_eq!(a.l[1].mp_state, lapic::MpState::SipiReceived(0x9f));
    }

    #[test]
    fn pic_through_lint0() {
        let mut c = Chips::default();
        let a = apics(1);
        // BIOS-style programming, then IRQ 1.
        for (port, v) in [
            (0x20u16, 0x11u8),
            (0x21, 0x08),
            (0x21, 4),
            (0x21, 1),
            (0x21, 0),
        ] {
            c.pic.port_write(port, v);
        }
        let mut a2 = apics(1);
        c.set_gsi(1, true, &mut Bus { set: &mut a2 });
        assert!(a.l[0].accepts_pic());
        assert!(c.pic.int_output());
        assert_eq!(c.pic.intack(), 0x09);
    }
}
