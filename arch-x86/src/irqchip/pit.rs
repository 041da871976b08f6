//! The 8254 programmable interval timer of `KVM_CREATE_PIT2`, from Intel's 82C54 datasheet:
//! three 16-bit down counters at 1.193182 MHz behind ports 0x40-0x42 (counts) and 0x43
//! (control word, counter-latch and read-back commands), and with `KVM_PIT_SPEAKER_DUMMY` the
//! speaker port 0x61 (gate of counter 2 in bit 0, speaker data in bit 1, counter 2's OUT in bit
//! 5 and a refresh toggle in bit 4, as the PC wires them).
//!
//! Pure logic like the other models: no clock of its own (every call takes `now_ns`), no
//! allocation. Counter 0 drives GSI 0: [`Pit::poll`] says how many of its ticks are due, and
//! [`Pit::next_deadline`] when the next one is, so the VM's run loop can raise and lower the
//! line (an edge per tick, as Linux does). Ticks that were missed are not replayed: one edge
//! stands for all that came due since the last poll. The state is kept in the ABI's
//! `kvm_pit_state2` layout, so `KVM_GET/SET_PIT2` are copies.

use kvmport_core::abi::x86::{KVM_PIT_FLAGS_HPET_LEGACY, KvmPitChannelState, KvmPitState2};

/// The counters' input clock, in Hz.
pub const FREQ_HZ: u64 = 1_193_182;
/// The shortest period a periodic counter 0 is run with (as Linux KVM's default
/// `min_timer_period_us`, 200 µs), so a guest cannot make the host fire continuously.
pub const MIN_PERIOD_NS: u64 = 200_000;
/// The first of the PIT's ports (counter 0); the control port is `BASE + 3`.
pub const BASE: u16 = 0x40;
/// The speaker (port B) port, with `KVM_PIT_SPEAKER_DUMMY`.
pub const SPEAKER: u16 = 0x61;

/// `read_state`/`write_state`/`count_latched` values: which byte comes next.
mod rw {
    /// The low byte only.
    pub const LSB: u8 = 1;
    /// The high byte only.
    pub const MSB: u8 = 2;
    /// Low byte, then high byte: the low byte is next.
    pub const WORD0: u8 = 3;
    /// Low byte, then high byte: the high byte is next.
    pub const WORD1: u8 = 4;
}

/// `ticks` of the PIT clock in nanoseconds (saturating), without 128-bit arithmetic.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let whole = (ticks / FREQ_HZ).saturating_mul(1_000_000_000);
    whole.saturating_add((ticks % FREQ_HZ) * 1_000_000_000 / FREQ_HZ)
}

/// Whole ticks of the PIT clock in `ns` nanoseconds, without 128-bit arithmetic.
pub fn ns_to_ticks(ns: u64) -> u64 {
    let whole = (ns / 1_000_000_000).saturating_mul(FREQ_HZ);
    whole.saturating_add((ns % 1_000_000_000) * FREQ_HZ / 1_000_000_000)
}

/// The PIT of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pit {
    /// The channels and flags, as `KVM_GET/SET_PIT2` carry them.
    pub s: KvmPitState2,
    /// Port 0x61 is handled here (`KVM_PIT_SPEAKER_DUMMY`).
    pub speaker: bool,
    /// The speaker data bit of port 0x61.
    speaker_data_on: bool,
    /// When counter 0's next tick is due (host ns), while it runs.
    next_tick: Option<u64>,
    /// Counter 0's period (ns) when it repeats (modes 2 and 3).
    period: Option<u64>,
    /// `KVM_REINJECT_CONTROL`'s setting (kept; missed ticks are not replayed either way).
    pub reinject: bool,
}

impl Pit {
    /// A PIT in the state `KVM_CREATE_PIT2` leaves (measured on Linux): every count 0x10000,
    /// mode 0xff (never programmed), gates high except counter 2's, nothing latched; counter
    /// 0 does not run.
    pub fn new(speaker: bool, now_ns: u64) -> Pit {
        let mut p = Pit {
            s: KvmPitState2::default(),
            speaker,
            speaker_data_on: false,
            next_tick: None,
            period: None,
            reinject: true,
        };
        for (i, c) in p.s.channels.iter_mut().enumerate() {
            c.mode = 0xff;
            c.gate = u8::from(i != 2);
            c.count = 0x1_0000;
            c.count_load_time = i64::try_from(now_ns).unwrap_or(i64::MAX);
        }
        p
    }

    /// `KVM_GET_PIT2`.
    pub fn get_state(&self) -> KvmPitState2 {
        self.s
    }

    /// `KVM_SET_PIT2`: the state as given (Linux keeps even out-of-range values), then every
    /// counter is loaded again with its count at `now_ns`.
    pub fn set_state(&mut self, s: &KvmPitState2, now_ns: u64) {
        self.s = *s;
        for i in 0..3 {
            let count = self.s.channels.get(i).map_or(0, |c| c.count);
            self.load(i, count, now_ns);
        }
    }

    /// Whether `port` can be a PIT's (the counters, the control port, the speaker port).
    pub fn may_own_port(port: u16) -> bool {
        (BASE..BASE + 4).contains(&port) || port == SPEAKER
    }

    /// Whether `port` (one byte) is this PIT's.
    pub fn owns_port(&self, port: u16) -> bool {
        (BASE..BASE + 4).contains(&port) || (self.speaker && port == SPEAKER)
    }

    /// Loads counter `i` with `count` (0 meaning 0x10000) at `now_ns`, and (re)starts counter
    /// 0's ticks by its mode.
    fn load(&mut self, i: usize, count: u32, now_ns: u64) {
        let Some(c) = self.s.channels.get_mut(i) else {
            return;
        };
        c.count = if count == 0 { 0x1_0000 } else { count };
        c.count_load_time = i64::try_from(now_ns).unwrap_or(i64::MAX);
        if i != 0 {
            return;
        }
        let interval = ticks_to_ns(u64::from(c.count));
        match c.mode {
            2 | 3 => {
                let p = interval.max(MIN_PERIOD_NS);
                self.period = Some(p);
                self.next_tick = Some(now_ns.saturating_add(p));
            }
            0 | 1 | 4 | 5 => {
                self.period = None;
                self.next_tick = Some(now_ns.saturating_add(interval));
            }
            _ => {
                self.period = None;
                self.next_tick = None;
            }
        }
    }

    /// Ticks of counter `c` since its count was loaded.
    fn elapsed(c: &KvmPitChannelState, now_ns: u64) -> u64 {
        let load = u64::try_from(c.count_load_time).unwrap_or(0);
        ns_to_ticks(now_ns.saturating_sub(load))
    }

    /// The value counter `c` reads as now.
    fn current(c: &KvmPitChannelState, now_ns: u64) -> u16 {
        let d = Self::elapsed(c, now_ns);
        let n = u64::from(c.count.max(1));
        let v = match c.mode {
            0 | 1 | 4 | 5 => n.wrapping_sub(d),
            // Mode 3 counts down by two, twice per period.
            3 => (n - (d.wrapping_mul(2) % n)) & !1,
            _ => n - d % n,
        };
        // CAST: a 16-bit counter (0x10000 reads as 0).
        v as u16
    }

    /// Counter `c`'s OUT pin now.
    fn out(c: &KvmPitChannelState, now_ns: u64) -> bool {
        let d = Self::elapsed(c, now_ns);
        let n = u64::from(c.count.max(1));
        match c.mode {
            // Low from the count's load until the terminal count, then high.
            0 | 1 => d >= n,
            // High for the first half of each period.
            3 => d % n < n.div_ceil(2),
            // Low for the one clock of the terminal count.
            4 | 5 => d != n,
            // Mode 2 (and never programmed): low for one clock at the end of each period.
            _ => n == 1 || d % n != n - 1,
        }
    }

    /// The status byte of counter `c` (read-back command): OUT, then the control word's
    /// access mode, mode and BCD bits.
    fn status(c: &KvmPitChannelState, now_ns: u64) -> u8 {
        (u8::from(Self::out(c, now_ns)) << 7)
            | ((c.rw_mode & 3) << 4)
            | ((c.mode & 7) << 1)
            | (c.bcd & 1)
    }

    /// Latches counter `c`'s count, unless a latched count is still unread.
    fn latch_count(c: &mut KvmPitChannelState, now_ns: u64) {
        if c.count_latched == 0 {
            c.latched_count = Self::current(c, now_ns);
            c.count_latched = c.rw_mode;
        }
    }

    /// A write of `v` to `port`.
    pub fn port_write(&mut self, port: u16, v: u8, now_ns: u64) {
        if port == SPEAKER {
            self.speaker_data_on = v & 2 != 0;
            self.set_gate(2, v & 1 != 0, now_ns);
            return;
        }
        if port == BASE + 3 {
            self.control(v, now_ns);
            return;
        }
        let i = usize::from(port.wrapping_sub(BASE));
        let Some(c) = self.s.channels.get_mut(i) else {
            return;
        };
        let full = match c.write_state {
            rw::LSB => Some(u32::from(v)),
            rw::MSB => Some(u32::from(v) << 8),
            rw::WORD0 => {
                c.write_latch = v;
                c.write_state = rw::WORD1;
                None
            }
            rw::WORD1 => {
                c.write_state = rw::WORD0;
                Some(u32::from(c.write_latch) | (u32::from(v) << 8))
            }
            // Never programmed: nothing to load.
            _ => None,
        };
        if let Some(count) = full {
            self.load(i, count, now_ns);
        }
    }

    /// A control word (port 0x43).
    fn control(&mut self, v: u8, now_ns: u64) {
        let sel = v >> 6;
        if sel == 3 {
            // Read-back: bit 5 clear latches the counts, bit 4 clear the status, of the
            // counters selected by bits 1-3.
            for (i, c) in self.s.channels.iter_mut().enumerate() {
                if v & (2 << i) == 0 {
                    continue;
                }
                if v & 0x20 == 0 {
                    Self::latch_count(c, now_ns);
                }
                if v & 0x10 == 0 && c.status_latched == 0 {
                    c.status = Self::status(c, now_ns);
                    c.status_latched = 1;
                }
            }
            return;
        }
        let Some(c) = self.s.channels.get_mut(usize::from(sel)) else {
            return;
        };
        let access = (v >> 4) & 3;
        if access == 0 {
            Self::latch_count(c, now_ns);
            return;
        }
        let mode = (v >> 1) & 7;
        c.rw_mode = access;
        c.read_state = access;
        c.write_state = access;
        // Modes 6 and 7 are modes 2 and 3.
        c.mode = if mode >= 6 { mode - 4 } else { mode };
        c.bcd = v & 1;
        if sel == 0 {
            // A new control word stops counter 0 until a count is written.
            self.next_tick = None;
            self.period = None;
        }
    }

    /// A read of `port`.
    pub fn port_read(&mut self, port: u16, now_ns: u64) -> u8 {
        if port == SPEAKER {
            let c2 = self.s.channels.get(2).copied().unwrap_or_default();
            let refresh = (now_ns >> 14) & 1 != 0;
            return (u8::from(Self::out(&c2, now_ns)) << 5)
                | (u8::from(refresh) << 4)
                | (u8::from(self.speaker_data_on) << 1)
                | (c2.gate & 1);
        }
        let Some(c) = self
            .s
            .channels
            .get_mut(usize::from(port.wrapping_sub(BASE)))
        else {
            // The control port reads nothing useful.
            return 0xff;
        };
        if c.status_latched != 0 {
            c.status_latched = 0;
            return c.status;
        }
        let latched = c.count_latched != 0;
        let value = if latched {
            c.latched_count
        } else {
            Self::current(c, now_ns)
        };
        let [lo, hi] = value.to_le_bytes();
        let state = if latched {
            c.count_latched
        } else {
            c.read_state
        };
        // The byte this read returns and the state after it; a latched count is released
        // once its last byte is read.
        let (byte, next) = match state {
            rw::LSB => (lo, if latched { 0 } else { rw::LSB }),
            rw::MSB => (hi, if latched { 0 } else { rw::MSB }),
            rw::WORD0 => (lo, rw::WORD1),
            rw::WORD1 => (hi, if latched { 0 } else { rw::WORD0 }),
            other => (0, other),
        };
        if latched {
            c.count_latched = next;
        } else {
            c.read_state = next;
        }
        byte
    }

    /// Sets counter `i`'s gate; a rising edge restarts the count in modes 1, 2, 3 and 5.
    fn set_gate(&mut self, i: usize, high: bool, now_ns: u64) {
        let Some(c) = self.s.channels.get_mut(i) else {
            return;
        };
        let rising = c.gate == 0 && high;
        c.gate = u8::from(high);
        if rising && matches!(c.mode, 1 | 2 | 3 | 5) {
            let count = c.count;
            self.load(i, count, now_ns);
        }
    }

    /// How many of counter 0's ticks are due at `now_ns` (0 or 1: missed ticks are not
    /// replayed), moving the next one on. With `KVM_PIT_FLAGS_HPET_LEGACY` (the HPET owns
    /// IRQ 0) the ticks are dropped.
    pub fn poll(&mut self, now_ns: u64) -> u32 {
        let Some(t) = self.next_tick else {
            return 0;
        };
        if now_ns < t {
            return 0;
        }
        self.next_tick = self.period.map(|p| {
            // The first tick after now, on the period's grid.
            let behind = (now_ns - t) / p;
            t.saturating_add(behind.saturating_add(1).saturating_mul(p))
        });
        u32::from(self.s.flags & KVM_PIT_FLAGS_HPET_LEGACY == 0)
    }

    /// When counter 0's next tick is due (host ns), if it runs.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn reset_state_as_measured() {
        let p = Pit::new(true, 5);
        let s = p.get_state();
        for (i, c) in s.channels.iter().enumerate() {
            assert_eq!((c.count, c.mode), (0x1_0000, 0xff));
            assert_eq!(c.gate, u8::from(i != 2));
        }
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn clock_conversions() {
        assert_eq!(ns_to_ticks(1_000_000_000), FREQ_HZ);
        assert_eq!(ticks_to_ns(FREQ_HZ), 1_000_000_000);
        // 0x10000 ticks: the 18.2 Hz BIOS tick, about 54.9 ms.
        assert_eq!(ticks_to_ns(0x1_0000) / 100_000, 549);
        assert_eq!(ticks_to_ns(1193), 999_847);
        // No overflow at the ends.
        assert!(ns_to_ticks(u64::MAX) > ns_to_ticks(u64::MAX / 2));
        assert_eq!(ticks_to_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn mode2_periodic_ticks_and_reads() {
        let mut p = Pit::new(false, 0);
        // Counter 0, LSB then MSB, mode 2; count 11932 (about 10 ms).
        p.port_write(0x43, 0x34, 0);
        assert_eq!(p.next_deadline(), None, "no count yet");
        p.port_write(0x40, 11932u16.to_le_bytes()[0], 0);
        p.port_write(0x40, 11932u16.to_le_bytes()[1], 0);
        let d = p.next_deadline().unwrap();
        assert_eq!(d / 100_000, 100, "about 10 ms");
        assert_eq!(p.poll(d - 1), 0);
        assert_eq!(p.poll(d), 1);
        assert_eq!(p.next_deadline(), Some(2 * d));
        // Three periods late: one tick, the next on the grid.
        assert_eq!(p.poll(5 * d + 7), 1);
        assert_eq!(p.next_deadline(), Some(6 * d));
        // Reading the count halfway through a period: LSB then MSB.
        let half = d / 2;
        let lo = p.port_read(0x40, half);
        let hi = p.port_read(0x40, half);
        let v = u16::from_le_bytes([lo, hi]);
        assert!((5900..=6000).contains(&v), "{v}");
    }

    #[test]
    fn latch_and_read_back() {
        let mut p = Pit::new(false, 0);
        p.port_write(0x43, 0x30, 0); // counter 0, LSB/MSB, mode 0
        p.port_write(0x40, 0x00, 0);
        p.port_write(0x40, 0x10, 0); // 0x1000
        // Latch at 1 ms (1193 ticks), read later: the latched value.
        p.port_write(0x43, 0x00, MS);
        let lo = p.port_read(0x40, 3 * MS);
        let hi = p.port_read(0x40, 3 * MS);
        assert_eq!(u16::from_le_bytes([lo, hi]), 0x1000 - 1193);
        // Read-back of counter 0's status: OUT low (mode 0 before the terminal count),
        // access 3, mode 0, binary.
        p.port_write(0x43, 0b1110_0010, 3 * MS);
        assert_eq!(p.port_read(0x40, 3 * MS), 0x30);
        // After the terminal count OUT is high.
        p.port_write(0x43, 0b1110_0010, 10 * MS);
        assert_eq!(p.port_read(0x40, 10 * MS), 0xb0);
        // Mode 0 is one-shot: one tick.
        let d = p.next_deadline().unwrap();
        assert_eq!(p.poll(d), 1);
        assert_eq!(p.poll(d + 100 * MS), 0);
    }

    #[test]
    fn speaker_port_gates_counter_2() {
        let mut p = Pit::new(true, 0);
        assert!(p.owns_port(0x61));
        assert!(!Pit::new(false, 0).owns_port(0x61));
        p.port_write(0x43, 0xb0, 0); // counter 2, LSB/MSB, mode 0
        p.port_write(0x42, 0xff, 0);
        p.port_write(0x42, 0xff, 0);
        p.port_write(0x61, 0x03, MS); // gate high, speaker data on
        let v = p.port_read(0x61, MS);
        assert_eq!(
            v & 0x23,
            0x03,
            "gate, data, OUT low before the terminal count"
        );
        let v = p.port_read(0x61, 100 * MS);
        assert_eq!(v & 0x20, 0x20, "OUT high after 0xffff ticks (55 ms)");
    }

    #[test]
    fn hpet_legacy_drops_ticks_and_set_state_reloads() {
        let mut p = Pit::new(false, 0);
        let mut s = p.get_state();
        s.channels[0].mode = 2;
        s.channels[0].count = 1193;
        s.flags = KVM_PIT_FLAGS_HPET_LEGACY;
        p.set_state(&s, 10 * MS);
        let d = p.next_deadline().unwrap();
        assert_eq!(d, 10 * MS + 999_847, "1193 ticks after the load");
        assert_eq!(p.poll(d), 0, "HPET legacy: no IRQ 0");
        // Out-of-range values are kept, as Linux keeps them, and do not panic.
        s.channels[1].count = u32::MAX;
        s.channels[2].mode = 9;
        s.channels[0].rw_mode = 0xff;
        s.channels[0].read_state = 0xff;
        s.flags = 0;
        p.set_state(&s, 0);
        for port in 0x40..0x44 {
            let _ = p.port_read(port, u64::MAX);
            p.port_write(port, 0xff, u64::MAX);
        }
        assert_eq!(p.get_state().channels[1].count, u32::MAX);
    }

    #[test]
    fn periodic_period_is_clamped() {
        let mut p = Pit::new(false, 0);
        p.port_write(0x43, 0x14, 0); // counter 0, LSB only, mode 2
        p.port_write(0x40, 2, 0);
        assert_eq!(p.next_deadline(), Some(MIN_PERIOD_NS));
    }
}
