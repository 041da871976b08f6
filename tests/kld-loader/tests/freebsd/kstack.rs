//! Kernel stacks: every call into the module runs on a stack in the harness kernel's memory
//! (below 4 GiB, outside the user range), as kernel code runs on a kernel stack. A module bug
//! that hands copyin/copyout a stack address as a user address therefore gets `EFAULT`.
//! Calls made while already on the kernel stack (the module calling the harness calling the
//! module again) stay on it.

/// Base of the kernel stack mapping (its lowest page is a guard page).
const KSTACK_BASE: u64 = 0x6000_0000;
const KSTACK_SIZE: u64 = 4 << 20;

core::arch::global_asm!(
    ".globl kvmport_harness_kcall",
    "kvmport_harness_kcall:",
    // rdi = function, rsi = pointer to 9 arguments, rdx = new stack top (16-aligned).
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "mov rbx, rdi",
    "mov r12, rsi",
    "mov rsp, rdx",
    "sub rsp, 32",
    "mov rax, [r12 + 48]",
    "mov [rsp], rax",
    "mov rax, [r12 + 56]",
    "mov [rsp + 8], rax",
    "mov rax, [r12 + 64]",
    "mov [rsp + 16], rax",
    "mov rdi, [r12]",
    "mov rsi, [r12 + 8]",
    "mov rdx, [r12 + 16]",
    "mov rcx, [r12 + 24]",
    "mov r8, [r12 + 32]",
    "mov r9, [r12 + 40]",
    "xor eax, eax",
    "call rbx",
    "lea rsp, [rbp - 16]",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

unsafe extern "C" {
    fn kvmport_harness_kcall(f: u64, args: *const u64, top: u64) -> u64;
}

/// Maps the kernel stack. Once per process.
pub fn init() {
    // SAFETY: a fixed private mapping at an address nothing else uses; its lowest page is
    // made inaccessible as a guard.
    unsafe {
        let p = libc::mmap(
            KSTACK_BASE as *mut libc::c_void,
            KSTACK_SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        assert_eq!(p as u64, KSTACK_BASE, "kernel stack mapping");
        assert_eq!(libc::mprotect(p, 4096, libc::PROT_NONE), 0);
    }
}

fn rsp() -> u64 {
    let sp: u64;
    // SAFETY: reads the stack pointer.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Calls the module function `f` (System V ABI, up to 9 integer arguments) on the kernel
/// stack and returns its `rax`.
pub fn call(f: u64, args: &[u64]) -> u64 {
    let mut a = [0u64; 9];
    assert!(args.len() <= 9, "too many arguments");
    a[..args.len()].copy_from_slice(args);
    let sp = rsp();
    let top = if (KSTACK_BASE..KSTACK_BASE + KSTACK_SIZE).contains(&sp) {
        // Already on the kernel stack: continue below the current frame, 16-aligned.
        (sp - 256) & !15
    } else {
        KSTACK_BASE + KSTACK_SIZE
    };
    // SAFETY: `f` is a function of the module taking at most 9 integer arguments (the
    // callers pass its documented arguments); the trampoline preserves the callee-saved
    // registers and returns to the caller's stack.
    unsafe { kvmport_harness_kcall(f, a.as_ptr(), top) }
}

/// [`call`] for functions returning a C `int`.
pub fn call_int(f: u64, args: &[u64]) -> i32 {
    // CAST: the low 32 bits of rax hold the int.
    call(f, args) as i32
}
