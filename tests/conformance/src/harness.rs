//! What every case uses: the case table type, [`Ctx`], and assertion helpers.

use kvmport_client::{Errno, Kvm, Vcpu, Vm};
use kvmport_core::abi::cap::Cap;
use std::fmt::Display;
use std::path::PathBuf;

/// The result of a case: `Ok`, or why it failed (or, with the [`SKIP`] prefix, why it was
/// skipped).
pub type CaseResult = Result<(), String>;

/// One conformance case.
pub struct Case {
    /// Dotted name, e.g. `vm.memslot.overlap_eexist`.
    pub name: &'static str,
    /// The case runs guest code: it issues `KVM_RUN` on a vCPU fd. Only these cases may do so;
    /// the runner enforces it at run time (see [`crate::guard`]), and `--no-guest` leaves them
    /// out.
    pub guest: bool,
    /// The test. It opens its own fds.
    pub run: fn(&Ctx) -> CaseResult,
}

/// Prefix of a [`CaseResult`] error that means "skipped" rather than "failed".
pub const SKIP: &str = "\u{1}skip\u{1}";

/// Skips the case because the device reports a capability absent.
pub fn skip_cap(cap: Cap) -> String {
    format!("{SKIP}{} not reported by the device", cap.name())
}

/// What a case gets: where the device is.
pub struct Ctx {
    /// The KVM device node.
    pub device: PathBuf,
}

impl Ctx {
    /// Opens the device.
    pub fn kvm(&self) -> Result<Kvm, String> {
        Kvm::open(&self.device).map_err(|e| format!("open {}: {e}", self.device.display()))
    }

    /// Opens the device and creates a default VM.
    pub fn vm(&self) -> Result<(Kvm, Vm), String> {
        let kvm = self.kvm()?;
        let vm = kvm.create_vm(0).ctx("KVM_CREATE_VM")?;
        Ok((kvm, vm))
    }

    /// Opens the device, creates a default VM and vCPU 0.
    pub fn vcpu(&self) -> Result<(Kvm, Vm, Vcpu), String> {
        let (kvm, vm) = self.vm()?;
        let vcpu = vm.create_vcpu(0).ctx("KVM_CREATE_VCPU 0")?;
        Ok((kvm, vm, vcpu))
    }
}

/// The value of `cap` on the system fd; skips the case when it is 0.
pub fn need(kvm: &Kvm, cap: Cap) -> Result<i64, String> {
    match kvm.check_extension(cap).ctx(cap.name())? {
        0 => Err(skip_cap(cap)),
        v => Ok(v),
    }
}

/// The value of `cap` on the system fd (0 if absent).
pub fn cap(kvm: &Kvm, cap: Cap) -> Result<i64, String> {
    kvm.check_extension(cap).ctx(cap.name())
}

/// Adds context to an error on the way into a [`CaseResult`].
pub trait OrFail<T> {
    /// `Err(e)` becomes `Err("what: e")`.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Asserts that a command failed with `want`.
pub fn want_err<T: std::fmt::Debug>(r: Result<T, Errno>, want: Errno, what: &str) -> CaseResult {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: got {e}, want {want}")),
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), want {want}")),
    }
}

/// Asserts that a command returned exactly `want`.
pub fn want_ret(r: Result<i64, Errno>, want: i64, what: &str) -> CaseResult {
    match r {
        Ok(v) if v == want => Ok(()),
        Ok(v) => Err(format!("{what}: returned {v}, want {want}")),
        Err(e) => Err(format!("{what}: failed with {e}, want ret={want}")),
    }
}

/// Builds a case table: `cases!["area.case" => function, guest "area.runs" => function, ...]`.
///
/// The `guest` keyword marks a case that runs guest code (issues `KVM_RUN` on a vCPU fd).
#[macro_export]
macro_rules! cases {
    (@guest guest) => { true };
    (@guest) => { false };
    ($($($guest:ident)? $name:literal => $run:expr),* $(,)?) => {
        &[$($crate::harness::Case {
            name: $name,
            guest: $crate::cases!(@guest $($guest)?),
            run: $run,
        }),*]
    };
}

/// Fails with a message unless the condition holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// Fails unless `got == want`, printing both with `{:?}`.
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $want:expr, $($fmt:tt)*) => {{
        let (g, w) = (&$got, &$want);
        if g != w {
            return Err(format!("{}: got {:?}, want {:?}", format!($($fmt)*), g, w));
        }
    }};
}

/// Fails unless `got == want`, printing both in hex.
#[macro_export]
macro_rules! check_hex {
    ($got:expr, $want:expr, $($fmt:tt)*) => {{
        let (g, w) = ($got, $want);
        if g != w {
            return Err(format!("{}: got {:#x}, want {:#x}", format!($($fmt)*), g, w));
        }
    }};
}

/// A `KVM_EXIT_*` number's name, for messages.
pub fn exit_name(reason: u32) -> String {
    use kvmport_core::abi::*;
    let n = match reason {
        KVM_EXIT_UNKNOWN => "UNKNOWN",
        KVM_EXIT_EXCEPTION => "EXCEPTION",
        KVM_EXIT_IO => "IO",
        KVM_EXIT_HYPERCALL => "HYPERCALL",
        KVM_EXIT_DEBUG => "DEBUG",
        KVM_EXIT_HLT => "HLT",
        KVM_EXIT_MMIO => "MMIO",
        KVM_EXIT_IRQ_WINDOW_OPEN => "IRQ_WINDOW_OPEN",
        KVM_EXIT_SHUTDOWN => "SHUTDOWN",
        KVM_EXIT_FAIL_ENTRY => "FAIL_ENTRY",
        KVM_EXIT_INTR => "INTR",
        KVM_EXIT_INTERNAL_ERROR => "INTERNAL_ERROR",
        KVM_EXIT_SYSTEM_EVENT => "SYSTEM_EVENT",
        KVM_EXIT_X86_RDMSR => "X86_RDMSR",
        KVM_EXIT_X86_WRMSR => "X86_WRMSR",
        KVM_EXIT_MEMORY_FAULT => "MEMORY_FAULT",
        _ => return format!("exit {reason}"),
    };
    format!("{n}({reason})")
}
