//! The local APIC in xAPIC mode, written from the Intel SDM vol. 3 ch. 11 and the AMD APM
//! vol. 2 ch. 16: the register page (ID, version, TPR/PPR, EOI, LDR/DFR, SVR, ISR/TMR/IRR,
//! ESR, ICR, the LVT, the timer), interrupt acceptance and acknowledgement.
//!
//! The registers live in a 1 KiB image laid out as the ABI's `struct kvm_lapic_state` (and as
//! the first KiB of the MMIO page), so `KVM_GET_LAPIC`/`KVM_SET_LAPIC` copy it. Values that
//! are computed rather than stored (PPR, the timer's current count) are filled in on reads.
//!
//! The model owns no timer: the caller passes the time (`now_ns`) into every operation that
//! depends on it and asks [`Lapic::next_deadline`] when to look again. The APIC bus runs at
//! 1 GHz (one tick per nanosecond before the divider), as on Linux KVM. In TSC-deadline mode
//! the caller converts the guest's `IA32_TSC_DEADLINE` value to a time
//! ([`Lapic::write_tsc_deadline`]).

use kvmport_core::abi::x86::{KVM_APIC_REG_SIZE, KvmLapicState};

use super::ioapic::{DeliveryMode, Message};

/// Register offsets in the APIC page.
pub mod reg {
    /// Local APIC ID.
    pub const ID: usize = 0x20;
    /// Version.
    pub const VERSION: usize = 0x30;
    /// Task priority.
    pub const TPR: usize = 0x80;
    /// Arbitration priority.
    pub const APR: usize = 0x90;
    /// Processor priority.
    pub const PPR: usize = 0xa0;
    /// End of interrupt.
    pub const EOI: usize = 0xb0;
    /// Logical destination.
    pub const LDR: usize = 0xd0;
    /// Destination format.
    pub const DFR: usize = 0xe0;
    /// Spurious-interrupt vector.
    pub const SVR: usize = 0xf0;
    /// In-service register (eight 32-bit words, 16 bytes apart).
    pub const ISR: usize = 0x100;
    /// Trigger-mode register.
    pub const TMR: usize = 0x180;
    /// Interrupt request register.
    pub const IRR: usize = 0x200;
    /// Error status.
    pub const ESR: usize = 0x280;
    /// Interrupt command, low half.
    pub const ICR: usize = 0x300;
    /// Interrupt command, high half (destination).
    pub const ICR2: usize = 0x310;
    /// LVT: timer.
    pub const LVT_TIMER: usize = 0x320;
    /// LVT: thermal sensor.
    pub const LVT_THERMAL: usize = 0x330;
    /// LVT: performance counters.
    pub const LVT_PERF: usize = 0x340;
    /// LVT: LINT0.
    pub const LVT_LINT0: usize = 0x350;
    /// LVT: LINT1.
    pub const LVT_LINT1: usize = 0x360;
    /// LVT: error.
    pub const LVT_ERROR: usize = 0x370;
    /// Timer initial count.
    pub const TMICT: usize = 0x380;
    /// Timer current count.
    pub const TMCCT: usize = 0x390;
    /// Timer divide configuration.
    pub const TDCR: usize = 0x3e0;
}

/// The version register: version 0x14 (an integrated APIC), six LVT entries.
pub const VERSION: u32 = 0x14 | (5 << 16);
/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// SVR: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// `IA32_APIC_BASE`: global enable.
pub const BASE_ENABLE: u64 = 1 << 11;
/// `IA32_APIC_BASE`: x2APIC mode.
pub const BASE_X2APIC: u64 = 1 << 10;
/// The size of the MMIO page.
pub const PAGE: u64 = 0x1000;

/// ESR: send illegal vector.
const ESR_SEND_ILLEGAL: u32 = 1 << 5;
/// ESR: received illegal vector.
const ESR_RECV_ILLEGAL: u32 = 1 << 6;

/// The LVT entries in register order.
const LVTS: [usize; 6] = [
    reg::LVT_TIMER,
    reg::LVT_THERMAL,
    reg::LVT_PERF,
    reg::LVT_LINT0,
    reg::LVT_LINT1,
    reg::LVT_ERROR,
];

/// Timer modes (LVT timer bits 17-18).
const TIMER_PERIODIC: u32 = 1;
/// TSC-deadline timer mode.
const TIMER_TSC_DEADLINE: u32 = 2;

/// Destination shorthand of an IPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shorthand {
    /// The destination field decides.
    None,
    /// Only the sender.
    SelfOnly,
    /// Everyone, the sender included.
    AllIncludingSelf,
    /// Everyone but the sender.
    AllExcludingSelf,
}

/// An IPI the guest asked for by writing the ICR; the caller delivers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    /// The message (vector, mode, destination).
    pub msg: Message,
    /// The shorthand.
    pub shorthand: Shorthand,
}

/// The architectural activity state as an in-kernel APIC sees it (`KVM_GET/SET_MP_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpState {
    /// Running.
    Runnable,
    /// An AP waiting for INIT.
    Uninitialized,
    /// INIT received: waiting for a start-up IPI.
    InitReceived,
    /// Halted until an interrupt.
    Halted,
    /// Start-up IPI received with this vector: starts at `vector << 12`.
    SipiReceived(u8),
}

/// One local APIC.
#[derive(Clone, Debug)]
pub struct Lapic {
    regs: [u8; KVM_APIC_REG_SIZE],
    /// The `IA32_APIC_BASE` value (global enable, BSP, base address).
    pub base: u64,
    /// When the timer next expires, if it runs.
    deadline: Option<u64>,
    /// The timer period in ns (initial count times divider), for periodic mode and the
    /// current count.
    period: u64,
    /// Errors since the last ESR write.
    esr_pending: u32,
    /// The armed `IA32_TSC_DEADLINE` value (0: disarmed).
    tsc_deadline: u64,
    /// NMIs accepted and not yet injected.
    pub nmi_pending: u32,
    /// The activity state.
    pub mp_state: MpState,
    /// An INIT was accepted: the vCPU must reset (the caller clears this).
    pub init_pending: bool,
}

/// Words of a 256-bit register (ISR/TMR/IRR) are 16 bytes apart.
fn bit_off(base: usize, vector: u8) -> (usize, u32) {
    (base + usize::from(vector / 32) * 16, 1 << (vector % 32))
}

impl Lapic {
    /// The APIC of vCPU `id` after reset. The BSP (`id` 0) has LINT0 in ExtINT mode, so the
    /// 8259A reaches it before the guest programs the APIC (Linux KVM's reset value,
    /// measured); every other LVT entry is masked; the APIC is software-disabled.
    pub fn new(id: u32, base: u64) -> Lapic {
        let mut l = Lapic {
            regs: [0; KVM_APIC_REG_SIZE],
            base,
            deadline: None,
            period: 0,
            esr_pending: 0,
            tsc_deadline: 0,
            nmi_pending: 0,
            mp_state: if id == 0 {
                MpState::Runnable
            } else {
                MpState::Uninitialized
            },
            init_pending: false,
        };
        l.reset_regs(id);
        l
    }

    /// The register reset of power-on and INIT.
    fn reset_regs(&mut self, id: u32) {
        self.regs = [0; KVM_APIC_REG_SIZE];
        self.set(reg::ID, id << 24);
        self.set(reg::VERSION, VERSION);
        self.set(reg::DFR, 0xffff_ffff);
        self.set(reg::SVR, 0xff);
        for lvt in LVTS {
            self.set(lvt, LVT_MASKED);
        }
        if id == 0 {
            self.set(reg::LVT_LINT0, 7 << 8);
        }
        self.deadline = None;
        self.period = 0;
        self.esr_pending = 0;
        self.tsc_deadline = 0;
    }

    /// The stored value of the register at `off` (0 outside the page).
    pub fn get(&self, off: usize) -> u32 {
        self.regs
            .get(off..off + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    }

    fn set(&mut self, off: usize, v: u32) {
        if let Some(b) = self.regs.get_mut(off..off + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn test_bit(&self, base: usize, vector: u8) -> bool {
        let (off, bit) = bit_off(base, vector);
        self.get(off) & bit != 0
    }

    fn put_bit(&mut self, base: usize, vector: u8, on: bool) {
        let (off, bit) = bit_off(base, vector);
        let v = self.get(off);
        self.set(off, if on { v | bit } else { v & !bit });
    }

    /// The highest vector set in the 256-bit register at `base`.
    fn highest(&self, base: usize) -> Option<u8> {
        (0..8usize).rev().find_map(|w| {
            let v = self.get(base + w * 16);
            // CAST: w < 8, so at most 255.
            (v != 0).then(|| (w * 32 + 31 - v.leading_zeros() as usize) as u8)
        })
    }

    /// The APIC ID (xAPIC: bits 31:24 of the ID register).
    pub fn id(&self) -> u8 {
        // CAST: the top byte.
        (self.get(reg::ID) >> 24) as u8
    }

    /// Globally enabled in `IA32_APIC_BASE`.
    pub fn hw_enabled(&self) -> bool {
        self.base & BASE_ENABLE != 0
    }

    /// Software-enabled in the SVR.
    pub fn sw_enabled(&self) -> bool {
        self.get(reg::SVR) & SVR_ENABLE != 0
    }

    /// The processor priority: the task priority, or the class of the highest in-service
    /// vector if that is higher.
    pub fn ppr(&self) -> u32 {
        let tpr = self.get(reg::TPR) & 0xff;
        let isrv = self.highest(reg::ISR).map_or(0, u32::from);
        if (tpr >> 4) >= (isrv >> 4) {
            tpr
        } else {
            isrv & 0xf0
        }
    }

    /// Whether this APIC is a destination of `dest` in `logical` or physical mode.
    pub fn matches(&self, dest: u8, logical: bool) -> bool {
        if !logical {
            return dest == 0xff || dest == self.id();
        }
        if dest == 0xff {
            return true;
        }
        // CAST: the top byte.
        let ldr = (self.get(reg::LDR) >> 24) as u8;
        match self.get(reg::DFR) >> 28 {
            0xf => ldr & dest != 0,
            0x0 => (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xf) != 0,
            _ => false,
        }
    }

    /// Accepts a message addressed to this APIC. Returns whether it was taken (a fixed or
    /// lowest-priority vector below 16 is refused and recorded in ESR; an APIC that is
    /// globally disabled, or software-disabled for vectored interrupts, refuses).
    pub fn accept(&mut self, msg: &Message) -> bool {
        if !self.hw_enabled() {
            return false;
        }
        match msg.mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                if !self.sw_enabled() {
                    return false;
                }
                if msg.vector < 16 {
                    self.esr_pending |= ESR_RECV_ILLEGAL;
                    return false;
                }
                self.put_bit(reg::IRR, msg.vector, true);
                self.put_bit(reg::TMR, msg.vector, msg.level);
                true
            }
            DeliveryMode::Nmi => {
                self.nmi_pending = self.nmi_pending.saturating_add(1).min(2);
                true
            }
            DeliveryMode::Init => {
                self.init_pending = true;
                self.mp_state = MpState::InitReceived;
                true
            }
            DeliveryMode::StartUp => {
                if self.mp_state == MpState::InitReceived {
                    self.mp_state = MpState::SipiReceived(msg.vector);
                }
                true
            }
            // ExtINT through the IOAPIC is taken from the PIC at injection time; SMI and the
            // reserved mode are not modelled.
            DeliveryMode::ExtInt | DeliveryMode::Smi | DeliveryMode::Reserved => false,
        }
    }

    /// The vector to inject now, if any: the highest request above the processor priority.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.hw_enabled() {
            return None;
        }
        let v = self.highest(reg::IRR)?;
        (u32::from(v >> 4) > (self.ppr() >> 4)).then_some(v)
    }

    /// Whether any vector is requested (for leaving HLT, the priority does not matter).
    pub fn has_request(&self) -> bool {
        self.hw_enabled() && self.highest(reg::IRR).is_some()
    }

    /// The interrupt acknowledge of `vector`: IRR to ISR.
    pub fn ack(&mut self, vector: u8) {
        self.put_bit(reg::IRR, vector, false);
        self.put_bit(reg::ISR, vector, true);
    }

    /// An EOI: ends the highest in-service vector. Returns it when it was level-triggered,
    /// for the IOAPIC's EOI.
    pub fn eoi(&mut self) -> Option<u8> {
        let v = self.highest(reg::ISR)?;
        self.put_bit(reg::ISR, v, false);
        self.test_bit(reg::TMR, v).then_some(v)
    }

    /// Whether the 8259A's INT reaches this APIC: always while it is globally disabled (LINT0
    /// is then the processor's INTR pin), else when LINT0 is unmasked in ExtINT mode.
    pub fn accepts_pic(&self) -> bool {
        let lint0 = self.get(reg::LVT_LINT0);
        !self.hw_enabled() || (lint0 & LVT_MASKED == 0 && (lint0 >> 8) & 7 == 7)
    }

    /// The timer's divider.
    fn divider(&self) -> u64 {
        let d = self.get(reg::TDCR);
        let code = (d & 3) | ((d >> 1) & 4);
        if code == 7 { 1 } else { 2 << code }
    }

    fn timer_mode(&self) -> u32 {
        (self.get(reg::LVT_TIMER) >> 17) & 3
    }

    /// Starts (or stops, for a zero count) the timer from its initial count.
    fn timer_start(&mut self, now_ns: u64) {
        let count = u64::from(self.get(reg::TMICT));
        if count == 0 || self.timer_mode() > TIMER_PERIODIC {
            self.deadline = None;
            self.period = 0;
            return;
        }
        self.period = count.saturating_mul(self.divider());
        self.deadline = Some(now_ns.saturating_add(self.period));
    }

    /// When the timer next expires, if it runs.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Fires the timer if its deadline has passed: the LVT vector is requested unless masked;
    /// a periodic timer is re-armed after the last period that has passed. Returns whether it
    /// fired.
    pub fn timer_poll(&mut self, now_ns: u64) -> bool {
        let Some(d) = self.deadline else {
            return false;
        };
        if now_ns < d {
            return false;
        }
        let lvt = self.get(reg::LVT_TIMER);
        if lvt & LVT_MASKED == 0 {
            self.accept(&Message {
                // CAST: the low byte.
                vector: lvt as u8,
                mode: DeliveryMode::Fixed,
                logical: false,
                dest: 0,
                level: false,
            });
        }
        if self.timer_mode() == TIMER_PERIODIC && self.period > 0 {
            let late = (now_ns - d) % self.period;
            self.deadline = Some(now_ns.saturating_add(self.period - late));
        } else {
            self.deadline = None;
            self.tsc_deadline = 0;
        }
        true
    }

    /// Whether the timer is in TSC-deadline mode.
    pub fn tsc_deadline_mode(&self) -> bool {
        self.timer_mode() == TIMER_TSC_DEADLINE
    }

    /// `RDMSR IA32_TSC_DEADLINE`: the armed value, 0 when disarmed or in another mode.
    pub fn read_tsc_deadline(&self) -> u64 {
        if self.tsc_deadline_mode() {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// `WRMSR IA32_TSC_DEADLINE` of `value`, which the caller found to be reached at
    /// `deadline_ns`: arms (0 disarms) the timer in TSC-deadline mode, is ignored otherwise.
    pub fn write_tsc_deadline(&mut self, value: u64, deadline_ns: u64) {
        if !self.tsc_deadline_mode() {
            return;
        }
        self.tsc_deadline = value;
        self.period = 0;
        self.deadline = (value != 0).then_some(deadline_ns);
    }

    /// The current count at `now_ns`.
    fn current_count(&self, now_ns: u64) -> u32 {
        if self.timer_mode() > TIMER_PERIODIC {
            return 0;
        }
        match self.deadline {
            Some(d) if d > now_ns => {
                let left = (d - now_ns) / self.divider();
                // CAST: at most the initial count, a u32.
                left.min(u64::from(u32::MAX)) as u32
            }
            _ => 0,
        }
    }

    /// The value the guest reads from the register at `off` (16-byte aligned).
    pub fn read_reg(&self, off: usize, now_ns: u64) -> u32 {
        match off {
            reg::PPR => self.ppr(),
            reg::TMCCT => self.current_count(now_ns),
            0..=0x3f0 => self.get(off),
            _ => 0,
        }
    }

    /// A guest write of `val` to the register at `off` (16-byte aligned). Returns the EOI'd
    /// level vector (for the IOAPIC) or the IPI to send, as [`Write`].
    pub fn write_reg(&mut self, off: usize, val: u32, now_ns: u64) -> Write {
        match off {
            reg::ID => self.set(reg::ID, val & 0xff00_0000),
            reg::TPR => self.set(reg::TPR, val & 0xff),
            reg::EOI => {
                return match self.eoi() {
                    Some(v) => Write::Eoi(v),
                    None => Write::None,
                };
            }
            reg::LDR => self.set(reg::LDR, val & 0xff00_0000),
            reg::DFR => self.set(reg::DFR, val | 0x0fff_ffff),
            reg::SVR => {
                self.set(reg::SVR, val & 0x3ff);
                if val & SVR_ENABLE == 0 {
                    for lvt in LVTS {
                        let v = self.get(lvt);
                        self.set(lvt, v | LVT_MASKED);
                    }
                }
            }
            reg::ESR => {
                self.set(reg::ESR, self.esr_pending);
                self.esr_pending = 0;
            }
            reg::ICR => {
                self.set(reg::ICR, val & 0x000c_cfff);
                return self.send_ipi(val);
            }
            reg::ICR2 => self.set(reg::ICR2, val & 0xff00_0000),
            reg::LVT_TIMER => {
                let old_mode = self.timer_mode();
                self.lvt_write(off, val, 0x0006_00ff);
                if self.timer_mode() != old_mode {
                    self.deadline = None;
                    self.tsc_deadline = 0;
                }
            }
            reg::LVT_THERMAL | reg::LVT_PERF => self.lvt_write(off, val, 0x0001_07ff),
            reg::LVT_LINT0 | reg::LVT_LINT1 => self.lvt_write(off, val, 0x0001_a7ff),
            reg::LVT_ERROR => self.lvt_write(off, val, 0x0001_00ff),
            reg::TMICT => {
                self.set(reg::TMICT, val);
                self.timer_start(now_ns);
            }
            reg::TDCR => self.set(reg::TDCR, val & 0xb),
            // Read-only or reserved.
            _ => {}
        }
        Write::None
    }

    /// Writes an LVT entry: the writable bits of `mask` plus the mask bit, which stays set
    /// while the APIC is software-disabled.
    fn lvt_write(&mut self, off: usize, val: u32, mask: u32) {
        let mut v = val & (mask | LVT_MASKED);
        if !self.sw_enabled() {
            v |= LVT_MASKED;
        }
        self.set(off, v);
    }

    /// The IPI of an ICR write.
    fn send_ipi(&mut self, icr: u32) -> Write {
        let mode = DeliveryMode::from_bits(u64::from(icr >> 8));
        let shorthand = match (icr >> 18) & 3 {
            0 => Shorthand::None,
            1 => Shorthand::SelfOnly,
            2 => Shorthand::AllIncludingSelf,
            _ => Shorthand::AllExcludingSelf,
        };
        let level_assert = icr & (1 << 14) != 0;
        let level_trigger = icr & (1 << 15) != 0;
        // INIT level de-assert is a synchronization message with no effect on a modern APIC.
        if mode == DeliveryMode::Init && level_trigger && !level_assert {
            return Write::None;
        }
        // CAST: the low byte.
        let vector = icr as u8;
        if matches!(mode, DeliveryMode::Fixed | DeliveryMode::LowestPriority) && vector < 16 {
            self.esr_pending |= ESR_SEND_ILLEGAL;
            return Write::None;
        }
        if matches!(mode, DeliveryMode::ExtInt | DeliveryMode::Reserved) {
            return Write::None;
        }
        Write::Ipi(Ipi {
            msg: Message {
                vector,
                mode,
                logical: icr & (1 << 11) != 0,
                // CAST: the top byte.
                dest: (self.get(reg::ICR2) >> 24) as u8,
                level: level_trigger,
            },
            shorthand,
        })
    }

    /// A guest read of `len` bytes at `offset` in the APIC page: registers are 32 bits wide
    /// at 16-byte boundaries; other bytes read as zero.
    pub fn mmio_read(&self, offset: u64, len: usize, now_ns: u64) -> u64 {
        let within = offset & 0xf;
        if within >= 4 || offset >= 0x400 {
            return 0;
        }
        // CAST: below 0x400.
        let v = u64::from(self.read_reg((offset & !0xf) as usize, now_ns)) >> (within * 8);
        match len {
            1 => v & 0xff,
            2 => v & 0xffff,
            _ => v,
        }
    }

    /// A guest write at `offset` in the APIC page (32-bit accesses at register boundaries;
    /// anything else is ignored).
    pub fn mmio_write(&mut self, offset: u64, val: u64, now_ns: u64) -> Write {
        if offset & 0xf != 0 || offset >= 0x400 {
            return Write::None;
        }
        // CAST: below 0x400; registers are 32 bits.
        self.write_reg(offset as usize, val as u32, now_ns)
    }

    /// `KVM_GET_LAPIC`: the register page, with PPR and the current count as they read now.
    pub fn get_state(&self, now_ns: u64) -> KvmLapicState {
        let mut s = KvmLapicState { regs: self.regs };
        let mut put = |off: usize, v: u32| {
            if let Some(b) = s.regs.get_mut(off..off + 4) {
                b.copy_from_slice(&v.to_le_bytes());
            }
        };
        put(reg::PPR, self.ppr());
        put(reg::TMCCT, self.current_count(now_ns));
        s
    }

    /// `KVM_SET_LAPIC`: takes the page as given, except the version (fixed) and the computed
    /// registers; the timer restarts from the initial count.
    pub fn set_state(&mut self, s: &KvmLapicState, now_ns: u64) {
        self.regs = s.regs;
        self.set(reg::VERSION, VERSION);
        self.set(reg::PPR, 0);
        self.set(reg::TMCCT, 0);
        self.esr_pending = 0;
        self.timer_start(now_ns);
    }

    /// The INIT reset of the registers (the ID is kept, the APIC base is not touched).
    pub fn init_reset(&mut self) {
        let id = u32::from(self.id());
        self.reset_regs(id);
    }
}

/// What a register write asks the caller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Nothing.
    None,
    /// A level-triggered vector was ended: the IOAPIC's EOI.
    Eoi(u8),
    /// Send this IPI.
    Ipi(Ipi),
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xfee0_0000 | BASE_ENABLE;

    fn enabled(id: u32) -> Lapic {
        let mut l = Lapic::new(id, BASE);
        l.write_reg(reg::SVR, 0x1ff, 0);
        l
    }

    fn fixed(vector: u8, level: bool) -> Message {
        Message {
            vector,
            mode: DeliveryMode::Fixed,
            logical: false,
            dest: 0,
            level,
        }
    }

    #[test]
    fn reset_values() {
        let l = Lapic::new(0, BASE);
        assert_eq!(l.get(reg::VERSION), 0x0005_0014);
        assert_eq!(l.get(reg::DFR), 0xffff_ffff);
        assert_eq!(l.get(reg::SVR), 0xff);
        assert_eq!(l.get(reg::LVT_LINT0), 0x700);
        assert_eq!(l.get(reg::LVT_TIMER), LVT_MASKED);
        assert_eq!(l.mp_state, MpState::Runnable);
        let ap = Lapic::new(1, BASE);
        assert_eq!(ap.get(reg::ID), 0x0100_0000);
        assert_eq!(ap.get(reg::LVT_LINT0), LVT_MASKED);
        assert_eq!(ap.mp_state, MpState::Uninitialized);
        assert!(l.accepts_pic() && !ap.accepts_pic());
    }

    #[test]
    fn software_disabled_refuses_fixed() {
        let mut l = Lapic::new(0, BASE);
        assert!(!l.accept(&fixed(0x30, false)));
        assert!(l.accept(&Message {
            mode: DeliveryMode::Nmi,
            ..fixed(0, false)
        }));
        assert_eq!(l.nmi_pending, 1);
        let mut off = Lapic::new(0, 0xfee0_0000);
        assert!(!off.accept(&fixed(0x30, false)), "globally disabled");
        assert!(off.accepts_pic());
    }

    #[test]
    fn accept_ack_eoi_with_priority() {
        let mut l = enabled(0);
        assert!(l.accept(&fixed(0x41, false)));
        assert!(l.accept(&fixed(0x52, true)));
        assert_eq!(l.pending_vector(), Some(0x52));
        l.ack(0x52);
        assert_eq!(l.ppr(), 0x50);
        // 0x41 is below the in-service class.
        assert_eq!(l.pending_vector(), None);
        assert!(l.has_request());
        // A level vector's EOI goes to the IOAPIC.
        assert_eq!(l.write_reg(reg::EOI, 0, 0), Write::Eoi(0x52));
        assert_eq!(l.pending_vector(), Some(0x41));
        l.ack(0x41);
        assert_eq!(l.write_reg(reg::EOI, 0, 0), Write::None);
        assert_eq!(
            l.write_reg(reg::EOI, 0, 0),
            Write::None,
            "EOI with nothing in service"
        );
        assert_eq!(l.get(reg::ISR + 0x20), 0);
    }

    #[test]
    fn tpr_blocks_lower_classes() {
        let mut l = enabled(0);
        l.write_reg(reg::TPR, 0x5f, 0);
        l.accept(&fixed(0x55, false));
        assert_eq!(l.pending_vector(), None, "same class as TPR");
        l.accept(&fixed(0x61, false));
        assert_eq!(l.pending_vector(), Some(0x61));
        assert_eq!(l.read_reg(reg::PPR, 0), 0x5f);
        assert_eq!(l.read_reg(reg::TPR, 0), 0x5f);
    }

    #[test]
    fn illegal_vectors_set_esr() {
        let mut l = enabled(0);
        assert!(!l.accept(&fixed(3, false)));
        assert_eq!(l.read_reg(reg::ESR, 0), 0, "latched on the next ESR write");
        l.write_reg(reg::ESR, 0, 0);
        assert_eq!(l.read_reg(reg::ESR, 0), ESR_RECV_ILLEGAL);
        assert_eq!(l.write_reg(reg::ICR, 0x0000_0005, 0), Write::None);
        l.write_reg(reg::ESR, 0, 0);
        assert_eq!(l.read_reg(reg::ESR, 0), ESR_SEND_ILLEGAL);
        l.write_reg(reg::ESR, 0, 0);
        assert_eq!(l.read_reg(reg::ESR, 0), 0);
    }

    #[test]
    fn svr_disable_masks_lvts() {
        let mut l = enabled(0);
        l.write_reg(reg::LVT_LINT1, 0x400, 0);
        assert_eq!(l.get(reg::LVT_LINT1), 0x400);
        l.write_reg(reg::SVR, 0xff, 0);
        assert_eq!(l.get(reg::LVT_LINT1), 0x10400);
        l.write_reg(reg::LVT_LINT1, 0x400, 0);
        assert_eq!(
            l.get(reg::LVT_LINT1),
            0x10400,
            "stays masked while disabled"
        );
    }

    #[test]
    fn destinations() {
        let mut l = enabled(3);
        assert!(l.matches(3, false) && l.matches(0xff, false) && !l.matches(4, false));
        l.write_reg(reg::LDR, 0x0400_0000, 0);
        assert!(l.matches(0x04, true) && l.matches(0x0c, true) && !l.matches(0x02, true));
        // Cluster model: cluster 2, member bit 1.
        l.write_reg(reg::DFR, 0x0000_0000, 0);
        assert_eq!(l.get(reg::DFR), 0x0fff_ffff);
        l.write_reg(reg::LDR, 0x2200_0000, 0);
        assert!(l.matches(0x22, true) && l.matches(0x23, true));
        assert!(!l.matches(0x12, true) && !l.matches(0x21, true));
        assert!(l.matches(0xff, true));
    }

    #[test]
    fn icr_ipis() {
        let mut l = enabled(0);
        l.write_reg(reg::ICR2, 0x0200_00ff, 0);
        assert_eq!(l.get(reg::ICR2), 0x0200_0000);
        let w = l.write_reg(reg::ICR, 0x0000_4031, 0);
        assert_eq!(
            w,
            Write::Ipi(Ipi {
                msg: Message {
                    vector: 0x31,
                    mode: DeliveryMode::Fixed,
                    logical: false,
                    dest: 2,
                    level: false
                },
                shorthand: Shorthand::None
            })
        );
        // INIT, all excluding self.
        let Write::Ipi(ipi) = l.write_reg(reg::ICR, 0x000c_4500, 0) else {
            panic!("no IPI");
        };
        assert_eq!(ipi.msg.mode, DeliveryMode::Init);
        assert_eq!(ipi.shorthand, Shorthand::AllExcludingSelf);
        // INIT level de-assert: nothing.
        assert_eq!(l.write_reg(reg::ICR, 0x0000_8500, 0), Write::None);
        // SIPI, vector 0x9a, logical.
        let Write::Ipi(ipi) = l.write_reg(reg::ICR, 0x0000_4e9a, 0) else {
            panic!("no IPI");
        };
        assert_eq!(
            (ipi.msg.mode, ipi.msg.vector),
            (DeliveryMode::StartUp, 0x9a)
        );
        assert!(ipi.msg.logical);
        // Self shorthand.
        let Write::Ipi(ipi) = l.write_reg(reg::ICR, 0x0004_4040, 0) else {
            panic!("no IPI");
        };
        assert_eq!(ipi.shorthand, Shorthand::SelfOnly);
    }

    #[test]
    fn init_sipi_states() {
        let mut ap = enabled(1);
        ap.mp_state = MpState::Uninitialized;
        let sipi = Message {
            mode: DeliveryMode::StartUp,
            ..fixed(0x10, false)
        };
        ap.accept(&sipi);
        assert_eq!(
            ap.mp_state,
            MpState::Uninitialized,
            "SIPI before INIT is ignored"
        );
        ap.accept(&Message {
            mode: DeliveryMode::Init,
            ..fixed(0, false)
        });
        assert_eq!(ap.mp_state, MpState::InitReceived);
        assert!(ap.init_pending);
        ap.accept(&sipi);
        assert_eq!(ap.mp_state, MpState::SipiReceived(0x10));
    }

    #[test]
    fn one_shot_timer() {
        let mut l = enabled(0);
        l.write_reg(reg::TDCR, 0xb, 0); // divide by 1
        l.write_reg(reg::LVT_TIMER, 0x40, 0);
        l.write_reg(reg::TMICT, 1000, 500);
        assert_eq!(l.next_deadline(), Some(1500));
        assert_eq!(l.read_reg(reg::TMCCT, 1000), 500);
        assert!(!l.timer_poll(1499));
        assert!(l.timer_poll(1500));
        assert_eq!(l.pending_vector(), Some(0x40));
        assert_eq!(l.next_deadline(), None);
        assert_eq!(l.read_reg(reg::TMCCT, 2000), 0);
    }

    #[test]
    fn periodic_timer_and_divider() {
        let mut l = enabled(0);
        l.write_reg(reg::TDCR, 0x3, 0); // divide by 16
        l.write_reg(reg::LVT_TIMER, (1 << 17) | 0x41, 0);
        l.write_reg(reg::TMICT, 100, 0);
        assert_eq!(l.next_deadline(), Some(1600));
        assert_eq!(l.read_reg(reg::TMCCT, 800), 50);
        // Late by 2.5 periods: one interrupt, next deadline on the period grid.
        assert!(l.timer_poll(1600 + 4000));
        assert_eq!(l.next_deadline(), Some(6400));
        assert_eq!(l.pending_vector(), Some(0x41));
        // A masked timer still runs but requests nothing.
        l.ack(0x41);
        l.write_reg(reg::LVT_TIMER, (1 << 17) | LVT_MASKED | 0x41, 0);
        assert!(l.timer_poll(6400));
        assert_eq!(l.pending_vector(), None);
        // Initial count 0 stops it.
        l.write_reg(reg::TMICT, 0, 7000);
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn tsc_deadline_mode() {
        let mut l = enabled(0);
        // Ignored outside TSC-deadline mode.
        l.write_tsc_deadline(5000, 700);
        assert_eq!((l.next_deadline(), l.read_tsc_deadline()), (None, 0));
        l.write_reg(reg::LVT_TIMER, (2 << 17) | 0x43, 0);
        l.write_reg(reg::TMICT, 100, 0);
        assert_eq!(l.next_deadline(), None, "the initial count is ignored");
        l.write_tsc_deadline(5000, 700);
        assert_eq!(
            (l.next_deadline(), l.read_tsc_deadline()),
            (Some(700), 5000)
        );
        assert_eq!(l.read_reg(reg::TMCCT, 0), 0);
        assert!(l.timer_poll(700));
        assert_eq!(l.pending_vector(), Some(0x43));
        assert_eq!(
            (l.next_deadline(), l.read_tsc_deadline()),
            (None, 0),
            "one-shot"
        );
        // Writing 0 disarms; leaving the mode disarms.
        l.write_tsc_deadline(9000, 900);
        l.write_tsc_deadline(0, 0);
        assert_eq!(l.next_deadline(), None);
        l.write_tsc_deadline(9000, 900);
        l.write_reg(reg::LVT_TIMER, 0x43, 0);
        assert_eq!((l.next_deadline(), l.read_tsc_deadline()), (None, 0));
    }

    #[test]
    fn mmio_and_state_round_trip() {
        let mut l = enabled(2);
        assert_eq!(l.mmio_read(0x30, 4, 0), 0x0005_0014);
        assert_eq!(l.mmio_read(0x32, 2, 0), 0x0005);
        assert_eq!(l.mmio_read(0x34, 4, 0), 0);
        assert_eq!(l.mmio_read(0x800, 4, 0), 0);
        l.mmio_write(0x80, 0x20, 0);
        assert_eq!(l.mmio_read(0x80, 4, 0), 0x20);
        l.mmio_write(0x84, 0x30, 0);
        assert_eq!(l.mmio_read(0x80, 4, 0), 0x20);
        let mut page = [0u8; KVM_APIC_REG_SIZE];
        for (i, b) in page.iter_mut().enumerate() {
            // CAST: the low byte.
            *b = i as u8;
        }
        l.set_state(&KvmLapicState { regs: page }, 0);
        let s = l.get_state(0);
        assert_eq!(s.regs[0x20..0x24], page[0x20..0x24]);
        assert_eq!(s.regs[0x3f0..0x400], page[0x3f0..0x400]);
        assert_eq!(
            u32::from_le_bytes(s.regs[0x30..0x34].try_into().unwrap()),
            VERSION
        );
        // Round trip of what was read.
        let mut m = Lapic::new(2, BASE);
        m.set_state(&s, 0);
        assert_eq!(m.get_state(0).regs[..0x390], s.regs[..0x390]);
    }

    #[test]
    fn hostile_registers_do_not_panic() {
        let mut l = enabled(0);
        for off in (0..0x1000u64).step_by(4) {
            for v in [0u64, u64::MAX, 0x5a5a_5a5a, 0x000c_4f00] {
                let _ = l.mmio_write(off, v, off);
                let _ = l.mmio_read(off, 4, off);
                let _ = l.mmio_read(off, 8, u64::MAX);
            }
        }
        l.set_state(
            &KvmLapicState {
                regs: [0xff; KVM_APIC_REG_SIZE],
            },
            u64::MAX,
        );
        let _ = l.timer_poll(u64::MAX);
        let _ = l.pending_vector();
        let _ = l.eoi();
        let _ = l.read_reg(reg::TMCCT, 0);
    }
}
