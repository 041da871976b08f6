//! The SVM side of the in-kernel irqchip: `KVM_CREATE_IRQCHIP`, and in the run loop the
//! halt/INIT/SIPI states, interrupt injection before each entry, and the PIC, IOAPIC and
//! local APIC accesses handled in the kernel instead of exiting to user space.

use alloc::vec::Vec;
use kvmport_core::abi::ioctl::{
    KVM_CREATE_PIT, KVM_CREATE_PIT2, KVM_GET_PIT, KVM_GET_PIT2, KVM_REINJECT_CONTROL, KVM_SET_PIT,
    KVM_SET_PIT2,
};
use kvmport_core::abi::x86::{
    KVM_PIT_SPEAKER_DUMMY, KvmPitConfig, KvmPitState, KvmPitState2, KvmReinjectControl,
};
use kvmport_core::abi::{KVM_MSI_VALID_DEVID, KvmIrqRouting, KvmIrqRoutingEntry, KvmMsi};
use kvmport_core::arch::{Completion, Exit, RunCtx};
use kvmport_core::memslot::Gpa;
use kvmport_core::os::UserAddr;
use kvmport_core::user;
use kvmport_core::vm::VmInfo;
use kvmport_core::{Errno, KArc, KResult, Os};

use super::{Svm, SvmVm, VcpuIrq};
use crate::hw::Hw;
use crate::irqchip::lapic::{self, MpState};
use crate::irqchip::pic::PicPair;
use crate::irqchip::pit::Pit;
use crate::irqchip::vmchip::{ApicSlot, Entry, VmChip};
use crate::irqchip::{MAX_ROUTES, Routing};
use crate::state::{SregsCommon, VcpuState};
use kvmport_core::os::{Lock, WaitQueue};

/// `IA32_TSC_DEADLINE`.
const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// `ticks` of a TSC running at `khz` kHz, in nanoseconds (saturating), with 64-bit arithmetic
/// only: whole milliseconds-worth of kHz first, then the remainder (below `khz`, so the
/// product stays far below 2^64 for any real frequency).
fn tsc_ticks_to_ns(ticks: u64, khz: u64) -> u64 {
    let khz = khz.max(1);
    let whole = (ticks / khz).saturating_mul(1_000_000);
    let rest = (ticks % khz).saturating_mul(1_000_000) / khz;
    whole.saturating_add(rest)
}

/// The VM's irqchip and this vCPU's local APIC.
type Handles<O> = (KArc<VmChip<O>>, KArc<ApicSlot<O>>);

/// `KVM_CREATE_IRQCHIP`: `EEXIST` if there is one, `EINVAL` once a vCPU exists (Linux's
/// order of checks, measured).
pub(super) fn create_irqchip<O: Os>(vm: &SvmVm<O>, info: &VmInfo) -> KResult<()> {
    let mut irq = vm.irq.lock();
    if irq.chip.is_some() {
        return Err(Errno::EEXIST);
    }
    if info.created_vcpus > 0 || irq.vcpus > 0 {
        return Err(Errno::EINVAL);
    }
    irq.chip = Some(VmChip::new()?);
    Ok(())
}

/// `KVM_SET_GSI_ROUTING` at user address `arg`: a `kvm_irq_routing` header and `nr` entries.
/// Linux's order: `EFAULT` for the header, `EINVAL` without an in-kernel irqchip, for more
/// than [`MAX_ROUTES`] entries or for flags, `EFAULT` for the entries, then the checks of
/// [`Routing::from_user`].
pub(super) fn set_gsi_routing<O: Os>(os: &O, vm: &SvmVm<O>, arg: u64) -> KResult<i64> {
    let head: KvmIrqRouting = user::read(os, UserAddr(arg))?;
    let chip = vm_chip(vm).ok_or(Errno::EINVAL)?;
    if head.flags != 0 || head.nr > MAX_ROUTES {
        return Err(Errno::EINVAL);
    }
    let mut entries = Vec::new();
    // CAST: nr <= MAX_ROUTES.
    entries
        .try_reserve_exact(head.nr as usize)
        .map_err(|_| Errno::ENOMEM)?;
    let size = core::mem::size_of::<KvmIrqRoutingEntry>() as u64;
    let first = arg.checked_add(core::mem::size_of::<KvmIrqRouting>() as u64);
    for i in 0..u64::from(head.nr) {
        let at = first
            .and_then(|f| f.checked_add(i * size))
            .ok_or(Errno::EFAULT)?;
        let e: KvmIrqRoutingEntry = user::read(os, UserAddr(at))?;
        // Cannot fail: the capacity was reserved for every entry.
        entries.push(e);
    }
    chip.set_routing(Routing::from_user(&entries)?);
    Ok(0)
}

/// `KVM_SIGNAL_MSI` at user address `arg`: `EFAULT` first, then `EINVAL` without an
/// in-kernel irqchip or with flags other than `KVM_MSI_VALID_DEVID`. Returns how many APICs
/// took the message (0 when none did). With no APIC at all, Linux's delivery result is -1,
/// which its ioctl returns as is: user space sees `EPERM` (measured).
pub(super) fn signal_msi<O: Os>(os: &O, vm: &SvmVm<O>, arg: u64) -> KResult<i64> {
    let m: KvmMsi = user::read(os, UserAddr(arg))?;
    let chip = vm_chip(vm).ok_or(Errno::EINVAL)?;
    if m.flags & !KVM_MSI_VALID_DEVID != 0 {
        return Err(Errno::EINVAL);
    }
    chip.signal_msi(os, m.address_lo, m.data)
        .map(i64::from)
        .ok_or(Errno::EPERM)
}

/// The PIT commands, in Linux's order of checks (measured): `KVM_CREATE_PIT2` reads its
/// argument (`EFAULT`), then `EEXIST` for a second PIT, `ENOENT` without an in-kernel irqchip;
/// `KVM_CREATE_PIT` (no argument) is `KVM_CREATE_PIT2` with `KVM_PIT_SPEAKER_DUMMY`.
/// `KVM_GET_PIT2` is `ENXIO` without a PIT before it writes; `KVM_SET_PIT2`, `KVM_GET_PIT`,
/// `KVM_SET_PIT` and `KVM_REINJECT_CONTROL` read their argument first. `KVM_GET/SET_PIT`
/// carry the channels without the flags.
pub(super) fn pit_ioctl<O: Os>(os: &O, vm: &SvmVm<O>, cmd: u32, arg: u64) -> KResult<i64> {
    let chip = || vm_chip(vm).ok_or(Errno::ENXIO);
    match cmd {
        KVM_CREATE_PIT2 | KVM_CREATE_PIT => {
            let flags = if cmd == KVM_CREATE_PIT {
                KVM_PIT_SPEAKER_DUMMY
            } else {
                user::read::<_, KvmPitConfig>(os, UserAddr(arg))?.flags
            };
            let chip = vm_chip(vm).ok_or(Errno::ENOENT)?;
            chip.create_pit(os, flags)?;
        }
        KVM_GET_PIT2 => {
            let s = chip()?.get_pit().ok_or(Errno::ENXIO)?;
            user::write(os, UserAddr(arg), &s)?;
        }
        KVM_SET_PIT2 => {
            let s: KvmPitState2 = user::read(os, UserAddr(arg))?;
            if !chip()?.set_pit(os, &s) {
                return Err(Errno::ENXIO);
            }
        }
        KVM_GET_PIT => {
            let _: KvmPitState = user::read(os, UserAddr(arg))?;
            let s = chip()?.get_pit().ok_or(Errno::ENXIO)?;
            user::write(
                os,
                UserAddr(arg),
                &KvmPitState {
                    channels: s.channels,
                },
            )?;
        }
        KVM_SET_PIT => {
            let old: KvmPitState = user::read(os, UserAddr(arg))?;
            let chip = chip()?;
            let cur = chip.get_pit().ok_or(Errno::ENXIO)?;
            let s = KvmPitState2 {
                channels: old.channels,
                ..cur
            };
            chip.set_pit(os, &s);
        }
        KVM_REINJECT_CONTROL => {
            let c: KvmReinjectControl = user::read(os, UserAddr(arg))?;
            if !chip()?.set_pit_reinject(c.pit_reinject != 0) {
                return Err(Errno::ENXIO);
            }
        }
        _ => return Err(Errno::ENOTTY),
    }
    Ok(0)
}

/// With an in-kernel APIC, CR8 is its TPR[7:4] (as on Linux KVM). After an exit: a CR8 the
/// guest changed (through V_TPR) becomes the TPR.
pub(super) fn cr8_to_tpr<O: Os>(v: &mut super::SvmVcpu<O>) {
    let Some(irq) = &v.irq else {
        return;
    };
    if v.st.cr8 != v.cr8_synced {
        // CAST: CR8 is four bits.
        irq.slot
            .lapic
            .lock()
            .write_reg(lapic::reg::TPR, ((v.st.cr8 & 0xf) << 4) as u32, 0);
        v.cr8_synced = v.st.cr8;
    }
}

/// Before an entry, with an in-kernel APIC: a CR8 that `KVM_SET_SREGS` changed becomes the
/// TPR ([`cr8_to_tpr`]), then CR8 follows the TPR (which the guest's xAPIC MMIO or
/// `KVM_SET_LAPIC` may have changed).
fn tpr_to_cr8<O: Os>(v: &mut super::SvmVcpu<O>) {
    cr8_to_tpr(v);
    let Some(irq) = &v.irq else {
        return;
    };
    let tpr = irq.slot.lapic.lock().get(lapic::reg::TPR);
    v.st.cr8 = u64::from(tpr >> 4) & 0xf;
    v.cr8_synced = v.st.cr8;
}

/// The VM's irqchip, if created.
pub(super) fn vm_chip<O: Os>(vm: &SvmVm<O>) -> Option<KArc<VmChip<O>>> {
    vm.irq.lock().chip.as_ref().and_then(|c| c.try_clone().ok())
}

/// The registers INIT leaves (the reset state, `vector` `None`: the BSP restarts at the reset
/// vector), or a start-up IPI with `vector`: the reset state in real mode at `vector << 12`
/// (CS selector `vector << 8`, IP 0). The APIC base is kept.
fn init_state(
    st: &mut VcpuState,
    id: u32,
    vector: Option<u8>,
    host_cr4_reserved: u64,
    tsc: u64,
) -> KResult<()> {
    let fresh = VcpuState::reset(id, tsc)?;
    let mut c = SregsCommon::from_sregs(&fresh.sregs());
    c.apic_base = st.apic_base;
    st.regs = fresh.regs;
    if let (Some(cs), Some(vector)) = (c.segs.first_mut(), vector) {
        cs.selector = u16::from(vector) << 8;
        cs.base = u64::from(vector) << 12;
        st.regs.rip = 0;
    }
    st.set_sregs_common(&c, host_cr4_reserved)?;
    st.events = Default::default();
    Ok(())
}

impl<H: Hw> Svm<H> {
    fn irq_handles<O: Os>(ctx: &mut RunCtx<'_, O, Self>) -> KResult<Option<Handles<O>>> {
        match &ctx.vcpu().irq {
            Some(VcpuIrq { chip, slot }) => Ok(Some((chip.try_clone()?, slot.try_clone()?))),
            None => Ok(None),
        }
    }

    /// Before an entry, with an in-kernel irqchip: waits in the kernel while the vCPU is
    /// halted or waiting for a start-up IPI (until something to deliver, a signal, or the
    /// APIC timer), starts it on a start-up IPI, then queues the deliverable interrupt or
    /// asks for a VINTR window. `Some(Exit::Interrupted)` to let the core see a signal.
    pub(super) fn irq_entry<O: Os>(&self, ctx: &mut RunCtx<'_, O, Self>) -> KResult<Option<Exit>> {
        let Some((chip, slot)) = Self::irq_handles(ctx)? else {
            ctx.vcpu().irq_window = false;
            return Ok(None);
        };
        let os = ctx.os();
        if !slot.has_kicker() {
            slot.set_kicker(ctx.kicker()?);
        }
        loop {
            let now = os.time_monotonic_ns();
            // vCPU 0 runs the PIT: its due tick goes out before the entry (or wakes a halt).
            let pit_deadline = if slot.vcpu_id == 0 {
                chip.poll_pit(os, now)
            } else {
                None
            };
            let (state, init) = {
                let mut l = slot.lapic.lock();
                let init = core::mem::take(&mut l.init_pending);
                if init {
                    l.init_reset();
                }
                (l.mp_state, init)
            };
            // INIT resets the processor; the BSP then runs from the reset vector, an AP waits
            // for a start-up IPI.
            if init && ctx.vcpu().st.apic_base & (1 << 8) != 0 {
                let tsc = self.hw.rdtsc();
                init_state(
                    &mut ctx.vcpu().st,
                    slot.vcpu_id,
                    None,
                    self.host_cr4_reserved,
                    tsc,
                )?;
                slot.lapic.lock().mp_state = MpState::Runnable;
                continue;
            }
            let halted = match state {
                MpState::Runnable => break,
                MpState::SipiReceived(vector) => {
                    let tsc = self.hw.rdtsc();
                    init_state(
                        &mut ctx.vcpu().st,
                        slot.vcpu_id,
                        Some(vector),
                        self.host_cr4_reserved,
                        tsc,
                    )?;
                    slot.lapic.lock().mp_state = MpState::Runnable;
                    break;
                }
                MpState::Halted => {
                    if chip.wakeup_pending(&slot, now) {
                        slot.lapic.lock().mp_state = MpState::Runnable;
                        break;
                    }
                    true
                }
                MpState::Uninitialized | MpState::InitReceived => false,
            };
            let apic_deadline = slot.lapic.lock().next_deadline();
            let deadline = match (apic_deadline, pit_deadline) {
                (Some(a), Some(p)) => Some(a.min(p)),
                (a, p) => a.or(p),
            };
            let cond = || {
                if halted {
                    chip.wakeup_pending(&slot, os.time_monotonic_ns())
                } else {
                    let l = slot.lapic.lock();
                    l.init_pending || matches!(l.mp_state, MpState::SipiReceived(_))
                }
            };
            let r = match deadline {
                Some(d) if halted => slot.wq.wait_until_timeout(&cond, d.saturating_sub(now)),
                _ => slot.wq.wait_until(&cond).map(|()| true),
            };
            if r.is_err() || os.thread_signal_pending() || os.thread_resched_needed() {
                return Ok(Some(Exit::Interrupted));
            }
        }
        let now = os.time_monotonic_ns();
        let v = ctx.vcpu();
        tpr_to_cr8(v);
        v.irq_window = chip.prepare_entry(&slot, &mut v.st, now) == Entry::Window;
        Ok(None)
    }

    /// `RDMSR`/`WRMSR` of an MSR the in-kernel local APIC owns (`IA32_TSC_DEADLINE`): carried
    /// out, RIP stepped past it. `false` for any other MSR, or without an irqchip.
    pub(super) fn irq_msr<O: Os>(&self, ctx: &mut RunCtx<'_, O, Self>, write: bool) -> bool {
        let os = ctx.os();
        let v = ctx.vcpu();
        // CAST: RDMSR/WRMSR take ECX.
        let (Some(irq), MSR_TSC_DEADLINE) = (&v.irq, v.st.regs.rcx as u32) else {
            return false;
        };
        let st = &mut v.st;
        let mut l = irq.slot.lapic.lock();
        if write {
            let value = (st.regs.rdx << 32) | (st.regs.rax & 0xffff_ffff);
            let guest_now = self.hw.rdtsc().wrapping_add(st.msrs.tsc_offset);
            let now = os.time_monotonic_ns();
            let khz = os.tsc_khz().max(1);
            // TSC ticks to ns: ticks * 10^6 / kHz, without 128-bit arithmetic (kernels have no
            // helpers for it); a deadline in the past fires at once.
            let ticks = value.saturating_sub(guest_now);
            let ns = tsc_ticks_to_ns(ticks, khz);
            l.write_tsc_deadline(value, now.saturating_add(ns));
        } else {
            let d = l.read_tsc_deadline();
            st.regs.rax = d & 0xffff_ffff;
            st.regs.rdx = d >> 32;
        }
        st.regs.rip = st.regs.rip.wrapping_add(2);
        true
    }

    /// An exit the backend decided on, seen by the irqchip first: PIC port accesses and
    /// IOAPIC/local-APIC MMIO are carried out here (and the instruction finished), so the
    /// guest runs on; anything else is returned for the core.
    pub(super) fn irq_exit<O: Os>(
        &self,
        ctx: &mut RunCtx<'_, O, Self>,
        exit: Exit,
    ) -> KResult<Option<Exit>> {
        let mut exit = exit;
        loop {
            if !self.irq_exit_one(ctx, exit)? {
                return Ok(Some(exit));
            }
            // A read-modify-write has a second access, queued by the completion.
            match ctx.vcpu().queued_exit.take() {
                Some(next) => exit = next,
                None => return Ok(None),
            }
        }
    }

    /// Handles one exit in the kernel if it belongs to the irqchip; `false` if not.
    fn irq_exit_one<O: Os>(&self, ctx: &mut RunCtx<'_, O, Self>, exit: Exit) -> KResult<bool> {
        let Some((chip, slot)) = Self::irq_handles(ctx)? else {
            return Ok(false);
        };
        let os = ctx.os();
        match exit {
            Exit::Io {
                port,
                size,
                out,
                count: 1,
            } if (PicPair::owns_port(port) || Pit::may_own_port(port))
                && ctx.vcpu().pending_ins.is_none() =>
            {
                let n = usize::from(size).clamp(1, 4);
                // CAST: the low half of RAX holds an OUT's data.
                let mut data = (ctx.vcpu().st.regs.rax as u32).to_le_bytes();
                let Some(bytes) = data.get_mut(..n) else {
                    return Ok(false);
                };
                if !chip.pio(os, port, out, bytes) {
                    // A PIT port without a PIT (or 0x61 without its dummy speaker).
                    return Ok(false);
                }
                if !out {
                    if !ctx.pio_write(0, bytes) {
                        return Err(Errno::EFAULT);
                    }
                    <Self as kvmport_core::Arch<O>>::vcpu_complete(
                        self,
                        ctx,
                        Completion::Io {
                            input: true,
                            size,
                            count: 1,
                        },
                    )?;
                }
                Ok(true)
            }
            Exit::Mmio {
                gpa: Gpa(gpa),
                len,
                write,
            } => {
                let n = usize::from(len).clamp(1, 8);
                let mask = if n >= 8 {
                    u64::MAX
                } else {
                    (1u64 << (n * 8)) - 1
                };
                let val = write.map(|d| u64::from_le_bytes(d) & mask);
                let base = ctx.vcpu().st.apic_base;
                let apic_page = base & 0x000f_ffff_ffff_f000;
                let in_apic = base & lapic::BASE_ENABLE != 0
                    && base & lapic::BASE_X2APIC == 0
                    && gpa & !0xfff == apic_page;
                let result = if in_apic {
                    let now = os.time_monotonic_ns();
                    let off = gpa & 0xfff;
                    match val {
                        Some(x) => {
                            let w = slot.lapic.lock().mmio_write(off, x, now);
                            chip.apic_write_effect(os, &slot, w);
                            Some(0)
                        }
                        None => Some(slot.lapic.lock().mmio_read(off, n, now)),
                    }
                } else {
                    chip.ioapic_mmio(os, gpa, n, val)
                };
                let Some(r) = result else {
                    return Ok(false);
                };
                self.complete_mmio(ctx, &(r & mask).to_le_bytes());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_conversion() {
        assert_eq!(tsc_ticks_to_ns(3_000_000, 3_000_000), 1_000_000);
        assert_eq!(tsc_ticks_to_ns(1, 3_000_000), 0);
        assert_eq!(tsc_ticks_to_ns(4_500, 3_000), 1_500_000);
        assert_eq!(tsc_ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(tsc_ticks_to_ns(u64::MAX, 0), u64::MAX);
        assert_eq!(tsc_ticks_to_ns(2_999_999, 3_000_000), 999_999);
    }

    #[test]
    fn sipi_and_init_states() {
        let mut st = VcpuState::reset(1, 0).unwrap();
        st.regs.rax = 0x1234;
        st.regs.rip = 0x5555;
        let base = st.apic_base;
        init_state(&mut st, 1, Some(0x9a), 0, 0).unwrap();
        let s = st.sregs();
        assert_eq!((s.cs.selector, s.cs.base), (0x9a00, 0x9a000));
        assert_eq!((st.regs.rip, st.regs.rax), (0, 0));
        assert_eq!(s.apic_base, base);
        assert_eq!(s.cr0 & 1, 0, "real mode");
        // INIT of the BSP: the reset vector.
        let mut bsp = VcpuState::reset(0, 0).unwrap();
        bsp.regs.rip = 0x1000;
        init_state(&mut bsp, 0, None, 0, 0).unwrap();
        let s = bsp.sregs();
        assert_eq!(
            (s.cs.selector, s.cs.base, bsp.regs.rip),
            (0xf000, 0xffff_0000, 0xfff0)
        );
    }
}
