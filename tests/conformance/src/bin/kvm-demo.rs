//! `kvm-demo`: the README's main job in one program. It opens a KVM device, builds a VM with
//! 2 MiB of RAM, puts one vCPU in 64-bit long mode (its own GDT and identity-mapped page
//! tables), and runs a guest that writes a greeting, byte by byte, to the serial port 0x3f8.
//! Every byte is a `KVM_EXIT_IO` that this program collects; the guest ends with `HLT`.
//!
//! `cargo xtask demo` runs it inside the test VM against kvmport; it works against any KVM
//! (`kvm-demo --device /dev/kvm`).

use std::process::ExitCode;
use std::time::Instant;

use kvmport_conformance::guest::{Code, DATA, Guest, Mode};
use kvmport_conformance::harness::Ctx;
use kvmport_core::abi::{KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_IO_OUT};

/// What the guest says.
const GREETING: &[u8] =
    b"Hello from a 64-bit guest! Every byte of this line was an OUT to port 0x3f8.";
/// The port it writes to (COM1's data register).
const PORT: u16 = 0x3f8;

fn guest_code() -> Code {
    Code::new()
        // CAST: DATA is below 4 GiB.
        .op_d(&[0xBE], DATA as u32) // mov esi, DATA
        .op_w(&[0x66, 0xBA], PORT) // mov dx, 0x3f8
        .op(&[0xAC]) // next: lodsb
        .op(&[0x84, 0xC0]) // test al, al
        .op(&[0x74, 0x03]) // jz done
        .op(&[0xEE]) // out dx, al
        .op(&[0xEB, 0xF8]) // jmp next
        .op(&[0xF4]) // done: hlt
}

fn run(device: &str) -> Result<(), String> {
    let ctx = Ctx {
        device: device.into(),
    };
    let code = guest_code();
    let g = Guest::new(&ctx, Mode::Long64, &code)?;
    let mut text = GREETING.to_vec();
    text.push(0);
    g.mem.write(DATA, &text);
    let version = g
        .kvm
        .api_version()
        .map_err(|e| format!("KVM_GET_API_VERSION: {e}"))?;
    let s = g.sregs()?;
    println!(
        "kvm-demo: {device}: API version {version}; VM with 2 MiB of RAM and one vCPU in long mode \
         (EFER {:#x}, CR0 {:#x}, CR4 {:#x})",
        s.efer, s.cr0, s.cr4
    );
    let t0 = Instant::now();
    let (mut said, mut exits) = (Vec::new(), 0u32);
    loop {
        let reason = g.run()?;
        exits += 1;
        match reason {
            KVM_EXIT_IO => {
                let io = g.run.io();
                if (io.direction, io.port, io.size) != (KVM_EXIT_IO_OUT, PORT, 1) {
                    return Err(format!("unexpected port access {io:?}"));
                }
                said.extend(g.run.pio_data(&io));
            }
            KVM_EXIT_HLT => break,
            other => return Err(format!("unexpected exit {other}{}", g.exit_detail(other))),
        }
        if exits > 4 * GREETING.len() as u32 {
            return Err("the guest did not halt".to_string());
        }
    }
    let us = t0.elapsed().as_micros();
    println!(
        "kvm-demo: guest says: {}",
        String::from_utf8_lossy(&said).trim_end()
    );
    println!(
        "kvm-demo: {exits} exits ({} port writes, then HLT) in {us} us; rip {:#x}",
        said.len(),
        g.regs()?.rip
    );
    if said != GREETING {
        return Err("the greeting arrived garbled".to_string());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut device = "/dev/kvm".to_string();
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--device", Some(d)) => device = d,
            _ => {
                eprintln!("usage: kvm-demo [--device PATH]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("kvm-demo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
