//! `kvm-bench`: instructions per KVM operation, measured inside the deterministic test VM.
//!
//! ```text
//! kvm-bench [--memcg DIR] [--scale S] LABEL=DEVICE...
//! ```
//!
//! For each `LABEL=DEVICE` (e.g. `kvm_amd=/dev/kvm kvmport=/dev/kvmport`) it runs every
//! operation of [`OPS`] in batches between two `rdtsc` reads and prints one line per operation:
//!
//! ```text
//! BENCH dev=kvm_amd op=pio n=2000 empty=8007 totals=6728705,6735098,6724202 idle=0,0,0 per_op=3358.10
//! BENCH dev=kvmport op=pio na=ENOSYS
//! BENCHMEM dev=kvm_amd what=vm count=16 kernel=98304.0 slab=... memfree=...
//! ```
//!
//! Under `qemu -icount shift=0,sleep=off` the outer guest's TSC advances by one per retired
//! instruction (L1 kernel, L1 user and L2 guest together), so a TSC delta is an instruction
//! count. With `-icount sleep=off` the clock also jumps over the time the CPU idles (an RCU
//! grace period a teardown waits for), so each batch's idle time (`/proc/timer_list`,
//! nanoseconds) is subtracted: busy = total - idle. `per_op` is `(min(busy) - empty) / n`,
//! where `empty` is the same loop without the operation; for the in-kernel CPUID exit it is
//! `(min busy of T(2n) - min busy of T(n)) / n`, which also cancels the `KVM_RUN` entry and
//! the exit to user space. The minimum over the repeats drops a timer tick that fell into one
//! of them. Outside `-icount` the numbers are TSC cycles.
//!
//! Memory: with `--memcg DIR` (the cgroup v2 directory this process runs in), the kernel's own
//! accounting of the cgroup (`memory.stat`, whose `kernel` field counts every kernel
//! allocation charged to it; KVM and kvmport both allocate with `__GFP_ACCOUNT`) before and
//! after creating 16 VMs, and 64 vCPUs in one VM, each read after a 2.5 s pause so that
//! deferred frees and memcg's periodic statistics flush have run.

use kvmport_client::{Errno, GuestMem, Kvm, RunMap, Vcpu, Vm};
use kvmport_core::abi::KvmUserspaceMemoryRegion;
use kvmport_core::abi::x86::KvmRegs;
use kvmport_core::abi::{KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_MMIO};
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Guest RAM: slot 0, 64 KiB at GPA 0.
const RAM: usize = 0x10000;
/// Real-mode code: CS base (and the GPA of the first instruction).
const CODE: u64 = 0x1000;
/// The MMIO target: DS base, a GPA without a memslot.
const MMIO: u64 = 0x20000;
/// Offset from CS base of the CPUID guest's loop count (u32).
const COUNT: u64 = 0x100;
/// The port the guest writes.
const PORT: u8 = 0x10;
/// GPA of the slot the memslot benchmark adds and deletes (slot 1, 64 KiB).
const SLOT_GPA: u64 = 0x10_0000;
/// VMs created for the memory-per-VM figure.
const MEM_VMS: usize = 16;
/// vCPUs created for the memory-per-vCPU figure.
const MEM_VCPUS: u64 = 64;
/// Batches per operation (the minimum is reported).
const REPEATS: usize = 3;
/// How long a guest may run in the validation run before it counts as hung.
const WATCHDOG: Duration = Duration::from_secs(10);

/// One measured operation.
struct Op {
    /// Name in the output (`op=`).
    name: &'static str,
    /// Operations per batch at scale 1.
    n: u64,
    /// The measurement.
    run: fn(&Kvm, u64) -> Result<Measured, String>,
}

/// The operations, in output order.
const OPS: &[Op] = &[
    Op {
        name: "cpuid_exit",
        n: 2000,
        run: cpuid_exit,
    },
    Op {
        name: "pio",
        n: 2000,
        run: |k, n| guest_roundtrip(k, n, Guest::Pio),
    },
    Op {
        name: "mmio_write",
        n: 2000,
        run: |k, n| guest_roundtrip(k, n, Guest::Mmio),
    },
    Op {
        name: "hlt",
        n: 2000,
        run: |k, n| guest_roundtrip(k, n, Guest::Hlt),
    },
    Op {
        name: "immediate_exit",
        n: 4000,
        run: immediate_exit,
    },
    Op {
        name: "vcpu_create_destroy",
        n: 8,
        run: vcpu_create_destroy,
    },
    Op {
        name: "memslot_add_delete",
        n: 400,
        run: memslot_add_delete,
    },
    Op {
        name: "vm_create_destroy",
        n: 40,
        run: vm_create_destroy,
    },
];

/// One timed batch: the TSC delta, and how much of it the CPU spent idle.
#[derive(Clone, Copy)]
struct Batch {
    /// TSC delta across the batch.
    total: u64,
    /// Idle nanoseconds inside the batch (waits, which `-icount sleep=off` lets the clock jump
    /// over; they count one per virtual ns).
    idle: u64,
}

impl Batch {
    /// Instructions retired in the batch: its TSC delta less the idle time.
    fn busy(self) -> u64 {
        self.total.saturating_sub(self.idle)
    }
}

/// A measurement: the batches, the cost subtracted, and the result per operation.
struct Measured {
    /// Operations per batch.
    n: u64,
    /// Instructions of the same loop without the operation (or of the base batch, for the
    /// in-kernel exit and vCPU creation).
    empty: u64,
    /// The timed batches.
    batches: Vec<Batch>,
    /// Instructions per operation.
    per_op: f64,
}

impl Measured {
    /// `(min(busy) - empty) / n`.
    fn new(n: u64, empty: u64, batches: Vec<Batch>) -> Measured {
        let min = min_busy(&batches);
        let per_op = min.saturating_sub(empty) as f64 / n as f64;
        Measured {
            n,
            empty,
            batches,
            per_op,
        }
    }
}

/// The fewest busy instructions of any batch.
fn min_busy(batches: &[Batch]) -> u64 {
    batches.iter().map(|b| b.busy()).min().unwrap_or(0)
}

/// Runs one untimed warm-up batch, then [`REPEATS`] timed ones, reading the idle time around
/// each (outside the TSC window, where this thread runs, so nothing idles in between).
fn repeat(mut batch: impl FnMut() -> Result<u64, String>) -> Result<Vec<Batch>, String> {
    batch()?;
    let mut out = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let i0 = idle_ns();
        let total = batch()?;
        let idle = idle_ns().saturating_sub(i0);
        out.push(Batch { total, idle });
    }
    Ok(out)
}

/// The kernel's idle time so far, in nanoseconds: the sum of every CPU's `idle_sleeptime` and
/// `iowait_sleeptime` in `/proc/timer_list` (nanosecond resolution).
fn idle_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/timer_list").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l
                .trim()
                .strip_prefix(".idle_sleeptime")
                .or_else(|| l.trim().strip_prefix(".iowait_sleeptime"))?;
            rest.trim_start_matches([' ', ':'])
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The time-stamp counter: retired instructions under `-icount shift=0`.
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter; it has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Instructions of an `n`-iteration loop that does nothing but keep the loop alive, the cost
/// subtracted from every batch (minimum of [`REPEATS`]).
fn empty_loop(n: u64) -> u64 {
    (0..REPEATS)
        .map(|_| {
            let t0 = rdtsc();
            for i in 0..n {
                black_box(i);
            }
            rdtsc() - t0
        })
        .min()
        .unwrap_or(0)
}

/// Turns an errno into the `na=` text.
fn na(what: &str, e: Errno) -> String {
    format!("{e} ({what})")
}

/// The guest programs (16-bit real mode, CS base [`CODE`], DS base [`MMIO`]). Each counts its
/// exits in EDI, so the count can be checked after the timed loop.
#[derive(Clone, Copy, PartialEq)]
enum Guest {
    /// `cpuid` as many times as the u32 at `CS:COUNT` says (in the kernel), then
    /// `inc edi; out` (to user space).
    Cpuid,
    /// `inc edi; out 0x10, al; jmp back`.
    Pio,
    /// `inc edi; mov [0], al` (DS is MMIO); `jmp back`.
    Mmio,
    /// `inc edi; hlt; jmp back`.
    Hlt,
}

impl Guest {
    /// The machine code.
    fn code(self) -> Vec<u8> {
        match self {
            // 0: mov esi, cs:[COUNT]; 6: xor eax, eax; 9: cpuid; 11: dec esi; 13: jnz 6;
            // 15: inc edi; 17: out 0x10, al; 19: jmp 0. User space sets the count in guest
            // memory, not with KVM_SET_REGS, so consecutive runs need no register writes.
            Guest::Cpuid => vec![
                0x2e,
                0x66,
                0x8b,
                0x36,
                COUNT as u8,
                (COUNT >> 8) as u8,
                0x66,
                0x31,
                0xc0,
                0x0f,
                0xa2,
                0x66,
                0x4e,
                0x75,
                0xf7,
                0x66,
                0x47,
                0xe6,
                PORT,
                0xeb,
                0xeb,
            ],
            // 0: inc edi; 2: out 0x10, al; 4: jmp 0.
            Guest::Pio => vec![0x66, 0x47, 0xe6, PORT, 0xeb, 0xfa],
            // 0: inc edi; 2: mov [0x0000], al; 5: jmp 0.
            Guest::Mmio => vec![0x66, 0x47, 0xa2, 0x00, 0x00, 0xeb, 0xf9],
            // 0: inc edi; 2: hlt; 3: jmp 0.
            Guest::Hlt => vec![0x66, 0x47, 0xf4, 0xeb, 0xfb],
        }
    }

    /// The exit reason each `KVM_RUN` must end with.
    fn exit(self) -> u32 {
        match self {
            Guest::Cpuid | Guest::Pio => KVM_EXIT_IO,
            Guest::Mmio => KVM_EXIT_MMIO,
            Guest::Hlt => KVM_EXIT_HLT,
        }
    }
}

/// A VM with 64 KiB of RAM and one real-mode vCPU about to run a [`Guest`].
struct Setup {
    _vm: Vm,
    vcpu: Vcpu,
    run: RunMap,
    mem: GuestMem,
}

impl Setup {
    fn new(kvm: &Kvm, guest: Guest) -> Result<Setup, String> {
        let vm = kvm.create_vm(0).map_err(|e| na("CREATE_VM", e))?;
        let mem = GuestMem::new(RAM).map_err(|e| format!("mmap: {e}"))?;
        mem.write(CODE, &guest.code());
        vm.add_memory(0, 0, 0, &mem)
            .map_err(|e| na("SET_USER_MEMORY_REGION", e))?;
        let vcpu = vm.create_vcpu(0).map_err(|e| na("CREATE_VCPU", e))?;
        let size = kvm
            .vcpu_mmap_size()
            .map_err(|e| na("GET_VCPU_MMAP_SIZE", e))?;
        let run = vcpu.map_run(size).map_err(|e| format!("mmap vCPU: {e}"))?;
        // As a VMM does; a device without it still runs real-mode code.
        if let Ok(mut cpuid) = kvm.supported_cpuid(256) {
            let _ = vcpu.set_cpuid2(&mut cpuid);
        }
        let mut s = vcpu.get_sregs().map_err(|e| na("GET_SREGS", e))?;
        s.cs.selector = (CODE >> 4) as u16;
        s.cs.base = CODE;
        s.ds.selector = (MMIO >> 4) as u16;
        s.ds.base = MMIO;
        vcpu.set_sregs(&s).map_err(|e| na("SET_SREGS", e))?;
        let setup = Setup {
            _vm: vm,
            vcpu,
            run,
            mem,
        };
        setup.set_regs(0, 0)?;
        Ok(setup)
    }

    /// Restarts the guest at its first instruction with ESI = `esi`, EDI = `edi`.
    fn set_regs(&self, esi: u64, edi: u64) -> Result<(), String> {
        let r = KvmRegs {
            rflags: 2,
            rsi: esi,
            rdi: edi,
            rsp: 0xf000,
            ..Default::default()
        };
        self.vcpu.set_regs(&r).map_err(|e| na("SET_REGS", e))
    }

    /// EDI: the guest's count of exits.
    fn edi(&self) -> Result<u64, String> {
        let r = self.vcpu.get_regs().map_err(|e| na("GET_REGS", e))?;
        Ok(r.rdi & 0xffff_ffff)
    }

    /// One `KVM_RUN` under a watchdog that sets `immediate_exit` and signals this thread if
    /// the guest is still running after [`WATCHDOG`]; checks the exit reason.
    fn run_checked(&self, want: u32) -> Result<(), String> {
        let fired = AtomicBool::new(false);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as usize;
        let (tx, rx) = mpsc::channel::<()>();
        let r = std::thread::scope(|sc| {
            let fired = &fired;
            let run = &self.run;
            sc.spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                    fired.store(true, Ordering::SeqCst);
                    run.set_immediate_exit(1);
                    // SAFETY: `me` is the thread that owns this scope, so it is alive until the
                    // scope ends; SIGUSR1 has a no-op handler (see `main`).
                    unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
                }
            });
            let r = self.vcpu.run();
            drop(tx);
            r
        });
        if fired.load(Ordering::SeqCst) {
            self.run.set_immediate_exit(0);
            return Err(format!("guest hung (KVM_RUN gave {r:?})"));
        }
        r.map_err(|e| na("KVM_RUN", e))?;
        let got = self.run.exit_reason();
        if got != want {
            return Err(format!("exit {got}, want {want}"));
        }
        Ok(())
    }
}

/// The in-kernel CPUID exit: one `KVM_RUN` of a guest that runs `cpuid` `n` and `2n` times.
fn cpuid_exit(kvm: &Kvm, n: u64) -> Result<Measured, String> {
    let s = Setup::new(kvm, Guest::Cpuid)?;
    // Validation under the watchdog.
    s.mem.write(CODE + COUNT, &(n as u32).to_le_bytes());
    s.run_checked(KVM_EXIT_IO)?;
    let mut runs = 1u64;
    let mut batch = |count: u64| -> Result<u64, String> {
        s.mem.write(CODE + COUNT, &(count as u32).to_le_bytes());
        let t0 = rdtsc();
        let r = s.vcpu.run();
        let t = rdtsc() - t0;
        r.map_err(|e| na("KVM_RUN", e))?;
        runs += 1;
        let (reason, edi) = (s.run.exit_reason(), s.edi()?);
        if reason != KVM_EXIT_IO || edi != runs {
            return Err(format!(
                "exit {reason} after {edi} loops (want 2 and {runs})"
            ));
        }
        Ok(t)
    };
    let once = repeat(&mut || batch(n))?;
    let twice = repeat(&mut || batch(2 * n))?;
    Ok(Measured::new(n, min_busy(&once), twice))
}

/// A round trip through user space: `n` `KVM_RUN`s, each ending in the guest's exit.
fn guest_roundtrip(kvm: &Kvm, n: u64, guest: Guest) -> Result<Measured, String> {
    let s = Setup::new(kvm, guest)?;
    s.run_checked(guest.exit())?;
    let empty = empty_loop(n);
    let batches = repeat(|| {
        let mut bad = 0u64;
        let t0 = rdtsc();
        for _ in 0..n {
            bad += u64::from(s.vcpu.run().is_err());
        }
        let t = rdtsc() - t0;
        if bad != 0 {
            return Err(format!("{bad} of {n} KVM_RUNs failed"));
        }
        Ok(t)
    })?;
    // The validation run, the warm-up batch and the timed ones.
    let want = 1 + n * (1 + REPEATS as u64);
    let (got, reason) = (s.edi()?, s.run.exit_reason());
    if got != want || reason != guest.exit() {
        return Err(format!(
            "guest counted {got} exits, want {want} (last exit reason {reason})"
        ));
    }
    Ok(Measured::new(n, empty, batches))
}

/// `KVM_RUN` with `immediate_exit` set: returns `EINTR` without entering the guest.
fn immediate_exit(kvm: &Kvm, n: u64) -> Result<Measured, String> {
    let s = Setup::new(kvm, Guest::Hlt)?;
    s.run.set_immediate_exit(1);
    match s.vcpu.run() {
        Err(Errno::EINTR) => {}
        other => return Err(format!("KVM_RUN gave {other:?}, want EINTR")),
    }
    let empty = empty_loop(n);
    let batches = repeat(|| {
        let mut bad = 0u64;
        let t0 = rdtsc();
        for _ in 0..n {
            bad += u64::from(s.vcpu.run() != Err(Errno::EINTR));
        }
        let t = rdtsc() - t0;
        if bad != 0 {
            return Err(format!("{bad} of {n} KVM_RUNs did not give EINTR"));
        }
        Ok(t)
    })?;
    Ok(Measured::new(n, empty, batches))
}

/// vCPU create and destroy: Linux destroys vCPUs only with their VM, so this is
/// `(T(VM with n vCPUs) - T(VM without vCPUs)) / n`, each from `KVM_CREATE_VM` to the last
/// `close`.
fn vcpu_create_destroy(kvm: &Kvm, n: u64) -> Result<Measured, String> {
    let cycle = |vcpus: u64| -> Result<u64, String> {
        let mut held = Vec::with_capacity(vcpus as usize);
        let t0 = rdtsc();
        let vm = kvm.create_vm(0).map_err(|e| na("CREATE_VM", e))?;
        for id in 0..vcpus {
            held.push(vm.create_vcpu(id).map_err(|e| na("CREATE_VCPU", e))?);
        }
        drop(held);
        drop(vm);
        Ok(rdtsc() - t0)
    };
    let without = repeat(|| cycle(0))?;
    let with = repeat(|| cycle(n))?;
    Ok(Measured::new(n, min_busy(&without), with))
}

/// Memslot add and delete: slot 1 (64 KiB) set and deleted `n` times in a VM without vCPUs.
fn memslot_add_delete(kvm: &Kvm, n: u64) -> Result<Measured, String> {
    let vm = kvm.create_vm(0).map_err(|e| na("CREATE_VM", e))?;
    let mem = GuestMem::new(RAM).map_err(|e| format!("mmap: {e}"))?;
    let add = KvmUserspaceMemoryRegion {
        slot: 1,
        flags: 0,
        guest_phys_addr: SLOT_GPA,
        memory_size: RAM as u64,
        userspace_addr: mem.addr(),
    };
    let del = KvmUserspaceMemoryRegion {
        slot: 1,
        ..Default::default()
    };
    // SAFETY: the VM has no vCPU, so no guest ever accesses the slot's memory; `mem` is only
    // accessed through raw pointers and outlives the VM's use of it (the slot is deleted
    // after each add, and `vm` is dropped before `mem`).
    let set = |r: &KvmUserspaceMemoryRegion| unsafe { vm.set_user_memory_region(r) };
    set(&add).map_err(|e| na("SET_USER_MEMORY_REGION add", e))?;
    set(&del).map_err(|e| na("SET_USER_MEMORY_REGION delete", e))?;
    let empty = empty_loop(n);
    let batches = repeat(|| {
        let mut bad = 0u64;
        let t0 = rdtsc();
        for _ in 0..n {
            bad += u64::from(set(&add).is_err());
            bad += u64::from(set(&del).is_err());
        }
        let t = rdtsc() - t0;
        if bad != 0 {
            return Err(format!("{bad} of {} memslot commands failed", 2 * n));
        }
        Ok(t)
    })?;
    drop(vm);
    drop(mem);
    Ok(Measured::new(n, empty, batches))
}

/// VM create and destroy: `KVM_CREATE_VM` and `close`.
fn vm_create_destroy(kvm: &Kvm, n: u64) -> Result<Measured, String> {
    drop(kvm.create_vm(0).map_err(|e| na("CREATE_VM", e))?);
    let empty = empty_loop(n);
    let batches = repeat(|| {
        let mut bad = 0u64;
        let t0 = rdtsc();
        for _ in 0..n {
            match kvm.create_vm(0) {
                Ok(vm) => drop(vm),
                Err(_) => bad += 1,
            }
        }
        let t = rdtsc() - t0;
        if bad != 0 {
            return Err(format!("{bad} of {n} CREATE_VMs failed"));
        }
        Ok(t)
    })?;
    Ok(Measured::new(n, empty, batches))
}

/// The cgroup's `memory.stat` fields reported with the memory figures (bytes); `kernel` (all
/// kernel memory charged to the cgroup: slab, pages, vmalloc, percpu, stacks, page tables) is
/// the table's figure.
const MEMCG_STAT: &[&str] = &[
    "kernel",
    "slab",
    "vmalloc",
    "percpu",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
];

/// How long to wait before reading the accounting: RCU-deferred frees finish, and memcg's
/// periodic statistics flush (every 2 s) runs. Under `-icount sleep=off` the wait costs no
/// wall-clock time.
const SETTLE: Duration = Duration::from_millis(2500);

/// A snapshot of the kernel's memory accounting in bytes: [`MEMCG_STAT`], then the cgroup's
/// `memory.current`, then `/proc/meminfo`'s `MemFree` (-1 where unavailable).
fn mem_snapshot(memcg: Option<&str>) -> Vec<i64> {
    std::thread::sleep(SETTLE);
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_default();
    let stat = memcg
        .map(|d| read(format!("{d}/memory.stat")))
        .unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix([' ', ':']))
            .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
    };
    let mut out: Vec<i64> = MEMCG_STAT
        .iter()
        .map(|f| field(&stat, f).unwrap_or(-1))
        .collect();
    out.push(
        memcg
            .and_then(|d| read(format!("{d}/memory.current")).trim().parse().ok())
            .unwrap_or(-1),
    );
    let info = read("/proc/meminfo".into());
    out.push(field(&info, "MemFree").map_or(-1, |kb| kb * 1024));
    out
}

/// Prints one `BENCHMEM` line: the per-object deltas of every accounting field.
fn mem_line(label: &str, what: &str, count: usize, before: &[i64], after: &[i64]) {
    let names = MEMCG_STAT
        .iter()
        .copied()
        .chain(["memory_current", "memfree"]);
    let fields: Vec<String> = names
        .zip(before.iter().zip(after))
        .map(|(n, (&b, &a))| {
            if a < 0 || b < 0 {
                return format!("{n}=-");
            }
            // MemFree falls as memory is used: report it as use.
            let d = if n == "memfree" { b - a } else { a - b };
            format!("{n}={:.1}", d as f64 / count as f64)
        })
        .collect();
    println!(
        "BENCHMEM dev={label} what={what} count={count} {}",
        fields.join(" ")
    );
}

/// Kernel memory per VM ([`MEM_VMS`] VMs) and per vCPU ([`MEM_VCPUS`] in one VM).
fn memory(label: &str, kvm: &Kvm, memcg: Option<&str>) {
    let mut vms = Vec::with_capacity(MEM_VMS);
    // A first snapshot grows the heap, so the measured ones allocate no new user pages.
    mem_snapshot(memcg);
    let before = mem_snapshot(memcg);
    for _ in 0..MEM_VMS {
        match kvm.create_vm(0) {
            Ok(vm) => vms.push(vm),
            Err(e) => {
                println!("BENCHMEM dev={label} what=vm na={}", na("CREATE_VM", e));
                return;
            }
        }
    }
    let after = mem_snapshot(memcg);
    mem_line(label, "vm", MEM_VMS, &before, &after);
    let vm = vms.pop().expect("MEM_VMS > 0");
    drop(vms);
    let mut vcpus = Vec::with_capacity(MEM_VCPUS as usize);
    let before = mem_snapshot(memcg);
    for id in 0..MEM_VCPUS {
        match vm.create_vcpu(id) {
            Ok(v) => vcpus.push(v),
            Err(e) => {
                println!("BENCHMEM dev={label} what=vcpu na={}", na("CREATE_VCPU", e));
                return;
            }
        }
    }
    let after = mem_snapshot(memcg);
    mem_line(label, "vcpu", MEM_VCPUS as usize, &before, &after);
}

/// Command-line options.
struct Opts {
    /// `(label, device)` pairs.
    devices: Vec<(String, String)>,
    /// The cgroup directory for the memory figures.
    memcg: Option<String>,
    /// Multiplier of every batch size.
    scale: u64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        devices: Vec::new(),
        memcg: None,
        scale: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--memcg" => o.memcg = Some(it.next().ok_or("--memcg needs a directory")?),
            "--scale" => {
                o.scale = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--scale needs a positive number")?;
            }
            dev => {
                let (l, p) = dev
                    .split_once('=')
                    .ok_or_else(|| format!("expected LABEL=DEVICE, got {dev:?}"))?;
                o.devices.push((l.to_string(), p.to_string()));
            }
        }
    }
    if o.devices.is_empty() {
        return Err("usage: kvm-bench [--memcg DIR] [--scale S] LABEL=DEVICE...".into());
    }
    Ok(o)
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kvm-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: installs a handler that does nothing (it only interrupts KVM_RUN for the
    // watchdog); the handler is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut());
    }
    for (label, path) in &opts.devices {
        let kvm = match Kvm::open(path) {
            Ok(k) => k,
            Err(e) => {
                for op in OPS {
                    println!("BENCH dev={label} op={} na=open {path}: {e}", op.name);
                }
                continue;
            }
        };
        for op in OPS {
            match (op.run)(&kvm, op.n * opts.scale) {
                Ok(m) => {
                    let list = |f: fn(&Batch) -> u64| {
                        m.batches
                            .iter()
                            .map(|b| f(b).to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    println!(
                        "BENCH dev={label} op={} n={} empty={} totals={} idle={} per_op={:.2}",
                        op.name,
                        m.n,
                        m.empty,
                        list(|b| b.total),
                        list(|b| b.idle),
                        m.per_op
                    );
                }
                Err(e) => println!("BENCH dev={label} op={} na={e}", op.name),
            }
        }
        memory(label, &kvm, opts.memcg.as_deref());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_op_subtracts_idle_time_and_the_empty_loop() {
        let b = |total, idle| Batch { total, idle };
        // The second batch is smallest once its idle time is removed.
        let m = Measured::new(10, 100, vec![b(1_200, 0), b(5_000, 3_950), b(1_300, 0)]);
        assert_eq!(min_busy(&m.batches), 1_050);
        assert_eq!(m.per_op, 95.0);
    }

    #[test]
    fn guest_loops_jump_back_to_their_start() {
        // Each program ends in a short `jmp` (EB rel8) back to offset 0.
        for g in [Guest::Cpuid, Guest::Pio, Guest::Mmio, Guest::Hlt] {
            let c = g.code();
            let n = c.len();
            assert_eq!(c[n - 2], 0xeb);
            assert_eq!(n as i64 + i64::from(c[n - 1] as i8), 0);
        }
        // The CPUID loop's `jnz` (75 rel8, ending at 15) goes back to the `xor` at 6.
        let c = Guest::Cpuid.code();
        assert_eq!((c[13], 15 + i64::from(c[14] as i8)), (0x75, 6));
        assert_eq!(u64::from(c[4]) | u64::from(c[5]) << 8, COUNT);
    }
}
