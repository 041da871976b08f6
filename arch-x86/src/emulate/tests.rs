use std::vec::Vec;

use super::*;
use crate::walk::fake::FakeGuestMem;

const M16: Mode = Mode::Bits16;
const M32: Mode = Mode::Bits32;
const M64: Mode = Mode::Bits64;

/// Code is placed at this guest physical (and, without paging, linear) address.
const CODE: u64 = 0x7000;
/// The MMIO window.
const MMIO: u64 = 0xfee0_0000;

fn ctx(mode: Mode) -> CpuCtx {
    CpuCtx {
        mode,
        paging: Paging::default(),
        seg_base: [0; 6],
        cpl: 0,
    }
}

fn regs() -> KvmRegs {
    KvmRegs {
        rax: 0x1111_1111_1111_1111,
        rbx: 0x2222_2222_2222_2222,
        rcx: 0x3333_3333_3333_3333,
        rdx: 0x4444_4444_4444_4444,
        rsi: 0x5555_5555_5555_5555,
        rdi: MMIO + 0x10,
        rsp: 0x6666_6666_6666_6666,
        rbp: 0x7777_7777_7777_7777,
        r8: 0x8888_8888_8888_8888,
        r9: 0x9999_9999_9999_9999,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0xffff_ffff_ffff_ffff,
        rip: CODE,
        rflags: 0x202,
    }
}

/// One MMIO access as user space saw it: (gpa, len, written value).
type Log = Vec<(u64, u8, Option<u64>)>;

fn mem_with_code(code: &[u8]) -> FakeGuestMem {
    let mut m = FakeGuestMem::new();
    m.poke(CODE, code);
    m.mmio.push((MMIO, MMIO + 0x1000));
    m
}

/// Runs an MMIO fault at `gpa` to completion; reads return `device` (little-endian).
fn drive(
    m: &mut FakeGuestMem,
    cpu: &CpuCtx,
    r: &mut KvmRegs,
    gpa: u64,
    write_fault: bool,
    device: u64,
) -> Result<Log, Failure> {
    let mut log = Log::new();
    let mut p = start(m, cpu, r, gpa, write_fault)?;
    loop {
        assert!(matches!(p.len, 1 | 2 | 4 | 8));
        let Exit::Mmio { gpa, len, write } = p.exit() else {
            unreachable!()
        };
        assert_eq!(gpa.0, p.gpa);
        log.push((
            gpa.0,
            len,
            write.map(|w| u64::from_le_bytes(w) & size_mask(len)),
        ));
        match complete(&p, r, m, &device.to_le_bytes()).map_err(|e| Failure {
            error: e,
            bytes: [0; 15],
            len: 0,
        })? {
            Some(next) => p = next,
            None => return Ok(log),
        }
        assert!(log.len() < 4);
    }
}

/// Runs `code` at CODE with a fault at MMIO+0x10 (RDI) and returns the new registers.
fn run(mode: Mode, code: &[u8], r0: KvmRegs, device: u64) -> (KvmRegs, Log) {
    let mut m = mem_with_code(code);
    let mut r = r0;
    let log = drive(&mut m, &ctx(mode), &mut r, MMIO + 0x10, false, device).unwrap();
    (r, log)
}

#[test]
fn mov_stores() {
    let r0 = regs();
    // mov [rdi], eax
    let (r, log) = run(M64, &[0x89, 0x07], r0, 0);
    assert_eq!(log, [(MMIO + 0x10, 4, Some(0x1111_1111))]);
    assert_eq!(
        r,
        KvmRegs {
            rip: CODE + 2,
            ..r0
        }
    );
    // mov [rdi], rax / ax / al / ah / sil(REX) / r9b
    let (_, log) = run(M64, &[0x48, 0x89, 0x07], r0, 0);
    assert_eq!(log[0], (MMIO + 0x10, 8, Some(0x1111_1111_1111_1111)));
    let (_, log) = run(M64, &[0x66, 0x89, 0x07], r0, 0);
    assert_eq!(log[0].1, 2);
    let r1 = KvmRegs {
        rax: 0x1234,
        rsi: 0xab,
        ..r0
    };
    let (_, log) = run(M64, &[0x88, 0x27], r1, 0);
    assert_eq!(log[0], (MMIO + 0x10, 1, Some(0x12)));
    let (_, log) = run(M64, &[0x40, 0x88, 0x37], r1, 0);
    assert_eq!(log[0], (MMIO + 0x10, 1, Some(0xab)));
    let (_, log) = run(M64, &[0x44, 0x88, 0x0f], r1, 0);
    assert_eq!(log[0], (MMIO + 0x10, 1, Some(0x99)));
    // mov byte [rdi], 0x12; mov qword [rdi], -2; mov word [rdi], 0xbeef
    let (r, log) = run(M64, &[0xc6, 0x07, 0x12], r0, 0);
    assert_eq!((log[0], r.rip), ((MMIO + 0x10, 1, Some(0x12)), CODE + 3));
    let (_, log) = run(M64, &[0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff], r0, 0);
    assert_eq!(log[0], (MMIO + 0x10, 8, Some(0xffff_ffff_ffff_fffe)));
    let (_, log) = run(M64, &[0x66, 0xc7, 0x07, 0xef, 0xbe], r0, 0);
    assert_eq!(log[0], (MMIO + 0x10, 2, Some(0xbeef)));
    // movnti [rdi], r8
    let (_, log) = run(M64, &[0x4c, 0x0f, 0xc3, 0x07], r0, 0);
    assert_eq!(log[0], (MMIO + 0x10, 8, Some(0x8888_8888_8888_8888)));
}

#[test]
fn mov_loads() {
    let r0 = regs();
    let dev = 0x8899_aabb_ccdd_eeffu64;
    // mov eax, [rdi]: zero-extends.
    let (r, log) = run(M64, &[0x8b, 0x07], r0, dev);
    assert_eq!(log, [(MMIO + 0x10, 4, None)]);
    assert_eq!(
        r,
        KvmRegs {
            rax: 0xccdd_eeff,
            rip: CODE + 2,
            ..r0
        }
    );
    // mov ax, [rdi]: keeps bits 63:16.
    let (r, _) = run(M64, &[0x66, 0x8b, 0x07], r0, dev);
    assert_eq!(r.rax, 0x1111_1111_1111_eeff);
    // mov r9, [rdi]
    let (r, _) = run(M64, &[0x4c, 0x8b, 0x0f], r0, dev);
    assert_eq!(r.r9, dev);
    // mov ah, [rdi] / mov spl, [rdi] / mov al, [rdi]
    let (r, _) = run(M64, &[0x8a, 0x27], r0, dev);
    assert_eq!(r.rax, 0x1111_1111_1111_ff11);
    let (r, _) = run(M64, &[0x40, 0x8a, 0x27], r0, dev);
    assert_eq!((r.rax, r.rsp), (r0.rax, 0x6666_6666_6666_66ff));
    let (r, _) = run(M64, &[0x8a, 0x07], r0, dev);
    assert_eq!(r.rax, 0x1111_1111_1111_11ff);
    // movzx/movsx.
    let (r, _) = run(M64, &[0x0f, 0xb6, 0x07], r0, 0x80);
    assert_eq!(r.rax, 0x80);
    let (r, _) = run(M64, &[0x0f, 0xbe, 0x07], r0, 0x80);
    assert_eq!(r.rax, 0xffff_ff80);
    let (r, _) = run(M64, &[0x48, 0x0f, 0xbf, 0x07], r0, 0x8000);
    assert_eq!(r.rax, 0xffff_ffff_ffff_8000);
    let (r, _) = run(M64, &[0x66, 0x0f, 0xb6, 0x07], r0, 0x80);
    assert_eq!(r.rax, 0x1111_1111_1111_0080);
    let (r, log) = run(M64, &[0x0f, 0xb7, 0x0f], r0, dev);
    assert_eq!((r.rcx, log[0].1), (0xeeff, 2));
    // movsxd rax, dword [rdi]; movsxd without REX.W is a 32-bit load.
    let (r, _) = run(M64, &[0x48, 0x63, 0x07], r0, 0x8000_0000);
    assert_eq!(r.rax, 0xffff_ffff_8000_0000);
    let (r, _) = run(M64, &[0x63, 0x07], r0, 0x8000_0000);
    assert_eq!(r.rax, 0x8000_0000);
    // 63 is ARPL outside 64-bit mode.
    let mut m = mem_with_code(&[0x63, 0x07]);
    let mut r = KvmRegs {
        rdi: MMIO + 0x10,
        ..r0
    };
    let e = drive(&mut m, &ctx(M32), &mut r, MMIO + 0x10, true, 0).unwrap_err();
    assert_eq!(
        (e.error, e.len, &e.bytes[..2]),
        (EmuError::Unsupported, 2, &[0x63, 0x07][..])
    );
}

#[test]
fn moffs_and_segments() {
    let r0 = regs();
    let mut cpu = ctx(M32);
    cpu.seg_base[seg::DS] = 0x100;
    cpu.seg_base[seg::FS] = 0x200;
    // mov eax, [0xfee00010 - 0x100] with DS base 0x100.
    let mut m = mem_with_code(&[0xa1, 0x10, 0xff, 0xdf, 0xfe]);
    let mut r = r0;
    let log = drive(&mut m, &cpu, &mut r, MMIO + 0x10, false, 0xdead_beef).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 4, None)]);
    assert_eq!((r.rax, r.rip), (0xdead_beef, CODE + 5));
    // mov fs:[moffs], al
    let mut m = mem_with_code(&[0x64, 0xa2, 0x10, 0xfe, 0xdf, 0xfe]);
    let mut r = r0;
    let log = drive(&mut m, &cpu, &mut r, MMIO + 0x10, true, 0).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 1, Some(0x11))]);
    // 64-bit moffs with 66: mov ax, [imm64]; DS base ignored.
    let mut cpu64 = ctx(M64);
    cpu64.seg_base[seg::DS] = 0x100;
    let mut code = std::vec![0x66, 0xa1];
    code.extend_from_slice(&(MMIO + 0x10).to_le_bytes());
    let mut m = mem_with_code(&code);
    let mut r = r0;
    drive(&mut m, &cpu64, &mut r, MMIO + 0x10, false, 0xabcd).unwrap();
    assert_eq!((r.rax, r.rip), (0x1111_1111_1111_abcd, CODE + 10));
    // [rbp+8] uses SS; gs override in 64-bit mode uses the GS base.
    cpu64.seg_base[seg::GS] = 0x1000;
    let mut m = mem_with_code(&[0x65, 0x8b, 0x45, 0x08]);
    let mut r = KvmRegs {
        rbp: MMIO - 0x1000 + 0x8,
        ..r0
    };
    drive(&mut m, &cpu64, &mut r, MMIO + 0x10, false, 5).unwrap();
    assert_eq!(r.rax, 5);
    // 16-bit: mov ax, [bp+si-2] uses SS; the sum wraps at 64 KiB.
    let mut cpu16 = ctx(M16);
    cpu16.seg_base[seg::SS] = 0xf_0000;
    let mut m = mem_with_code(&[0x8b, 0x42, 0xfe]);
    m.mmio.push((0xf_0000, 0xf_1000));
    let mut r = KvmRegs {
        rbp: 0xfff0,
        rsi: 0x14,
        ..r0
    };
    drive(&mut m, &cpu16, &mut r, 0xf_0002, false, 0x1234_5678).unwrap();
    assert_eq!((r.rax, r.rip), (0x1111_1111_1111_5678, CODE + 3));
    // RIP-relative: mov eax, [rip + disp].
    let disp = (MMIO + 0x10 - (CODE + 6)) as u32;
    let mut code = std::vec![0x8b, 0x05];
    code.extend_from_slice(&disp.to_le_bytes());
    let mut m = mem_with_code(&code);
    let mut r = r0;
    drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 7).unwrap();
    assert_eq!(r.rax, 7);
}

#[test]
fn ip_wraps_in_16_bit_code() {
    let mut m = FakeGuestMem::new();
    m.poke(0x1_fffe, &[0x89, 0x07]);
    m.mmio.push((0x1_0000, 0x1_0100));
    let mut cpu = ctx(M16);
    cpu.seg_base[seg::CS] = 0x1_0000;
    cpu.seg_base[seg::DS] = 0x1_0000;
    let mut r = KvmRegs {
        rip: 0xfffe,
        rbx: 0x10,
        ..regs()
    };
    let log = drive(&mut m, &cpu, &mut r, 0x1_0010, true, 0).unwrap();
    assert_eq!(log, [(0x1_0010, 2, Some(0x1111))]);
    assert_eq!(r.rip, 0);
    // And EIP at 4 GiB in 32-bit code.
    let mut m = FakeGuestMem::new();
    m.poke(0xffff_fffe, &[0x89, 0x07]);
    m.mmio.push((MMIO, MMIO + 0x1000));
    let mut r = KvmRegs {
        rip: 0xffff_fffe,
        ..regs()
    };
    drive(&mut m, &ctx(M32), &mut r, MMIO + 0x10, true, 0).unwrap();
    assert_eq!(r.rip, 0);
}

#[test]
fn xchg_reads_then_writes() {
    let r0 = regs();
    // xchg [rdi], ecx
    let (r, log) = run(M64, &[0x87, 0x0f], r0, 0xaabb_ccdd_eeff_0011);
    assert_eq!(
        log,
        [(MMIO + 0x10, 4, None), (MMIO + 0x10, 4, Some(0x3333_3333))]
    );
    assert_eq!(
        r,
        KvmRegs {
            rcx: 0xeeff_0011,
            rip: CODE + 2,
            ..r0
        }
    );
    // xchg [rdi], bh (byte, high register)
    let (r, log) = run(M64, &[0x86, 0x3f], r0, 0x99);
    assert_eq!(log[1], (MMIO + 0x10, 1, Some(0x22)));
    assert_eq!(r.rbx, 0x2222_2222_2222_9922);
    // lock xchg is fine.
    let (r, _) = run(M64, &[0xf0, 0x48, 0x87, 0x07], r0, 5);
    assert_eq!(r.rax, 5);
}

const CF: u64 = flags::CF;
const PF: u64 = flags::PF;
const AF: u64 = flags::AF;
const ZF: u64 = flags::ZF;
const SF: u64 = flags::SF;
const OF: u64 = flags::OF;

#[test]
fn alu_flags() {
    let base = 0x202 | flags::DF;
    let f = |op, a, b, size, cf: bool| alu(op, a, b, size, base | if cf { CF } else { 0 });
    use AluOp::*;
    assert_eq!(
        f(Add, 0xffff_ffff, 1, 4, false),
        (0, base | CF | PF | AF | ZF)
    );
    assert_eq!(f(Add, 0x7f, 1, 1, false), (0x80, base | AF | SF | OF));
    assert_eq!(f(Add, 0x80, 0x80, 1, false), (0, base | CF | PF | ZF | OF));
    assert_eq!(
        f(Add, 0x7fff_ffff_ffff_ffff, 1, 8, false),
        (0x8000_0000_0000_0000, base | PF | AF | SF | OF)
    );
    assert_eq!(
        f(Adc, 0x7fff_ffff, 0, 4, true),
        (0x8000_0000, base | PF | AF | SF | OF)
    );
    assert_eq!(
        f(Adc, 0xffff, 0xffff, 2, true),
        (0xffff, base | CF | PF | AF | SF)
    );
    assert_eq!(
        f(Sub, 0, 1, 4, false),
        (0xffff_ffff, base | CF | PF | AF | SF)
    );
    assert_eq!(
        f(Cmp, 0x7f, 0x80, 1, false),
        (0xff, base | CF | PF | SF | OF)
    );
    assert_eq!(f(Cmp, 0x80, 0x01, 1, false), (0x7f, base | AF | OF));
    assert_eq!(f(Cmp, 5, 5, 2, true), (0, base | PF | ZF));
    assert_eq!(f(Sbb, 0, 0, 1, true), (0xff, base | CF | PF | AF | SF));
    assert_eq!(f(Sbb, 5, 4, 8, true), (0, base | PF | ZF));
    assert_eq!(f(Sbb, 0x10, 0x0f, 1, false), (0x01, base | AF));
    // Logical: CF, OF and AF clear.
    assert_eq!(f(And, 0xf0, 0x0f, 1, true), (0, base | PF | ZF));
    assert_eq!(f(Or, 0x8000, 0x0003, 2, true), (0x8003, base | PF | SF));
    assert_eq!(f(Xor, 0xff, 0x01, 1, false), (0xfe, base | SF));
    assert_eq!(
        f(Test, 0x8000_0001, 0x8000_0000, 4, true),
        (0x8000_0000, base | PF | SF)
    );
    // Only the arithmetic flags change.
    let (_, fl) = alu(Add, 1, 1, 4, u64::MAX);
    assert_eq!(fl, !(CF | PF | AF | ZF | SF | OF));
}

/// Reference flags from widened integer arithmetic (a different formulation from [`alu`]'s
/// bit tricks): unsigned and signed results out of range, nibble carries.
fn widened(op: AluOp, a: u64, b: u64, size: u8, cf: bool) -> (u64, u64) {
    let bits = u32::from(size) * 8;
    let m = size_mask(size);
    let s = |v: u64| -> i128 { (((v as u128) << (128 - bits)) as i128) >> (128 - bits) };
    let c = i128::from(cf);
    let (ua, ub) = (i128::from(a & m), i128::from(b & m));
    let (res, carry, over, aux) = match op {
        AluOp::Add | AluOp::Adc => {
            let c = if op == AluOp::Adc { c } else { 0 };
            let u = ua + ub + c;
            let v = s(a) + s(b) + c;
            let nib = (ua & 0xf) + (ub & 0xf) + c;
            (u as u64 & m, u > m as i128, v != s(u as u64), nib > 0xf)
        }
        AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
            let c = if op == AluOp::Sbb { c } else { 0 };
            let u = ua - ub - c;
            let v = s(a) - s(b) - c;
            let nib = (ua & 0xf) - (ub & 0xf) - c;
            (u as u64 & m, u < 0, v != s(u as u64), nib < 0)
        }
        AluOp::Or => ((a | b) & m, false, false, false),
        AluOp::And | AluOp::Test => (a & b & m, false, false, false),
        AluOp::Xor => ((a ^ b) & m, false, false, false),
    };
    let mut f = 0x202;
    for (on, bit) in [
        (carry, CF),
        ((res as u8).count_ones() % 2 == 0, PF),
        (aux, AF),
        (res == 0, ZF),
        (res >> (bits - 1) & 1 == 1, SF),
        (over, OF),
    ] {
        if on {
            f |= bit;
        }
    }
    (res, f)
}

const ALL_OPS: [AluOp; 9] = [
    AluOp::Add,
    AluOp::Or,
    AluOp::Adc,
    AluOp::Sbb,
    AluOp::And,
    AluOp::Sub,
    AluOp::Xor,
    AluOp::Cmp,
    AluOp::Test,
];

/// Every 8-bit operand pair, carry in and operation against the widened reference; random
/// pairs (with edge values) for 16, 32 and 64 bits.
#[test]
fn alu_matches_widened_arithmetic() {
    for op in ALL_OPS {
        for cf in [false, true] {
            let fl = 0x202 | if cf { CF } else { 0 };
            for a in 0..=0xffu64 {
                for b in 0..=0xffu64 {
                    assert_eq!(
                        alu(op, a, b, 1, fl),
                        widened(op, a, b, 1, cf),
                        "{op:?} {a} {b} {cf}"
                    );
                }
            }
        }
    }
    let mut rng = crate::decode::tests::Rng(77);
    let edges = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
    ];
    for n in 0..200_000 {
        let pick = |rng: &mut crate::decode::tests::Rng| match rng.next() % 4 {
            0 => edges[(rng.next() % edges.len() as u64) as usize],
            1 => u64::MAX - rng.next() % 2,
            2 => 1u64 << (rng.next() % 64),
            _ => rng.next(),
        };
        let (a, b) = (pick(&mut rng), pick(&mut rng));
        let size = [2u8, 4, 8][n % 3];
        let op = ALL_OPS[(rng.next() % 9) as usize];
        let cf = rng.next() % 2 == 0;
        let fl = 0x202 | if cf { CF } else { 0 };
        assert_eq!(
            alu(op, a, b, size, fl),
            widened(op, a, b, size, cf),
            "{op:?} {a:#x} {b:#x} {size} {cf}"
        );
    }
}

#[test]
fn unary_ops() {
    use Unary::*;
    let base = 0x202;
    assert_eq!(unary(Not, 0x0f, 1, base | CF), (0xf0, base | CF));
    assert_eq!(unary(Not, 0, 8, base), (u64::MAX, base));
    assert_eq!(unary(Neg, 0, 4, base | CF), (0, base | PF | ZF));
    assert_eq!(unary(Neg, 1, 2, base), (0xffff, base | CF | PF | AF | SF));
    assert_eq!(unary(Neg, 0x80, 1, base), (0x80, base | CF | SF | OF));
    assert_eq!(
        unary(Inc, 0x7f, 1, base | CF),
        (0x80, base | CF | AF | SF | OF)
    );
    assert_eq!(unary(Inc, 0xffff_ffff, 4, base), (0, base | PF | AF | ZF));
    assert_eq!(unary(Dec, 0, 8, base), (u64::MAX, base | PF | AF | SF));
    assert_eq!(
        unary(Dec, 0x8000, 2, base | CF),
        (0x7fff, base | CF | PF | AF | OF)
    );
    // Through memory: read, then write; flags at completion.
    let r0 = regs();
    let (r, log) = run(M64, &[0xf0, 0xff, 0x07], r0, 0x7fff_ffff);
    assert_eq!(
        log,
        [(MMIO + 0x10, 4, None), (MMIO + 0x10, 4, Some(0x8000_0000))]
    );
    assert_eq!((r.rip, r.rflags), (CODE + 3, 0x202 | PF | AF | SF | OF));
    let (r, log) = run(M64, &[0xfe, 0x0f], r0, 0x00);
    assert_eq!(log[1], (MMIO + 0x10, 1, Some(0xff)));
    assert_eq!(r.rflags, 0x202 | PF | AF | SF);
    let (_, log) = run(M64, &[0x48, 0xf7, 0x17], r0, 0x0123_4567_89ab_cdef);
    assert_eq!(log[1], (MMIO + 0x10, 8, Some(0xfedc_ba98_7654_3210)));
    let (r, log) = run(M64, &[0x66, 0xf7, 0x1f], r0, 0x0001);
    assert_eq!(log[1], (MMIO + 0x10, 2, Some(0xffff)));
    assert_eq!(r.rflags, 0x202 | CF | PF | AF | SF);
}

#[test]
fn alu_with_memory() {
    let r0 = regs();
    // add [rdi], eax: read, then write the sum; flags at completion.
    let r1 = KvmRegs { rax: 1, ..r0 };
    let (r, log) = run(M64, &[0x01, 0x07], r1, 0xffff_ffff);
    assert_eq!(log, [(MMIO + 0x10, 4, None), (MMIO + 0x10, 4, Some(0))]);
    assert_eq!(
        r,
        KvmRegs {
            rip: CODE + 2,
            rflags: 0x202 | CF | PF | AF | ZF,
            ..r1
        }
    );
    // sub eax, [rdi]: result to EAX (zero-extended), a single read.
    let r1 = KvmRegs {
        rax: 0xffff_ffff_0000_0000,
        ..r0
    };
    let (r, log) = run(M64, &[0x2b, 0x07], r1, 1);
    assert_eq!(log.len(), 1);
    assert_eq!((r.rax, r.rflags), (0xffff_ffff, 0x202 | CF | PF | AF | SF));
    // cmp byte [rdi], 0x80: read only.
    let (r, log) = run(M64, &[0x80, 0x3f, 0x80], r0, 0x7f);
    assert_eq!(log, [(MMIO + 0x10, 1, None)]);
    assert_eq!((r.rip, r.rflags), (CODE + 3, 0x202 | CF | PF | SF | OF));
    // test dword [rdi], 0x80000000
    let (r, log) = run(M64, &[0xf7, 0x07, 0, 0, 0, 0x80], r0, 0x8000_0001);
    assert_eq!(log.len(), 1);
    assert_eq!((r.rip, r.rflags), (CODE + 6, 0x202 | PF | SF));
    // test [rdi], al (84) and test byte [rdi], imm (f6 /0)
    let (r, _) = run(M64, &[0x84, 0x07], KvmRegs { rax: 0x0f, ..r0 }, 0xf0);
    assert_eq!(r.rflags, 0x202 | PF | ZF);
    let (r, _) = run(M64, &[0xf6, 0x07, 0x01], r0, 0x03);
    assert_eq!((r.rflags, r.rip), (0x202, CODE + 3));
    // or dword [rdi], 0x0f via 83 /1 ib
    let (r, log) = run(M64, &[0x83, 0x0f, 0x0f], r0, 0xf0);
    assert_eq!(log[1], (MMIO + 0x10, 4, Some(0xff)));
    assert_eq!(r.rflags, 0x202 | PF);
    // and qword [rdi], -16 via 48 83 /4 ib (sign-extended immediate)
    let (_, log) = run(M64, &[0x48, 0x83, 0x27, 0xf0], r0, u64::MAX);
    assert_eq!(log[1], (MMIO + 0x10, 8, Some(0xffff_ffff_ffff_fff0)));
    // lock or [rdi], ecx via 09; xor [rdi], ah (30 27)
    let (_, log) = run(M64, &[0xf0, 0x09, 0x0f], r0, 0x4_0000_0000);
    assert_eq!(log[1], (MMIO + 0x10, 4, Some(0x3333_3333)));
    let (_, log) = run(M64, &[0x30, 0x27], KvmRegs { rax: 0xff00, ..r0 }, 0x0f);
    assert_eq!(log[1], (MMIO + 0x10, 1, Some(0xf0)));
    // adc with CF in; sbb al, [rdi]
    let r1 = KvmRegs {
        rax: 0,
        rflags: 0x203,
        ..r0
    };
    let (r, _) = run(M64, &[0x11, 0x07], r1, 0x7fff_ffff);
    assert_eq!(r.rflags, 0x202 | PF | AF | SF | OF);
    let (r, _) = run(M64, &[0x1a, 0x07], r1, 0);
    assert_eq!((r.rax, r.rflags), (0xff, 0x202 | CF | PF | AF | SF));
    // 16-bit add with 66 and 81 iw
    let (_, log) = run(M64, &[0x66, 0x81, 0x07, 0x01, 0x00], r0, 0xffff);
    assert_eq!(log[1], (MMIO + 0x10, 2, Some(0)));
}

#[test]
fn outside_the_subset() {
    let r0 = regs();
    let cases: &[(&[u8], EmuError)] = &[
        (&[0x0f, 0x10, 0x07], EmuError::Unsupported), // movups
        (&[0xc5, 0xf8, 0x10, 0x07], EmuError::Unsupported), // vmovups
        (&[0xf0, 0x89, 0x07], EmuError::Unsupported), // lock mov
        (&[0xf0, 0x39, 0x07], EmuError::Unsupported), // lock cmp
        (&[0xf7, 0x27], EmuError::Unsupported),       // mul
        (&[0xff, 0x17], EmuError::Unsupported),       // call [rdi]
        (&[0xfe, 0x17], EmuError::Unsupported),       // fe /2 (undefined)
        (&[0xa6], EmuError::Unsupported),             // cmpsb
        (&[0x66, 0x0f, 0xc3, 0x07], EmuError::Unsupported), // movnti with 66
        (&[0xc7, 0x0f, 1, 2, 3, 4], EmuError::Unsupported), // c7 /1
        (&[0x89, 0xc7], EmuError::Mismatch),          // register form
        (&[0x8b, 0x47, 0x04], EmuError::Mismatch),    // [rdi+4] is not the faulting address
        (&[0x06], EmuError::Decode(DecodeError::Invalid)),
    ];
    for (code, want) in cases {
        let mut m = mem_with_code(code);
        let mut r = r0;
        let e = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 0).unwrap_err();
        assert_eq!(e.error, *want, "{code:02x?}");
        let n = usize::from(e.len).min(code.len());
        assert!(usize::from(e.len) >= n && n > 0);
        assert_eq!(&e.bytes[..n], &code[..n]);
        assert_eq!(r, r0, "registers untouched for {code:02x?}");
    }
    // The KVM payload for the failure.
    let mut m = mem_with_code(&[0x0f, 0x10, 0x07]);
    let mut r = r0;
    let e = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 0).unwrap_err();
    let k = e.emulation_failure();
    assert_eq!((k.suberror, k.ndata, k.flags, k.insn_size), (1, 3, 1, 3));
    assert_eq!(&k.insn_bytes[..4], &[0x0f, 0x10, 0x07, 0x90]);
    let none = Failure { len: 0, ..e }.emulation_failure();
    assert_eq!((none.ndata, none.flags, none.insn_size), (1, 0, 0));
    // A page-crossing access.
    let mut m = mem_with_code(&[0x48, 0x8b, 0x07]);
    let mut r = KvmRegs {
        rdi: MMIO + 0xffc,
        ..r0
    };
    let e = drive(&mut m, &ctx(M64), &mut r, MMIO + 0xffc, false, 0).unwrap_err();
    assert_eq!(e.error, EmuError::SplitAccess);
}

#[test]
fn rep_stos_one_element_per_exit() {
    let r0 = KvmRegs {
        rcx: 3,
        rax: 0xaabb_ccdd,
        ..regs()
    };
    // rep stosd: element 1 of 3, RIP stays.
    let (r, log) = run(M64, &[0xf3, 0xab], r0, 0);
    assert_eq!(log, [(MMIO + 0x10, 4, Some(0xaabb_ccdd))]);
    assert_eq!((r.rdi, r.rcx, r.rip), (MMIO + 0x14, 2, CODE));
    // The last element: RIP advances, RF cleared.
    let r1 = KvmRegs {
        rcx: 1,
        rflags: 0x202 | flags::RF,
        ..r0
    };
    let (r, _) = run(M64, &[0xf3, 0xab], r1, 0);
    assert_eq!(
        (r.rdi, r.rcx, r.rip, r.rflags),
        (MMIO + 0x14, 0, CODE + 2, 0x202)
    );
    // DF: backwards; stosq without REP.
    let r1 = KvmRegs {
        rflags: 0x202 | flags::DF,
        ..r0
    };
    let (r, log) = run(M64, &[0x48, 0xab], r1, 0);
    assert_eq!(log[0].1, 8);
    assert_eq!((r.rdi, r.rcx, r.rip), (MMIO + 0x8, 3, CODE + 2));
    // 32-bit address size in 64-bit mode: EDI/ECX zero-extend.
    let mut m = mem_with_code(&[0x67, 0xf3, 0xaa]);
    let mut r = KvmRegs {
        rdi: 0x1_0000_0000 | (MMIO + 0x10),
        rcx: 0x5_0000_0001,
        ..r0
    };
    drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, true, 0).unwrap();
    assert_eq!((r.rdi, r.rcx, r.rip), (MMIO + 0x11, 0, CODE + 3));
    // 16-bit address size (67 in 32-bit code): DI wraps, upper bits kept.
    let mut cpu = ctx(M32);
    cpu.seg_base[seg::ES] = MMIO;
    let mut m = mem_with_code(&[0x67, 0xf3, 0x66, 0xab]);
    let mut r = KvmRegs {
        rdi: 0xabcd_fffe,
        rcx: 0x1234_0002,
        ..r0
    };
    drive(&mut m, &cpu, &mut r, MMIO + 0xffe, true, 0).unwrap();
    assert_eq!((r.rdi, r.rcx, r.rip), (0xabcd_0000, 0x1234_0001, CODE));
    // REP with RCX = 0 never faults.
    let mut m = mem_with_code(&[0xf3, 0xab]);
    let mut r = KvmRegs { rcx: 0, ..r0 };
    let e = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, true, 0).unwrap_err();
    assert_eq!(e.error, EmuError::Mismatch);
}

#[test]
fn lods() {
    let mut cpu = ctx(M64);
    cpu.seg_base[seg::FS] = 0x10;
    // fs: lodsw
    let mut m = mem_with_code(&[0x64, 0x66, 0xad]);
    let mut r = KvmRegs {
        rsi: MMIO,
        ..regs()
    };
    let log = drive(&mut m, &cpu, &mut r, MMIO + 0x10, false, 0xbeef).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 2, None)]);
    assert_eq!(
        (r.rax, r.rsi, r.rip),
        (0x1111_1111_1111_beef, MMIO + 2, CODE + 3)
    );
    // lodsd zero-extends.
    let mut m = mem_with_code(&[0xad]);
    let mut r = KvmRegs {
        rsi: MMIO + 0x10,
        ..regs()
    };
    drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 0xbeef).unwrap();
    assert_eq!(r.rax, 0xbeef);
}

#[test]
fn movs_between_ram_and_mmio() {
    let r0 = KvmRegs { rcx: 2, ..regs() };
    // MMIO -> RAM: rep movsd, source at MMIO+0x10, destination RAM at 0x9000.
    let mut m = mem_with_code(&[0xf3, 0xa5]);
    let mut r = KvmRegs {
        rsi: MMIO + 0x10,
        rdi: 0x9000,
        ..r0
    };
    let log = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 0x1234_5678).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 4, None)]);
    assert_eq!(m.peek(0x9000, 4), [0x78, 0x56, 0x34, 0x12]);
    assert_eq!((r.rsi, r.rdi, r.rcx, r.rip), (MMIO + 0x14, 0x9004, 1, CODE));
    // RAM -> MMIO: movsb, DF set.
    let mut m = mem_with_code(&[0xa4]);
    m.poke(0x9000, &[0x5a]);
    let mut r = KvmRegs {
        rsi: 0x9000,
        rdi: MMIO + 0x10,
        rflags: 0x202 | flags::DF,
        ..r0
    };
    let log = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, true, 0).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 1, Some(0x5a))]);
    assert_eq!(
        (r.rsi, r.rdi, r.rcx, r.rip),
        (0x8fff, MMIO + 0xf, 2, CODE + 1)
    );
    // MMIO -> MMIO: a read, then a write.
    let mut m = mem_with_code(&[0x48, 0xa5]);
    let mut r = KvmRegs {
        rsi: MMIO + 0x10,
        rdi: MMIO + 0x800,
        ..r0
    };
    let log = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, false, 0x77).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 8, None), (MMIO + 0x800, 8, Some(0x77))]);
    assert_eq!((r.rsi, r.rdi, r.rip), (MMIO + 0x18, MMIO + 0x808, CODE + 2));
    // A write to a read-only slot is MMIO too.
    let mut m = mem_with_code(&[0xa4]);
    m.readonly.push((0xa000, 0xb000));
    m.mmio.clear();
    m.poke(0x9000, &[0x42]);
    let mut r = KvmRegs {
        rsi: 0x9000,
        rdi: 0xa010,
        ..r0
    };
    let log = drive(&mut m, &ctx(M64), &mut r, 0xa010, true, 0).unwrap();
    assert_eq!(log, [(0xa010, 1, Some(0x42))]);
    // Neither operand is the faulting address.
    let mut m = mem_with_code(&[0xa4]);
    let mut r = KvmRegs {
        rsi: 0x9000,
        rdi: MMIO,
        ..r0
    };
    let e = drive(&mut m, &ctx(M64), &mut r, MMIO + 0x10, true, 0).unwrap_err();
    assert_eq!(e.error, EmuError::Mismatch);
}

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;

fn long_ctx(root: u64, cpl: u8) -> CpuCtx {
    CpuCtx {
        mode: M64,
        paging: Paging {
            cr0: 0x8001_0001,
            cr3: root,
            cr4: 1 << 5,
            efer: 0xd00,
            maxphyaddr: 48,
        },
        seg_base: [0; 6],
        cpl,
    }
}

#[test]
fn through_guest_paging() {
    let mut m = FakeGuestMem::new();
    m.mmio.push((MMIO, MMIO + 0x1000));
    let root = m.alloc_table();
    // Code straddles two pages mapped to unrelated frames.
    let rip = 0x40_0ffe;
    m.map_long(root, 4, 0x40_0000, 0x5_0000, 1, P | RW | US);
    m.map_long(root, 4, 0x40_1000, 0x3_0000, 1, P | RW | US);
    m.poke(0x5_0ffe, &[0x48, 0x8b]);
    m.poke(0x3_0000, &[0x47, 0x08]);
    m.map_long(root, 4, 0xffff_8000_0000_0000, MMIO, 1, P | RW);
    let cpu = long_ctx(root, 0);
    let mut r = KvmRegs {
        rip,
        rdi: 0xffff_8000_0000_0008,
        ..regs()
    };
    let log = drive(&mut m, &cpu, &mut r, MMIO + 0x10, false, 0x1122).unwrap();
    assert_eq!(log, [(MMIO + 0x10, 8, None)]);
    assert_eq!((r.rax, r.rip), (0x1122, rip + 4));
    // MOVS whose RAM destination is not present: the guest's #PF, nothing written.
    m.poke(0x5_0ffe, &[0x90, 0xa4]);
    let mut r = KvmRegs {
        rip: 0x40_0fff,
        rsi: 0xffff_8000_0000_0010,
        rdi: 0x7000_0000,
        ..regs()
    };
    let r0 = r;
    let e = drive(&mut m, &cpu, &mut r, MMIO + 0x10, false, 0).unwrap_err();
    assert_eq!(
        e.error,
        EmuError::Fault(WalkError::PageFault {
            addr: 0x7000_0000,
            error_code: walk::pf::W
        })
    );
    assert_eq!(r, r0);
    // User mode cannot fetch from a supervisor page: the fetch's #PF.
    m.map_long(root, 4, 0x50_0000, 0x6_0000, 1, P | RW);
    let user = long_ctx(root, 3);
    let mut r = KvmRegs {
        rip: 0x50_0000,
        ..regs()
    };
    let e = drive(&mut m, &user, &mut r, MMIO + 0x10, false, 0).unwrap_err();
    assert_eq!(
        e.error,
        EmuError::Fault(WalkError::PageFault {
            addr: 0x50_0000,
            error_code: walk::pf::P | walk::pf::U | walk::pf::ID
        })
    );
    assert_eq!(e.len, 0);
    // An instruction cut by a not-present page reports that page's fault.
    m.poke(0x3_0ffe, &[0x48, 0x8b]);
    let mut r = KvmRegs {
        rip: 0x40_1ffe,
        ..regs()
    };
    let e = drive(&mut m, &cpu, &mut r, MMIO + 0x10, false, 0).unwrap_err();
    assert!(matches!(
        e.error,
        EmuError::Fault(WalkError::PageFault {
            addr: 0x40_2000,
            ..
        })
    ));
    assert_eq!((e.len, &e.bytes[..2]), (2, &[0x48, 0x8b][..]));
}

#[test]
fn string_port_io() {
    let mut r0 = regs();
    r0.rcx = 0x1_0000_0005;
    r0.rsi = 0x2000;
    r0.rdi = 0x3000;
    // rep outsw with an FS override in 32-bit code.
    let insn = decode::decode(&[0x64, 0xf3, 0x66, 0x6f], M32).unwrap();
    let s = string_io(&insn, &r0).unwrap();
    assert_eq!(
        (
            s.input,
            s.size,
            s.seg,
            s.addr_size,
            s.rep,
            s.count,
            s.offset,
            s.backward
        ),
        (false, 2, Seg::Fs, 4, true, 5, 0x2000, false)
    );
    let mut cpu = ctx(M32);
    cpu.seg_base[seg::FS] = 0x100;
    assert_eq!(s.linear(&cpu), 0x2100);
    let mut r = r0;
    s.advance(&mut r, 3);
    // Outside 64-bit mode a 32-bit count update keeps RCX[63:32].
    assert_eq!((r.rsi, r.rcx, r.rip), (0x2006, 0x1_0000_0002, CODE));
    let mut r = r0;
    s.advance(&mut r, 5);
    assert_eq!((r.rsi, r.rcx, r.rip), (0x200a, 0x1_0000_0000, CODE + 4));
    // insb: always ES, even with an override; no REP: one element.
    let insn = decode::decode(&[0x2e, 0x6c], M32).unwrap();
    let s = string_io(&insn, &r0).unwrap();
    assert_eq!(
        (s.input, s.seg, s.count, s.offset),
        (true, Seg::Es, 1, 0x3000)
    );
    let mut r = KvmRegs {
        rflags: 0x202 | flags::DF,
        ..r0
    };
    let s = string_io(&insn, &r).unwrap();
    s.advance(&mut r, 1);
    assert_eq!((r.rdi, r.rcx, r.rip), (0x2fff, r0.rcx, CODE + 2));
    // REP insd with 16-bit addressing in 16-bit code, backwards, across the wrap.
    let insn = decode::decode(&[0xf3, 0x66, 0x6d], M16).unwrap();
    let mut r = KvmRegs {
        rdi: 0xdead_0004,
        rcx: 0xffff_0003,
        rflags: 0x202 | flags::DF,
        ..r0
    };
    let s = string_io(&insn, &r).unwrap();
    assert_eq!((s.size, s.addr_size, s.count, s.offset), (4, 2, 3, 4));
    assert_eq!(s.elems_in_page(0x1004, 3), 2);
    assert!(s.matches_exit(true, 4, true));
    assert!(!s.matches_exit(true, 2, true) && !s.matches_exit(false, 4, true));
    s.advance(&mut r, 3);
    assert_eq!((r.rdi, r.rcx, r.rip), (0xdead_fff8, 0xffff_0000, CODE + 3));
    // 64-bit: REX.W outsd is still 4 bytes; count from RCX; page batching forwards.
    let insn = decode::decode(&[0xf3, 0x48, 0x6f], M64).unwrap();
    let s = string_io(&insn, &r0).unwrap();
    assert_eq!((s.size, s.count), (4, 0x1_0000_0005));
    assert_eq!(s.elems_in_page(0x1ff8, 100), 2);
    assert_eq!(s.elems_in_page(0x1ffe, 100), 1);
    // Not a string port instruction.
    let insn = decode::decode(&[0xee], M64).unwrap();
    assert_eq!(string_io(&insn, &r0), Err(EmuError::Mismatch));
}

#[test]
fn from_vcpu_state() {
    let mut st = VcpuState::reset(0, 0).unwrap();
    let cpu = CpuCtx::from_state(&st);
    assert_eq!(cpu.mode, M16);
    assert_eq!(cpu.base(Seg::Cs), 0xffff_0000);
    assert_eq!(cpu.cpl, 0);
    st.cr0 |= 1;
    st.segs[seg::CS].attrib |= 1 << 10;
    st.segs[seg::DS].base = 0x1234;
    let cpu = CpuCtx::from_state(&st);
    assert_eq!((cpu.mode, cpu.base(Seg::Ds)), (M32, 0x1234));
}

/// Random instructions, registers and fault addresses: no panics, and a failure never
/// changes the registers.
#[test]
fn random_inputs_never_panic() {
    let mut rng = crate::decode::tests::Rng(0x1234_5678_9abc_def1);
    let mut completed = 0;
    for n in 0..20_000u64 {
        let mut code = [0u8; 15];
        for b in code.iter_mut() {
            *b = rng.byte();
        }
        // Bias towards the emulated opcodes.
        if n % 2 == 0 {
            let ops = [
                0x88, 0x89, 0x8a, 0x8b, 0xc7, 0xa1, 0x87, 0x01, 0x81, 0xf7, 0xab, 0xa5,
            ];
            code[usize::from(rng.byte() % 2)] = ops[usize::from(rng.byte()) % ops.len()];
        }
        let mode = [M16, M32, M64][(n % 3) as usize];
        let mut m = mem_with_code(&code);
        let mut r = regs();
        for i in 0..16 {
            *gpr_mut(&mut r, i) = match rng.next() % 3 {
                0 => MMIO + (rng.next() & 0xfff),
                1 => rng.next(),
                _ => rng.next() & 0xffff,
            };
        }
        r.rip = CODE;
        r.rflags = 0x202 | (rng.next() & (flags::DF | CF));
        let r0 = r;
        let gpa = MMIO + (rng.next() & 0xfff);
        match drive(
            &mut m,
            &ctx(mode),
            &mut r,
            gpa,
            rng.next() & 1 != 0,
            rng.next(),
        ) {
            Ok(_) => completed += 1,
            Err(_) => assert_eq!(r, r0),
        }
    }
    assert!(completed > 0);
}

/// The value of an iced register (a GPR at its width, or a segment's base) in `r`/`cpu`.
fn iced_reg(r: &KvmRegs, cpu: &CpuCtx, reg: iced_x86::Register) -> Option<u64> {
    use iced_x86::Register as R;
    let v = reg as u32;
    let within = |b: R, n: u32| v >= b as u32 && v < b as u32 + n;
    let seg = |s: Seg| {
        Some(if cpu.mode == M64 && !matches!(s, Seg::Fs | Seg::Gs) {
            0
        } else {
            cpu.base(s)
        })
    };
    Some(match reg {
        R::ES => return seg(Seg::Es),
        R::CS => return seg(Seg::Cs),
        R::SS => return seg(Seg::Ss),
        R::DS => return seg(Seg::Ds),
        R::FS => return seg(Seg::Fs),
        R::GS => return seg(Seg::Gs),
        _ if within(R::AL, 20) => {
            let i = v - R::AL as u32;
            match i {
                0..=3 => gpr(r, i as u8) & 0xff,
                4..=7 => (gpr(r, (i - 4) as u8) >> 8) & 0xff,
                _ => gpr(r, (i - 4) as u8) & 0xff,
            }
        }
        _ if within(R::AX, 16) => gpr(r, (v - R::AX as u32) as u8) & 0xffff,
        _ if within(R::EAX, 16) => gpr(r, (v - R::EAX as u32) as u8) & 0xffff_ffff,
        _ if within(R::RAX, 16) => gpr(r, (v - R::RAX as u32) as u8),
        _ => return None,
    })
}

/// Differential test of the emulated subset's operands against iced-x86: for random
/// encodings of every emulated opcode in every mode, the linear address of the memory
/// operand, the access size, the register or immediate written or combined, and the
/// register loaded must match what the reference decoder says the instruction names.
#[test]
fn differential_operands_against_reference() {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    const ITERS: usize = 60_000;
    // The emulated opcodes (00 stands for every ALU opcode 00-3B with a ModRM byte).
    let ops: [&[u8]; 32] = [
        &[0x88],
        &[0x89],
        &[0x8a],
        &[0x8b],
        &[0xc6],
        &[0xc7],
        &[0xa0],
        &[0xa1],
        &[0xa2],
        &[0xa3],
        &[0x0f, 0xb6],
        &[0x0f, 0xb7],
        &[0x0f, 0xbe],
        &[0x0f, 0xbf],
        &[0x63],
        &[0x0f, 0xc3],
        &[0x86],
        &[0x87],
        &[0x00],
        &[0x80],
        &[0x81],
        &[0x83],
        &[0x84],
        &[0x85],
        &[0xf6],
        &[0xf7],
        &[0xfe],
        &[0xff],
        &[0xaa],
        &[0xab],
        &[0xac],
        &[0xad],
    ];
    let mut rng = crate::decode::tests::Rng(0xfeed_f00d_1234_5678);
    let (mut checked, mut failures) = (0usize, Vec::new());
    for n in 0..ITERS {
        let mode = [M16, M32, M64][n % 3];
        let mut b = Vec::new();
        for p in [0x66u8, 0x67] {
            if rng.next() % 3 == 0 {
                b.push(p);
            }
        }
        if rng.next() % 3 == 0 {
            b.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][(rng.next() % 6) as usize]);
        }
        if rng.next() % 4 == 0 {
            b.push(0xf3);
        }
        if mode == M64 && rng.next() % 2 == 0 {
            b.push(0x40 | (rng.byte() & 15));
        }
        let mut op = ops[(rng.next() % ops.len() as u64) as usize].to_vec();
        if op == [0x00] {
            // Any ALU op, any of the four ModRM directions.
            op[0] = (rng.byte() & 0x38) | (rng.byte() & 3);
        }
        let last = *op.last().unwrap();
        b.extend_from_slice(&op);
        let mut modrm = rng.byte();
        if modrm >> 6 == 3 {
            modrm &= 0x7f;
        }
        match (op.len(), last) {
            (1, 0xc6 | 0xc7) => modrm &= 0xc7,
            // TEST, TEST, NOT, NEG; INC, DEC.
            (1, 0xf6 | 0xf7) => modrm &= 0xdf,
            (1, 0xfe | 0xff) => modrm &= 0xcf,
            _ => {}
        }
        if !(op.len() == 1 && ((0xa0..=0xa3).contains(&last) || (0xaa..=0xad).contains(&last))) {
            b.push(modrm);
        }
        for _ in 0..12 {
            b.push(rng.byte());
        }
        b.truncate(15);

        let mut cpu = ctx(mode);
        for s in cpu.seg_base.iter_mut() {
            *s = rng.next() & 0xff_fff0;
        }
        let mut r = regs();
        for i in 0..16 {
            *gpr_mut(&mut r, i) = rng.next();
        }
        r.rip = if mode == M64 {
            rng.next() >> 17
        } else {
            rng.next() & 0xffff
        };
        r.rflags = 0x202 | (rng.next() & CF);

        let bits = [16, 32, 64][n % 3];
        let want = Decoder::with_ip(bits, &b, r.rip, DecoderOptions::AMD).decode();
        if want.is_invalid() {
            continue;
        }
        let insn = match decode::decode(&b, mode) {
            Ok(i) if usize::from(i.len) == want.len() => i,
            other => {
                failures.push(std::format!(
                    "{b:02x?} {mode:?}: length {other:?} vs {}",
                    want.len()
                ));
                continue;
            }
        };
        let is_mem = |k: OpKind| {
            matches!(
                k,
                OpKind::Memory
                    | OpKind::MemorySegSI
                    | OpKind::MemorySegESI
                    | OpKind::MemorySegRSI
                    | OpKind::MemoryESDI
                    | OpKind::MemoryESEDI
                    | OpKind::MemoryESRDI
            )
        };
        let Some(k) = (0..want.op_count()).find(|&k| is_mem(want.op_kind(k))) else {
            failures.push(std::format!("{b:02x?}: reference has no memory operand"));
            continue;
        };
        let va = want
            .virtual_address(k, 0, |reg, _, _| iced_reg(&r, &cpu, reg))
            .unwrap();
        let va = if mode == M64 { va } else { va & 0xffff_ffff };
        let string = op.len() == 1 && (0xaa..=0xad).contains(&last);
        if string && insn.prefixes.rep.is_some() && r.rcx & size_mask(insn.addr_size) == 0 {
            continue;
        }
        let lin = if !string {
            operand_linear(&insn, &cpu, &r).unwrap()
        } else if last < 0xac {
            walk::linear(mode, Seg::Es, cpu.base(Seg::Es), r.rdi, insn.addr_size)
        } else {
            let s = insn.prefixes.seg.unwrap_or(Seg::Ds);
            walk::linear(mode, s, cpu.base(s), r.rsi, insn.addr_size)
        };
        if lin != va {
            failures.push(std::format!(
                "{b:02x?} {mode:?}: linear {lin:#x} vs {va:#x}"
            ));
            continue;
        }
        let size = want.memory_size().size() as u8;
        if (lin & 0xfff) + u64::from(size) > 0x1000 {
            continue;
        }
        let gpa = MMIO | (lin & 0xfff);
        let mut m = mem_with_code(&[]);
        let p = match plan(&insn, &cpu, &r, &mut m, gpa, false) {
            Err(EmuError::Unsupported) if op == [0x63] && mode != M64 => continue, // ARPL
            Ok(p) => p,
            Err(e) => {
                failures.push(std::format!("{b:02x?} {mode:?}: {e:?}"));
                continue;
            }
        };
        if p.len != size {
            failures.push(std::format!("{b:02x?} {mode:?}: size {} vs {size}", p.len));
            continue;
        }
        // The non-memory operand as the reference names it.
        let other_k = if k == 0 { 1 } else { 0 };
        let other = match want.op_kind(other_k) {
            _ if other_k >= want.op_count() => 0,
            OpKind::Register => iced_reg(&r, &cpu, want.op_register(other_k)).unwrap(),
            _ => want.immediate(other_k),
        } & size_mask(size);
        let data = rng.next();
        let d = data & size_mask(size);
        let before = r;
        let mut after = r;
        let next = complete(&p, &mut after, &mut m, &data.to_le_bytes()).unwrap();
        let written = |p: &MmioPlan| p.write.map(|w| u64::from_le_bytes(w) & size_mask(p.len));
        let ok = match (op.len(), last) {
            (1, 0x88 | 0x89 | 0xa2 | 0xa3 | 0xc6 | 0xc7 | 0xaa | 0xab) | (2, 0xc3) => {
                written(&p) == Some(other)
            }
            (1, 0x8a | 0x8b | 0xa0 | 0xa1 | 0xac | 0xad) => {
                iced_reg(&after, &cpu, want.op_register(0)) == Some(d)
            }
            (2, 0xb6 | 0xb7 | 0xbe | 0xbf) | (1, 0x63) => {
                let dst = want.op_register(0);
                let dmask = size_mask(insn.op_size);
                let v = if last == 0xbe || last == 0xbf || (last == 0x63 && insn.prefixes.rex_w()) {
                    sext(d, size) as u64
                } else {
                    d
                };
                iced_reg(&after, &cpu, dst) == Some(v & dmask)
            }
            (1, 0x86 | 0x87) => next.as_ref().and_then(written) == Some(other),
            (1, 0xf6 | 0xf7 | 0xfe | 0xff) if last >= 0xfe || (modrm >> 3) & 7 >= 2 => {
                let u = match (last, (modrm >> 3) & 7) {
                    (0xf6 | 0xf7, 2) => Unary::Not,
                    (0xf6 | 0xf7, _) => Unary::Neg,
                    (_, 0) => Unary::Inc,
                    _ => Unary::Dec,
                };
                let (res, fl) = unary(u, d, size, before.rflags);
                // Finish the write to see the flags.
                let mut last_regs = after;
                if let Some(n) = &next {
                    complete(n, &mut last_regs, &mut m, &[0; 8]).unwrap();
                }
                next.as_ref().and_then(written) == Some(res) && last_regs.rflags == fl
            }
            _ => {
                // ALU: recompute with the reference's operands.
                let alu_op = match last {
                    0x84 | 0x85 | 0xf6 | 0xf7 => AluOp::Test,
                    0x80..=0x83 => AluOp::from_index(modrm >> 3),
                    _ => AluOp::from_index(last >> 3),
                };
                if k == 0 {
                    let (res, fl) = alu(alu_op, d, other, size, before.rflags);
                    match &next {
                        Some(w) => written(w) == Some(res) && alu_op.writes(),
                        None => after.rflags == fl && !alu_op.writes(),
                    }
                } else {
                    let (res, fl) = alu(alu_op, other, d, size, before.rflags);
                    let dst = iced_reg(&after, &cpu, want.op_register(0));
                    after.rflags == fl && (dst == Some(res) || !alu_op.writes())
                }
            }
        };
        if !ok {
            failures.push(std::format!("{b:02x?} {mode:?}: operand values differ"));
        }
        checked += 1;
    }
    std::println!(
        "operand differential: {checked} checked, {} mismatches",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(30)].join("\n")
    );
    assert!(checked > ITERS / 2);
}
