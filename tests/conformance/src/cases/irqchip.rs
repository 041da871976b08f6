//! The in-kernel interrupt controller (`KVM_CREATE_IRQCHIP`): the chips' reset state and
//! `KVM_GET/SET_IRQCHIP` round trips, `KVM_IRQ_LINE_STATUS` results and the default GSI
//! routing, the local APIC's `KVM_GET/SET_LAPIC`, MP states with an in-kernel APIC, the errnos
//! of bad chip ids, and guests that program the PIC, or the IOAPIC and local APIC, and take
//! an interrupt raised with `KVM_IRQ_LINE` (or by the APIC timer while halted). Then
//! `KVM_SET_GSI_ROUTING` (its checks, and `KVM_IRQ_LINE` following the table) and MSIs,
//! signalled with `KVM_SIGNAL_MSI` or through an MSI route.

use crate::cases::irq;
use crate::check_eq;
use crate::guest::{CODE_N, Code, Guest, IDT, Mode, SEL_CODE32, run_guarded};
use crate::harness::{Case, CaseResult, Ctx, OrFail, need, want_err, want_ret};
use kvmport_client::{Errno, IrqRoutingBuf, Vm};
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::{
    KVM_CREATE_PIT2, KVM_GET_IRQCHIP, KVM_GET_LAPIC, KVM_GET_PIT, KVM_GET_PIT2, KVM_IRQ_LINE,
    KVM_IRQ_LINE_STATUS, KVM_SET_GSI_ROUTING, KVM_SET_IRQCHIP, KVM_SET_LAPIC, KVM_SET_PIT2,
    KVM_SIGNAL_MSI,
};
use kvmport_core::abi::x86::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_PIT_FLAGS_HPET_LEGACY,
    KVM_PIT_SPEAKER_DUMMY, KvmIoapicState, KvmLapicState, KvmPicState, KvmPitChannelState,
    KvmPitConfig, KvmPitState, KvmPitState2,
};
use kvmport_core::abi::{
    KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
    KVM_MSI_VALID_DEVID, KvmIrqLevel, KvmIrqRouting, KvmIrqRoutingEntry, KvmIrqRoutingIrqchip,
    KvmIrqRoutingMsi, KvmIrqchip, KvmIrqchipChip, KvmMsi,
};

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    "irqchip.no_irqchip_enxio" => no_irqchip,
    "irqchip.bad_chip_id_einval" => bad_chip_id,
    "irqchip.reset_state" => reset_state,
    "irqchip.pic_roundtrip" => pic_roundtrip,
    "irqchip.ioapic_roundtrip" => ioapic_roundtrip,
    "irqchip.irq_line_status" => irq_line_status,
    "irqchip.irq_line_leaves_argument" => irq_line_argument,
    "irqchip.lapic_reset_values" => lapic_reset,
    "irqchip.lapic_roundtrip" => lapic_roundtrip,
    "irqchip.lapic_without_irqchip_einval" => lapic_without_irqchip,
    "irqchip.mp_state_with_apic" => mp_states,
    guest "irqchip.pic_irq_delivered_real_mode" => pic_guest,
    guest "irqchip.ioapic_lapic_delivered_prot32" => ioapic_guest,
    guest "irqchip.lapic_timer_ends_hlt" => timer_guest,
    guest "irqchip.tsc_deadline_timer_ends_hlt" => tsc_deadline_guest,
    guest "irqchip.init_sipi_starts_ap" => init_sipi_guest,
    "irqchip.gsi_routing.needs_irqchip_einval" => routing_needs_chip,
    "irqchip.gsi_routing.bad_tables_einval" => routing_bad,
    "irqchip.gsi_routing.irq_line_follows_table" => routing_line,
    "irqchip.signal_msi.errors_and_counts" => msi_errors,
    guest "irqchip.signal_msi_delivered_prot32" => msi_guest,
    guest "irqchip.gsi_routing_msi_delivered_prot32" => routed_msi_guest,
    "irqchip.pit.create_errors" => pit_create,
    "irqchip.pit.reset_state_and_roundtrip" => pit_state,
    guest "irqchip.pit_counter_read_in_guest" => pit_read_guest,
    guest "irqchip.pit_irq0_delivered_real_mode" => pit_irq_guest,
    guest "irqchip.cr8_is_the_apic_tpr" => cr8_tpr_guest,
];

/// A VM with an in-kernel irqchip (the case is skipped without `KVM_CAP_IRQCHIP`).
fn chip_vm(ctx: &Ctx) -> Result<Vm, String> {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")?;
    Ok(vm)
}

fn get_chip(vm: &Vm, id: u32) -> Result<KvmIrqchip, Errno> {
    let mut c = KvmIrqchip {
        chip_id: id,
        ..Default::default()
    };
    vm.fd().ioctl_rw(KVM_GET_IRQCHIP, &mut c)?;
    Ok(c)
}

fn set_chip<T: zerocopy::IntoBytes + zerocopy::Immutable>(
    vm: &Vm,
    id: u32,
    state: &T,
) -> Result<i64, Errno> {
    // KVM_SET_IRQCHIP is declared _IOR (as if the kernel wrote the argument); it only reads it.
    let mut c = KvmIrqchip {
        chip_id: id,
        pad: 0,
        chip: KvmIrqchipChip::from_value(state).unwrap_or_default(),
    };
    vm.fd().ioctl_rw(KVM_SET_IRQCHIP, &mut c)
}

/// `KVM_IRQ_LINE_STATUS`: the returned status.
fn line_status(vm: &Vm, irq: u32, level: u32) -> Result<i32, String> {
    let mut l = KvmIrqLevel { irq, level };
    vm.fd()
        .ioctl_rw(KVM_IRQ_LINE_STATUS, &mut l)
        .ctx("IRQ_LINE_STATUS")?;
    Ok(l.status())
}

fn irq_line(vm: &Vm, irq: u32, level: u32) -> Result<i64, String> {
    vm.fd()
        .ioctl_write(KVM_IRQ_LINE, &KvmIrqLevel { irq, level })
        .ctx("IRQ_LINE")
}

fn word(s: &KvmLapicState, off: usize) -> u32 {
    u32::from_le_bytes([
        s.regs[off],
        s.regs[off + 1],
        s.regs[off + 2],
        s.regs[off + 3],
    ])
}

fn put_word(s: &mut KvmLapicState, off: usize, v: u32) {
    s.regs[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn no_irqchip(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    want_err(
        get_chip(&vm, 0),
        Errno::ENXIO,
        "GET_IRQCHIP without irqchip",
    )?;
    want_err(
        set_chip(&vm, 0, &KvmPicState::default()),
        Errno::ENXIO,
        "SET_IRQCHIP without irqchip",
    )?;
    want_err(
        vm.fd()
            .ioctl_write(KVM_IRQ_LINE, &KvmIrqLevel { irq: 1, level: 1 }),
        Errno::ENXIO,
        "IRQ_LINE without irqchip",
    )
}

fn bad_chip_id(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    for id in [3u32, 0x8000_0000, u32::MAX] {
        want_err(
            get_chip(&vm, id),
            Errno::EINVAL,
            &format!("GET_IRQCHIP {id:#x}"),
        )?;
        want_err(
            set_chip(&vm, id, &KvmPicState::default()),
            Errno::EINVAL,
            &format!("SET_IRQCHIP {id:#x}"),
        )?;
    }
    Ok(())
}

fn reset_state(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let m = get_chip(&vm, KVM_IRQCHIP_PIC_MASTER)
        .ctx("GET_IRQCHIP master")?
        .chip
        .pic();
    check_eq!(
        m,
        KvmPicState {
            elcr_mask: 0xf8,
            ..Default::default()
        },
        "master PIC after CREATE_IRQCHIP"
    );
    let s = get_chip(&vm, KVM_IRQCHIP_PIC_SLAVE)
        .ctx("GET_IRQCHIP slave")?
        .chip
        .pic();
    check_eq!(s.elcr_mask, 0xde, "slave PIC elcr_mask");
    let io = get_chip(&vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP ioapic")?
        .chip
        .ioapic();
    check_eq!(
        (io.base_address, io.ioregsel, io.id, io.irr),
        (0xfec0_0000, 0, 0, 0),
        "IOAPIC (base, ioregsel, id, irr)"
    );
    check_eq!(
        io.redirtbl.to_vec(),
        vec![1u64 << 16; 24],
        "IOAPIC entries masked"
    );
    Ok(())
}

fn pic_roundtrip(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let st = KvmPicState {
        last_irr: 0x01,
        irr: 0x11,
        imr: 0xb8,
        isr: 0x02,
        priority_add: 3,
        irq_base: 0x20,
        read_reg_select: 1,
        poll: 0,
        special_mask: 1,
        init_state: 0,
        auto_eoi: 0,
        rotate_on_auto_eoi: 1,
        special_fully_nested_mode: 1,
        init4: 1,
        elcr: 0x08,
        elcr_mask: 0xf8,
    };
    for id in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE] {
        want_ret(set_chip(&vm, id, &st), 0, "SET_IRQCHIP")?;
        let back = get_chip(&vm, id).ctx("GET_IRQCHIP")?;
        check_eq!(back.chip.pic(), st, "PIC state read back");
        check_eq!(back.chip_id, id, "chip_id kept");
    }
    Ok(())
}

fn ioapic_roundtrip(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let mut st = KvmIoapicState {
        base_address: 0xfec0_0000,
        ioregsel: 0x12,
        id: 3,
        irr: 0,
        pad: 0,
        redirtbl: [1 << 16; 24],
    };
    for (i, e) in st.redirtbl.iter_mut().enumerate() {
        // Masked, vector 0x30 + i, level-triggered on odd pins, logical destination i.
        *e = (1 << 16) | (0x30 + i as u64) | ((i as u64 & 1) << 15) | ((i as u64) << 56);
    }
    want_ret(
        set_chip(&vm, KVM_IRQCHIP_IOAPIC, &st),
        0,
        "SET_IRQCHIP ioapic",
    )?;
    let back = get_chip(&vm, KVM_IRQCHIP_IOAPIC).ctx("GET_IRQCHIP ioapic")?;
    check_eq!(back.chip.ioapic(), st, "IOAPIC state read back");
    Ok(())
}

fn irq_line_status(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    // Reset state: PIC inputs unmasked (IMR 0), IOAPIC entries masked.
    check_eq!(
        line_status(&vm, 0, 1)?,
        1,
        "GSI 0 raised (PIC 1, IOAPIC masked)"
    );
    let io = get_chip(&vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP")?
        .chip
        .ioapic();
    check_eq!(io.irr, 1, "GSI 0 is IOAPIC pin 0 (IRR bit 0)");
    let m = get_chip(&vm, KVM_IRQCHIP_PIC_MASTER)
        .ctx("GET_IRQCHIP")?
        .chip
        .pic();
    check_eq!((m.irr, m.last_irr), (1, 1), "master PIC (irr, last_irr)");
    check_eq!(line_status(&vm, 0, 1)?, 1, "GSI 0 raised again");
    check_eq!(line_status(&vm, 0, 0)?, 2, "GSI 0 lowered (both chips 1)");
    let io = get_chip(&vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP")?
        .chip
        .ioapic();
    check_eq!(io.irr, 0, "IOAPIC IRR after lowering");
    check_eq!(line_status(&vm, 20, 1)?, -1, "GSI 20 (IOAPIC only, masked)");
    check_eq!(line_status(&vm, 24, 1)?, -1, "GSI 24 (no route)");
    check_eq!(line_status(&vm, u32::MAX, 1)?, -1, "GSI 2^32-1 (no route)");
    // Mask the master's IR1: both chips refuse.
    let mut m = get_chip(&vm, KVM_IRQCHIP_PIC_MASTER)
        .ctx("GET_IRQCHIP")?
        .chip
        .pic();
    m.imr = 0xff;
    want_ret(set_chip(&vm, KVM_IRQCHIP_PIC_MASTER, &m), 0, "SET_IRQCHIP")?;
    check_eq!(line_status(&vm, 1, 1)?, -1, "GSI 1 with both chips masked");
    check_eq!(line_status(&vm, 1, 0)?, 1, "GSI 1 lowered (IOAPIC 1)");
    // A slave input counts by the slave's own mask, not the master's cascade input.
    check_eq!(line_status(&vm, 9, 1)?, 1, "GSI 9, slave unmasked");
    Ok(())
}

fn irq_line_argument(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let mut l = KvmIrqLevel { irq: 4, level: 1 };
    want_ret(vm.fd().ioctl_write(KVM_IRQ_LINE, &l), 0, "IRQ_LINE")?;
    l.level = 0;
    want_ret(vm.fd().ioctl_write(KVM_IRQ_LINE, &l), 0, "IRQ_LINE lower")?;
    want_ret(
        vm.fd()
            .ioctl_write(KVM_IRQ_LINE, &KvmIrqLevel { irq: 100, level: 1 }),
        0,
        "IRQ_LINE of a GSI without a route",
    )?;
    Ok(())
}

fn lapic_reset(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let v0 = vm.create_vcpu(0).ctx("CREATE_VCPU 0")?;
    let v1 = vm.create_vcpu(1).ctx("CREATE_VCPU 1")?;
    for (v, id) in [(&v0, 0u32), (&v1, 1)] {
        let s: KvmLapicState = v.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
        check_eq!(word(&s, 0x20), id << 24, "ID");
        check_eq!(word(&s, 0x30), 0x0005_0014, "version");
        check_eq!(word(&s, 0x80), 0, "TPR");
        check_eq!(word(&s, 0xe0), 0xffff_ffff, "DFR");
        check_eq!(word(&s, 0xf0), 0xff, "SVR (software-disabled)");
        let lint0 = if id == 0 { 0x700 } else { 0x1_0000 };
        check_eq!(
            [0x320, 0x330, 0x340, 0x350, 0x360, 0x370].map(|o| word(&s, o)),
            [0x1_0000, 0x1_0000, 0x1_0000, lint0, 0x1_0000, 0x1_0000],
            "LVT (LINT0 in ExtINT mode on the BSP)"
        );
        check_eq!(
            (0x100..0x280)
                .step_by(16)
                .map(|o| word(&s, o))
                .filter(|w| *w != 0)
                .count(),
            0,
            "ISR, TMR, IRR clear"
        );
    }
    Ok(())
}

fn lapic_roundtrip(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let v = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    let mut s: KvmLapicState = v.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    put_word(&mut s, 0xf0, 0x1ff);
    put_word(&mut s, 0x80, 0x20);
    put_word(&mut s, 0xd0, 0x0100_0000);
    put_word(&mut s, 0xe0, 0x0fff_ffff);
    put_word(&mut s, 0x310, 0x0300_0000);
    put_word(&mut s, 0x320, 0x0001_0040);
    put_word(&mut s, 0x350, 0x0000_0700);
    put_word(&mut s, 0x360, 0x0000_0400);
    put_word(&mut s, 0x370, 0x0000_00fe);
    put_word(&mut s, 0x3e0, 0xb);
    want_ret(v.fd().ioctl_write(KVM_SET_LAPIC, &s), 0, "SET_LAPIC")?;
    let back: KvmLapicState = v.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    // All but the version, PPR and the timer's current count, which are computed.
    for off in (0..0x400)
        .step_by(16)
        .filter(|o| ![0x30, 0xa0, 0x390].contains(o))
    {
        check_eq!(word(&back, off), word(&s, off), "register {off:#x}");
    }
    check_eq!(word(&back, 0xa0), 0x20, "PPR follows TPR");
    Ok(())
}

fn lapic_without_irqchip(ctx: &Ctx) -> CaseResult {
    let (kvm, vm, v) = ctx.vcpu()?;
    need(&kvm, Cap::Irqchip)?;
    let _ = vm;
    want_err(
        v.fd().ioctl_read::<KvmLapicState>(KVM_GET_LAPIC),
        Errno::EINVAL,
        "GET_LAPIC without irqchip",
    )?;
    let zero = KvmLapicState { regs: [0; 1024] };
    want_err(
        v.fd().ioctl_write(KVM_SET_LAPIC, &zero),
        Errno::EINVAL,
        "SET_LAPIC without irqchip",
    )?;
    want_err(
        v.set_mp_state(1),
        Errno::EINVAL,
        "SET_MP_STATE UNINITIALIZED without irqchip",
    )
}

fn mp_states(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    let v0 = vm.create_vcpu(0).ctx("CREATE_VCPU 0")?;
    let v1 = vm.create_vcpu(1).ctx("CREATE_VCPU 1")?;
    check_eq!(v0.get_mp_state().ctx("GET_MP_STATE 0")?, 0, "BSP RUNNABLE");
    check_eq!(
        v1.get_mp_state().ctx("GET_MP_STATE 1")?,
        1,
        "AP UNINITIALIZED"
    );
    for st in 0..=3u32 {
        v1.set_mp_state(st).ctx(&format!("SET_MP_STATE {st}"))?;
        check_eq!(
            v1.get_mp_state().ctx("GET_MP_STATE")?,
            st,
            "state read back"
        );
    }
    // A start-up IPI set this way is taken at once: the AP reads back RUNNABLE.
    v1.set_mp_state(4).ctx("SET_MP_STATE SIPI_RECEIVED")?;
    check_eq!(
        v1.get_mp_state().ctx("GET_MP_STATE")?,
        0,
        "after SIPI_RECEIVED"
    );
    for st in [5u32, 6, 7, 8] {
        want_err(
            v1.set_mp_state(st),
            Errno::EINVAL,
            &format!("SET_MP_STATE {st}"),
        )?;
    }
    Ok(())
}

/// GPA of the 32-bit handler.
const HANDLER32: u64 = 0x3000;

/// Real-mode code that sets the PIC pair up as a PC BIOS does (edge-triggered, the slave on
/// IR2, the master's vectors at 0x20-0x27, 8086 mode) with the master's mask `imr`.
fn pic_init(imr: u8) -> Code {
    Code::new()
        .op_b(&[0xB0], 0x11) // mov al, 0x11 (ICW1: edge, cascade, ICW4)
        .op_b(&[0xE6], 0x20) // out 0x20, al
        .op_b(&[0xB0], 0x20) // mov al, 0x20 (ICW2: vectors 0x20-0x27)
        .op_b(&[0xE6], 0x21) // out 0x21, al
        .op_b(&[0xB0], 0x04) // mov al, 4 (ICW3: slave on IR2)
        .op_b(&[0xE6], 0x21) // out 0x21, al
        .op_b(&[0xB0], 0x01) // mov al, 1 (ICW4: 8086 mode)
        .op_b(&[0xE6], 0x21) // out 0x21, al
        .op_b(&[0xB0], imr) // mov al, imr (OCW1)
        .op_b(&[0xE6], 0x21) // out 0x21, al
}

/// A real-mode guest (see [`irq::real_mode_guest`]) running `code` on a VM that `hook` set
/// up, whose IVT entry `vector` points at a handler that reports `vector` on port 0x11.
fn real_mode_irq_guest(
    ctx: &Ctx,
    code: &Code,
    vector: u8,
    hook: impl FnOnce(&Vm) -> Result<(), String>,
) -> Result<Guest, String> {
    let g = irq::real_mode_guest(ctx, code, hook)?;
    irq::install_handler(&g, vector);
    Ok(g)
}

fn pic_guest(ctx: &Ctx) -> CaseResult {
    let (kvm, _) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    let code = pic_init(0xfd) // only IR1
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]) // sti
        .op(&[0xF4]); // hlt
    let g = real_mode_irq_guest(ctx, &code, 0x21, |vm| {
        want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")
    })?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    let m = get_chip(&g.vm, KVM_IRQCHIP_PIC_MASTER)
        .ctx("GET_IRQCHIP")?
        .chip
        .pic();
    check_eq!(
        (m.irq_base, m.imr, m.init_state),
        (0x20, 0xfd, 0),
        "PIC as programmed"
    );
    irq_line(&g.vm, 1, 1)?;
    irq_line(&g.vm, 1, 0)?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x21],
        "vector the handler reports"
    );
    let m = get_chip(&g.vm, KVM_IRQCHIP_PIC_MASTER)
        .ctx("GET_IRQCHIP")?
        .chip
        .pic();
    check_eq!(
        (m.isr, m.irr),
        (0x02, 0),
        "IR1 in service after the acknowledge"
    );
    Ok(())
}

/// `mov dword [addr], val` (32-bit code).
fn mov_mem32(c: Code, addr: u32, val: u32) -> Code {
    let mut b = vec![0xC7, 0x05];
    b.extend_from_slice(&addr.to_le_bytes());
    b.extend_from_slice(&val.to_le_bytes());
    c.op(&b)
}

/// A 32-bit guest with an interrupt gate for `vector` to a handler that reports it on port
/// 0x11, running `code`, on a VM with an irqchip.
fn guest32(ctx: &Ctx, code: &Code, vector: u8) -> Result<Guest, String> {
    let (kvm, _) = ctx.vm()?;
    need(&kvm, Cap::Irqchip)?;
    let g = Guest::with_hook(ctx, Mode::Prot32, code, 0, |vm| {
        want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")
    })?;
    let h = Code::new()
        .op_b(&[0xB0], vector)
        .op_b(&[0xE6], 0x11)
        .op(&[0xF4]);
    g.mem.write(HANDLER32, &h.0);
    let off = HANDLER32 as u32;
    let mut gate = [0u8; 8];
    gate[0..2].copy_from_slice(&(off as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&SEL_CODE32.to_le_bytes());
    gate[5] = 0x8e;
    gate[6..8].copy_from_slice(&((off >> 16) as u16).to_le_bytes());
    g.mem.write(IDT + u64::from(vector) * 8, &gate);
    let mut s = g.sregs()?;
    s.idt.base = IDT;
    s.idt.limit = (u16::from(vector) + 1) * 8 - 1;
    g.vcpu.set_sregs(&s).ctx("SET_SREGS")?;
    Ok(g)
}

fn ioapic_guest(ctx: &Ctx) -> CaseResult {
    let mut code = Code::new();
    code = mov_mem32(code, 0xfee0_00f0, 0x1ff); // APIC software enable
    code = mov_mem32(code, 0xfec0_0000, 0x10 + 2 * 20 + 1); // IOREGSEL: pin 20 high
    code = mov_mem32(code, 0xfec0_0010, 0); // destination APIC 0
    code = mov_mem32(code, 0xfec0_0000, 0x10 + 2 * 20); // IOREGSEL: pin 20 low
    code = mov_mem32(code, 0xfec0_0010, 0x41); // vector 0x41, fixed, edge, unmasked
    let code = code
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]) // sti
        .op(&[0xF4]); // hlt
    let g = guest32(ctx, &code, 0x41)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    let io = get_chip(&g.vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP")?
        .chip
        .ioapic();
    check_eq!(io.redirtbl[20], 0x41, "pin 20 as the guest programmed it");
    check_eq!(io.ioregsel, 0x38, "IOREGSEL as left");
    check_eq!(
        line_status(&g.vm, 20, 1)?,
        1,
        "GSI 20 delivered to one APIC"
    );
    line_status(&g.vm, 20, 0)?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x41],
        "vector the handler reports"
    );
    let s: KvmLapicState = g.vcpu.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    check_eq!(word(&s, 0xf0), 0x1ff, "SVR as the guest wrote it");
    Ok(())
}

fn timer_guest(ctx: &Ctx) -> CaseResult {
    let mut code = Code::new();
    code = mov_mem32(code, 0xfee0_00f0, 0x1ff); // APIC software enable
    code = mov_mem32(code, 0xfee0_03e0, 0xb); // divide by 1
    code = mov_mem32(code, 0xfee0_0320, 0x42); // LVT timer: one-shot, vector 0x42
    let code = code
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]); // sti
    // Initial count 1,000,000 bus cycles (about 1 ms on KVM's 1 GHz APIC bus), then halt.
    let code = mov_mem32(code, 0xfee0_0380, 1_000_000).op(&[0xF4]);
    let g = guest32(ctx, &code, 0x42)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x42],
        "timer vector the handler reports"
    );
    let s: KvmLapicState = g.vcpu.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    check_eq!(word(&s, 0x390), 0, "one-shot timer expired");
    Ok(())
}

fn tsc_deadline_guest(ctx: &Ctx) -> CaseResult {
    let mut code = Code::new();
    code = mov_mem32(code, 0xfee0_00f0, 0x1ff); // APIC software enable
    code = mov_mem32(code, 0xfee0_0320, (2 << 17) | 0x44); // LVT timer: TSC deadline, 0x44
    let code = code
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]) // sti
        .op(&[0x0F, 0x31]) // rdtsc
        .op_d(&[0x05], 1_000_000) // add eax, 1000000
        .op_b(&[0x83, 0xD2], 0) // adc edx, 0
        .op_d(&[0xB9], 0x6e0) // mov ecx, IA32_TSC_DEADLINE
        .op(&[0x0F, 0x30]) // wrmsr
        .op(&[0xF4]); // hlt
    let g = guest32(ctx, &code, 0x44)?;
    // The MSR exists for a guest whose CPUID reports the TSC-deadline timer (leaf 1 ECX 24).
    let mut b = g.kvm.supported_cpuid(256).ctx("GET_SUPPORTED_CPUID")?;
    for i in 0..b.entries().len() {
        let mut e = b.entry(i);
        if e.function == 1 {
            e.ecx |= 1 << 24;
            b.set_entry(i, &e);
        }
    }
    g.vcpu.set_cpuid2(&mut b).ctx("SET_CPUID2")?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x44],
        "timer vector the handler reports"
    );
    let s: KvmLapicState = g.vcpu.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    check_eq!(word(&s, 0x320), 0x4_0044, "LVT timer as the guest wrote it");
    Ok(())
}

fn init_sipi_guest(ctx: &Ctx) -> CaseResult {
    // The start-up vector names the AP's first page: CODE_N (0x30000) is vector 0x30.
    let vector = (CODE_N >> 12) as u32;
    let mut code = Code::new();
    // Software-enabled first, as an OS does: this host's KVM sent nothing from a disabled APIC.
    code = mov_mem32(code, 0xfee0_00f0, 0x1ff); // APIC software enable
    code = mov_mem32(code, 0xfee0_0310, 1 << 24); // ICR2: APIC 1
    code = mov_mem32(code, 0xfee0_0300, 0x4500); // ICR: INIT, assert
    code = mov_mem32(code, 0xfee0_0300, 0x4600 | vector); // ICR: start-up
    let code = code
        .op_b(&[0xE6], 0x10) // out 0x10, al (sent)
        .op(&[0xF4]); // hlt
    let g = guest32(ctx, &code, 0x40)?;
    let ap_code = Code::new()
        .op_b(&[0xB0], 0x5a) // mov al, 0x5a
        .op_b(&[0xE6], 0x12) // out 0x12, al
        .op(&[0xF4]); // hlt
    g.mem.write(CODE_N, &ap_code.0);
    let ap = g.vm.create_vcpu(1).ctx("CREATE_VCPU 1")?;
    let size = g.kvm.vcpu_mmap_size().ctx("GET_VCPU_MMAP_SIZE")?;
    let ap_run = ap.map_run(size).ctx("mmap vCPU 1")?;
    check_eq!(ap.get_mp_state().ctx("GET_MP_STATE")?, 1, "AP before INIT");
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)
        .map_err(|e| format!("BSP: {e}"))?;
    let st = ap.get_mp_state().ctx("GET_MP_STATE")?;
    run_guarded(&ap, &ap_run)
        .map_err(|e| format!("AP (mp_state {st}): {e}"))?
        .ctx("AP KVM_RUN")?;
    check_eq!(ap_run.exit_reason(), KVM_EXIT_IO, "AP exit");
    let io = ap_run.io();
    check_eq!(
        (io.port, ap_run.pio_data(&io)),
        (0x12, vec![0x5a]),
        "the AP ran its code"
    );
    let s = ap.get_sregs().ctx("GET_SREGS")?;
    check_eq!(
        (s.cs.selector, s.cs.base),
        ((CODE_N >> 4) as u16, CODE_N),
        "AP CS from the start-up vector"
    );
    Ok(())
}

/// An irqchip route: `gsi` to input `pin` of chip `irqchip`.
fn chip_route(gsi: u32, irqchip: u32, pin: u32) -> KvmIrqRoutingEntry {
    let mut e = KvmIrqRoutingEntry {
        gsi,
        r#type: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.write(&KvmIrqRoutingIrqchip { irqchip, pin });
    e
}

/// An MSI route: `gsi` sends the message `address_lo`/`data`.
fn msi_route(gsi: u32, address_lo: u32, data: u32) -> KvmIrqRoutingEntry {
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

/// `KVM_SET_GSI_ROUTING` with `entries` (the errno, or a setup failure as `String`).
fn set_routing(vm: &Vm, entries: &[KvmIrqRoutingEntry]) -> Result<Result<i64, Errno>, String> {
    let mut b = IrqRoutingBuf::from_entries(entries).ctx("routing buffer")?;
    Ok(b.ioctl(vm.fd(), KVM_SET_GSI_ROUTING))
}

/// `KVM_SIGNAL_MSI` of `address_lo`/`data` to physical destination bits as given.
fn signal_msi(vm: &Vm, address_lo: u32, data: u32) -> Result<i64, Errno> {
    vm.fd().ioctl_write(
        KVM_SIGNAL_MSI,
        &KvmMsi {
            address_lo,
            data,
            ..Default::default()
        },
    )
}

fn routing_needs_chip(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::IrqRouting)?;
    want_err(
        set_routing(&vm, &[])?,
        Errno::EINVAL,
        "SET_GSI_ROUTING without irqchip",
    )?;
    // The header is read first.
    want_err(
        vm.fd()
            .ioctl_bad_ptr(KVM_SET_GSI_ROUTING, kvmport_client::BadPtr::Null),
        Errno::EFAULT,
        "SET_GSI_ROUTING(NULL) without irqchip",
    )?;
    need(&kvm, Cap::SignalMsi)?;
    want_err(
        signal_msi(&vm, 0xfee0_0000, 0x30),
        Errno::EINVAL,
        "SIGNAL_MSI without irqchip",
    )?;
    want_err(
        vm.fd()
            .ioctl_bad_ptr(KVM_SIGNAL_MSI, kvmport_client::BadPtr::Null),
        Errno::EFAULT,
        "SIGNAL_MSI(NULL) without irqchip: the argument is read first",
    )
}

fn routing_bad(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    need(&ctx.kvm()?, Cap::IrqRouting)?;
    let (pm, ps, io) = (
        KVM_IRQCHIP_PIC_MASTER,
        KVM_IRQCHIP_PIC_SLAVE,
        KVM_IRQCHIP_IOAPIC,
    );
    want_ret(set_routing(&vm, &[])?, 0, "empty table")?;
    want_ret(
        set_routing(
            &vm,
            &[
                chip_route(9, pm, 1),
                chip_route(9, ps, 1),
                chip_route(9, io, 9),
                msi_route(4095, 0xfee0_0000, 0x30),
            ],
        )?,
        0,
        "a GSI on all three chips, and an MSI on GSI 4095",
    )?;
    for (what, table) in [
        ("GSI 4096", vec![chip_route(4096, io, 0)]),
        ("PIC master pin 8", vec![chip_route(0, pm, 8)]),
        ("PIC slave pin 8", vec![chip_route(0, ps, 8)]),
        ("IOAPIC pin 24", vec![chip_route(0, io, 24)]),
        ("irqchip 3", vec![chip_route(0, 3, 0)]),
        (
            "a GSI twice on the IOAPIC",
            vec![chip_route(4, io, 4), chip_route(4, io, 5)],
        ),
        (
            "an MSI and an irqchip route on one GSI",
            vec![chip_route(4, io, 4), msi_route(4, 0xfee0_0000, 0x30)],
        ),
    ] {
        want_err(set_routing(&vm, &table)?, Errno::EINVAL, what)?;
    }
    let mut e = chip_route(1, io, 1);
    e.flags = 1;
    want_err(
        set_routing(&vm, &[e])?,
        Errno::EINVAL,
        "flags on an irqchip route",
    )?;
    let mut e = msi_route(1, 0xfee0_0000, 0x30);
    e.flags = KVM_MSI_VALID_DEVID;
    want_ret(
        set_routing(&vm, &[e])?,
        0,
        "KVM_MSI_VALID_DEVID on an MSI route",
    )?;
    e.flags = 2;
    want_err(set_routing(&vm, &[e])?, Errno::EINVAL, "other MSI flags")?;
    let mut e = chip_route(1, io, 1);
    e.r#type = 3; // s390 adapter
    want_err(
        set_routing(&vm, &[e])?,
        Errno::EINVAL,
        "an s390 adapter route",
    )?;
    // The header: flags, and more entries than KVM_MAX_IRQ_ROUTES (never read).
    let mut b = IrqRoutingBuf::from_entries(&[chip_route(1, io, 1)]).ctx("buffer")?;
    b.set_header(&KvmIrqRouting { nr: 1, flags: 1 });
    want_err(
        b.ioctl(vm.fd(), KVM_SET_GSI_ROUTING),
        Errno::EINVAL,
        "header flags",
    )?;
    b.set_header(&KvmIrqRouting { nr: 4097, flags: 0 });
    want_err(
        b.ioctl(vm.fd(), KVM_SET_GSI_ROUTING),
        Errno::EINVAL,
        "nr 4097",
    )?;
    // More entries than the buffer holds: the read runs into the guard page.
    b.set_header(&KvmIrqRouting { nr: 4096, flags: 0 });
    want_err(
        b.ioctl(vm.fd(), KVM_SET_GSI_ROUTING),
        Errno::EFAULT,
        "nr 4096 with one entry readable",
    )
}

fn routing_line(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    need(&ctx.kvm()?, Cap::IrqRouting)?;
    want_ret(
        set_routing(
            &vm,
            &[
                chip_route(40, KVM_IRQCHIP_IOAPIC, 7),
                chip_route(40, KVM_IRQCHIP_PIC_SLAVE, 0),
            ],
        )?,
        0,
        "SET_GSI_ROUTING",
    )?;
    // IOAPIC pin 7 is masked at reset (-1), the PIC's input 8 is not (1).
    check_eq!(line_status(&vm, 40, 1)?, 1, "GSI 40 raised");
    let io = get_chip(&vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP")?
        .chip
        .ioapic();
    check_eq!(io.irr, 1 << 7, "IOAPIC IRR: pin 7, as routed");
    let pic = get_chip(&vm, KVM_IRQCHIP_PIC_SLAVE)
        .ctx("GET_IRQCHIP")?
        .chip
        .pic();
    check_eq!(pic.irr, 1, "PIC slave IRR: input 0 (IRQ 8)");
    // The table replaced the default routing: GSI 3 goes nowhere now.
    check_eq!(line_status(&vm, 3, 1)?, -1, "GSI 3 without a route");
    let io = get_chip(&vm, KVM_IRQCHIP_IOAPIC)
        .ctx("GET_IRQCHIP")?
        .chip
        .ioapic();
    check_eq!(io.irr, 1 << 7, "IOAPIC IRR after GSI 3");
    Ok(())
}

fn msi_errors(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    need(&ctx.kvm()?, Cap::SignalMsi)?;
    let mut m = KvmMsi {
        address_lo: 0xfee0_0000,
        data: 0x30,
        flags: 2,
        ..Default::default()
    };
    want_err(
        vm.fd().ioctl_write(KVM_SIGNAL_MSI, &m),
        Errno::EINVAL,
        "flags 2",
    )?;
    // No vCPU, so no APIC at all: the delivery result is -1, which the ioctl returns as is
    // (so user space sees EPERM).
    m.flags = 0;
    want_err(
        vm.fd().ioctl_write(KVM_SIGNAL_MSI, &m),
        Errno::EPERM,
        "SIGNAL_MSI with no vCPU",
    )?;
    let _vcpu = vm.create_vcpu(0).ctx("CREATE_VCPU")?;
    // The APIC exists but is software-disabled (SVR bit 8 clear at reset).
    want_ret(
        signal_msi(&vm, 0xfee0_0000, 0x30),
        0,
        "SIGNAL_MSI to a software-disabled APIC",
    )?;
    want_ret(
        signal_msi(&vm, 0xfee0_5000, 0x30),
        0,
        "SIGNAL_MSI to APIC id 5 (none)",
    )
}

fn msi_guest(ctx: &Ctx) -> CaseResult {
    need(&ctx.kvm()?, Cap::SignalMsi)?;
    let code = mov_mem32(Code::new(), 0xfee0_00f0, 0x1ff) // APIC software enable
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]) // sti
        .op(&[0xF4]); // hlt
    let g = guest32(ctx, &code, 0x42)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    // Physical destination 0, fixed, vector 0x42, edge.
    want_ret(
        signal_msi(&g.vm, 0xfee0_0000, 0x42),
        1,
        "SIGNAL_MSI to APIC 0",
    )?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x42],
        "vector the handler reports"
    );
    Ok(())
}

fn routed_msi_guest(ctx: &Ctx) -> CaseResult {
    need(&ctx.kvm()?, Cap::IrqRouting)?;
    let code = mov_mem32(Code::new(), 0xfee0_00f0, 0x1ff) // APIC software enable
        .op_b(&[0xE6], 0x10) // out 0x10, al (ready)
        .op(&[0xFB]) // sti
        .op(&[0xF4]); // hlt
    let g = guest32(ctx, &code, 0x43)?;
    want_ret(
        set_routing(&g.vm, &[msi_route(33, 0xfee0_0000, 0x43)])?,
        0,
        "SET_GSI_ROUTING",
    )?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    check_eq!(line_status(&g.vm, 33, 1)?, 1, "GSI 33 (an MSI) raised");
    check_eq!(line_status(&g.vm, 33, 0)?, -1, "GSI 33 lowered");
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x43],
        "vector the handler reports"
    );
    Ok(())
}

/// `KVM_CREATE_PIT2` with `flags`.
fn create_pit(vm: &Vm, flags: u32) -> Result<i64, Errno> {
    vm.fd().ioctl_write(
        KVM_CREATE_PIT2,
        &KvmPitConfig {
            flags,
            ..Default::default()
        },
    )
}

/// A channel's state without its load time (a host clock reading).
fn channel(c: &KvmPitChannelState) -> KvmPitChannelState {
    KvmPitChannelState {
        count_load_time: 0,
        ..*c
    }
}

fn pit_create(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    need(&kvm, Cap::Pit2)?;
    want_err(
        vm.fd().ioctl_read::<KvmPitState2>(KVM_GET_PIT2),
        Errno::ENXIO,
        "GET_PIT2 without irqchip",
    )?;
    want_err(
        create_pit(&vm, KVM_PIT_SPEAKER_DUMMY),
        Errno::ENOENT,
        "CREATE_PIT2 without irqchip",
    )?;
    want_err(
        vm.fd()
            .ioctl_bad_ptr(KVM_CREATE_PIT2, kvmport_client::BadPtr::Null),
        Errno::EFAULT,
        "CREATE_PIT2(NULL): the argument is read first",
    )?;
    let vm = chip_vm(ctx)?;
    want_err(
        vm.fd().ioctl_read::<KvmPitState2>(KVM_GET_PIT2),
        Errno::ENXIO,
        "GET_PIT2 before CREATE_PIT2",
    )?;
    want_err(
        vm.fd().ioctl_write(KVM_SET_PIT2, &KvmPitState2::default()),
        Errno::ENXIO,
        "SET_PIT2 before CREATE_PIT2",
    )?;
    // Unknown flags are ignored.
    want_ret(create_pit(&vm, 2), 0, "CREATE_PIT2 with flags 2")?;
    want_err(
        create_pit(&vm, KVM_PIT_SPEAKER_DUMMY),
        Errno::EEXIST,
        "a second CREATE_PIT2",
    )
}

fn pit_state(ctx: &Ctx) -> CaseResult {
    let vm = chip_vm(ctx)?;
    need(&ctx.kvm()?, Cap::PitState2)?;
    want_ret(create_pit(&vm, KVM_PIT_SPEAKER_DUMMY), 0, "CREATE_PIT2")?;
    let s = vm
        .fd()
        .ioctl_read::<KvmPitState2>(KVM_GET_PIT2)
        .ctx("GET_PIT2")?;
    for (i, c) in s.channels.iter().enumerate() {
        let want = KvmPitChannelState {
            count: 0x1_0000,
            mode: 0xff,
            gate: u8::from(i != 2),
            ..Default::default()
        };
        check_eq!(channel(c), want, "channel {i} after CREATE_PIT2");
    }
    check_eq!(s.flags, 0, "flags after CREATE_PIT2");
    // Taken as given (even a mode 9 and a count above 0x10000), as Linux does.
    let mut n = s;
    n.channels[0].count = 1000;
    n.channels[0].mode = 2;
    n.channels[0].rw_mode = 3;
    n.channels[0].read_state = 3;
    n.channels[0].write_state = 3;
    n.channels[1].count = 0x2_0000;
    n.channels[2].mode = 9;
    n.flags = KVM_PIT_FLAGS_HPET_LEGACY;
    want_ret(vm.fd().ioctl_write(KVM_SET_PIT2, &n), 0, "SET_PIT2")?;
    let g = vm
        .fd()
        .ioctl_read::<KvmPitState2>(KVM_GET_PIT2)
        .ctx("GET_PIT2")?;
    for i in 0..3 {
        check_eq!(
            channel(&g.channels[i]),
            channel(&n.channels[i]),
            "channel {i} after SET_PIT2"
        );
    }
    check_eq!(g.flags, KVM_PIT_FLAGS_HPET_LEGACY, "flags after SET_PIT2");
    // The old KVM_GET_PIT: the same channels.
    let mut old = KvmPitState::default();
    vm.fd().ioctl_rw(KVM_GET_PIT, &mut old).ctx("GET_PIT")?;
    check_eq!(
        channel(&old.channels[1]),
        channel(&n.channels[1]),
        "GET_PIT channel 1"
    );
    Ok(())
}

fn pit_read_guest(ctx: &Ctx) -> CaseResult {
    need(&ctx.kvm()?, Cap::Pit2)?;
    let code = Code::new()
        .op_b(&[0xB0], 0x34) // mov al, 0x34 (counter 0, LSB then MSB, mode 2)
        .op_b(&[0xE6], 0x43) // out 0x43, al
        .op_b(&[0xB0], 0xff) // mov al, 0xff
        .op_b(&[0xE6], 0x40) // out 0x40, al (LSB)
        .op_b(&[0xE6], 0x40) // out 0x40, al (MSB): count 0xffff
        .op_d(&[0xB9], 100_000) // mov ecx, 100000
        .op(&[0xE2, 0xFE]) // loop $ (let the counter run)
        .op_b(&[0xB0], 0x00) // mov al, 0 (counter 0 latch)
        .op_b(&[0xE6], 0x43) // out 0x43, al
        .op_b(&[0xE4], 0x40) // in al, 0x40 (LSB)
        .op(&[0x88, 0xC3]) // mov bl, al
        .op_b(&[0xE4], 0x40) // in al, 0x40 (MSB)
        .op(&[0x88, 0xC7]) // mov bh, al
        .op(&[0x66, 0x89, 0xD8]) // mov ax, bx
        .op_b(&[0x66, 0xE7], 0x12) // out 0x12, ax
        .op(&[0xF4]); // hlt
    let g = Guest::with_hook(ctx, Mode::Prot32, &code, 0, |vm| {
        want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")?;
        want_ret(create_pit(vm, KVM_PIT_SPEAKER_DUMMY), 0, "CREATE_PIT2")
    })?;
    // The PIT's ports are the kernel's: the first exit is the guest's report.
    let io = g.run_io(KVM_EXIT_IO_OUT, 2, 0x12, 1)?;
    let d = g.run.pio_data(&io);
    let v = u16::from_le_bytes([d[0], d[1]]);
    if v == 0 || v == 0xffff {
        return Err(format!(
            "latched count {v:#x}: want it below the 0xffff loaded, above 0"
        ));
    }
    let s =
        g.vm.fd()
            .ioctl_read::<KvmPitState2>(KVM_GET_PIT2)
            .ctx("GET_PIT2")?;
    check_eq!(
        (
            s.channels[0].count,
            s.channels[0].mode,
            s.channels[0].rw_mode
        ),
        (0xffff, 2, 3),
        "counter 0 as the guest programmed it"
    );
    Ok(())
}

fn pit_irq_guest(ctx: &Ctx) -> CaseResult {
    need(&ctx.kvm()?, Cap::Pit2)?;
    let code = pic_init(0xfe) // only IR0
        .op_b(&[0xB0], 0x34) // mov al, 0x34 (counter 0, LSB then MSB, mode 2)
        .op_b(&[0xE6], 0x43) // out 0x43, al
        .op_b(&[0xB0], 0x9c) // mov al, 0x9c
        .op_b(&[0xE6], 0x40) // out 0x40, al
        .op_b(&[0xB0], 0x2e) // mov al, 0x2e
        .op_b(&[0xE6], 0x40) // out 0x40, al: count 11932, 10 ms
        .op(&[0xFB]) // sti
        .op(&[0xF4]); // hlt
    // IRQ 0 is vector 0x20.
    let g = real_mode_irq_guest(ctx, &code, 0x20, |vm| {
        want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")?;
        want_ret(create_pit(vm, KVM_PIT_SPEAKER_DUMMY), 0, "CREATE_PIT2")
    })?;
    // Everything up to the timer's interrupt stays in the kernel.
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x20],
        "IRQ 0's vector the handler reports"
    );
    Ok(())
}

fn cr8_tpr_guest(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op_d(&[0xB8], 5) // mov eax, 5
        .op(&[0x44, 0x0F, 0x22, 0xC0]) // mov cr8, rax
        .op_b(&[0xE6], 0x10) // out 0x10, al (an exit)
        .op(&[0x44, 0x0F, 0x20, 0xC0]) // mov rax, cr8
        .op_b(&[0xE6], 0x11) // out 0x11, al
        .op(&[0xF4]); // hlt
    let g = Guest::with_hook(ctx, Mode::Long64, &code, 0, |vm| {
        need(&ctx.kvm()?, Cap::Irqchip)?;
        want_ret(vm.create_irqchip(), 0, "CREATE_IRQCHIP")
    })?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    let s: KvmLapicState = g.vcpu.fd().ioctl_read(KVM_GET_LAPIC).ctx("GET_LAPIC")?;
    check_eq!(word(&s, 0x80), 0x50, "TPR after the guest's MOV CR8, 5");
    check_eq!(g.sregs()?.cr8, 5, "KVM_GET_SREGS cr8");
    // The TPR set through KVM_SET_LAPIC is the CR8 the guest reads.
    let mut s = s;
    s.regs[0x80..0x84].copy_from_slice(&0x70u32.to_le_bytes());
    g.vcpu
        .fd()
        .ioctl_write(KVM_SET_LAPIC, &s)
        .ctx("SET_LAPIC")?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(g.run.pio_data(&io), vec![7], "CR8 after TPR 0x70");
    // (The HLT that follows would wait in the kernel: the APIC is in the kernel.)
    Ok(())
}
