//! Interrupts and NMIs for a VMM with its own interrupt controller (no `KVM_CREATE_IRQCHIP`):
//! `KVM_INTERRUPT`, `KVM_NMI`, `request_interrupt_window` and the `if_flag` /
//! `ready_for_interrupt_injection` fields KVM refreshes on every return from `KVM_RUN`.
//!
//! The guests run in real mode, where delivery goes through the interrupt vector table at
//! GPA 0: vector `v`'s handler is `mov al, v; out 0x11, al; hlt` at [`HANDLER`].

use crate::guest::{Code, Guest, Mode};
use crate::harness::{Case, CaseResult, Ctx, OrFail};
use crate::{check_eq, check_hex};
use kvmport_client::Vm;
use kvmport_core::abi::{KVM_EXIT_IO_OUT, KVM_EXIT_IRQ_WINDOW_OPEN, KvmRun};
use std::mem::offset_of;

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    guest "run.irq.sti_ready_for_injection" => sti_ready,
    guest "run.irq.cli_not_ready" => cli_not_ready,
    guest "run.irq.interrupt_delivered_real_mode" => interrupt_delivered,
    guest "run.irq.window_opens_after_sti" => window_opens,
    guest "run.irq.nmi_delivered_with_if_clear" => nmi_delivered,
];

/// GPA of the interrupt handlers (segment `HANDLER >> 4`, offset 0).
const HANDLER: u64 = 0x2000;
/// Real-mode stack pointer the cases start with (SS base 0).
const SP: u64 = 0x8000;

/// Points IVT entry `vector` at a handler that reports `vector` on port 0x11 and halts.
pub(crate) fn install_handler(g: &Guest, vector: u8) {
    let at = HANDLER + u64::from(vector) * 0x10;
    let code = Code::new()
        .op_b(&[0xB0], vector) // mov al, vector
        .op_b(&[0xE6], 0x11) // out 0x11, al
        .op(&[0xF4]); // hlt
    g.mem.write(at, &code.0);
    // CAST: below 1 MiB.
    let seg = (at >> 4) as u16;
    let mut entry = [0u8; 4];
    entry[2..].copy_from_slice(&seg.to_le_bytes());
    g.mem.write(u64::from(vector) * 4, &entry);
}

/// A real-mode guest running `code`, with SS:SP = 0:[`SP`].
fn guest(ctx: &Ctx, code: &Code) -> Result<Guest, String> {
    real_mode_guest(ctx, code, |_| Ok(()))
}

/// [`guest`] on a VM that `hook` sets up first (see [`Guest::with_hook`]).
pub(crate) fn real_mode_guest(
    ctx: &Ctx,
    code: &Code,
    hook: impl FnOnce(&Vm) -> Result<(), String>,
) -> Result<Guest, String> {
    let g = Guest::with_hook(ctx, Mode::Real, code, 0, hook)?;
    let mut r = g.regs()?;
    r.rsp = SP;
    g.vcpu.set_regs(&r).ctx("SET_REGS")?;
    let mut s = g.sregs()?;
    s.ss.base = 0;
    s.ss.selector = 0;
    g.vcpu.set_sregs(&s).ctx("SET_SREGS")?;
    Ok(g)
}

/// `(if_flag, ready_for_interrupt_injection)` as the last `KVM_RUN` left them.
fn flags(g: &Guest) -> (u8, u8) {
    (
        g.run.read::<u8>(offset_of!(KvmRun, if_flag)),
        g.run
            .read::<u8>(offset_of!(KvmRun, ready_for_interrupt_injection)),
    )
}

fn sti_ready(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op(&[0xFB]) // sti
        .op(&[0x90]) // nop
        .op_b(&[0xE6], 0x10) // out 0x10, al
        .op(&[0xF4]); // hlt
    let g = guest(ctx, &code)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    check_eq!(
        flags(&g),
        (1, 1),
        "(if_flag, ready_for_interrupt_injection) after STI"
    );
    Ok(())
}

fn cli_not_ready(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op(&[0xFA]) // cli
        .op_b(&[0xE6], 0x10) // out 0x10, al
        .op(&[0xF4]); // hlt
    let g = guest(ctx, &code)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    check_eq!(
        flags(&g),
        (0, 0),
        "(if_flag, ready_for_interrupt_injection) after CLI"
    );
    Ok(())
}

fn interrupt_delivered(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op(&[0xFB]) // sti
        .op(&[0x90]) // nop
        .op_b(&[0xE6], 0x10) // out 0x10, al
        .op(&[0xF4]); // hlt (IP 4)
    let g = guest(ctx, &code)?;
    install_handler(&g, 0x20);
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    g.vcpu.interrupt(0x20).ctx("KVM_INTERRUPT 0x20")?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x20],
        "vector the handler reports"
    );
    let r = g.regs()?;
    check_hex!(r.rsp, SP - 6, "SP after the interrupt pushed FLAGS, CS, IP");
    let frame = g.mem.read(SP - 6, 6);
    check_eq!(
        (u16::from_le_bytes([frame[0], frame[1]]), frame[5] & 0x02),
        (4, 0x02),
        "pushed IP (the HLT) and FLAGS.IF"
    );
    check_eq!(flags(&g).0, 0, "if_flag inside the handler");
    Ok(())
}

fn window_opens(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op(&[0xFA]) // cli
        .op_b(&[0xE6], 0x10) // out 0x10, al
        .op(&[0x90]) // nop
        .op(&[0xFB]) // sti (IP 4)
        .op(&[0x90]) // nop (in the STI shadow)
        .op(&[0xF4]); // hlt (IP 6)
    let g = guest(ctx, &code)?;
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    g.run
        .write::<u8>(offset_of!(KvmRun, request_interrupt_window), &1);
    g.run_expect(KVM_EXIT_IRQ_WINDOW_OPEN, "expected IRQ_WINDOW_OPEN")?;
    check_eq!(
        flags(&g),
        (1, 1),
        "(if_flag, ready_for_interrupt_injection)"
    );
    check_hex!(
        g.regs()?.rip,
        6u64,
        "rip: after STI and the instruction in its shadow"
    );
    Ok(())
}

fn nmi_delivered(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op(&[0xFA]) // cli
        .op_b(&[0xE6], 0x10) // out 0x10, al
        .op(&[0xF4]); // hlt
    let g = guest(ctx, &code)?;
    install_handler(&g, 2);
    g.run_io(KVM_EXIT_IO_OUT, 1, 0x10, 1)?;
    g.vcpu.nmi().ctx("KVM_NMI")?;
    let io = g.run_io(KVM_EXIT_IO_OUT, 1, 0x11, 1)?;
    check_eq!(
        g.run.pio_data(&io),
        vec![0x02],
        "vector the handler reports"
    );
    Ok(())
}
