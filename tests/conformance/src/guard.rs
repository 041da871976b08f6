//! Enforces the `guest` tag of the case table at run time.
//!
//! Before a case that is not tagged `guest` runs (in its forked child), [`install`] loads a
//! seccomp filter that traps every `ioctl(fd, KVM_RUN, ...)` into a `SIGSYS` handler. The handler
//! looks at the fd: on a vCPU fd (`/proc/self/fd/N` names a `kvm-vcpu` inode, or cannot be read)
//! the case was about to run guest code, so the handler reports the case as failed through the
//! result pipe and ends the process. On any other fd (the wrong-fd cases send `KVM_RUN` to the
//! system and VM fds) it re-issues the call with a marker argument the filter lets through and
//! returns the kernel's answer to the case unchanged (`KVM_RUN` on a non-vCPU fd fails before
//! the argument is looked at).
//!
//! The check needs seccomp and a known register layout: Linux on x86-64. Elsewhere
//! [`install`] does nothing and [`SUPPORTED`] is false.

/// Whether this build can enforce the tag.
#[cfg_attr(not(test), allow(dead_code))]
pub const SUPPORTED: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

/// The start of the failure message the handler sends for an untagged `KVM_RUN`.
pub const UNTAGGED: &str = "issued KVM_RUN on a vCPU fd but is not tagged [guest]";

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use super::UNTAGGED;
    use kvmport_core::abi::ioctl::KVM_RUN;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The third `ioctl` argument the filter lets through: what the handler re-issues with.
    const PASS_ARG: u64 = 0x6b76_6d70_6f72_7400; // "kvmport\0"
    /// `AUDIT_ARCH_X86_64`.
    const AUDIT_ARCH: u32 = 0xc000_003e;
    /// `BPF_LD | BPF_W | BPF_ABS`.
    const LD_ABS: u16 = 0x20;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    const JEQ: u16 = 0x15;
    /// `BPF_RET | BPF_K`.
    const RET: u16 = 0x06;
    /// `SECCOMP_RET_ALLOW`.
    const ALLOW: u32 = 0x7fff_0000;
    /// `SECCOMP_RET_TRAP`.
    const TRAP: u32 = 0x0003_0000;

    /// The fd the `SIGSYS` handler writes the failure to (-1: none).
    static RESULT_FD: AtomicI32 = AtomicI32::new(-1);

    /// One classic BPF instruction (`struct sock_filter`).
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Insn {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }

    /// `struct sock_fprog`.
    #[repr(C)]
    struct Prog {
        len: u16,
        filter: *const Insn,
    }

    const fn stmt(code: u16, k: u32) -> Insn {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    const fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
        Insn {
            code: JEQ,
            jt,
            jf,
            k,
        }
    }

    /// Jumps are relative to the next instruction: index 10 traps, index 11 allows.
    ///
    /// Offsets into `struct seccomp_data`: `nr` (0), `arch` (4), `args[i]` (16 + 8 i; low word
    /// first on little-endian).
    const FILTER: [Insn; 12] = [
        stmt(LD_ABS, 4),
        jeq(AUDIT_ARCH, 0, 9), // other ABI: allow
        stmt(LD_ABS, 0),
        jeq(libc::SYS_ioctl as u32, 0, 7),
        stmt(LD_ABS, 24), // cmd (the kernel takes the low 32 bits)
        jeq(KVM_RUN, 0, 5),
        stmt(LD_ABS, 32), // arg, low word
        jeq(PASS_ARG as u32, 0, 2),
        stmt(LD_ABS, 36), // arg, high word
        jeq((PASS_ARG >> 32) as u32, 1, 0),
        stmt(RET, TRAP),
        stmt(RET, ALLOW),
    ];

    /// Writes all of `data` to `fd` (async-signal-safe).
    fn write_all(fd: i32, mut data: &[u8]) {
        while !data.is_empty() {
            // SAFETY: writes from a live slice.
            let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if n <= 0 {
                return;
            }
            data = &data[n as usize..];
        }
    }

    /// Whether `fd` is a vCPU fd (or cannot be told apart from one).
    fn is_vcpu_fd(fd: i64) -> bool {
        let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
        let mut digits = [0u8; 20];
        let (mut n, mut v) = (0, fd.unsigned_abs());
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 || n == digits.len() {
                break;
            }
        }
        if fd < 0 || n > 11 {
            return false; // not an fd at all: the kernel answers EBADF
        }
        for i in 0..n {
            path[14 + i] = digits[n - 1 - i];
        }
        let mut link = [0u8; 128];
        // SAFETY: `path` is NUL-terminated (the tail stays zero); `link` is a live buffer.
        let len = unsafe { libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), 127) };
        if len <= 0 {
            return true;
        }
        link[..len as usize].windows(8).any(|w| w == b"kvm-vcpu")
    }

    extern "C" fn on_sigsys(_: libc::c_int, _: *mut libc::siginfo_t, uc: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext for an SA_SIGINFO handler.
        let gregs = unsafe { &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        let fd = gregs[libc::REG_RDI as usize];
        let cmd = gregs[libc::REG_RSI as usize];
        if !is_vcpu_fd(fd) {
            // SAFETY: the same ioctl the case made, with an argument that KVM_RUN on a non-vCPU
            // fd never looks at.
            let r = unsafe { libc::syscall(libc::SYS_ioctl, fd, cmd, PASS_ARG) };
            gregs[libc::REG_RAX as usize] = if r < 0 {
                // SAFETY: errno is thread-local and was just set by the failed call.
                -i64::from(unsafe { *libc::__errno_location() })
            } else {
                r
            };
            return;
        }
        let rfd = RESULT_FD.load(Ordering::Relaxed);
        if rfd >= 0 {
            write_all(rfd, b"F");
            write_all(rfd, UNTAGGED.as_bytes());
        }
        // SAFETY: ends the process at once, as the case must not go on into the guest.
        unsafe { libc::_exit(0) };
    }

    /// See [`super::install`].
    pub fn install(result_fd: i32) -> Result<(), String> {
        RESULT_FD.store(result_fd, Ordering::Relaxed);
        // SAFETY: a zeroed sigaction is valid; the handler only makes async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_SIGINFO;
            if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
            }
        }
        let prog = Prog {
            len: FILTER.len() as u16,
            filter: FILTER.as_ptr(),
        };
        // SAFETY: prctl with documented arguments; `prog` points at a live filter.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const Prog,
                ) != 0
            {
                return Err(format!("seccomp: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

/// In the calling (forked, about to run one case) process: from now on, `KVM_RUN` on a vCPU fd
/// writes an `F` result with [`UNTAGGED`] to `result_fd` and ends the process. Irreversible.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn install(result_fd: i32) -> Result<(), String> {
    imp::install(result_fd)
}

/// Does nothing: this build cannot enforce the tag.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub fn install(_result_fd: i32) -> Result<(), String> {
    Ok(())
}
