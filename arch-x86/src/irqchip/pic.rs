//! The 8259A programmable interrupt controller, and the PC's cascaded pair of them (master at
//! ports 0x20/0x21, slave at 0xa0/0xa1 on the master's IR2, edge/level control registers at
//! 0x4d0/0x4d1), written from the Intel 8259A datasheet.
//!
//! The state of one chip is kept in the ABI's own `struct kvm_pic_state` layout, so
//! `KVM_GET_IRQCHIP`/`KVM_SET_IRQCHIP` are plain copies (Linux stores those bytes as given, and
//! so does this model). Boolean fields count as set when non-zero.
//!
//! Conventions of this model:
//! - `last_irr` is the level of each input line as last driven (the datasheet's edge-sense
//!   latch); `irr` is the request register.
//! - Edge-triggered inputs (ELCR bit clear) set IRR on a rising edge; it stays set until the
//!   interrupt is acknowledged. Level-triggered inputs (ELCR bit set) follow the line.
//! - `init_state`: 0 ready, 1 ICW2 expected, 2 ICW3 expected, 3 ICW4 expected; bit 2 records
//!   ICW1's SNGL bit (no ICW3) while initializing.
//! - The master's IR2 is driven by the slave's INT output.

use kvmport_core::abi::x86::KvmPicState;

/// `init_state` bit: ICW1 asked for single mode (no ICW3).
const INIT_SINGLE: u8 = 4;

/// What the chip's priority logic resolved.
fn rank(pin: u8, priority_add: u8) -> u8 {
    pin.wrapping_sub(priority_add) & 7
}

/// One 8259A.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pic {
    /// The chip's registers, in the ABI layout.
    pub s: KvmPicState,
}

impl Pic {
    /// A chip after power-on: everything zero, and `elcr_mask` the ELCR bits the PC allows
    /// to be level-triggered (0xf8 on the master: IRQ0-2 are always edge; 0xde on the slave:
    /// IRQ8 and IRQ13 are always edge).
    pub fn new(elcr_mask: u8) -> Pic {
        Pic {
            s: KvmPicState {
                elcr_mask,
                ..Default::default()
            },
        }
    }

    /// The highest-priority pin among the bits of `mask`, under the current rotation.
    fn highest(&self, mask: u8) -> Option<u8> {
        (0..8u8)
            .map(|k| k.wrapping_add(self.s.priority_add) & 7)
            .find(|pin| mask & (1 << pin) != 0)
    }

    /// The pin the chip would interrupt for: the highest-priority unmasked request above
    /// every in-service interrupt (in special mask mode, masked in-service levels do not
    /// block; in special fully nested mode on the master, IR2 in service does not block the
    /// cascade).
    pub fn pending(&self, master: bool) -> Option<u8> {
        let pin = self.highest(self.s.irr & !self.s.imr)?;
        let mut isr = self.s.isr;
        if self.s.special_mask != 0 {
            isr &= !self.s.imr;
        }
        if master && self.s.special_fully_nested_mode != 0 {
            isr &= !(1 << 2);
        }
        match self.highest(isr) {
            Some(cur) if rank(cur, self.s.priority_add) <= rank(pin, self.s.priority_add) => None,
            _ => Some(pin),
        }
    }

    /// The INT output.
    pub fn int_output(&self, master: bool) -> bool {
        self.pending(master).is_some()
    }

    /// Drives input `pin` (0-7) to `level`. Returns 1 if the pin is unmasked in IMR, -1 if it
    /// is masked (the per-chip `KVM_IRQ_LINE_STATUS` contribution measured on Linux).
    pub fn set_line(&mut self, pin: u8, level: bool) -> i32 {
        let mask = 1u8 << (pin & 7);
        if self.s.elcr & mask != 0 {
            if level {
                self.s.irr |= mask;
                self.s.last_irr |= mask;
            } else {
                self.s.irr &= !mask;
                self.s.last_irr &= !mask;
            }
        } else if level {
            if self.s.last_irr & mask == 0 {
                self.s.irr |= mask;
            }
            self.s.last_irr |= mask;
        } else {
            self.s.last_irr &= !mask;
        }
        if self.s.imr & mask != 0 { -1 } else { 1 }
    }

    /// The interrupt acknowledge cycle for `pin` (from [`Pic::pending`]): moves it from IRR
    /// to ISR (edge requests are consumed; level requests follow their line), or, in
    /// automatic-EOI mode, ends it at once (rotating if asked).
    fn ack(&mut self, pin: u8) {
        let mask = 1u8 << (pin & 7);
        if self.s.elcr & mask == 0 {
            self.s.irr &= !mask;
        }
        if self.s.auto_eoi != 0 {
            if self.s.rotate_on_auto_eoi != 0 {
                self.s.priority_add = (pin + 1) & 7;
            }
        } else {
            self.s.isr |= mask;
        }
    }

    /// The vector the chip puts on the bus for `pin`.
    fn vector(&self, pin: u8) -> u8 {
        (self.s.irq_base & 0xf8) | (pin & 7)
    }

    /// ICW1: starts initialization.
    fn icw1(&mut self, val: u8) {
        self.s.init4 = val & 1;
        self.s.init_state = 1 | if val & 2 != 0 { INIT_SINGLE } else { 0 };
        self.s.imr = 0;
        self.s.isr = 0;
        self.s.irr &= self.s.elcr;
        self.s.last_irr &= self.s.elcr;
        self.s.priority_add = 0;
        self.s.special_mask = 0;
        self.s.read_reg_select = 0;
        self.s.poll = 0;
        self.s.rotate_on_auto_eoi = 0;
        if val & 1 == 0 {
            self.s.auto_eoi = 0;
            self.s.special_fully_nested_mode = 0;
        }
    }

    /// OCW2: end of interrupt and rotation commands.
    fn ocw2(&mut self, val: u8) {
        let level = val & 7;
        match val >> 5 {
            // Non-specific EOI, with or without rotation.
            0b001 | 0b101 => {
                if let Some(pin) = self.highest(self.s.isr) {
                    self.s.isr &= !(1 << pin);
                    if val >> 5 == 0b101 {
                        self.s.priority_add = (pin + 1) & 7;
                    }
                }
            }
            // Specific EOI, with or without rotation.
            0b011 | 0b111 => {
                self.s.isr &= !(1 << level);
                if val >> 5 == 0b111 {
                    self.s.priority_add = (level + 1) & 7;
                }
            }
            // Rotate in automatic-EOI mode: set / clear.
            0b100 => self.s.rotate_on_auto_eoi = 1,
            0b000 => self.s.rotate_on_auto_eoi = 0,
            // Set priority: `level` becomes the lowest.
            0b110 => self.s.priority_add = (level + 1) & 7,
            // 0b010: no operation.
            _ => {}
        }
    }

    /// A write to the command port (A0 = 0).
    fn write_cmd(&mut self, val: u8) {
        if val & 0x10 != 0 {
            self.icw1(val);
        } else if val & 0x08 != 0 {
            // OCW3.
            if val & 0x04 != 0 {
                self.s.poll = 1;
            }
            if val & 0x02 != 0 {
                self.s.read_reg_select = val & 1;
            }
            if val & 0x40 != 0 {
                self.s.special_mask = (val >> 5) & 1;
            }
        } else {
            self.ocw2(val);
        }
    }

    /// A write to the data port (A0 = 1): ICW2-4 while initializing, else OCW1 (IMR).
    fn write_data(&mut self, val: u8) {
        let single = self.s.init_state & INIT_SINGLE != 0;
        let after_icw3 = if self.s.init4 != 0 { 3 } else { 0 };
        match self.s.init_state & 3 {
            1 => {
                self.s.irq_base = val & 0xf8;
                self.s.init_state = if single { after_icw3 } else { 2 };
            }
            2 => self.s.init_state = after_icw3,
            3 => {
                self.s.special_fully_nested_mode = (val >> 4) & 1;
                self.s.auto_eoi = (val >> 1) & 1;
                self.s.init_state = 0;
            }
            _ => {
                self.s.init_state = 0;
                self.s.imr = val;
            }
        }
    }

    /// A read of the command (A0 = 0) or data port, outside poll mode.
    fn read(&self, a0: bool) -> u8 {
        if a0 {
            self.s.imr
        } else if self.s.read_reg_select != 0 {
            self.s.isr
        } else {
            self.s.irr
        }
    }
}

/// The PC's two cascaded 8259As.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PicPair {
    /// The master (IRQ0-7, ports 0x20/0x21).
    pub master: Pic,
    /// The slave (IRQ8-15, ports 0xa0/0xa1), on the master's IR2.
    pub slave: Pic,
}

impl Default for PicPair {
    fn default() -> Self {
        PicPair::new()
    }
}

/// The master's command port.
pub const PORT_MASTER: u16 = 0x20;
/// The slave's command port.
pub const PORT_SLAVE: u16 = 0xa0;
/// The master's edge/level control register.
pub const PORT_ELCR_MASTER: u16 = 0x4d0;
/// The slave's edge/level control register.
pub const PORT_ELCR_SLAVE: u16 = 0x4d1;

impl PicPair {
    /// Both chips after power-on.
    pub fn new() -> PicPair {
        PicPair {
            master: Pic::new(0xf8),
            slave: Pic::new(0xde),
        }
    }

    /// Whether `port` belongs to the pair.
    pub fn owns_port(port: u16) -> bool {
        matches!(port, 0x20 | 0x21 | 0xa0 | 0xa1 | 0x4d0 | 0x4d1)
    }

    /// Re-evaluates the cascade after the chips' state was replaced (`KVM_SET_IRQCHIP`).
    pub fn refresh(&mut self) {
        self.cascade();
    }

    /// Re-evaluates the cascade: the master's IR2 follows the slave's INT output.
    fn cascade(&mut self) {
        let int = self.slave.int_output(false);
        self.master.set_line(2, int);
    }

    /// Drives ISA IRQ `irq` (0-15) to `level`; the result as [`Pic::set_line`] (-1 for an
    /// IRQ the pair does not have).
    pub fn set_irq(&mut self, irq: u32, level: bool) -> i32 {
        let r = match irq {
            // CAST: below 16.
            0..=7 => self.master.set_line(irq as u8, level),
            8..=15 => self.slave.set_line((irq - 8) as u8, level),
            _ => return -1,
        };
        self.cascade();
        r
    }

    /// The master's INT output: the PIC wants the CPU's attention.
    pub fn int_output(&self) -> bool {
        self.master.int_output(true)
    }

    /// The CPU's interrupt acknowledge: the vector to take. Without a request this is the
    /// spurious IRQ7 (or IRQ15 when the cascade's request went away), as the datasheet
    /// describes.
    pub fn intack(&mut self) -> u8 {
        let Some(pin) = self.master.pending(true) else {
            return self.master.vector(7);
        };
        self.master.ack(pin);
        let vector = if pin == 2 {
            match self.slave.pending(false) {
                Some(spin) => {
                    self.slave.ack(spin);
                    self.slave.vector(spin)
                }
                None => self.slave.vector(7),
            }
        } else {
            self.master.vector(pin)
        };
        self.cascade();
        vector
    }

    /// A poll-mode read of `chip`: `0x80 | pin` with the request acknowledged, or 0.
    fn poll(&mut self, slave: bool) -> u8 {
        let chip = if slave {
            &mut self.slave
        } else {
            &mut self.master
        };
        chip.s.poll = 0;
        match chip.pending(!slave) {
            Some(pin) => {
                chip.ack(pin);
                self.cascade();
                0x80 | pin
            }
            None => 0,
        }
    }

    /// A guest `OUT` of one byte to `port`.
    pub fn port_write(&mut self, port: u16, val: u8) {
        match port {
            0x20 => self.master.write_cmd(val),
            0x21 => self.master.write_data(val),
            0xa0 => self.slave.write_cmd(val),
            0xa1 => self.slave.write_data(val),
            PORT_ELCR_MASTER => self.master.s.elcr = val & self.master.s.elcr_mask,
            PORT_ELCR_SLAVE => self.slave.s.elcr = val & self.slave.s.elcr_mask,
            _ => return,
        }
        self.cascade();
    }

    /// A guest `IN` of one byte from `port` (0xff for a port the pair does not have).
    pub fn port_read(&mut self, port: u16) -> u8 {
        match port {
            0x20 | 0x21 if self.master.s.poll != 0 => self.poll(false),
            0xa0 | 0xa1 if self.slave.s.poll != 0 => self.poll(true),
            0x20 => self.master.read(false),
            0x21 => self.master.read(true),
            0xa0 => self.slave.read(false),
            0xa1 => self.slave.read(true),
            PORT_ELCR_MASTER => self.master.s.elcr,
            PORT_ELCR_SLAVE => self.slave.s.elcr,
            _ => 0xff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs the pair as a PC BIOS does: vectors 0x08/0x70, cascade on IR2, 8086 mode.
    fn programmed(master_base: u8, slave_base: u8, icw4: u8) -> PicPair {
        let mut p = PicPair::new();
        for (cmd, base, icw3) in [(0x20u16, master_base, 4u8), (0xa0, slave_base, 2)] {
            p.port_write(cmd, 0x11);
            p.port_write(cmd + 1, base);
            p.port_write(cmd + 1, icw3);
            p.port_write(cmd + 1, icw4);
        }
        p.port_write(0x21, 0);
        p.port_write(0xa1, 0);
        p
    }

    #[test]
    fn initialization_sequence() {
        let p = programmed(0x08, 0x70, 0x01);
        assert_eq!(p.master.s.irq_base, 0x08);
        assert_eq!(p.slave.s.irq_base, 0x70);
        assert_eq!(p.master.s.init_state, 0);
        assert_eq!(p.master.s.init4, 1);
        assert_eq!(p.master.s.auto_eoi, 0);
        // ICW2's low bits are not part of the base.
        let p = programmed(0x0f, 0x77, 0x01);
        assert_eq!(p.master.s.irq_base, 0x08);
        assert_eq!(p.slave.s.irq_base, 0x70);
    }

    #[test]
    fn single_mode_skips_icw3() {
        let mut p = PicPair::new();
        p.port_write(0x20, 0x13); // ICW1: single, ICW4 needed
        p.port_write(0x21, 0x20); // ICW2
        p.port_write(0x21, 0x03); // ICW4: auto EOI, 8086
        assert_eq!(p.master.s.init_state, 0);
        assert_eq!(p.master.s.auto_eoi, 1);
        p.port_write(0x21, 0xfe); // OCW1
        assert_eq!(p.master.s.imr, 0xfe);
    }

    #[test]
    fn icw1_resets_mask_and_priority() {
        let mut p = programmed(0x08, 0x70, 1);
        p.port_write(0x21, 0x55);
        p.port_write(0x20, 0xc4); // set priority: IR4 lowest
        assert_eq!(p.master.s.priority_add, 5);
        p.port_write(0x20, 0x11);
        assert_eq!(p.master.s.imr, 0);
        assert_eq!(p.master.s.priority_add, 0);
        assert_eq!(p.master.s.init_state, 1);
    }

    #[test]
    fn edge_irq_inta_and_eoi() {
        let mut p = programmed(0x08, 0x70, 1);
        assert!(!p.int_output());
        assert_eq!(p.set_irq(1, true), 1);
        assert!(p.int_output());
        assert_eq!(p.intack(), 0x09);
        assert!(!p.int_output());
        assert_eq!(p.master.s.isr, 0x02);
        assert_eq!(p.master.s.irr, 0);
        // Holding the line high is not a new edge.
        p.set_irq(1, true);
        assert_eq!(p.master.s.irr, 0);
        p.set_irq(1, false);
        p.set_irq(1, true);
        assert_eq!(p.master.s.irr, 0x02);
        // In service blocks the same level until EOI.
        assert!(!p.int_output());
        p.port_write(0x20, 0x20);
        assert_eq!(p.master.s.isr, 0);
        assert!(p.int_output());
    }

    #[test]
    fn level_irq_follows_line() {
        let mut p = programmed(0x08, 0x70, 1);
        p.port_write(PORT_ELCR_MASTER, 0xff);
        assert_eq!(p.master.s.elcr, 0xf8, "IRQ0-2 stay edge");
        p.set_irq(5, true);
        assert_eq!(p.intack(), 0x0d);
        assert_eq!(
            p.master.s.irr, 0x20,
            "still requested while the line is high"
        );
        p.port_write(0x20, 0x20);
        assert!(p.int_output(), "re-raised after EOI");
        p.set_irq(5, false);
        assert!(!p.int_output());
        assert_eq!(p.port_read(PORT_ELCR_MASTER), 0xf8);
    }

    #[test]
    fn priority_and_nesting() {
        let mut p = programmed(0x08, 0x70, 1);
        p.set_irq(4, true);
        p.set_irq(3, true);
        assert_eq!(p.intack(), 0x0b, "IR3 before IR4");
        // IR4 is lower than IR3 in service: no interrupt.
        assert!(!p.int_output());
        // IR1 is higher: nests.
        p.set_irq(1, true);
        assert_eq!(p.intack(), 0x09);
        assert_eq!(p.master.s.isr, 0x0a);
        // Non-specific EOI ends the highest (IR1).
        p.port_write(0x20, 0x20);
        assert_eq!(p.master.s.isr, 0x08);
        p.port_write(0x20, 0x63); // specific EOI IR3
        assert_eq!(p.master.s.isr, 0);
        assert_eq!(p.intack(), 0x0c);
    }

    #[test]
    fn rotation_commands() {
        let mut p = programmed(0x08, 0x70, 1);
        p.set_irq(0, true);
        assert_eq!(p.intack(), 0x08);
        p.port_write(0x20, 0xa0); // rotate on non-specific EOI: IR0 lowest
        assert_eq!(p.master.s.priority_add, 1);
        p.set_irq(0, false);
        p.set_irq(0, true);
        p.set_irq(7, true);
        assert_eq!(p.intack(), 0x0f, "IR7 now above IR0");
        p.port_write(0x20, 0xe7); // rotate on specific EOI 7
        assert_eq!(p.master.s.priority_add, 0);
        assert_eq!(p.master.s.isr, 0);
        p.port_write(0x20, 0xc3); // set priority: IR3 lowest, IR4 highest
        assert_eq!(p.master.s.priority_add, 4);
        assert_eq!(p.intack(), 0x08);
    }

    #[test]
    fn masking_and_special_mask() {
        let mut p = programmed(0x08, 0x70, 1);
        p.port_write(0x21, 0x02);
        assert_eq!(p.set_irq(1, true), -1);
        assert!(!p.int_output());
        assert_eq!(p.port_read(0x21), 0x02);
        p.port_write(0x21, 0x00);
        assert!(p.int_output(), "request kept while masked");
        assert_eq!(p.intack(), 0x09);
        // IR1 in service blocks IR4; special mask mode with IR1 masked lets it through.
        p.set_irq(4, true);
        assert!(!p.int_output());
        p.port_write(0x21, 0x02);
        p.port_write(0x20, 0x68); // OCW3: set special mask
        assert_eq!(p.master.s.special_mask, 1);
        assert!(p.int_output());
        p.port_write(0x20, 0x48); // reset special mask
        assert!(!p.int_output());
    }

    #[test]
    fn auto_eoi() {
        let mut p = programmed(0x08, 0x70, 0x03);
        p.set_irq(3, true);
        assert_eq!(p.intack(), 0x0b);
        assert_eq!(p.master.s.isr, 0);
        p.port_write(0x20, 0x80); // rotate in auto-EOI mode
        p.set_irq(2 + 2, true);
        assert_eq!(p.intack(), 0x0c);
        assert_eq!(p.master.s.priority_add, 5);
    }

    #[test]
    fn cascade_on_ir2() {
        let mut p = programmed(0x08, 0x70, 1);
        assert_eq!(p.set_irq(12, true), 1);
        assert!(p.int_output());
        assert_eq!(p.intack(), 0x74);
        assert_eq!(p.master.s.isr, 0x04);
        assert_eq!(p.slave.s.isr, 0x10);
        // EOI to both.
        p.port_write(0xa0, 0x20);
        p.port_write(0x20, 0x20);
        assert_eq!((p.master.s.isr, p.slave.s.isr), (0, 0));
        // A masked slave pin does not raise the cascade.
        p.port_write(0xa1, 0x01);
        assert_eq!(p.set_irq(8, true), -1);
        assert!(!p.int_output());
    }

    #[test]
    fn spurious_vectors() {
        let mut p = programmed(0x08, 0x70, 1);
        assert_eq!(p.intack(), 0x0f, "nothing pending: IRQ7");
        assert_eq!(p.master.s.isr, 0, "spurious IRQ7 is not put in service");
        // Slave's request goes away after the master latched the cascade edge.
        p.set_irq(9, true);
        p.port_write(0xa1, 0x02);
        assert_eq!(p.master.s.irr & 4, 4);
        assert_eq!(p.intack(), 0x77, "spurious IRQ15");
        assert_eq!(p.slave.s.isr, 0);
    }

    #[test]
    fn poll_mode() {
        let mut p = programmed(0x08, 0x70, 1);
        p.port_write(0x20, 0x0c);
        assert_eq!(p.port_read(0x20), 0, "nothing pending");
        p.set_irq(6, true);
        p.port_write(0x20, 0x0c);
        assert_eq!(p.port_read(0x20), 0x86);
        assert_eq!(p.master.s.isr, 0x40);
        assert_eq!(p.master.s.poll, 0);
    }

    #[test]
    fn register_reads() {
        let mut p = programmed(0x08, 0x70, 1);
        p.port_write(0x21, 0xff);
        p.set_irq(3, true);
        assert_eq!(p.port_read(0x20), 0x08, "IRR by default");
        p.port_write(0x20, 0x0b);
        assert_eq!(p.port_read(0x20), 0x00, "ISR");
        p.port_write(0x20, 0x0a);
        assert_eq!(p.port_read(0x20), 0x08);
        assert_eq!(p.port_read(0x1234), 0xff);
    }

    #[test]
    fn hostile_writes_do_not_panic() {
        let mut p = PicPair::new();
        for port in [0x20u16, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x22] {
            for v in 0..=255u8 {
                p.port_write(port, v);
                let _ = p.port_read(port);
                let _ = p.intack();
            }
        }
        // Arbitrary restored state.
        p.master.s = KvmPicState {
            priority_add: 0xff,
            irq_base: 0xff,
            init_state: 0xff,
            irr: 0xff,
            isr: 0x7f,
            ..Default::default()
        };
        let _ = p.intack();
        p.port_write(0x21, 1);
        let _ = p.set_irq(99, true);
    }
}
