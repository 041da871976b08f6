//! Instructions a hypervisor intercepts and must finish itself: the SVM instructions, which a
//! guest without `EFER.SVME` sees as `#UD`; `VMMCALL`, KVM's hypercall; and `INVD`,
//! `MONITOR` and `MWAIT`, which KVM completes as no-ops. A guest that runs any of them must
//! keep running (none may end in an internal error).

use crate::guest::{CODE, Code, Guest, IDT, Mode, SEL_CODE32};
use crate::harness::{Case, CaseResult, Ctx, OrFail};
use crate::{check_eq, check_hex};
use kvmport_core::abi::KVM_EXIT_IO_OUT;

/// The cases of this module.
pub static CASES: &[Case] = crate::cases![
    guest "run.insn.svm_instructions_ud" => svm_ud,
    guest "run.insn.vmmcall_hypercall_long64" => vmmcall_long,
    guest "run.insn.vmmcall_hypercall_prot32" => vmmcall_prot,
    guest "run.insn.invd_monitor_mwait_nop" => nops,
];

/// Where the `#UD` handler lives.
const HANDLER: u64 = 0x3000;

/// A 32-bit guest running `code` whose `#UD` handler reports the faulting EIP on port 0x11.
fn guest_with_ud_handler(ctx: &Ctx, code: &Code) -> Result<Guest, String> {
    let g = Guest::new(ctx, Mode::Prot32, code)?;
    let h = Code::new()
        .op(&[0x58]) // pop eax (the EIP #UD pushed; it has no error code)
        .op_b(&[0xE7], 0x11) // out 0x11, eax
        .op(&[0xF4]); // hlt
    g.mem.write(HANDLER, &h.0);
    // CAST: the handler sits below 4 GiB.
    let off = HANDLER as u32;
    let mut gate = [0u8; 8];
    gate[0..2].copy_from_slice(&(off as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&SEL_CODE32.to_le_bytes());
    gate[5] = 0x8e; // present, DPL 0, 32-bit interrupt gate
    gate[6..8].copy_from_slice(&((off >> 16) as u16).to_le_bytes());
    g.mem.write(IDT + 6 * 8, &gate);
    let mut s = g.sregs()?;
    s.idt.base = IDT;
    s.idt.limit = 7 * 8 - 1;
    g.vcpu.set_sregs(&s).ctx("SET_SREGS")?;
    Ok(g)
}

fn svm_ud(ctx: &Ctx) -> CaseResult {
    for (name, modrm) in [
        ("VMRUN", 0xD8u8),
        ("VMLOAD", 0xDA),
        ("VMSAVE", 0xDB),
        ("STGI", 0xDC),
        ("CLGI", 0xDD),
        ("SKINIT", 0xDE),
        ("INVLPGA", 0xDF),
    ] {
        let code = Code::new()
            .op(&[0x0F, 0x01, modrm]) // the SVM instruction
            .op(&[0xF4]); // hlt (not reached)
        let g = guest_with_ud_handler(ctx, &code)?;
        let io = g
            .run_io(KVM_EXIT_IO_OUT, 4, 0x11, 1)
            .map_err(|e| format!("{name}: {e}"))?;
        let eip = g.run.pio_data(&io);
        check_eq!(
            eip,
            (CODE as u32).to_le_bytes().to_vec(),
            "{name}: #UD with the EIP of the instruction"
        );
    }
    Ok(())
}

fn vmmcall_long(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op_d(&[0x48, 0xC7, 0xC0], 0x1234_5678) // mov rax, 0x12345678 (no such hypercall)
        .op(&[0x0F, 0x01, 0xD9]) // vmmcall
        .op(&[0x48, 0x89, 0xC3]) // mov rbx, rax
        .op_d(&[0xB8], 1) // mov eax, 1 (KVM_HC_VAPIC_POLL_IRQ)
        .op(&[0x0F, 0x01, 0xD9]) // vmmcall
        .op(&[0xF4]); // hlt
    let g = Guest::new(ctx, Mode::Long64, &code)?;
    g.run_hlt()?;
    let r = g.regs()?;
    check_hex!(
        r.rbx,
        1000u64.wrapping_neg(),
        "unknown hypercall: -KVM_ENOSYS"
    );
    check_hex!(r.rax, 0u64, "KVM_HC_VAPIC_POLL_IRQ: 0");
    check_hex!(r.rip, CODE + code.len() as u64, "rip after HLT");
    Ok(())
}

fn vmmcall_prot(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op_d(&[0xB8], 0x1234_5678) // mov eax, 0x12345678 (no such hypercall)
        .op(&[0x0F, 0x01, 0xD9]) // vmmcall
        .op(&[0xF4]); // hlt
    let g = Guest::new(ctx, Mode::Prot32, &code)?;
    g.run_hlt()?;
    let r = g.regs()?;
    check_hex!(
        r.rax,
        0xffff_fc18u64,
        "-KVM_ENOSYS, 32 bits outside 64-bit mode"
    );
    check_hex!(r.rip, CODE + code.len() as u64, "rip after HLT");
    Ok(())
}

fn nops(ctx: &Ctx) -> CaseResult {
    let code = Code::new()
        .op_d(&[0xB8], 0x9000) // mov eax, 0x9000 (MONITOR's address)
        .op(&[0x31, 0xC9]) // xor ecx, ecx
        .op(&[0x31, 0xD2]) // xor edx, edx
        .op(&[0x0F, 0x08]) // invd
        .op(&[0x0F, 0x01, 0xC8]) // monitor
        .op(&[0x0F, 0x01, 0xC9]) // mwait
        .op(&[0xF4]); // hlt
    let g = Guest::new(ctx, Mode::Long64, &code)?;
    g.run_hlt()?;
    check_hex!(g.regs()?.rip, CODE + code.len() as u64, "rip after HLT");
    Ok(())
}
