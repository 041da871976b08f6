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
//! program themselves with `KVM_SET_GSI_ROUTING`, whose table ([`Routing`]) then replaces the
//! default one and may also turn a GSI into an MSI ([`msi_message`]).

pub mod ioapic;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod vmchip;

use alloc::vec::Vec;
use ioapic::{DeliveryMode, Ioapic, Message, Sink};
use kvmport_core::abi::x86::{KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE};
use kvmport_core::abi::{
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID, KvmIrqRoutingEntry,
    KvmIrqRoutingIrqchip, KvmIrqRoutingMsi,
};
use kvmport_core::{Errno, KResult};
use lapic::{Lapic, Shorthand};
use pic::PicPair;

/// GSIs of the default routing.
pub const NR_GSIS: u32 = 24;

/// `KVM_MAX_IRQ_ROUTES`: GSIs of a `KVM_SET_GSI_ROUTING` table are below it, and a table has
/// at most this many entries (`KVM_CAP_IRQ_ROUTING` reports it).
pub const MAX_ROUTES: u32 = 4096;

/// Where a GSI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Input `n` (0-15) of the 8259A pair; the slave's inputs are 8-15.
    Pic(u8),
    /// IOAPIC pin `n` (0-23).
    Ioapic(u8),
    /// A message-signalled interrupt.
    Msi {
        /// The address's low half (destination, redirection hint, destination mode).
        address_lo: u32,
        /// The data (vector, delivery mode, trigger mode).
        data: u32,
    },
}

/// A GSI reaches at most one input of each irqchip, or a single MSI (as on Linux KVM).
pub const ROUTES_PER_GSI: usize = 3;

/// The routes of one GSI.
pub type GsiRoutes = [Option<Route>; ROUTES_PER_GSI];

/// The routes of `gsi` in the default table (see the module's documentation).
pub fn default_routes(gsi: u32) -> GsiRoutes {
    match u8::try_from(gsi) {
        Ok(n) if n < 16 => [Some(Route::Ioapic(n)), Some(Route::Pic(n)), None],
        Ok(n) if u32::from(n) < NR_GSIS => [Some(Route::Ioapic(n)), None, None],
        _ => [None; ROUTES_PER_GSI],
    }
}

/// A `KVM_SET_GSI_ROUTING` table: `(gsi, route)` sorted by GSI.
#[derive(Debug, Default)]
pub struct Routing {
    entries: Vec<(u32, Route)>,
}

impl Routing {
    /// Checks user space's entries as Linux KVM does and builds the table. `EINVAL` for a GSI
    /// at or above [`MAX_ROUTES`] (checked over all entries first), flags other than
    /// `KVM_MSI_VALID_DEVID` on an MSI (the device id is not used on x86) or any on another
    /// type, a second route of a GSI to the same irqchip, an MSI sharing its GSI with
    /// anything, a PIC pin above 7 or an IOAPIC pin above 23, an unknown irqchip, or a type
    /// other than irqchip and MSI; `ENOMEM` when the table cannot be allocated.
    pub fn from_user(entries: &[KvmIrqRoutingEntry]) -> KResult<Routing> {
        if entries.iter().any(|e| e.gsi >= MAX_ROUTES) {
            return Err(Errno::EINVAL);
        }
        let mut v: Vec<(u32, Route)> = Vec::new();
        v.try_reserve_exact(entries.len())
            .map_err(|_| Errno::ENOMEM)?;
        for e in entries {
            let route = match e.r#type {
                KVM_IRQ_ROUTING_IRQCHIP if e.flags == 0 => {
                    let c: KvmIrqRoutingIrqchip = e.u.read_or_zeroed();
                    let pin = u8::try_from(c.pin).map_err(|_| Errno::EINVAL)?;
                    match c.irqchip {
                        KVM_IRQCHIP_PIC_MASTER if pin < 8 => Route::Pic(pin),
                        KVM_IRQCHIP_PIC_SLAVE if pin < 8 => Route::Pic(pin + 8),
                        KVM_IRQCHIP_IOAPIC if u32::from(pin) < NR_GSIS => Route::Ioapic(pin),
                        _ => return Err(Errno::EINVAL),
                    }
                }
                KVM_IRQ_ROUTING_MSI if e.flags & !KVM_MSI_VALID_DEVID == 0 => {
                    let m: KvmIrqRoutingMsi = e.u.read_or_zeroed();
                    Route::Msi {
                        address_lo: m.address_lo,
                        data: m.data,
                    }
                }
                _ => return Err(Errno::EINVAL),
            };
            let clash = v
                .iter()
                .filter(|(g, _)| *g == e.gsi)
                .any(|(_, old)| match (old, route) {
                    (Route::Pic(a), Route::Pic(b)) => (*a < 8) == (b < 8),
                    (Route::Ioapic(_), Route::Ioapic(_)) => true,
                    (Route::Msi { .. }, _) | (_, Route::Msi { .. }) => true,
                    _ => false,
                });
            if clash {
                return Err(Errno::EINVAL);
            }
            // Cannot fail: the capacity was reserved for every entry.
            v.push((e.gsi, route));
        }
        v.sort_by_key(|(g, _)| *g);
        Ok(Routing { entries: v })
    }

    /// The routes of `gsi`.
    pub fn routes(&self, gsi: u32) -> GsiRoutes {
        let mut out = [None; ROUTES_PER_GSI];
        let first = self.entries.partition_point(|(g, _)| *g < gsi);
        let mine = self
            .entries
            .iter()
            .skip(first)
            .take_while(|(g, _)| *g == gsi);
        for (slot, (_, r)) in out.iter_mut().zip(mine) {
            *slot = Some(*r);
        }
        out
    }
}

/// The message an MSI's address and data send. Bits 19:12 of the address are the
/// destination, bit 2 selects logical mode and bit 3 (redirection hint) lowest-priority
/// delivery; the data's bits 7:0 are the vector, 10:8 the delivery mode, 15 the trigger mode.
pub fn msi_message(address_lo: u32, data: u32) -> Message {
    let mut mode = DeliveryMode::from_bits(u64::from(data >> 8));
    if address_lo & (1 << 3) != 0 && mode == DeliveryMode::Fixed {
        mode = DeliveryMode::LowestPriority;
    }
    Message {
        // CAST: the low byte.
        vector: data as u8,
        mode,
        logical: address_lo & (1 << 2) != 0,
        // CAST: bits 19:12.
        dest: (address_lo >> 12) as u8,
        level: data & (1 << 15) != 0,
    }
}

/// The VM-wide chips: the PIC pair, the IOAPIC, and the PIT once `KVM_CREATE_PIT2` made it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chips {
    /// The 8259A pair.
    pub pic: PicPair,
    /// The I/O APIC.
    pub ioapic: Ioapic,
    /// The 8254.
    pub pit: Option<pit::Pit>,
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
        self.set_routes(&default_routes(gsi), level, sink)
    }

    /// Drives a GSI with `routes` to `level`; returns the `KVM_IRQ_LINE_STATUS` status
    /// ([`combine`]; -1 without a route). An MSI route sends its message when the line is
    /// raised (a lowered MSI line does nothing, -1), counting the APICs that took it.
    pub fn set_routes(&mut self, routes: &GsiRoutes, level: bool, sink: &mut dyn Sink) -> i32 {
        let mut results = [-1i32; ROUTES_PER_GSI];
        for (r, route) in results.iter_mut().zip(routes.iter()) {
            *r = match route {
                None => -1,
                Some(Route::Ioapic(pin)) => self.ioapic.set_line(u32::from(*pin), level, sink),
                Some(Route::Pic(n)) => self.pic.set_irq(u32::from(*n), level),
                Some(Route::Msi { address_lo, data }) if level => {
                    let n = sink.deliver(&msi_message(*address_lo, *data));
                    i32::try_from(n).unwrap_or(i32::MAX)
                }
                Some(Route::Msi { .. }) => -1,
            };
        }
        combine(&results)
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

    /// An irqchip routing entry.
    fn chip_entry(gsi: u32, irqchip: u32, pin: u32) -> KvmIrqRoutingEntry {
        let mut e = KvmIrqRoutingEntry {
            gsi,
            r#type: KVM_IRQ_ROUTING_IRQCHIP,
            ..Default::default()
        };
        e.u.write(&KvmIrqRoutingIrqchip { irqchip, pin });
        e
    }

    /// An MSI routing entry.
    fn msi_entry(gsi: u32, address_lo: u32, data: u32) -> KvmIrqRoutingEntry {
        let mut e = KvmIrqRoutingEntry {
            gsi,
            r#type: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        e.u.write(&KvmIrqRoutingMsi {
            address_lo,
            data,
            ..Default::default()
        });
        e
    }

    #[test]
    fn routing_table_checks() {
        use kvmport_core::abi::x86::{
            KVM_IRQCHIP_IOAPIC as IO, KVM_IRQCHIP_PIC_MASTER as PM, KVM_IRQCHIP_PIC_SLAVE as PS,
        };
        let ok = |e: &[KvmIrqRoutingEntry]| Routing::from_user(e).map(|_| ());
        assert_eq!(ok(&[]), Ok(()));
        // One route per irqchip for a GSI: PIC master, PIC slave and IOAPIC together are fine.
        assert_eq!(
            ok(&[
                chip_entry(9, PM, 1),
                chip_entry(9, PS, 1),
                chip_entry(9, IO, 9)
            ]),
            Ok(())
        );
        for bad in [
            alloc::vec![chip_entry(MAX_ROUTES, IO, 0)],
            alloc::vec![chip_entry(0, PM, 8)],
            alloc::vec![chip_entry(0, PS, 8)],
            alloc::vec![chip_entry(0, IO, 24)],
            alloc::vec![chip_entry(0, IO, u32::MAX)],
            alloc::vec![chip_entry(0, 3, 0)],
            alloc::vec![chip_entry(4, IO, 4), chip_entry(4, IO, 5)],
            alloc::vec![chip_entry(4, PM, 4), chip_entry(4, PM, 5)],
            alloc::vec![msi_entry(4, 0xfee0_0000, 0x30), chip_entry(4, IO, 4)],
            alloc::vec![chip_entry(4, IO, 4), msi_entry(4, 0xfee0_0000, 0x30)],
            alloc::vec![
                msi_entry(4, 0xfee0_0000, 0x30),
                msi_entry(4, 0xfee0_0000, 0x31),
            ],
        ] {
            assert_eq!(ok(&bad), Err(Errno::EINVAL), "{bad:?}");
        }
        // Flags: only KVM_MSI_VALID_DEVID, only on an MSI.
        let mut e = msi_entry(1, 0xfee0_0000, 0x30);
        e.flags = KVM_MSI_VALID_DEVID;
        assert_eq!(ok(&[e]), Ok(()));
        e.flags = 2;
        assert_eq!(ok(&[e]), Err(Errno::EINVAL));
        let mut e = chip_entry(1, IO, 1);
        e.flags = KVM_MSI_VALID_DEVID;
        assert_eq!(ok(&[e]), Err(Errno::EINVAL));
        // Types other than irqchip and MSI.
        for t in [0, 3, 4, 5, 6, u32::MAX] {
            let mut e = chip_entry(1, IO, 1);
            e.r#type = t;
            assert_eq!(ok(&[e]), Err(Errno::EINVAL), "type {t}");
        }
        // A GSI out of range is refused even when an earlier entry is bad for another reason.
        assert_eq!(
            ok(&[chip_entry(0, 3, 0), chip_entry(u32::MAX, IO, 0)]),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn routes_lookup_and_delivery() {
        use kvmport_core::abi::x86::{KVM_IRQCHIP_IOAPIC as IO, KVM_IRQCHIP_PIC_SLAVE as PS};
        let t = Routing::from_user(&[
            chip_entry(40, IO, 7),
            msi_entry(30, 0xfee0_1000, 0x4041),
            chip_entry(2, PS, 3),
            chip_entry(40, PS, 0),
        ])
        .unwrap();
        assert_eq!(
            t.routes(40),
            [Some(Route::Ioapic(7)), Some(Route::Pic(8)), None]
        );
        assert_eq!(t.routes(2), [Some(Route::Pic(11)), None, None]);
        assert_eq!(t.routes(0), [None; ROUTES_PER_GSI]);
        assert_eq!(t.routes(u32::MAX), [None; ROUTES_PER_GSI]);
        let mut c = Chips::default();
        let mut a = apics(2);
        // Pin 7 is masked (-1), the slave's input 0 is not (1); IRR bit 7, not 40.
        assert_eq!(
            c.set_routes(&t.routes(40), true, &mut Bus { set: &mut a }),
            1
        );
        assert_eq!(c.ioapic.s.irr, 1 << 7);
        assert_eq!(c.pic.slave.s.irr, 1);
        // No route: -1 and nothing changes.
        assert_eq!(
            c.set_routes(&t.routes(5), true, &mut Bus { set: &mut a }),
            -1
        );
        assert_eq!(c.ioapic.s.irr, 1 << 7);
        // The MSI (physical destination 1, vector 0x41, level-triggered) on the raised edge
        // only.
        assert_eq!(
            c.set_routes(&t.routes(30), true, &mut Bus { set: &mut a }),
            1
        );
        assert_eq!(a.l[1].pending_vector(), Some(0x41));
        assert_eq!(a.l[0].pending_vector(), None);
        assert_eq!(
            c.set_routes(&t.routes(30), false, &mut Bus { set: &mut a }),
            -1
        );
    }

    #[test]
    fn msi_messages() {
        let m = msi_message(0xfee0_3000, 0x0031);
        assert_eq!(m, msg(0x31, DeliveryMode::Fixed, false, 3));
        // Logical destination, NMI delivery, level trigger.
        let m = msi_message(0xfee0_a004, 0x8400);
        assert_eq!(
            m,
            Message {
                vector: 0,
                mode: DeliveryMode::Nmi,
                logical: true,
                dest: 0x0a,
                level: true
            }
        );
        // The redirection hint turns fixed delivery into lowest priority.
        assert_eq!(
            msi_message(0xfee0_f00c, 0x22).mode,
            DeliveryMode::LowestPriority
        );
        // Any bits at all decode without panicking.
        let _ = msi_message(u32::MAX, u32::MAX);
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
