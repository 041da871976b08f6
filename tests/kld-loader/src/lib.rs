//! Reads, checks and loads kernel-module objects (ET_REL) in user space.
//!
//! - [`elf`]: a bounds-checked ELF64 reader.
//! - [`check`]: the static check (sections, linker sets, relocation types, imports) against a
//!   [`check::Personality`], the pluggable loader rules of one kernel.
//! - [`freebsd`]: FreeBSD 14's `link_elf_obj` rules.
//! - [`illumos`]: illumos krtld's rules.
//! - [`load`] (Linux hosts): maps a module below 2 GiB, applies its relocations as the
//!   kernel linker would (rejecting what it rejects) and binds its imports to functions the
//!   harness provides; used by the loader harness in `tests/`.

pub mod check;
pub mod elf;
pub mod freebsd;
pub mod illumos;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod load;
