//! The I/O APIC, written from the Intel 82093AA datasheet: 24 redirection entries behind the
//! indirect IOREGSEL/IOWIN window at its MMIO base (0xfec00000 by default), the remote IRR of
//! level-triggered entries, and delivery messages to the local APICs.
//!
//! The state is the ABI's `struct kvm_ioapic_state` plus the input line levels (not in the
//! ABI). `irr` holds the requests not yet delivered: an edge entry's bit is set by a rising
//! edge and cleared when the message goes out; a level entry's bit follows its line.

use kvmport_core::abi::x86::{KVM_IOAPIC_NUM_PINS, KvmIoapicState};

/// The default MMIO base.
pub const DEFAULT_BASE: u64 = 0xfec0_0000;
/// Bytes of MMIO space the IOAPIC decodes.
pub const MMIO_SIZE: u64 = 0x100;
/// Number of redirection entries.
pub const PINS: usize = KVM_IOAPIC_NUM_PINS;
/// The version register: version 0x11 (the 82093AA), highest entry 23.
pub const VERSION: u32 = 0x11 | ((PINS as u32 - 1) << 16);

/// Redirection entry bits.
pub mod rte {
    /// Delivery mode, bits 8-10.
    pub const MODE_SHIFT: u32 = 8;
    /// Destination mode: logical.
    pub const LOGICAL: u64 = 1 << 11;
    /// Delivery status (read-only).
    pub const DELIVS: u64 = 1 << 12;
    /// Input polarity: active low.
    pub const POLARITY: u64 = 1 << 13;
    /// Remote IRR (read-only): a level interrupt was accepted and not yet EOIed.
    pub const REMOTE_IRR: u64 = 1 << 14;
    /// Trigger mode: level.
    pub const LEVEL: u64 = 1 << 15;
    /// Masked.
    pub const MASK: u64 = 1 << 16;
    /// Destination, bits 56-63.
    pub const DEST_SHIFT: u32 = 56;
    /// Bits the guest may write (vector, mode, destination mode, polarity, trigger, mask,
    /// destination); the rest are read-only or reserved.
    pub const WRITABLE: u64 = 0xff | (7 << 8) | LOGICAL | POLARITY | LEVEL | MASK | (0xff << 56);
}

/// Delivery modes of redirection entries, LVT entries, MSIs and the ICR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// The vector, to every destination.
    Fixed,
    /// The vector, to one of the destinations.
    LowestPriority,
    /// System management interrupt (not modelled: dropped).
    Smi,
    /// Non-maskable interrupt.
    Nmi,
    /// INIT.
    Init,
    /// Start-up IPI (ICR only).
    StartUp,
    /// External interrupt: the vector comes from the 8259A's acknowledge cycle.
    ExtInt,
    /// The reserved encoding 3 (dropped).
    Reserved,
}

impl DeliveryMode {
    /// Decodes the three mode bits.
    pub fn from_bits(bits: u64) -> DeliveryMode {
        match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            6 => DeliveryMode::StartUp,
            7 => DeliveryMode::ExtInt,
            _ => DeliveryMode::Reserved,
        }
    }
}

/// An interrupt message to the local APICs (from the IOAPIC, an LVT entry or an IPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The vector.
    pub vector: u8,
    /// How it is delivered.
    pub mode: DeliveryMode,
    /// Logical (rather than physical) destination mode.
    pub logical: bool,
    /// The destination: an APIC id (physical, 0xff broadcast) or a logical mask.
    pub dest: u8,
    /// Level-triggered (the target sets its TMR bit and broadcasts its EOI).
    pub level: bool,
}

impl Message {
    /// The message a redirection entry sends.
    pub fn from_rte(e: u64) -> Message {
        Message {
            // CAST: the low byte.
            vector: e as u8,
            mode: DeliveryMode::from_bits(e >> rte::MODE_SHIFT),
            logical: e & rte::LOGICAL != 0,
            // CAST: the high byte.
            dest: (e >> rte::DEST_SHIFT) as u8,
            level: e & rte::LEVEL != 0,
        }
    }
}

/// Where the IOAPIC's messages go: the local APICs of the VM.
pub trait Sink {
    /// Delivers `msg`; returns how many local APICs accepted it.
    fn deliver(&mut self, msg: &Message) -> u32;
}

/// The I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ioapic {
    /// The registers, in the ABI layout.
    pub s: KvmIoapicState,
    /// Input line levels, one bit per pin.
    pub lines: u32,
}

impl Default for Ioapic {
    fn default() -> Self {
        Ioapic::new()
    }
}

impl Ioapic {
    /// The IOAPIC after reset: base 0xfec00000, id 0, every entry masked.
    pub fn new() -> Ioapic {
        Ioapic {
            s: KvmIoapicState {
                base_address: DEFAULT_BASE,
                redirtbl: [rte::MASK; PINS],
                ..Default::default()
            },
            lines: 0,
        }
    }

    /// Replaces the state (`KVM_SET_IRQCHIP`): taken as given, with `irr` limited to the
    /// existing pins. The line levels are taken to be the requests of level entries.
    pub fn set_state(&mut self, s: &KvmIoapicState) {
        self.s = *s;
        self.s.irr &= (1 << PINS) - 1;
        let mut level = 0u32;
        for (pin, e) in self.s.redirtbl.iter().enumerate() {
            if e & rte::LEVEL != 0 {
                level |= 1 << pin;
            }
        }
        self.lines = self.s.irr & level;
    }

    /// Whether `gpa` is inside the IOAPIC's MMIO window.
    pub fn contains(&self, gpa: u64) -> bool {
        gpa.wrapping_sub(self.s.base_address) < MMIO_SIZE
    }

    fn entry(&self, pin: usize) -> u64 {
        self.s.redirtbl.get(pin).copied().unwrap_or(rte::MASK)
    }

    fn entry_mut(&mut self, pin: usize) -> Option<&mut u64> {
        self.s.redirtbl.get_mut(pin)
    }

    /// Drives input `pin` to `level` (active high: polarity is left to the guest's routing,
    /// as Linux KVM does). Returns the `KVM_IRQ_LINE_STATUS` contribution: the number of local
    /// APICs that accepted a message (at least 1), 0 if the request was coalesced with one
    /// still pending, -1 if it was masked or nobody accepted it; a de-assertion returns 1.
    pub fn set_line(&mut self, pin: u32, level: bool, sink: &mut dyn Sink) -> i32 {
        if pin as usize >= PINS {
            return -1;
        }
        let bit = 1u32 << pin;
        let old = self.lines & bit != 0;
        if !level {
            self.lines &= !bit;
            self.s.irr &= !bit;
            return 1;
        }
        self.lines |= bit;
        let e = self.entry(pin as usize);
        if e & rte::LEVEL == 0 {
            if old {
                return 0;
            }
        } else if e & rte::REMOTE_IRR != 0 {
            self.s.irr |= bit;
            return 0;
        }
        self.s.irr |= bit;
        self.service(pin as usize, sink)
    }

    /// Sends the message of `pin` if its request is pending and the entry is unmasked (and,
    /// for level entries, not waiting for an EOI). Returns as [`Ioapic::set_line`].
    fn service(&mut self, pin: usize, sink: &mut dyn Sink) -> i32 {
        let bit = 1u32 << pin;
        let e = self.entry(pin);
        if self.s.irr & bit == 0 || e & rte::MASK != 0 {
            return -1;
        }
        if e & rte::LEVEL != 0 && e & rte::REMOTE_IRR != 0 {
            return 0;
        }
        let n = sink.deliver(&Message::from_rte(e));
        if e & rte::LEVEL != 0 {
            if let Some(e) = self.entry_mut(pin) {
                *e |= rte::REMOTE_IRR;
            }
        } else {
            self.s.irr &= !bit;
        }
        if n > 0 {
            n.min(i32::MAX as u32) as i32
        } else {
            -1
        }
    }

    /// A local APIC ended a level-triggered `vector`: clears remote IRR of every entry with
    /// that vector and re-sends those whose line is still asserted.
    pub fn eoi(&mut self, vector: u8, sink: &mut dyn Sink) {
        for pin in 0..PINS {
            let e = self.entry(pin);
            // CAST: the low byte.
            if e as u8 != vector || e & rte::REMOTE_IRR == 0 {
                continue;
            }
            if let Some(e) = self.entry_mut(pin) {
                *e &= !rte::REMOTE_IRR;
            }
            if self.lines & (1 << pin) != 0 {
                self.s.irr |= 1 << pin;
                self.service(pin, sink);
            }
        }
    }

    /// The value of indirect register `index`.
    fn read_reg(&self, index: u32) -> u32 {
        match index {
            0x00 => (self.s.id & 0xf) << 24,
            0x01 => VERSION,
            0x02 => (self.s.id & 0xf) << 24,
            0x10..=0x3f => {
                let e = self.entry(((index - 0x10) / 2) as usize);
                // CAST: one half of the entry.
                if index % 2 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// Writes indirect register `index`.
    fn write_reg(&mut self, index: u32, val: u32, sink: &mut dyn Sink) {
        match index {
            0x00 => self.s.id = (val >> 24) & 0xf,
            0x10..=0x3f => {
                let pin = ((index - 0x10) / 2) as usize;
                let Some(e) = self.entry_mut(pin) else {
                    return;
                };
                let old = *e;
                let new = if index % 2 == 0 {
                    (old & !0xffff_ffff) | u64::from(val)
                } else {
                    (old & 0xffff_ffff) | (u64::from(val) << 32)
                };
                let mut merged = (new & rte::WRITABLE) | (old & (rte::REMOTE_IRR | rte::DELIVS));
                // Remote IRR only means something for level entries.
                if merged & rte::LEVEL == 0 {
                    merged &= !rte::REMOTE_IRR;
                }
                *e = merged;
                // A level request that became deliverable (unmasked, or made level) goes out.
                let bit = 1u32 << pin;
                if merged & rte::LEVEL != 0 && self.lines & bit != 0 {
                    self.s.irr |= bit;
                }
                if self.s.irr & bit != 0 && merged & rte::MASK == 0 {
                    self.service(pin, sink);
                }
            }
            // Version and arbitration are read-only.
            _ => {}
        }
    }

    /// A guest read of `len` bytes at `offset` in the MMIO window. IOREGSEL at 0x00, IOWIN
    /// at 0x10; other offsets read as zero.
    pub fn mmio_read(&self, offset: u64, len: usize) -> u64 {
        let v = match offset & !3 {
            0x00 => u64::from(self.s.ioregsel),
            0x10 => u64::from(self.read_reg(self.s.ioregsel)),
            _ => 0,
        };
        let shifted = v >> ((offset & 3) * 8);
        match len {
            1 => shifted & 0xff,
            2 => shifted & 0xffff,
            4 => shifted & 0xffff_ffff,
            _ => shifted,
        }
    }

    /// A guest write of `val` at `offset` in the MMIO window (32-bit accesses; narrower
    /// writes to IOREGSEL select the low byte).
    pub fn mmio_write(&mut self, offset: u64, val: u64, sink: &mut dyn Sink) {
        // CAST: the registers are 32 bits wide.
        let v = val as u32;
        match offset {
            0x00 => self.s.ioregsel = v & 0xff,
            0x10 => self.write_reg(self.s.ioregsel, v, sink),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Records messages; accepts each with `accept` APICs.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<Message>,
        accept: u32,
    }

    impl Sink for Recorder {
        fn deliver(&mut self, msg: &Message) -> u32 {
            self.sent.push(*msg);
            self.accept
        }
    }

    fn rec() -> Recorder {
        Recorder {
            sent: Vec::new(),
            accept: 1,
        }
    }

    fn program(io: &mut Ioapic, pin: u32, e: u64, sink: &mut Recorder) {
        io.mmio_write(0, u64::from(0x11 + 2 * pin), sink);
        io.mmio_write(0x10, e >> 32, sink);
        io.mmio_write(0, u64::from(0x10 + 2 * pin), sink);
        io.mmio_write(0x10, e & 0xffff_ffff, sink);
    }

    fn read(io: &mut Ioapic, index: u32, sink: &mut Recorder) -> u32 {
        io.mmio_write(0, u64::from(index), sink);
        io.mmio_read(0x10, 4) as u32
    }

    #[test]
    fn reset_state_and_id_version() {
        let mut io = Ioapic::new();
        let mut r = rec();
        assert_eq!(io.s.base_address, 0xfec0_0000);
        assert!(io.s.redirtbl.iter().all(|e| *e == rte::MASK));
        assert_eq!(read(&mut io, 1, &mut r), 0x0017_0011);
        io.mmio_write(0, 0, &mut r);
        io.mmio_write(0x10, 0x0500_0000, &mut r);
        assert_eq!(io.s.id, 5);
        assert_eq!(read(&mut io, 0, &mut r), 0x0500_0000);
        assert_eq!(read(&mut io, 2, &mut r), 0x0500_0000);
        assert_eq!(io.mmio_read(0, 4), 2, "IOREGSEL reads back");
        assert_eq!(read(&mut io, 0x40, &mut r), 0, "beyond the table");
        assert!(io.contains(0xfec0_0010) && !io.contains(0xfec0_0100) && !io.contains(0));
    }

    #[test]
    fn masked_edge_is_held_then_delivered() {
        let mut io = Ioapic::new();
        let mut r = rec();
        assert_eq!(io.set_line(4, true, &mut r), -1);
        assert_eq!(io.s.irr, 1 << 4);
        assert!(r.sent.is_empty());
        assert_eq!(io.set_line(4, false, &mut r), 1);
        assert_eq!(io.s.irr, 0);
        program(&mut io, 4, 0x31 | (3u64 << 56), &mut r);
        assert_eq!(io.set_line(4, true, &mut r), 1);
        assert_eq!(
            r.sent,
            [Message {
                vector: 0x31,
                mode: DeliveryMode::Fixed,
                logical: false,
                dest: 3,
                level: false
            }]
        );
        assert_eq!(io.s.irr, 0, "edge request consumed");
        assert_eq!(io.set_line(4, true, &mut r), 0, "no new edge: coalesced");
        assert_eq!(r.sent.len(), 1);
    }

    #[test]
    fn nobody_accepting_is_minus_one() {
        let mut io = Ioapic::new();
        let mut r = rec();
        r.accept = 0;
        program(&mut io, 1, 0x40, &mut r);
        assert_eq!(io.set_line(1, true, &mut r), -1);
        r.accept = 3;
        io.set_line(1, false, &mut r);
        assert_eq!(io.set_line(1, true, &mut r), 3);
    }

    #[test]
    fn level_remote_irr_and_eoi() {
        let mut io = Ioapic::new();
        let mut r = rec();
        let e = 0x41 | rte::LEVEL | rte::LOGICAL | (1u64 << 56);
        program(&mut io, 9, e, &mut r);
        assert_eq!(io.set_line(9, true, &mut r), 1);
        assert_ne!(io.s.redirtbl[9] & rte::REMOTE_IRR, 0);
        assert!(r.sent[0].level && r.sent[0].logical);
        // Still asserted, remote IRR set: nothing new.
        assert_eq!(io.set_line(9, true, &mut r), 0);
        assert_eq!(r.sent.len(), 1);
        // EOI with the line still high re-sends.
        io.eoi(0x41, &mut r);
        assert_eq!(r.sent.len(), 2);
        assert_ne!(io.s.redirtbl[9] & rte::REMOTE_IRR, 0);
        // Line dropped, EOI: done.
        io.set_line(9, false, &mut r);
        io.eoi(0x41, &mut r);
        assert_eq!(r.sent.len(), 2);
        assert_eq!(io.s.redirtbl[9] & rte::REMOTE_IRR, 0);
        // EOI of another vector touches nothing.
        io.set_line(9, true, &mut r);
        io.eoi(0x42, &mut r);
        assert_eq!(r.sent.len(), 3);
    }

    #[test]
    fn unmasking_a_held_level_request_delivers() {
        let mut io = Ioapic::new();
        let mut r = rec();
        program(&mut io, 2, 0x50 | rte::LEVEL | rte::MASK, &mut r);
        assert_eq!(io.set_line(2, true, &mut r), -1);
        assert!(r.sent.is_empty());
        program(&mut io, 2, 0x50 | rte::LEVEL, &mut r);
        assert_eq!(r.sent.len(), 1);
    }

    #[test]
    fn read_only_bits_are_kept() {
        let mut io = Ioapic::new();
        let mut r = rec();
        program(&mut io, 0, 0x60 | rte::LEVEL, &mut r);
        io.set_line(0, true, &mut r);
        // The guest writes the low half with remote IRR and delivery status clear/set.
        io.mmio_write(0, 0x10, &mut r);
        io.mmio_write(0x10, 0x60 | rte::LEVEL | rte::DELIVS, &mut r);
        assert_ne!(io.s.redirtbl[0] & rte::REMOTE_IRR, 0);
        assert_eq!(io.s.redirtbl[0] & rte::DELIVS, 0);
        // Reserved bits 17-55 do not stick.
        program(&mut io, 3, 0x00ff_ffff_fffe_0000, &mut r);
        assert_eq!(io.s.redirtbl[3], 0);
    }

    #[test]
    fn modes_decode() {
        let m = Message::from_rte(0xab | (7 << 8));
        assert_eq!(m.mode, DeliveryMode::ExtInt);
        assert_eq!(Message::from_rte(4 << 8).mode, DeliveryMode::Nmi);
        assert_eq!(Message::from_rte(1 << 8).mode, DeliveryMode::LowestPriority);
        assert_eq!(Message::from_rte(3 << 8).mode, DeliveryMode::Reserved);
    }

    #[test]
    fn narrow_reads_and_hostile_access() {
        let mut io = Ioapic::new();
        let mut r = rec();
        io.mmio_write(0, 0x10, &mut r);
        assert_eq!(io.mmio_read(0x12, 2), 1, "mask bit in the upper half");
        assert_eq!(io.mmio_read(0x10, 1), 0);
        for sel in 0..=0xffu64 {
            io.mmio_write(0, sel, &mut r);
            io.mmio_write(0x10, u64::MAX, &mut r);
            let _ = io.mmio_read(0x10, 8);
            io.mmio_write(0xf8, u64::MAX, &mut r);
        }
        assert_eq!(io.set_line(24, true, &mut r), -1);
        assert_eq!(io.set_line(u32::MAX, true, &mut r), -1);
        let mut s = io.s;
        s.irr = u32::MAX;
        io.set_state(&s);
        assert_eq!(io.s.irr, 0x00ff_ffff);
        io.eoi(0xff, &mut r);
    }
}
