//! Host benchmarks of kvmport's core (`cargo bench -p kvmport-bench --bench host`):
//!
//! - memslot lookup against the number of slots (1 to 32,764, log-spaced), through
//!   `kvmport_core::memslot::Memslots`;
//! - the dispatcher's cost per ioctl, through `kvmport-testkit` (a hosted `Os`, the scripted
//!   `Arch` and an fd table in place of the OS glue).
//!
//! Each figure comes from a small harness: a warm-up that also sizes a sample to about
//! [`SAMPLE_NS`], then [`SAMPLES`] samples; it prints the median time per iteration with the
//! minimum, maximum and median absolute deviation, one `HOST ...` line per figure, and ratios
//! against a reference measured in the same run (the 1-slot lookup, `KVM_GET_API_VERSION`).
//! `--quick` takes fewer and shorter samples.

use kvmport_core::abi::KvmRun;
use kvmport_core::abi::KvmUserspaceMemoryRegion;
use kvmport_core::abi::cap::Cap;
use kvmport_core::abi::ioctl::{
    KVM_CHECK_EXTENSION, KVM_GET_API_VERSION, KVM_GET_MP_STATE, KVM_GET_REGS, KVM_RUN,
    KVM_SET_REGS, KVM_SET_USER_MEMORY_REGION,
};
use kvmport_core::abi::x86::{KVM_USER_MEM_SLOTS, KvmRegs};
use kvmport_core::memslot::{Gfn, Memslots, Region, SlotLimits};
use kvmport_core::os::PAGE_SIZE;
use kvmport_testkit::{Host, SYS_FD};
use std::hint::black_box;
use std::time::Instant;

/// Target length of one sample, in nanoseconds.
const SAMPLE_NS: u128 = 2_000_000;
/// Samples per figure.
const SAMPLES: usize = 31;

/// Timing of one figure, in nanoseconds per iteration.
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    mad: f64,
    iters: u64,
    samples: usize,
}

impl Stats {
    /// `median_ns=.. min_ns=.. ...` for a `HOST` line.
    fn fields(&self) -> String {
        format!(
            "median_ns={:.2} min_ns={:.2} max_ns={:.2} mad_ns={:.2} iters={} samples={}",
            self.median, self.min, self.max, self.mad, self.iters, self.samples
        )
    }
}

/// The harness: `f(iters)` runs the measured operation `iters` times.
struct Harness {
    sample_ns: u128,
    samples: usize,
}

impl Harness {
    fn run(&self, mut f: impl FnMut(u64)) -> Stats {
        // Warm-up: double the batch until one takes a sample's length (caches, branch
        // predictors and the allocator settle on the way).
        let mut iters = 1u64;
        loop {
            let t = Instant::now();
            f(iters);
            let ns = t.elapsed().as_nanos();
            if ns >= self.sample_ns || iters >= 1 << 30 {
                break;
            }
            let grow = (self.sample_ns / ns.max(1)).clamp(2, 16) as u64;
            iters = iters.saturating_mul(grow);
        }
        let mut per: Vec<f64> = (0..self.samples)
            .map(|_| {
                let t = Instant::now();
                f(iters);
                t.elapsed().as_nanos() as f64 / iters as f64
            })
            .collect();
        per.sort_by(f64::total_cmp);
        let median = per[per.len() / 2];
        let mut dev: Vec<f64> = per.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        Stats {
            median,
            min: per[0],
            max: per[per.len() - 1],
            mad: dev[dev.len() / 2],
            iters,
            samples: per.len(),
        }
    }
}

/// A small xorshift generator, so the lookups hit slots in an order the predictor cannot learn.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The slot counts: powers of two from 1 to 16,384, then 32,764 (`KVM_USER_MEM_SLOTS`).
fn slot_counts() -> Vec<u32> {
    let mut v: Vec<u32> = (0..15).map(|i| 1u32 << i).collect();
    v.push(KVM_USER_MEM_SLOTS);
    v
}

/// Memslots with `n` one-page slots at every other frame (so there are gaps to miss).
fn memslots(n: u32) -> Memslots {
    let mut m = Memslots::new(SlotLimits {
        address_spaces: 1,
        slots: KVM_USER_MEM_SLOTS as u16,
        max_gfn: 1 << 40,
        readonly: true,
    })
    .expect("memslots");
    let page = PAGE_SIZE as u64;
    for i in 0..n {
        let r = Region {
            slot: i,
            flags: 0,
            guest_phys_addr: 2 * u64::from(i) * page,
            memory_size: page,
            userspace_addr: 0x1000_0000 + u64::from(i) * page,
        };
        m.set(&r, |_, _| true, false).expect("slot accepted");
    }
    m
}

fn bench_memslots(h: &Harness) {
    let mut base = None;
    for n in slot_counts() {
        let m = memslots(n);
        assert_eq!(m.count(0), n as usize);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        // Frames of existing slots, visited in a random order.
        let gfns: Vec<Gfn> = (0..4096)
            .map(|_| Gfn(2 * (rng.next() % u64::from(n))))
            .collect();
        let mut i = 0usize;
        let s = h.run(|iters| {
            let mut found = 0u64;
            for _ in 0..iters {
                let g = gfns[i & 4095];
                i = i.wrapping_add(1);
                found += u64::from(m.lookup(0, black_box(g)).is_some());
            }
            assert_eq!(found, iters, "every lookup hits a slot");
        });
        let b = *base.get_or_insert(s.median);
        println!(
            "HOST memslot_lookup slots={n} {} ratio_to_1_slot={:.2}",
            s.fields(),
            s.median / b
        );
    }
}

/// `ioctl(fd, cmd, arg)` through the testkit's fd table, which must succeed (or give the
/// expected errno).
fn dispatch(h: &Harness, name: &str, host: &mut Host, fd: i32, cmd: u32, arg: u64) -> f64 {
    let s = h.run(|iters| {
        for _ in 0..iters {
            black_box(
                host.ioctl(black_box(fd), black_box(cmd), black_box(arg))
                    .ok(),
            );
        }
    });
    println!("HOST dispatch cmd={name} {}", s.fields());
    s.median
}

fn bench_dispatch(h: &Harness) {
    let mut host = Host::new();
    let (vm, vcpu) = host.vm_and_vcpu();
    let regs = host.put(&KvmRegs::default());
    let mp = host.alloc(4, 4);
    let mem = host.alloc(16 * PAGE_SIZE, PAGE_SIZE);
    let add = host.put(&KvmUserspaceMemoryRegion {
        slot: 1,
        flags: 0,
        guest_phys_addr: 0x10_0000,
        memory_size: 16 * PAGE_SIZE as u64,
        userspace_addr: mem,
    });
    let del = host.put(&KvmUserspaceMemoryRegion {
        slot: 1,
        ..Default::default()
    });
    host.run_set(vcpu, core::mem::offset_of!(KvmRun, immediate_exit), &1u8);
    assert!(
        host.ioctl(vcpu, KVM_RUN, 0).is_err(),
        "immediate_exit gives EINTR"
    );
    let nr_memslots = u64::from(Cap::NrMemslots.raw());

    let base = dispatch(
        h,
        "KVM_GET_API_VERSION",
        &mut host,
        SYS_FD,
        KVM_GET_API_VERSION,
        0,
    );
    let mut rows = vec![("KVM_GET_API_VERSION".to_string(), base)];
    for (name, fd, cmd, arg) in [
        (
            "KVM_CHECK_EXTENSION(sys)",
            SYS_FD,
            KVM_CHECK_EXTENSION,
            nr_memslots,
        ),
        (
            "KVM_CHECK_EXTENSION(vm)",
            vm,
            KVM_CHECK_EXTENSION,
            nr_memslots,
        ),
        ("KVM_GET_REGS", vcpu, KVM_GET_REGS, regs),
        ("KVM_SET_REGS", vcpu, KVM_SET_REGS, regs),
        ("KVM_GET_MP_STATE", vcpu, KVM_GET_MP_STATE, mp),
        ("KVM_RUN(immediate_exit)", vcpu, KVM_RUN, 0),
    ] {
        rows.push((name.into(), dispatch(h, name, &mut host, fd, cmd, arg)));
    }
    // A memslot add and delete pair.
    let s = h.run(|iters| {
        for _ in 0..iters {
            host.ioctl(vm, KVM_SET_USER_MEMORY_REGION, add)
                .expect("add slot 1");
            host.ioctl(vm, KVM_SET_USER_MEMORY_REGION, del)
                .expect("delete slot 1");
        }
    });
    println!("HOST dispatch cmd=memslot_add+delete {}", s.fields());
    rows.push(("memslot_add+delete".into(), s.median));
    for (name, ns) in rows {
        println!(
            "HOST dispatch_ratio cmd={name} ratio_to_get_api_version={:.2}",
            ns / base
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let h = if quick {
        Harness {
            sample_ns: SAMPLE_NS / 10,
            samples: 11,
        }
    } else {
        Harness {
            sample_ns: SAMPLE_NS,
            samples: SAMPLES,
        }
    };
    bench_memslots(&h);
    bench_dispatch(&h);
}
