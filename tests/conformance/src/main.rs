//! `kvm-conformance`: the KVM ABI conformance suite.
//!
//! ```text
//! kvm-conformance [--device PATH] [--list] [--no-guest] [--no-fork] [FILTER]
//! ```
//!
//! Runs every case whose name contains `FILTER` against the KVM device at `PATH` (default
//! `/dev/kvm`) and prints one line per case (`ok NAME`, `FAIL NAME: why`, `skip NAME: why`),
//! then `N passed, N failed, N skipped`. The exit code is 0 iff no case failed.
//!
//! `--list` prints the selected case names instead, one a line, with ` [guest]` after the cases
//! that run guest code. `--no-guest` leaves those cases out. A case that is not tagged `guest`
//! may not issue `KVM_RUN` on a vCPU fd: in its forked child the runner traps that call (see
//! [`guard`]) and fails the case.
//!
//! Each case runs in a forked child process, so that a panic (the workspace builds with
//! `panic = "abort"`, where `catch_unwind` cannot catch), a crash or a hang is reported as a
//! failure of that case alone; a case that has not finished after [`CASE_TIMEOUT`] is killed.
//! Inside the child the case also runs under `catch_unwind`, which catches panics in builds that
//! unwind. `--no-fork` runs the cases in-process (for debuggers).

mod guard;

use kvmport_conformance::{cases, harness};

use harness::{Case, CaseResult, Ctx, SKIP};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long one case may take in total before its process is killed.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The outcome of one case.
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn outcome(r: CaseResult) -> Outcome {
    match r {
        Ok(()) => Outcome::Pass,
        Err(e) => match e.strip_prefix(SKIP) {
            Some(why) => Outcome::Skip(why.to_string()),
            None => Outcome::Fail(e),
        },
    }
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// Installs a no-op `SIGUSR1` handler without `SA_RESTART`, so that the signal interrupts
/// `KVM_RUN` (the watchdog and the signal cases rely on it).
pub fn install_sigusr1() {
    // SAFETY: a zeroed sigaction is a valid starting point; the handler is an async-signal-safe
    // function that does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// Runs a case in this process, catching panics where the build unwinds.
fn run_here(case: &Case, ctx: &Ctx) -> CaseResult {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(ctx))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string payload".into());
            Err(format!("panicked: {msg}"))
        }
    }
}

/// Encodes an outcome for the pipe from the child: a tag byte and the message.
fn encode(o: &Outcome) -> Vec<u8> {
    let (tag, msg) = match o {
        Outcome::Pass => (b'P', ""),
        Outcome::Fail(m) => (b'F', m.as_str()),
        Outcome::Skip(m) => (b'S', m.as_str()),
    };
    let mut v = vec![tag];
    v.extend_from_slice(msg.as_bytes());
    v
}

fn write_all_fd(fd: i32, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: writes from a live slice to an fd this process owns.
        let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}

/// Runs a case in a forked child and collects its outcome.
fn run_forked(case: &Case, ctx: &Ctx) -> Outcome {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Outcome::Fail(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe() returned two new descriptors owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the runner is single-threaded when it forks, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Outcome::Fail(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(rd);
        let wfd = wr.as_raw_fd();
        install_sigusr1();
        if !case.guest {
            if let Err(e) = guard::install(wfd) {
                write_all_fd(wfd, &encode(&Outcome::Fail(format!("KVM_RUN guard: {e}"))));
                // SAFETY: see below.
                unsafe { libc::_exit(0) };
            }
        }
        // A panic with panic=abort never returns to run_here: report it from the hook.
        if cfg!(panic = "abort") {
            std::panic::set_hook(Box::new(move |info| {
                write_all_fd(wfd, &encode(&Outcome::Fail(format!("panicked: {info}"))));
            }));
        }
        let o = outcome(run_here(case, ctx));
        write_all_fd(wfd, &encode(&o));
        // SAFETY: _exit ends the child without running the parent's atexit handlers twice.
        unsafe { libc::_exit(0) };
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
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            continue;
        }
        let mut chunk = [0u8; 4096];
        // SAFETY: reads into a live buffer from a descriptor this process owns.
        let r = unsafe { libc::read(rd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if r <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..r as usize]);
    }
    if timed_out {
        // SAFETY: `pid` is our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if timed_out {
        return Outcome::Fail(format!("timed out after {CASE_TIMEOUT:?}"));
    }
    match buf.split_first() {
        Some((b'P', _)) => Outcome::Pass,
        Some((b'S', m)) => Outcome::Skip(String::from_utf8_lossy(m).into_owned()),
        Some((_, m)) => Outcome::Fail(String::from_utf8_lossy(m).into_owned()),
        None if libc::WIFSIGNALED(status) => Outcome::Fail(format!(
            "case process killed by signal {}",
            libc::WTERMSIG(status)
        )),
        None => Outcome::Fail(format!(
            "case process exited ({status:#x}) without a result"
        )),
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', "; ")
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: kvm-conformance [--device PATH] [--list] [--no-guest] [--no-fork] [--skip CASE]... [FILTER]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut device = PathBuf::from("/dev/kvm");
    let mut list = false;
    let mut fork = true;
    let mut no_guest = false;
    let mut filter = String::new();
    let mut left_out: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => match args.next() {
                Some(p) => device = PathBuf::from(p),
                None => return usage(),
            },
            "--list" => list = true,
            "--no-fork" => fork = false,
            "--no-guest" => no_guest = true,
            "--skip" => match args.next() {
                Some(n) => left_out.push(n),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            s if s.starts_with('-') => return usage(),
            s => filter = s.to_string(),
        }
    }
    let selected: Vec<&Case> = cases::ALL
        .iter()
        .flat_map(|m| m.iter())
        .filter(|c| c.name.contains(&filter) && !(no_guest && c.guest))
        .collect();
    let mut out = std::io::stdout().lock();
    if list {
        for c in &selected {
            let tag = if c.guest { " [guest]" } else { "" };
            let _ = writeln!(out, "{}{tag}", c.name);
        }
        return ExitCode::SUCCESS;
    }
    let ctx = Ctx { device };
    if !fork {
        install_sigusr1();
    }
    let (mut pass, mut fail, mut skip) = (0u32, 0u32, 0u32);
    for c in selected {
        let o = if left_out.iter().any(|n| n == c.name) {
            Outcome::Skip("left out by --skip".to_string())
        } else if fork {
            run_forked(c, &ctx)
        } else {
            outcome(run_here(c, &ctx))
        };
        let _ = match &o {
            Outcome::Pass => {
                pass += 1;
                writeln!(out, "ok {}", c.name)
            }
            Outcome::Fail(m) => {
                fail += 1;
                writeln!(out, "FAIL {}: {}", c.name, one_line(m))
            }
            Outcome::Skip(m) => {
                skip += 1;
                writeln!(out, "skip {}: {}", c.name, one_line(m))
            }
        };
        let _ = out.flush();
    }
    let _ = writeln!(out, "{pass} passed, {fail} failed, {skip} skipped");
    if fail == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmport_conformance::check;

    #[test]
    fn names_are_unique_and_dotted() {
        let mut names: Vec<&str> = cases::ALL
            .iter()
            .flat_map(|m| m.iter())
            .map(|c| c.name)
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate case names");
        assert!(names.iter().all(|n| n.contains('.') && !n.contains(' ')));
    }

    /// Issues `KVM_RUN` on a memfd whose name makes the guard take it for a vCPU fd.
    fn run_on_fake_vcpu(_: &Ctx) -> CaseResult {
        // SAFETY: creates a new fd from a NUL-terminated name.
        let fd = unsafe { libc::memfd_create(c"kvm-vcpu:0".as_ptr(), 0) };
        check!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: KVM_RUN takes no pointer; the memfd rejects it.
        let r = unsafe { libc::ioctl(fd, kvmport_core::abi::ioctl::KVM_RUN as _, 0) };
        check!(r < 0, "KVM_RUN on a memfd succeeded");
        Ok(())
    }

    /// Issues `KVM_RUN` on a pipe (not a vCPU fd): the kernel's ENOTTY must come back.
    fn run_on_pipe(_: &Ctx) -> CaseResult {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for two descriptors.
        check!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
        // SAFETY: KVM_RUN takes no pointer; the pipe rejects it.
        let r = unsafe { libc::ioctl(fds[0], kvmport_core::abi::ioctl::KVM_RUN as _, 0) };
        let e = std::io::Error::last_os_error().raw_os_error();
        check!(r == -1 && e == Some(libc::ENOTTY), "got {r}, errno {e:?}");
        Ok(())
    }

    fn ctx() -> Ctx {
        Ctx {
            device: PathBuf::from("/dev/kvm"),
        }
    }

    #[test]
    fn guard_fails_untagged_kvm_run() {
        if !guard::SUPPORTED {
            return;
        }
        let case = Case {
            name: "test.untagged",
            guest: false,
            run: run_on_fake_vcpu,
        };
        match run_forked(&case, &ctx()) {
            Outcome::Fail(m) => assert!(m.contains(guard::UNTAGGED), "{m}"),
            _ => panic!("an untagged case issued KVM_RUN and did not fail"),
        }
    }

    #[test]
    fn guard_lets_tagged_cases_and_other_fds_through() {
        let tagged = Case {
            name: "test.tagged",
            guest: true,
            run: run_on_fake_vcpu,
        };
        let pipe = Case {
            name: "test.pipe",
            guest: false,
            run: run_on_pipe,
        };
        for c in [tagged, pipe] {
            if let Outcome::Fail(m) = run_forked(&c, &ctx()) {
                panic!("{}: {m}", c.name);
            }
        }
    }

    /// Runs every case not tagged `guest` against `/dev/kvm` (when it can be opened) and fails
    /// if one of them issued `KVM_RUN` on a vCPU fd.
    #[test]
    fn untagged_cases_do_not_run_guests() {
        let ctx = ctx();
        if !guard::SUPPORTED || ctx.kvm().is_err() {
            eprintln!("skipped: no guard in this build or no usable /dev/kvm");
            return;
        }
        let bad: Vec<String> = cases::ALL
            .iter()
            .flat_map(|m| m.iter())
            .filter(|c| !c.guest)
            .filter_map(|c| match run_forked(c, &ctx) {
                Outcome::Fail(m) if m.contains(guard::UNTAGGED) => Some(c.name.to_string()),
                _ => None,
            })
            .collect();
        assert!(bad.is_empty(), "cases to tag `guest`: {bad:?}");
    }
}
