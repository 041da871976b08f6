//! Typed, fallible access to user memory on top of [`Os::user_copy_in`] and
//! [`Os::user_copy_out`]. Values are copied, never borrowed: the core holds no reference into
//! user memory.

use alloc::vec::Vec;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::errno::{Errno, KResult};
use crate::kalloc::vec_filled;
use crate::os::{Os, UserAddr};

/// Reads one `T` from user memory (`EFAULT` if unreadable).
pub fn read<O: Os, T: FromBytes + IntoBytes>(os: &O, addr: UserAddr) -> KResult<T> {
    let mut value = T::new_zeroed();
    os.user_copy_in(value.as_mut_bytes(), addr)?;
    Ok(value)
}

/// Writes one `T` to user memory (`EFAULT` if unwritable).
pub fn write<O: Os, T: IntoBytes + Immutable>(os: &O, addr: UserAddr, value: &T) -> KResult<()> {
    os.user_copy_out(addr, value.as_bytes())
}

/// The user address of element `index` of an array of `T` starting at `base`.
fn element<T>(base: UserAddr, index: usize) -> KResult<UserAddr> {
    let off = (index as u64)
        .checked_mul(core::mem::size_of::<T>() as u64)
        .ok_or(Errno::EFAULT)?;
    base.offset(off)
}

/// Reads `count` consecutive `T`s from user memory into a new vector. The caller bounds
/// `count` first (the ABI's maximum for the command); allocation failure is `ENOMEM`.
pub fn read_array<O: Os, T: FromBytes + IntoBytes + Clone>(
    os: &O,
    base: UserAddr,
    count: usize,
) -> KResult<Vec<T>> {
    let mut out = vec_filled(count, T::new_zeroed())?;
    element::<T>(base, count)?;
    os.user_copy_in(out.as_mut_slice().as_mut_bytes(), base)?;
    Ok(out)
}

/// Writes a slice of `T`s to consecutive user memory at `base`.
pub fn write_array<O: Os, T: IntoBytes + Immutable>(
    os: &O,
    base: UserAddr,
    items: &[T],
) -> KResult<()> {
    element::<T>(base, items.len())?;
    os.user_copy_out(base, items.as_bytes())
}
