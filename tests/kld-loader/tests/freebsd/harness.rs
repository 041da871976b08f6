// The harness proper; included by main.rs on Linux x86-64 hosts only.

mod cpu;
mod kernel;
mod kstack;
mod mem;
mod module;
mod vfs;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvmport_client::{Errno, Kvm};
use kvmport_conformance::harness::{Case, CaseResult, Ctx, SKIP};

const CASE_TIMEOUT: Duration = Duration::from_secs(30);

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn total(m: &BTreeMap<String, usize>) -> usize {
    m.values().sum()
}

/// What the child writes: tag, leak count, message.
fn run_forked(case: &Case, ctx: &Ctx, baseline: &BTreeMap<String, usize>) -> (Outcome, usize) {
    let mut fds = [0i32; 2];
    // SAFETY: room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe() made two descriptors nothing else owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: this harness is single-threaded (harness = false), so the child may run
    // arbitrary code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        drop(rd);
        let r = (case.run)(ctx);
        // Let the module release what it defers (vCPU mapping records) before counting.
        let _ = module_event(3);
        let problems = kernel::k(|k| std::mem::take(&mut k.problems));
        let now = kernel::outstanding();
        let mut leaks = Vec::new();
        for (kind, n) in &now {
            let b = baseline.get(kind).copied().unwrap_or(0);
            if *n > b {
                leaks.push(format!("{} {kind}", n - b));
            }
        }
        let nleak = total(&now).saturating_sub(total(baseline));
        let (tag, mut msg) = match r {
            Ok(()) => ('P', String::new()),
            Err(e) => match e.strip_prefix(SKIP) {
                Some(w) => ('S', w.to_string()),
                None => ('F', e),
            },
        };
        if !problems.is_empty() {
            msg = format!(
                "{msg}{}kernel contract: {}",
                if msg.is_empty() { "" } else { "; " },
                problems.join("; ")
            );
            if tag == 'P' {
                msg = format!("F{nleak}|{msg}");
            } else {
                msg = format!("{tag}{nleak}|{msg}");
            }
        } else {
            msg = format!("{tag}{nleak}|{msg}");
        }
        if !leaks.is_empty() {
            msg.push_str(&format!(" [left: {}]", leaks.join(", ")));
        }
        // SAFETY: writes our buffer to the pipe, then leaves without running destructors.
        unsafe {
            libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    drop(wr);
    let deadline = Instant::now() + CASE_TIMEOUT;
    let mut buf = Vec::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut pfd = libc::pollfd {
            fd: rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut chunk = [0u8; 4096];
        // SAFETY: reads into a live buffer.
        let r = unsafe { libc::read(rd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if r <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..r as usize]);
    }
    if timed_out {
        // SAFETY: our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: reaps our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if timed_out {
        return (Outcome::Fail("timed out".into()), 0);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, msg)) = text.split_once('|') else {
        return (
            Outcome::Fail(format!("case process died (status {status:#x})")),
            0,
        );
    };
    let (tag, n) = head.split_at(1);
    let leaks = n.parse().unwrap_or(0);
    let o = match tag {
        "P" => Outcome::Pass,
        "S" => Outcome::Skip(msg.to_string()),
        _ => Outcome::Fail(msg.to_string()),
    };
    let o = match o {
        Outcome::Pass if leaks > 0 => {
            Outcome::Fail(format!("leaked {leaks} kernel object(s) {msg}"))
        }
        o => o,
    };
    (o, leaks)
}

// ------------------------------------------------------------ FreeBSD-specific cases

fn bsd_ioctl(fd: i32, cmd: u32, arg: *mut u8) -> Result<(), Errno> {
    // SAFETY: every caller passes a buffer of the size `cmd` encodes.
    unsafe { vfs::Harness.ioctl_raw(fd, cmd, arg) }
}

impl vfs::Harness {
    /// The transport's ioctl, for the FreeBSD-specific cases.
    ///
    /// # Safety
    /// As [`kvmport_client::sys::Transport::ioctl`].
    unsafe fn ioctl_raw(&self, fd: i32, cmd: u32, arg: *mut u8) -> Result<(), Errno> {
        use kvmport_client::sys::Transport;
        // SAFETY: forwarded.
        unsafe { self.ioctl(fd, cmd, arg) }
    }
}

/// Any command but the wrapper on /dev/kvm is ENOTTY; the wrapper with pad != 0 is EINVAL.
fn case_wrapper_rules(ctx: &Ctx) -> CaseResult {
    let kvm = ctx.kvm()?;
    let mut req = kvmport_client::sys::KvmportIoctl {
        linux_cmd: kvmport_core::abi::ioctl::KVM_GET_API_VERSION,
        pad: 0,
        arg: 0,
        ret: 0,
    };
    let p = (&raw mut req).cast::<u8>();
    let other = kvmport_client::sys::bsd_iowr(b'k', 2, 24);
    match bsd_ioctl(kvm.fd().raw(), other, p) {
        Err(e) if e == Errno::ENOTTY => {}
        r => return Err(format!("another 'k' command: {r:?}, want ENOTTY")),
    }
    req.pad = 1;
    match bsd_ioctl(kvm.fd().raw(), kvmport_client::sys::KVMPORT_IOCTL, p) {
        Err(e) if e == Errno::EINVAL => {}
        r => return Err(format!("pad 1: {r:?}, want EINVAL")),
    }
    req.pad = 0;
    bsd_ioctl(kvm.fd().raw(), kvmport_client::sys::KVMPORT_IOCTL, p).map_err(|e| e.to_string())?;
    if req.ret != 12 {
        return Err(format!(
            "KVM_GET_API_VERSION through the wrapper: {}",
            req.ret
        ));
    }
    Ok(())
}

/// The Linux-emulation hook: registered for 0xAE00..0xAEFF; runs commands on /dev/kvm (a new
/// VM's fd included) and on VM fds, returning the value in td_retval[0]; answers ENOIOCTL for
/// other files.
fn case_linux_handler(ctx: &Ctx) -> CaseResult {
    if kernel::k(|k| k.linux_handler).is_some() {
        return Err("a Linux ioctl handler was registered before /dev/kvm was opened".into());
    }
    let (_kvm, vm) = ctx.vm()?;
    let Some((_, func, lo, hi)) = kernel::k(|k| k.linux_handler) else {
        return Err("opening /dev/kvm did not register a Linux ioctl handler".into());
    };
    if (lo, hi) != (0xae00, 0xaeff) {
        return Err(format!("handler range {lo:#x}..{hi:#x}"));
    }
    let call = |fd: i32, cmd: u32, arg: u64| {
        // The argument record lives in kernel memory, as the linuxulator's does.
        let args = mem::kalloc(24, "linux args");
        // SAFETY: a fresh arena block of 24 bytes.
        unsafe { (args as *mut [u64; 3]).write([fd as u64, u64::from(cmd), arg]) };
        let _e = kernel::Entry::new();
        let td = kernel::curthread();
        // SAFETY: td_retval[0] of the harness thread.
        unsafe { ((td + kernel::TD_RETVAL_OFFSET) as *mut i64).write(-1) };
        // The module's handler, `int (*)(struct thread *, struct linux_ioctl_args *)`.
        let r = kstack::call_int(func, &[td, args]);
        mem::kfree(args);
        // SAFETY: as above.
        (r, unsafe {
            ((td + kernel::TD_RETVAL_OFFSET) as *const i64).read()
        })
    };
    let cap_user_memory = 3;
    let (r, v) = call(
        vm.fd().raw(),
        kvmport_core::abi::ioctl::KVM_CHECK_EXTENSION,
        cap_user_memory,
    );
    if (r, v) != (0, 1) {
        return Err(format!(
            "CHECK_EXTENSION(USER_MEMORY) on the VM fd: {r}, retval {v}"
        ));
    }
    let (r, _) = call(vm.fd().raw(), 0xae_ff, 0);
    if r != libc::ENOTTY {
        return Err(format!("unknown command on the VM fd: {r}, want ENOTTY"));
    }
    // /dev/kvm itself: KVM_GET_API_VERSION, then KVM_CREATE_VM returns a new fd.
    let (r, v) = call(
        _kvm.fd().raw(),
        kvmport_core::abi::ioctl::KVM_GET_API_VERSION,
        0,
    );
    if (r, v) != (0, 12) {
        return Err(format!("GET_API_VERSION on /dev/kvm: {r}, retval {v}"));
    }
    let (r, fd) = call(_kvm.fd().raw(), kvmport_core::abi::ioctl::KVM_CREATE_VM, 0);
    if r != 0 || fd < 0 {
        return Err(format!("CREATE_VM on /dev/kvm: {r}, retval {fd}"));
    }
    // SAFETY: the module installed this descriptor for us.
    let vm2 = kvmport_client::Fd::new(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let (r, v) = call(
        vm2.raw(),
        kvmport_core::abi::ioctl::KVM_CHECK_EXTENSION,
        cap_user_memory,
    );
    if (r, v) != (0, 1) {
        return Err(format!("CHECK_EXTENSION on the new VM fd: {r}, retval {v}"));
    }
    drop(vm2);
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let (r, _) = call(
        null.as_raw_fd(),
        kvmport_core::abi::ioctl::KVM_CHECK_EXTENSION,
        3,
    );
    if r != -3 {
        return Err(format!("a file that is not ours: {r}, want ENOIOCTL"));
    }
    Ok(())
}

/// Without the Linux emulation loaded, opening /dev/kvm registers nothing.
fn case_linux_absent(ctx: &Ctx) -> CaseResult {
    kernel::LINUX_LOADED.store(false, std::sync::atomic::Ordering::Relaxed);
    let _kvm = ctx.kvm()?;
    match kernel::k(|k| k.linux_handler) {
        None => Ok(()),
        Some(_) => Err("a handler was registered without the Linux emulation".into()),
    }
}

/// Unloading is refused while a KVM file is open, and the module stays usable.
fn case_unload_busy(ctx: &Ctx) -> CaseResult {
    let (kvm, vm) = ctx.vm()?;
    let (moddata, module) = module_ids();
    let ev = |what: i32| {
        let _e = kernel::Entry::new();
        // SAFETY: the module's moduledata: evhand @8.
        let f = unsafe { ((moddata + 8) as *const u64).read() };
        kstack::call_int(f, &[module, what as u64, 0])
    };
    for (what, name) in [(3, "MOD_QUIESCE"), (1, "MOD_UNLOAD")] {
        let r = ev(what);
        if r != libc::EBUSY {
            return Err(format!("{name} with open files: {r}, want EBUSY"));
        }
    }
    drop(vm);
    kvm.check_extension(kvmport_core::abi::cap::Cap::UserMemory)
        .map_err(|e| format!("after refused unload: {e}"))?;
    Ok(())
}

/// Sends a module event (MOD_QUIESCE = 3, MOD_UNLOAD = 1) to the module's handler.
fn module_event(what: i32) -> i32 {
    let (moddata, module) = module_ids();
    let _e = kernel::Entry::new();
    // SAFETY: the module's moduledata: evhand @8.
    let f = unsafe { ((moddata + 8) as *const u64).read() };
    kstack::call_int(f, &[module, what as u64, 0])
}

/// A vCPU mapping outlives every fd: the module stays busy (its pages alive and readable)
/// until the mapping goes.
fn case_mapping_outlives_fds(ctx: &Ctx) -> CaseResult {
    let (kvm, vm, vcpu) = ctx.vcpu()?;
    let size = kvm.vcpu_mmap_size().map_err(|e| e.to_string())?;
    let map = kvmport_client::RunMap::map(vcpu.fd().raw(), size).map_err(|e| e.to_string())?;
    drop((vcpu, vm, kvm));
    if module_event(3) != libc::EBUSY {
        return Err("MOD_QUIESCE with a live vCPU mapping and no fd: not EBUSY".into());
    }
    let before = kernel::outstanding();
    let bytes = map.read_bytes(0, size);
    if bytes.len() != size {
        return Err("the mapping could not be read".into());
    }
    drop(map);
    let r = module_event(3);
    if r != 0 {
        return Err(format!("MOD_QUIESCE after munmap: {r}, want 0"));
    }
    let after = kernel::outstanding();
    if after.get("kmem page") >= before.get("kmem page") {
        return Err(format!(
            "the vCPU's pages were not released: {before:?} -> {after:?}"
        ));
    }
    Ok(())
}

static MODIDS: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));
fn module_ids() -> (u64, u64) {
    *MODIDS.lock().unwrap()
}

const FREEBSD_CASES: &[Case] = &[
    Case {
        name: "freebsd.wrapper.rules",
        guest: false,
        run: case_wrapper_rules,
    },
    Case {
        name: "freebsd.linux_handler",
        guest: false,
        run: case_linux_handler,
    },
    Case {
        name: "freebsd.linux_handler.absent",
        guest: false,
        run: case_linux_absent,
    },
    Case {
        name: "freebsd.mmap_outlives_fds",
        guest: false,
        run: case_mapping_outlives_fds,
    },
    Case {
        name: "freebsd.unload_busy",
        guest: false,
        run: case_unload_busy,
    },
];

fn ko_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KVMPORT_FREEBSD_KO") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.join("../../target/freebsd/kvmport.ko")
}

fn main() {
    let ko = ko_path();
    if !ko.exists() {
        if std::env::var_os("KVMPORT_REQUIRE_KO").is_some() {
            eprintln!("freebsd harness: {} missing", ko.display());
            std::process::exit(1);
        }
        println!(
            "freebsd harness: {} not built (run `cargo xtask freebsd`); nothing to load",
            ko.display()
        );
        return;
    }
    mem::init();
    kstack::init();
    kernel::init();
    cpu::init();
    let (loaded, info) = match module::load(&ko) {
        Ok(x) => x,
        Err(e) => {
            println!("freebsd harness: load failed: {e}");
            std::process::exit(1);
        }
    };
    *MODIDS.lock().unwrap() = (info.moddata, info.module);
    let mut failed = 0usize;
    let mut passed = 0usize;
    let mut leaked = 0usize;
    let mut skipped = 0usize;
    // (passed, failed) of: load/unload checks, conformance cases, FreeBSD cases.
    let mut parts = [(0usize, 0usize); 3];
    // Checks of the load itself.
    let load_checks: Vec<(String, bool)> = {
        let (rv, per_cpu) = kernel::k(|k| k.rendezvous);
        let devs: Vec<String> = kernel::k(|k| k.devs.keys().cloned().collect());
        let mut v = vec![
            (
                format!(
                    "module {} version {:?}, kernel range {:?}",
                    info.name, info.version, info.kernel_range
                ),
                info.name == "kvmport" && info.version == Some(1),
            ),
            (format!("devices after MOD_LOAD: {devs:?}"), devs == ["kvm"]),
            (
                format!(
                    "per-CPU enable by rendezvous: {rv} rendezvous, action per CPU {per_cpu:?}"
                ),
                rv >= 1 && per_cpu.iter().all(|&n| n >= 1),
            ),
        ];
        for c in 0..cpu::NCPU {
            let efer = cpu::msr_read(c, cpu::MSR_EFER);
            let hsave = cpu::msr_read(c, cpu::MSR_VM_HSAVE_PA);
            v.push((
                format!("cpu{c}: EFER {efer:#x}, VM_HSAVE_PA {hsave:#x}"),
                efer & cpu::EFER_SVME != 0 && hsave != 0 && hsave % 4096 == 0,
            ));
        }
        v
    };
    for (what, ok) in &load_checks {
        println!("{} load: {what}", if *ok { "ok" } else { "FAIL" });
        if *ok {
            parts[0].0 += 1;
        } else {
            parts[0].1 += 1;
        }
    }
    assert!(kvmport_client::sys::set_transport(&vfs::Harness));
    let baseline = kernel::outstanding();
    let ctx = Ctx {
        device: PathBuf::from("/dev/kvm"),
    };
    let cases: Vec<&Case> = kvmport_conformance::cases::ALL
        .iter()
        .flat_map(|m| m.iter())
        .filter(|c| !c.guest)
        .chain(FREEBSD_CASES.iter())
        .collect();
    for c in cases {
        let (o, leaks) = run_forked(c, &ctx, &baseline);
        leaked += leaks;
        let part = if c.name.starts_with("freebsd.") { 2 } else { 1 };
        match o {
            Outcome::Pass => {
                parts[part].0 += 1;
                println!("ok {}", c.name);
            }
            Outcome::Fail(m) => {
                parts[part].1 += 1;
                println!("FAIL {}: {}", c.name, m.replace('\n', "; "));
            }
            Outcome::Skip(m) => {
                skipped += 1;
                println!("skip {}: {m}", c.name);
            }
        }
    }
    // The parent's own use: one VM and vCPU through the module, closed again (the open also
    // registers the Linux ioctl handler, which unload must remove).
    {
        let kvm = Kvm::open("/dev/kvm").expect("open /dev/kvm");
        let vm = kvm.create_vm(0).expect("KVM_CREATE_VM");
        let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        drop((vcpu, vm, kvm));
    }
    let unload = module::unload(&info);
    let after = kernel::outstanding();
    let left = total(&after);
    let problems = kernel::k(|k| std::mem::take(&mut k.problems));
    let handler = kernel::k(|k| k.linux_handler);
    let mut unload_checks = vec![
        (format!("MOD_UNLOAD: {unload:?}"), unload.is_ok()),
        (
            format!("Linux ioctl handler after unload: {handler:?}"),
            handler.is_none(),
        ),
        (
            format!("kernel objects left after unload: {after:?}"),
            left == 0,
        ),
        (
            format!("kernel contract problems in the parent: {problems:?}"),
            problems.is_empty(),
        ),
    ];
    for c in 0..cpu::NCPU {
        let efer = cpu::msr_read(c, cpu::MSR_EFER);
        unload_checks.push((
            format!("cpu{c}: EFER {efer:#x} after unload"),
            efer & cpu::EFER_SVME == 0,
        ));
    }
    for (what, ok) in &unload_checks {
        println!("{} unload: {what}", if *ok { "ok" } else { "FAIL" });
        if *ok {
            parts[0].0 += 1;
        } else {
            parts[0].1 += 1;
        }
    }
    leaked += left;
    let console = kernel::k(|k| k.console.clone());
    for l in &console {
        println!("console: {l}");
    }
    println!(
        "loader: {} privileged instructions emulated, {} IPIs",
        cpu::EMULATED.load(std::sync::atomic::Ordering::Relaxed),
        kernel::k(|k| k.ipis)
    );
    drop(loaded);
    for (p, f) in parts {
        passed += p;
        failed += f;
    }
    println!(
        "freebsd harness: conformance cases (no guest execution) {} passed, {} failed, {skipped} skipped (capability not reported); FreeBSD cases {} passed, {} failed; load/unload checks {} passed, {} failed",
        parts[1].0, parts[1].1, parts[2].0, parts[2].1, parts[0].0, parts[0].1
    );
    println!("freebsd harness: {passed} passed, {failed} failed, {leaked} leaked allocations");
    if failed != 0 || leaked != 0 {
        std::process::exit(1);
    }
}
