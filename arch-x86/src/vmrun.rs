//! The SVM world switch's pure parts: the VMCB image (layout from the AMD64 Architecture
//! Programmer's Manual vol. 2, appendix B "Layout of VMCB"), loading and storing the guest
//! state of a [`VcpuState`], exit decoding (`EXITINFO1` of IOIO and nested page faults) and
//! the nested page table ([`Npt`]).

use alloc::vec::Vec;

use kvmport_core::kalloc::{vec_filled, vec_push};
use kvmport_core::os::{HeldPage, Page};
use kvmport_core::{Errno, KResult, Os};

use crate::hw::{EFER_LMA, EFER_LME, EFER_SVME};
use crate::state::{Dtable, Events, VcpuState, VmcbSeg, cr0, seg};

/// The size of a VMCB: one page.
pub const VMCB_IMAGE_LEN: usize = 0x1000;

/// A VMCB as Rust data, page-aligned. Where the glue can give its physical address
/// ([`kvmport_core::Os::heap_phys_addr`]) it is the VMCB itself, which the processor reads at
/// `VMRUN` and writes at `#VMEXIT`; elsewhere it is a software copy whose used ranges
/// ([`VMCB_LOADED`], [`VMCB_STORED`]) go to and from a VMCB page.
#[repr(C, align(4096))]
#[derive(Clone, Debug, zerocopy::FromZeros)]
pub struct VmcbImage(pub [u8; VMCB_IMAGE_LEN]);

const _: () = assert!(core::mem::size_of::<VmcbImage>() == VMCB_IMAGE_LEN);

/// The control-area bytes this backend sets (everything up to `N_CR3`, and the clean bits at
/// 0xc0, which stay zero: nothing is cached).
pub const CONTROL_USED: usize = 0xc8;

/// The VMCB byte ranges written before `VMRUN`: the control fields in use and the save-area
/// fields [`load_guest`] sets. Copying only these (not the whole 0x700-byte image) keeps the
/// per-exit cost down; the other save-area bytes keep what the processor stored at the last
/// `#VMEXIT`, which is the guest's own state.
pub const VMCB_LOADED: &[(usize, usize)] = &[
    (0x000, CONTROL_USED),
    (save::ES, save::TR + 16),
    (save::CPL & !7, save::EFER + 8),
    (save::CR4, save::RIP + 8),
    (save::RSP, save::RSP + 8),
    (save::RAX, save::CR2 + 8),
    (save::G_PAT, save::G_PAT + 8),
];

/// The VMCB byte ranges read after `#VMEXIT`: the exit information and the save-area fields
/// [`store_guest`] reads.
pub const VMCB_STORED: &[(usize, usize)] = &[
    (ctl::VINTR, ctl::EXITINTINFO + 8),
    (save::ES, save::TR + 16),
    (save::CPL & !7, save::EFER + 8),
    (save::CR4, save::RIP + 8),
    (save::RSP, save::RSP + 8),
    (save::RAX, save::CR2 + 8),
    (save::G_PAT, save::G_PAT + 8),
];

/// Hands each range of `img` to `put(offset, bytes)`; false as soon as one fails.
pub fn copy_ranges(
    img: &VmcbImage,
    ranges: &[(usize, usize)],
    mut put: impl FnMut(usize, &[u8]) -> bool,
) -> bool {
    ranges
        .iter()
        .all(|&(a, b)| img.0.get(a..b).is_some_and(|bytes| put(a, bytes)))
}

/// Fills each range of `img` with `get(offset, bytes)`; false as soon as one fails.
pub fn fill_ranges(
    img: &mut VmcbImage,
    ranges: &[(usize, usize)],
    mut get: impl FnMut(usize, &mut [u8]) -> bool,
) -> bool {
    ranges
        .iter()
        .all(|&(a, b)| img.0.get_mut(a..b).is_some_and(|bytes| get(a, bytes)))
}

/// Offsets in the VMCB control area.
pub mod ctl {
    /// CR intercepts (u32): reads of CRn in bit n, writes in bit 16 + n.
    pub const CR_INTERCEPTS: usize = 0x000;
    /// DR intercepts (u32): reads of DRn in bit n, writes in bit 16 + n.
    pub const DR_INTERCEPTS: usize = 0x004;
    /// Exception intercept bitmap (u32).
    pub const EXCEPTIONS: usize = 0x008;
    /// Intercepts, first vector (u32): INTR, NMI, ..., SHUTDOWN.
    pub const MISC1: usize = 0x00c;
    /// Intercepts, second vector (u32): VMRUN, VMMCALL, ...
    pub const MISC2: usize = 0x010;
    /// `IOPM_BASE_PA` (u64).
    pub const IOPM_BASE: usize = 0x040;
    /// `TSC_OFFSET` (u64): added to the host's TSC for the guest's `RDTSC`/`RDTSCP`.
    pub const TSC_OFFSET: usize = 0x050;
    /// `MSRPM_BASE_PA` (u64).
    pub const MSRPM_BASE: usize = 0x048;
    /// Guest ASID (u32).
    pub const ASID: usize = 0x058;
    /// `TLB_CONTROL` (u8).
    pub const TLB_CONTROL: usize = 0x05c;
    /// Virtual interrupt control (u64): `V_INTR_MASKING` is bit 24.
    pub const VINTR: usize = 0x060;
    /// Interrupt state: bit 0 is the interrupt shadow.
    pub const INT_STATE: usize = 0x068;
    /// `EXITCODE` (u64).
    pub const EXITCODE: usize = 0x070;
    /// `EXITINFO1` (u64).
    pub const EXITINFO1: usize = 0x078;
    /// `EXITINFO2` (u64).
    pub const EXITINFO2: usize = 0x080;
    /// `EXITINTINFO` (u64).
    pub const EXITINTINFO: usize = 0x088;
    /// `NP_ENABLE` is bit 0 (u64).
    pub const NP_ENABLE: usize = 0x090;
    /// `EVENTINJ` (u64).
    pub const EVENTINJ: usize = 0x0a8;
    /// `N_CR3` (u64).
    pub const N_CR3: usize = 0x0b0;
}

/// Offsets in the VMCB state-save area (which starts at 0x400).
pub mod save {
    /// ES (a 16-byte [`VmcbSeg`](crate::state::VmcbSeg)).
    pub const ES: usize = 0x400;
    /// CS.
    pub const CS: usize = 0x410;
    /// SS.
    pub const SS: usize = 0x420;
    /// DS.
    pub const DS: usize = 0x430;
    /// FS.
    pub const FS: usize = 0x440;
    /// GS.
    pub const GS: usize = 0x450;
    /// GDTR (limit at +4, base at +8).
    pub const GDTR: usize = 0x460;
    /// LDTR.
    pub const LDTR: usize = 0x470;
    /// IDTR (limit at +4, base at +8).
    pub const IDTR: usize = 0x480;
    /// TR.
    pub const TR: usize = 0x490;
    /// CPL (u8).
    pub const CPL: usize = 0x4cb;
    /// EFER.
    pub const EFER: usize = 0x4d0;
    /// CR4.
    pub const CR4: usize = 0x548;
    /// CR3.
    pub const CR3: usize = 0x550;
    /// CR0.
    pub const CR0: usize = 0x558;
    /// DR7.
    pub const DR7: usize = 0x560;
    /// DR6.
    pub const DR6: usize = 0x568;
    /// RFLAGS.
    pub const RFLAGS: usize = 0x570;
    /// RIP.
    pub const RIP: usize = 0x578;
    /// RSP.
    pub const RSP: usize = 0x5d8;
    /// RAX.
    pub const RAX: usize = 0x5f8;
    /// STAR (`VMLOAD`/`VMSAVE` state, like the seven below).
    pub const STAR: usize = 0x600;
    /// LSTAR.
    pub const LSTAR: usize = 0x608;
    /// CSTAR.
    pub const CSTAR: usize = 0x610;
    /// SFMASK.
    pub const SFMASK: usize = 0x618;
    /// KernelGSbase (changed by the guest's `SWAPGS` without an exit).
    pub const KERNEL_GS_BASE: usize = 0x620;
    /// SYSENTER_CS.
    pub const SYSENTER_CS: usize = 0x628;
    /// SYSENTER_ESP.
    pub const SYSENTER_ESP: usize = 0x630;
    /// SYSENTER_EIP.
    pub const SYSENTER_EIP: usize = 0x638;
    /// CR2.
    pub const CR2: usize = 0x640;
    /// G_PAT.
    pub const G_PAT: usize = 0x668;
}

/// Intercept bits of [`ctl::MISC1`].
pub mod misc1 {
    /// Physical interrupt.
    pub const INTR: u32 = 1 << 0;
    /// NMI.
    pub const NMI: u32 = 1 << 1;
    /// Virtual interrupt (`V_IRQ` taken): the interrupt window.
    pub const VINTR: u32 = 1 << 4;
    /// `IRET` (the end of an NMI handler).
    pub const IRET: u32 = 1 << 20;
    /// `INTn`.
    pub const INTN: u32 = 1 << 21;
    /// SMI.
    pub const SMI: u32 = 1 << 2;
    /// `CPUID`.
    pub const CPUID: u32 = 1 << 18;
    /// `INVD`.
    pub const INVD: u32 = 1 << 22;
    /// `HLT`.
    pub const HLT: u32 = 1 << 24;
    /// `INVLPGA` (available to the guest, whose EFER.SVME is set).
    pub const INVLPGA: u32 = 1 << 26;
    /// Task switch.
    pub const TASK_SWITCH: u32 = 1 << 29;
    /// Port I/O through the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// MSR accesses through the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept bits of [`ctl::MISC2`].
pub mod misc2 {
    /// `VMRUN` (mandatory).
    pub const VMRUN: u32 = 1 << 0;
    /// `VMMCALL`.
    pub const VMMCALL: u32 = 1 << 1;
    /// `VMLOAD`.
    pub const VMLOAD: u32 = 1 << 2;
    /// `VMSAVE`.
    pub const VMSAVE: u32 = 1 << 3;
    /// `STGI`.
    pub const STGI: u32 = 1 << 4;
    /// `CLGI`.
    pub const CLGI: u32 = 1 << 5;
    /// `SKINIT`.
    pub const SKINIT: u32 = 1 << 6;
    /// `MONITOR`.
    pub const MONITOR: u32 = 1 << 10;
    /// `MWAIT`.
    pub const MWAIT: u32 = 1 << 11;
    /// `XSETBV` (XCR0 is not switched by `VMRUN`).
    pub const XSETBV: u32 = 1 << 13;
}

/// Exit codes (`EXITCODE`).
pub mod code {
    /// Physical interrupt.
    pub const INTR: u64 = 0x60;
    /// NMI.
    pub const NMI: u64 = 0x61;
    /// SMI.
    pub const SMI: u64 = 0x62;
    /// `CPUID`.
    pub const CPUID: u64 = 0x72;
    /// `HLT`.
    pub const HLT: u64 = 0x78;
    /// Port I/O.
    pub const IOIO: u64 = 0x7b;
    /// `RDMSR`/`WRMSR`.
    pub const MSR: u64 = 0x7c;
    /// Shutdown.
    pub const SHUTDOWN: u64 = 0x7f;
    /// Virtual interrupt (the interrupt window `V_IRQ` asked for is open).
    pub const VINTR: u64 = 0x64;
    /// `IRET`.
    pub const IRET: u64 = 0x74;
    /// `XSETBV`.
    pub const XSETBV: u64 = 0x8d;
    /// `#DB` intercept.
    pub const EXCP_DB: u64 = 0x41;
    /// `#BP` intercept.
    pub const EXCP_BP: u64 = 0x43;
    /// `#AC` intercept.
    pub const EXCP_AC: u64 = 0x51;
    /// `INTn` intercept.
    pub const SWINT: u64 = 0x75;
    /// Read of DR0 (DRn: `DR0_READ + n`).
    pub const DR0_READ: u64 = 0x20;
    /// Write of DR0 (DRn: `DR0_WRITE + n`).
    pub const DR0_WRITE: u64 = 0x30;
    /// Write of CR0 (`MOV CR0`, `LMSW`, `CLTS`).
    pub const CR0_WRITE: u64 = 0x10;
    /// Write of CR4.
    pub const CR4_WRITE: u64 = 0x14;
    /// `INVD`.
    pub const INVD: u64 = 0x76;
    /// `INVLPGA`.
    pub const INVLPGA: u64 = 0x7a;
    /// Task switch.
    pub const TASK_SWITCH: u64 = 0x7d;
    /// `VMRUN`.
    pub const VMRUN: u64 = 0x80;
    /// `VMMCALL`.
    pub const VMMCALL: u64 = 0x81;
    /// `VMLOAD`.
    pub const VMLOAD: u64 = 0x82;
    /// `VMSAVE`.
    pub const VMSAVE: u64 = 0x83;
    /// `STGI`.
    pub const STGI: u64 = 0x84;
    /// `CLGI`.
    pub const CLGI: u64 = 0x85;
    /// `SKINIT`.
    pub const SKINIT: u64 = 0x86;
    /// `MONITOR`.
    pub const MONITOR: u64 = 0x8a;
    /// `MWAIT`.
    pub const MWAIT: u64 = 0x8b;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// Invalid guest state (compare the low 32 bits: TCG stores it zero-extended).
    pub const INVALID: u32 = 0xffff_ffff;
}

/// Exceptions intercepted (the guest's own IDT handles the others): #DB and #AC, which a
/// guest can turn into endless delivery loops that no interrupt breaks.
pub const EXCEPTIONS: u32 = (1 << 1) | (1 << 17);

/// The breakpoint exception's vector.
pub const BP_VECTOR: u32 = 3;

/// DR7 the guest runs with: breakpoints off. DR0-DR3 are not switched yet, so the guest's
/// DR7 (kept in the state model) would arm breakpoints at the host's addresses.
pub const GUEST_DR7: u64 = 0x400;

impl VmcbImage {
    /// An all-zero image.
    pub const fn new() -> VmcbImage {
        VmcbImage([0; VMCB_IMAGE_LEN])
    }

    /// Reads `N` bytes at `off` (zeros if out of range).
    fn get<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = self.0.get(off..off + N) {
            out.copy_from_slice(s);
        }
        out
    }

    /// Writes `v` at `off` (ignored if out of range).
    fn put(&mut self, off: usize, v: &[u8]) {
        if let Some(d) = self.0.get_mut(off..off + v.len()) {
            d.copy_from_slice(v);
        }
    }

    /// The u64 at `off`.
    pub fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.get(off))
    }

    /// Sets the u64 at `off`.
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.put(off, &v.to_le_bytes());
    }

    /// Sets the u32 at `off`.
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.put(off, &v.to_le_bytes());
    }

    /// The segment at `off`.
    pub fn seg(&self, off: usize) -> VmcbSeg {
        VmcbSeg {
            selector: u16::from_le_bytes(self.get(off)),
            attrib: u16::from_le_bytes(self.get(off + 2)),
            limit: u32::from_le_bytes(self.get(off + 4)),
            base: u64::from_le_bytes(self.get(off + 8)),
        }
    }

    /// Sets the segment at `off`.
    pub fn set_seg(&mut self, off: usize, s: &VmcbSeg) {
        self.put(off, &s.selector.to_le_bytes());
        self.put(off + 2, &s.attrib.to_le_bytes());
        self.put(off + 4, &s.limit.to_le_bytes());
        self.put(off + 8, &s.base.to_le_bytes());
    }

    fn dtable(&self, off: usize) -> Dtable {
        Dtable {
            // CAST: descriptor-table limits are 16 bits; the upper half is reserved.
            limit: u32::from_le_bytes(self.get(off + 4)) as u16,
            base: self.u64(off + 8),
        }
    }

    fn set_dtable(&mut self, off: usize, d: &Dtable) {
        self.set_u32(off + 4, u32::from(d.limit));
        self.set_u64(off + 8, d.base);
    }
}

impl Default for VmcbImage {
    fn default() -> Self {
        VmcbImage::new()
    }
}

/// VMCB slot of each entry of [`VcpuState::segs`].
const SEG_SLOTS: [(usize, usize); 8] = [
    (seg::CS, save::CS),
    (seg::DS, save::DS),
    (seg::ES, save::ES),
    (seg::FS, save::FS),
    (seg::GS, save::GS),
    (seg::SS, save::SS),
    (seg::TR, save::TR),
    (seg::LDT, save::LDTR),
];

/// `RFLAGS.VM`.
const RFLAGS_VM: u64 = 1 << 17;

/// The CPL the guest runs at: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL.
pub fn guest_cpl(v: &VcpuState) -> u8 {
    if v.cr0 & cr0::PE == 0 {
        0
    } else if v.regs.rflags & RFLAGS_VM != 0 {
        3
    } else {
        let ss = v.segs.get(seg::SS).map_or(0, |s| s.attrib);
        // CAST: two bits.
        ((ss >> 5) & 3) as u8
    }
}

/// Writes the guest state of `v` into the save area of `img`. `EFER.SVME` is set, as
/// `VMRUN` requires.
pub fn load_guest(img: &mut VmcbImage, v: &VcpuState) {
    for (i, off) in SEG_SLOTS {
        if let Some(s) = v.segs.get(i) {
            img.set_seg(off, s);
        }
    }
    img.set_dtable(save::GDTR, &v.gdt);
    img.set_dtable(save::IDTR, &v.idt);
    img.put(save::CPL, &[guest_cpl(v)]);
    let hide = if lme_hidden(v) { EFER_LME } else { 0 };
    img.set_u64(save::EFER, vmcb_efer(v.efer, v.cr0) & !hide);
    img.set_u64(save::CR0, v.cr0);
    img.set_u64(save::CR2, v.cr2);
    img.set_u64(save::CR3, v.cr3);
    img.set_u64(save::CR4, v.cr4);
    img.set_u64(save::DR6, v.dr6);
    img.set_u64(save::DR7, GUEST_DR7);
    img.set_u64(save::RFLAGS, v.regs.rflags);
    img.set_u64(save::RIP, v.regs.rip);
    img.set_u64(save::RSP, v.regs.rsp);
    img.set_u64(save::RAX, v.regs.rax);
    img.set_u64(save::G_PAT, v.msrs.pat);
    for (off, val) in syscall_msrs(v) {
        img.set_u64(off, val);
    }
    img.set_u64(ctl::INT_STATE, u64::from(v.events.int_shadow));
}

/// Whether the guest is in the state where the processor is given `EFER.LME` clear: `LME` set
/// with `CR0.PG` and `CR4.PAE` both clear, in which QEMU's TCG SVM corrupts the host's CR0 on
/// `#VMEXIT` (see [`crate::crwrite`]). `LME` has no effect until paging is enabled, which
/// cannot happen without an intercepted CR0 or CR4 write first, so the guest sees no
/// difference. The world switch intercepts CR0 and CR4 writes while this holds.
pub fn lme_hidden(v: &VcpuState) -> bool {
    v.efer & EFER_LME != 0 && v.cr0 & cr0::PG == 0 && v.cr4 & crate::cpuid_table::cr4::PAE == 0
}

/// The `EFER` the processor sees: `SVME` set, as `VMRUN` requires, and `LMA` equal to
/// `LME && CR0.PG`, whatever the software view says. The processor loads `LMA` from the VMCB
/// as given; a stale `LMA` (long mode active without paging) is a state no real guest can
/// reach, and QEMU's TCG runs such a guest without ever taking the host's interrupts.
pub fn vmcb_efer(efer: u64, cr0_value: u64) -> u64 {
    let long = efer & EFER_LME != 0 && cr0_value & cr0::PG != 0;
    let efer = if long {
        efer | EFER_LMA
    } else {
        efer & !EFER_LMA
    };
    efer | EFER_SVME
}

/// Reads the guest state back from the save area of `img` after `#VMEXIT`.
pub fn store_guest(img: &VmcbImage, v: &mut VcpuState) {
    // CR0 and CR4 writes were intercepted while LME was hidden, so the state that hid it
    // still holds; the guest's EFER keeps its LME.
    let hidden = if lme_hidden(v) { EFER_LME } else { 0 };
    for (i, off) in SEG_SLOTS {
        if let Some(s) = v.segs.get_mut(i) {
            *s = img.seg(off);
        }
    }
    v.gdt = img.dtable(save::GDTR);
    v.idt = img.dtable(save::IDTR);
    v.efer = (img.u64(save::EFER) & !EFER_SVME) | hidden;
    v.cr0 = img.u64(save::CR0);
    v.cr2 = img.u64(save::CR2);
    v.cr3 = img.u64(save::CR3);
    v.cr4 = img.u64(save::CR4);
    v.dr6 = img.u64(save::DR6);
    v.regs.rflags = img.u64(save::RFLAGS);
    v.regs.rip = img.u64(save::RIP);
    v.regs.rsp = img.u64(save::RSP);
    v.regs.rax = img.u64(save::RAX);
    // CR8 ran as V_TPR (V_INTR_MASKING): a guest's MOV CR8 changed only that.
    v.cr8 = img.u64(ctl::VINTR) & 0xf;
    v.events.int_shadow = img.u64(ctl::INT_STATE) & 1 != 0;
    let m = &mut v.msrs;
    m.star = img.u64(save::STAR);
    m.lstar = img.u64(save::LSTAR);
    m.cstar = img.u64(save::CSTAR);
    m.sfmask = img.u64(save::SFMASK);
    m.kernel_gs_base = img.u64(save::KERNEL_GS_BASE);
    m.sysenter_cs = img.u64(save::SYSENTER_CS);
    m.sysenter_esp = img.u64(save::SYSENTER_ESP);
    m.sysenter_eip = img.u64(save::SYSENTER_EIP);
}

/// The system-call MSRs `VMLOAD` takes from the guest's VMCB (and `VMSAVE` puts back).
fn syscall_msrs(v: &VcpuState) -> [(usize, u64); 8] {
    let m = &v.msrs;
    [
        (save::STAR, m.star),
        (save::LSTAR, m.lstar),
        (save::CSTAR, m.cstar),
        (save::SFMASK, m.sfmask),
        (save::KERNEL_GS_BASE, m.kernel_gs_base),
        (save::SYSENTER_CS, m.sysenter_cs),
        (save::SYSENTER_ESP, m.sysenter_esp),
        (save::SYSENTER_EIP, m.sysenter_eip),
    ]
}

/// A decoded IOIO `EXITINFO1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoExit {
    /// Port.
    pub port: u16,
    /// Access size in bytes (1, 2 or 4).
    pub size: u8,
    /// `IN` (rather than `OUT`).
    pub input: bool,
    /// String instruction (`INS`/`OUTS`).
    pub string: bool,
    /// `REP` prefix.
    pub rep: bool,
}

impl IoExit {
    /// Decodes `EXITINFO1` of an IOIO intercept: TYPE bit 0 (1 = IN), STR bit 2, REP bit 3,
    /// SZ8/SZ16/SZ32 bits 4-6, port bits 31:16. `None` if no size bit is set.
    pub fn decode(info1: u64) -> Option<IoExit> {
        let size = match (info1 >> 4) & 7 {
            1 => 1,
            2 => 2,
            4 => 4,
            _ => return None,
        };
        Some(IoExit {
            // CAST: bits 31:16.
            port: (info1 >> 16) as u16,
            size,
            input: info1 & 1 != 0,
            string: info1 & (1 << 2) != 0,
            rep: info1 & (1 << 3) != 0,
        })
    }
}

/// Merges `IN` data of `size` bytes into RAX: 1 and 2 bytes keep the upper bits, 4 bytes
/// zero-extend (as a 32-bit register write does).
pub fn merge_in(rax: u64, size: u8, data: u32) -> u64 {
    match size {
        1 => (rax & !0xff) | u64::from(data & 0xff),
        2 => (rax & !0xffff) | u64::from(data & 0xffff),
        _ => u64::from(data),
    }
}

/// Whether an event `EXITINTINFO` reports as interrupted must be injected again: not for
/// software interrupts (type 4) or the `INT3`/`INTO` exceptions (type 3, vectors 3 and 4),
/// whose instruction runs again since RIP still points at it.
pub fn needs_reinject(intinfo: u64) -> bool {
    if intinfo & (1 << 31) == 0 {
        return false;
    }
    let vector = intinfo & 0xff;
    match (intinfo >> 8) & 7 {
        4 => false,
        3 => !(vector == 3 || vector == 4),
        _ => true,
    }
}

/// `EVENTINJ`/`EXITINTINFO` event types.
pub mod event {
    /// External interrupt.
    pub const INTR: u64 = 0;
    /// NMI.
    pub const NMI: u64 = 2;
    /// Exception.
    pub const EXCEPTION: u64 = 3;
    /// Software interrupt (`INTn`).
    pub const SOFT: u64 = 4;
    /// Valid bit.
    pub const VALID: u64 = 1 << 31;
    /// Error code valid.
    pub const EV: u64 = 1 << 11;
}

/// Encodes an `EVENTINJ` value.
pub fn event_inj(kind: u64, vector: u8, error_code: Option<u32>) -> u64 {
    let ec = error_code.map_or(0, |e| (u64::from(e) << 32) | event::EV);
    u64::from(vector) | (kind << 8) | ec | event::VALID
}

/// Takes the next event to inject from the pending-event model, in the order the
/// architecture delivers them: an exception being delivered, an NMI being delivered, a
/// queued external interrupt (`KVM_INTERRUPT`: the VMM checked the window, so it goes in
/// unconditionally), then a pending NMI if NMIs are not blocked. Returns the `EVENTINJ` value
/// (0 for none).
///
/// The taken event leaves the model; an interrupted delivery comes back from `EXITINTINFO`
/// through [`events_from_exit`].
pub fn take_event(ev: &mut Events, nmi_ok: bool) -> u64 {
    if ev.exception.injected {
        ev.exception.injected = false;
        let x = ev.exception;
        return event_inj(
            event::EXCEPTION,
            x.nr,
            x.has_error_code.then_some(x.error_code),
        );
    }
    if ev.nmi_injected {
        ev.nmi_injected = false;
        return event_inj(event::NMI, 2, None);
    }
    if ev.irq_injected {
        ev.irq_injected = false;
        let kind = if ev.irq_soft {
            event::SOFT
        } else {
            event::INTR
        };
        return event_inj(kind, ev.irq_nr, None);
    }
    if ev.nmi_pending > 0 && !ev.nmi_masked && !ev.int_shadow && nmi_ok {
        ev.nmi_pending -= 1;
        return event_inj(event::NMI, 2, None);
    }
    0
}

/// Updates the pending-event model after `#VMEXIT`: an event whose delivery was interrupted
/// (`EXITINTINFO`) is marked as being delivered again; an NMI injected by `inj` that is not
/// among them was delivered, so NMIs are now blocked until the guest's `IRET`.
pub fn events_from_exit(ev: &mut Events, inj: u64, intinfo: u64) {
    if needs_reinject(intinfo) {
        // CAST: the vector is the low byte; the error code the high half.
        let vector = intinfo as u8;
        let error_code = (intinfo & event::EV != 0).then_some((intinfo >> 32) as u32);
        match (intinfo >> 8) & 7 {
            event::INTR => {
                ev.irq_injected = true;
                ev.irq_nr = vector;
                ev.irq_soft = false;
            }
            event::NMI => ev.nmi_injected = true,
            _ => {
                ev.exception.injected = true;
                ev.exception.nr = vector;
                ev.exception.has_error_code = error_code.is_some();
                ev.exception.error_code = error_code.unwrap_or(0);
            }
        }
    }
    let injected_nmi = inj & event::VALID != 0 && (inj >> 8) & 7 == event::NMI;
    if injected_nmi && !ev.nmi_injected {
        ev.nmi_masked = true;
    }
}

/// Nested page fault `EXITINFO1`: the access was a write.
pub fn npf_is_write(info1: u64) -> bool {
    info1 & (1 << 1) != 0
}

/// Index into the level-`level` table (4 = PML4 ... 1 = PT) of a nested walk of `gpa`.
pub fn npt_index(gpa: u64, level: u32) -> usize {
    // CAST: nine bits.
    ((gpa >> (12 + 9 * (level.saturating_sub(1)))) & 0x1ff) as usize
}

/// Nested page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User (nested walks are user accesses, so every entry has it).
    pub const US: u64 = 1 << 2;
}

const NONE: u32 = u32::MAX;

/// One table page of an [`Npt`], with the indices of its child tables, or for a leaf table
/// the indices of the held pages its entries map (in [`Npt`]'s `held`).
struct Table<O: Os> {
    page: O::Page,
    child: Vec<u32>,
}

/// The table pages and held guest pages of a torn-down [`Npt`], released when dropped.
pub struct NptRemains<O: Os> {
    _tables: Vec<Table<O>>,
    _held: Vec<O::HeldPage>,
}

/// A nested page table built lazily from nested page faults, owning its table pages and the
/// held guest pages it maps. Dropping or [`clear`](Npt::clear)ing releases them.
pub struct Npt<O: Os> {
    tables: Vec<Table<O>>,
    held: Vec<O::HeldPage>,
    /// Incremented on each tear-down, so a fault resolved before one is not mapped after it.
    pub generation: u64,
}

impl<O: Os> Default for Npt<O> {
    fn default() -> Self {
        Npt {
            tables: Vec::new(),
            held: Vec::new(),
            generation: 0,
        }
    }
}

impl<O: Os> Npt<O> {
    fn new_table(&mut self, os: &O) -> KResult<u32> {
        let page = os.page_zalloc()?;
        let child = vec_filled(512, NONE)?;
        let idx = u32::try_from(self.tables.len()).map_err(|_| Errno::ENOMEM)?;
        vec_push(&mut self.tables, Table { page, child })?;
        Ok(idx)
    }

    /// The physical address of the PML4, allocating it if needed.
    pub fn root(&mut self, os: &O) -> KResult<u64> {
        if self.tables.is_empty() {
            self.new_table(os)?;
        }
        self.tables
            .first()
            .map(|t| t.page.pa())
            .ok_or(Errno::ENOMEM)
    }

    /// Maps the 4 KiB guest frame at `gpa` to `page` with `P|US` and `RW` if `writable`,
    /// keeping `page` held until the table is torn down.
    pub fn map(&mut self, os: &O, gpa: u64, page: O::HeldPage, writable: bool) -> KResult<()> {
        self.root(os)?;
        let mut t = 0usize;
        for level in [4u32, 3, 2] {
            let idx = npt_index(gpa, level);
            let cur = self
                .tables
                .get(t)
                .and_then(|tb| tb.child.get(idx).copied())
                .ok_or(Errno::EINVAL)?;
            let next = if cur == NONE {
                let n = self.new_table(os)?;
                let pa = self
                    .tables
                    .get(n as usize)
                    .map(|tb| tb.page.pa())
                    .ok_or(Errno::ENOMEM)?;
                let tb = self.tables.get_mut(t).ok_or(Errno::EINVAL)?;
                if !tb
                    .page
                    .write(idx * 8, &(pa | pte::P | pte::RW | pte::US).to_le_bytes())
                {
                    return Err(Errno::EINVAL);
                }
                if let Some(c) = tb.child.get_mut(idx) {
                    *c = n;
                }
                n
            } else {
                cur
            };
            t = next as usize;
        }
        let flags = pte::P | pte::US | if writable { pte::RW } else { 0 };
        let entry = (page.pa() & !0xfff) | flags;
        let held = u32::try_from(self.held.len()).map_err(|_| Errno::ENOMEM)?;
        vec_push(&mut self.held, page)?;
        let idx = npt_index(gpa, 1);
        let tb = self.tables.get_mut(t).ok_or(Errno::EINVAL)?;
        if !tb.page.write(idx * 8, &entry.to_le_bytes()) {
            return Err(Errno::EINVAL);
        }
        if let Some(c) = tb.child.get_mut(idx) {
            *c = held;
        }
        Ok(())
    }

    /// The held page the table maps at `gpa`, if any: the emulator reads guest memory the
    /// guest has already touched through it, without resolving and holding the page again.
    /// The page stays held while the caller holds the table's lock.
    pub fn lookup(&self, gpa: u64) -> Option<&O::HeldPage> {
        let mut t = 0usize;
        for level in [4u32, 3, 2] {
            let next = *self.tables.get(t)?.child.get(npt_index(gpa, level))?;
            if next == NONE {
                return None;
            }
            t = next as usize;
        }
        let h = *self.tables.get(t)?.child.get(npt_index(gpa, 1))?;
        self.held.get(h as usize)
    }

    /// Whether the table holds no guest page.
    pub fn holds_nothing(&self) -> bool {
        self.held.is_empty()
    }

    /// Tears the whole table down, releasing table pages and held guest pages.
    pub fn clear(&mut self) {
        drop(self.take());
    }

    /// Empties the table and moves the generation on, returning the old table pages and held
    /// pages: the caller drops them once no vCPU can still be running on the old table.
    pub fn take(&mut self) -> NptRemains<O> {
        self.generation = self.generation.wrapping_add(1);
        NptRemains {
            _tables: core::mem::take(&mut self.tables),
            _held: core::mem::take(&mut self.held),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VcpuState;

    #[test]
    fn ioio_exitinfo1() {
        // OUT DX, AL to port 0x3f8: size 1, out.
        assert_eq!(
            IoExit::decode(0x03f8_0010),
            Some(IoExit {
                port: 0x3f8,
                size: 1,
                input: false,
                string: false,
                rep: false
            })
        );
        // IN EAX, 0x71: size 4, in.
        assert_eq!(
            IoExit::decode(0x0071_0041),
            Some(IoExit {
                port: 0x71,
                size: 4,
                input: true,
                string: false,
                rep: false
            })
        );
        // REP OUTSW to 0x1234 with a 32-bit address size.
        assert_eq!(
            IoExit::decode(0x1234_0000 | (1 << 8) | (2 << 4) | (1 << 3) | (1 << 2)),
            Some(IoExit {
                port: 0x1234,
                size: 2,
                input: false,
                string: true,
                rep: true
            })
        );
        assert_eq!(IoExit::decode(0x1234_0000), None);
        assert_eq!(IoExit::decode(0x1234_0030), None);
    }

    #[test]
    fn in_merge() {
        assert_eq!(
            merge_in(0x1122_3344_5566_7788, 1, 0xab),
            0x1122_3344_5566_77ab
        );
        assert_eq!(
            merge_in(0x1122_3344_5566_7788, 2, 0xabcd),
            0x1122_3344_5566_abcd
        );
        assert_eq!(merge_in(0x1122_3344_5566_7788, 4, 0xdead_beef), 0xdead_beef);
    }

    #[test]
    fn reinjection() {
        // #PF with error code: again.
        assert!(needs_reinject(0x8000_0b0e));
        // External interrupt 0x20: again.
        assert!(needs_reinject(0x8000_0020));
        // INT 0x80 (software interrupt) and INT3: re-executed instead.
        assert!(!needs_reinject(0x8000_0480));
        assert!(!needs_reinject(0x8000_0303));
        // Not valid.
        assert!(!needs_reinject(0x0000_0b0e));
    }

    /// Every byte `load_guest` writes lies in [`VMCB_LOADED`], and every field `store_guest`
    /// reads lies in [`VMCB_STORED`].
    #[test]
    fn vmcb_ranges_cover_the_fields() {
        let inside = |r: &[(usize, usize)], i: usize| r.iter().any(|&(a, b)| (a..b).contains(&i));
        let mut v = VcpuState::reset(0, 0).unwrap();
        let mut ones = VmcbImage([0xff; VMCB_IMAGE_LEN]);
        let mut zeros = VmcbImage::new();
        for st in 0..2 {
            if st == 1 {
                v.efer = EFER_LME;
                v.msrs.lstar = u64::MAX;
                v.regs = kvmport_core::abi::x86::KvmRegs {
                    rax: u64::MAX,
                    rsp: u64::MAX,
                    rip: u64::MAX,
                    rflags: u64::MAX,
                    ..Default::default()
                };
            }
            load_guest(&mut ones, &v);
            load_guest(&mut zeros, &v);
        }
        for i in CONTROL_USED..VMCB_IMAGE_LEN {
            if ones.0[i] != 0xff || zeros.0[i] != 0 {
                assert!(inside(VMCB_LOADED, i), "load_guest writes byte {i:#x}");
            }
        }
        // store_guest: a state read from an image that differs only outside VMCB_STORED is
        // the same.
        let mut a = VmcbImage([0x11; VMCB_IMAGE_LEN]);
        let mut b = a.clone();
        for i in 0..VMCB_IMAGE_LEN {
            if !inside(VMCB_STORED, i) {
                b.0[i] = 0x77;
            }
        }
        a.set_u64(save::EFER, EFER_SVME);
        b.set_u64(save::EFER, EFER_SVME);
        let mut va = VcpuState::reset(0, 0).unwrap();
        let mut vb = VcpuState::reset(0, 0).unwrap();
        store_guest(&a, &mut va);
        store_guest(&b, &mut vb);
        assert_eq!(alloc::format!("{va:?}"), alloc::format!("{vb:?}"));
    }

    #[test]
    fn syscall_msrs_go_through_the_vmcb() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        v.msrs.lstar = 0xffff_8000_1234_0000;
        v.msrs.kernel_gs_base = 0x5000;
        let mut img = VmcbImage::new();
        load_guest(&mut img, &v);
        assert_eq!(img.u64(save::LSTAR), 0xffff_8000_1234_0000);
        // The guest's SWAPGS changes KernelGSbase without an exit.
        img.set_u64(save::KERNEL_GS_BASE, 0x6000);
        store_guest(&img, &mut v);
        assert_eq!(v.msrs.kernel_gs_base, 0x6000);
        assert_eq!(v.msrs.lstar, 0xffff_8000_1234_0000);
    }

    #[test]
    fn lme_hidden_while_paging_and_pae_are_off() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        v.efer = EFER_LME;
        let mut img = VmcbImage::new();
        load_guest(&mut img, &v);
        assert_eq!(
            img.u64(save::EFER),
            EFER_SVME,
            "LME hidden from the processor"
        );
        store_guest(&img, &mut v);
        assert_eq!(v.efer, EFER_LME, "the guest's LME survives the exit");
        v.cr4 = crate::cpuid_table::cr4::PAE;
        assert!(!lme_hidden(&v));
        load_guest(&mut img, &v);
        assert_eq!(
            img.u64(save::EFER),
            EFER_LME | EFER_SVME,
            "shown once PAE is set"
        );
        store_guest(&img, &mut v);
        assert_eq!(v.efer, EFER_LME);
    }

    #[test]
    fn vmcb_efer_follows_paging() {
        use crate::hw::{EFER_LMA, EFER_LME, EFER_SVME};
        let pg = cr0::PG | cr0::PE;
        assert_eq!(
            vmcb_efer(EFER_LME | EFER_LMA, 0x10),
            EFER_LME | EFER_SVME,
            "stale LMA"
        );
        assert_eq!(vmcb_efer(EFER_LME, pg), EFER_LME | EFER_LMA | EFER_SVME);
        assert_eq!(vmcb_efer(EFER_LMA, pg), EFER_SVME, "LMA without LME");
    }

    #[test]
    fn event_order_and_reinjection() {
        let mut ev = Events {
            irq_injected: true,
            irq_nr: 0x20,
            nmi_pending: 1,
            ..Default::default()
        };
        ev.exception.injected = true;
        ev.exception.nr = 14;
        ev.exception.has_error_code = true;
        ev.exception.error_code = 2;
        assert_eq!(
            take_event(&mut ev, true),
            14 | (3 << 8) | (1 << 11) | (2 << 32) | event::VALID
        );
        assert_eq!(
            take_event(&mut ev, true),
            0x20 | event::VALID,
            "queued interrupt next"
        );
        assert_eq!(take_event(&mut ev, false), 0, "NMI held back after IRET");
        let nmi = take_event(&mut ev, true);
        assert_eq!(nmi, 2 | (2 << 8) | event::VALID);
        assert_eq!((ev.nmi_pending, take_event(&mut ev, true)), (0, 0));
        // Delivered: NMIs blocked until IRET. Interrupted: delivered again next time.
        events_from_exit(&mut ev, nmi, 0);
        assert!(ev.nmi_masked && !ev.nmi_injected);
        let mut ev = Events::default();
        events_from_exit(&mut ev, nmi, nmi);
        assert!(ev.nmi_injected && !ev.nmi_masked);
        assert_eq!(take_event(&mut ev, true), nmi);
        let mut ev = Events::default();
        events_from_exit(&mut ev, 0, 0x41 | event::VALID);
        assert_eq!((ev.irq_injected, ev.irq_nr), (true, 0x41));
        // Blocked NMIs and the interrupt shadow keep a pending NMI waiting.
        let mut ev = Events {
            nmi_pending: 1,
            int_shadow: true,
            ..Default::default()
        };
        assert_eq!(take_event(&mut ev, true), 0);
        ev.int_shadow = false;
        ev.nmi_masked = true;
        assert_eq!(take_event(&mut ev, true), 0);
    }

    #[test]
    fn npt_indices() {
        let gpa = 0x0000_7f12_3456_7000u64;
        assert_eq!(npt_index(gpa, 4), 0xfe);
        assert_eq!(npt_index(gpa, 3), 0x48);
        assert_eq!(npt_index(gpa, 2), 0x1a2);
        assert_eq!(npt_index(gpa, 1), 0x167);
        assert_eq!(npt_index(0xfffff000, 1), 511);
        assert_eq!(npt_index(0xfffff000, 2), 511);
        assert_eq!(npt_index(0xfffff000, 3), 3);
        assert_eq!(npt_index(0xfffff000, 4), 0);
        assert!(npf_is_write(0x1_0000_0006));
        assert!(!npf_is_write(0x1_0000_0005));
    }

    #[test]
    fn state_round_trips_through_the_save_area() {
        let mut v = VcpuState::reset(0, 0).unwrap();
        v.regs.rax = 0x1234;
        v.regs.rsp = 0x8000;
        let mut img = VmcbImage::new();
        load_guest(&mut img, &v);
        // Reset CS: selector 0xf000, attrib P|S|code 0xb = 0x9b, limit 0xffff, base 0xffff0000.
        assert_eq!(
            img.0[save::CS..save::CS + 16],
            [
                0x00, 0xf0, 0x9b, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0
            ]
        );
        assert_eq!(img.u64(save::EFER), EFER_SVME);
        assert_eq!(img.u64(save::RIP), 0xfff0);
        assert_eq!(img.u64(save::RAX), 0x1234);
        assert_eq!(img.0[save::CPL], 0);
        let mut w = VcpuState::reset(1, 0).unwrap();
        store_guest(&img, &mut w);
        assert_eq!(w.segs, v.segs);
        assert_eq!(w.regs, v.regs);
        assert_eq!(w.efer, 0);
        assert_eq!((w.cr0, w.gdt, w.idt), (v.cr0, v.gdt, v.idt));
    }
}
