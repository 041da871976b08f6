//! Fallible allocation: the one module of the core that contains `unsafe` code.
//!
//! Kernel code must treat allocation failure as `ENOMEM`, but `alloc::sync::Arc::new` aborts on
//! failure and its fallible twin is unstable. [`KArc`] is a small reference-counted box built on
//! the stable, fallible `alloc::alloc::alloc`, and [`vec_push`] grows vectors with
//! `try_reserve`. Every other module of the core is `unsafe`-free.
#![allow(unsafe_code)]

use alloc::alloc::{Layout, alloc, dealloc};
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering, fence};

use crate::errno::{Errno, KResult};

/// Refuse to let a reference count approach overflow (as `Arc` does, but with an error).
const MAX_REFS: usize = isize::MAX as usize;

struct Inner<T> {
    refs: AtomicUsize,
    value: T,
}

/// A thread-safe reference-counted pointer whose creation fails with `ENOMEM` instead of
/// aborting.
///
/// # Invariants
/// `ptr` points to a live `Inner<T>` allocated by [`KArc::try_new`] with the layout of
/// `Inner<T>`; `refs` counts the `KArc`s (and raw pointers from [`KArc::into_raw`]) that own it,
/// and is at least one while any of them exists.
pub struct KArc<T> {
    ptr: NonNull<Inner<T>>,
    _owns: PhantomData<Inner<T>>,
}

// SAFETY: `KArc<T>` hands out `&T` to several threads and may drop `T` on any thread, which is
// sound exactly when `T: Send + Sync` (the same bounds as `alloc::sync::Arc`).
unsafe impl<T: Send + Sync> Send for KArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for KArc<T> {}

impl<T> KArc<T> {
    /// Moves `value` into a new allocation with one reference, or fails with `ENOMEM`.
    pub fn try_new(value: T) -> KResult<Self> {
        let layout = Layout::new::<Inner<T>>();
        let ptr = if layout.size() == 0 {
            NonNull::<Inner<T>>::dangling()
        } else {
            // SAFETY: `layout` has a non-zero size, as checked just above.
            let raw = unsafe { alloc(layout) }.cast::<Inner<T>>();
            NonNull::new(raw).ok_or(Errno::ENOMEM)?
        };
        let inner = Inner {
            refs: AtomicUsize::new(1),
            value,
        };
        // SAFETY: `ptr` is valid for a write of `Inner<T>` and suitably aligned: it was just
        // allocated with that layout (or is dangling for a zero-sized type, where writes are
        // no-ops).
        unsafe { ptr.as_ptr().write(inner) };
        // INVARIANT: the allocation is initialised and owned by this one reference.
        Ok(KArc {
            ptr,
            _owns: PhantomData,
        })
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: by the type invariant `ptr` points to a live `Inner<T>` while `self` exists.
        unsafe { self.ptr.as_ref() }
    }

    /// Adds a reference. Fails with `ENOMEM` when the count would overflow.
    pub fn try_clone(&self) -> KResult<Self> {
        let old = self.inner().refs.fetch_add(1, Ordering::Relaxed);
        if old >= MAX_REFS {
            self.inner().refs.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::ENOMEM);
        }
        Ok(KArc {
            ptr: self.ptr,
            _owns: PhantomData,
        })
    }

    /// Whether two `KArc`s point at the same object.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }

    /// The number of references right now (for leak checks in tests and diagnostics).
    pub fn ref_count(this: &Self) -> usize {
        this.inner().refs.load(Ordering::Acquire)
    }

    /// Gives up ownership of this reference as an opaque pointer, for an OS object's private
    /// data (a file's `private_data`, say). [`KArc::from_raw`] takes it back.
    pub fn into_raw(this: Self) -> *const () {
        let ptr = this.ptr.as_ptr().cast_const().cast::<()>();
        core::mem::forget(this);
        ptr
    }

    /// Takes back a reference given up with [`KArc::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `KArc::<T>::into_raw` (same `T`), and each such pointer may be
    /// passed here once only.
    pub unsafe fn from_raw(ptr: *const ()) -> Self {
        // SAFETY: the caller guarantees `ptr` came from `into_raw`, so it is the non-null
        // `ptr` of a live `KArc<T>` whose reference we now own again.
        let ptr = unsafe { NonNull::new_unchecked(ptr.cast_mut().cast::<Inner<T>>()) };
        KArc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Borrows the object behind a pointer from [`KArc::into_raw`] without taking ownership.
    ///
    /// # Safety
    /// `ptr` must come from `KArc::<T>::into_raw` and that reference must stay owned (not
    /// passed to [`KArc::from_raw`]) for the whole lifetime `'a`.
    pub unsafe fn borrow_raw<'a>(ptr: *const ()) -> &'a T {
        // SAFETY: the caller guarantees the reference behind `ptr` lives for `'a`, so the
        // `Inner<T>` it points to is live and not mutated except through atomics.
        unsafe { &(*ptr.cast::<Inner<T>>()).value }
    }
}

impl<T> Deref for KArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Drop for KArc<T> {
    fn drop(&mut self) {
        if self.inner().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let layout = Layout::new::<Inner<T>>();
        // SAFETY: this was the last reference, so nobody else can reach the allocation; it
        // holds an initialised `Inner<T>` that is dropped exactly once here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        if layout.size() != 0 {
            // SAFETY: `ptr` was allocated by `alloc` with this same layout in `try_new`.
            unsafe { dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for KArc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

/// Appends to a vector, failing with `ENOMEM` instead of aborting when it must grow.
pub fn vec_push<T>(v: &mut Vec<T>, value: T) -> KResult<()> {
    v.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    v.push(value);
    Ok(())
}

/// Inserts into a vector at `index` (at most `len`), failing with `ENOMEM` or `EINVAL`.
pub fn vec_insert<T>(v: &mut Vec<T>, index: usize, value: T) -> KResult<()> {
    if index > v.len() {
        return Err(Errno::EINVAL);
    }
    v.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    v.insert(index, value);
    Ok(())
}

/// A vector of `len` copies of `value`, or `ENOMEM`.
pub fn vec_filled<T: Clone>(len: usize, value: T) -> KResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    v.resize(len, value);
    Ok(v)
}

/// A vector of `len` elements made by `f`, or `ENOMEM`.
pub fn vec_from_fn<T>(len: usize, f: impl FnMut(usize) -> T) -> KResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    v.extend((0..len).map(f));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicBool;

    struct Flag<'a>(&'a AtomicBool);
    impl Drop for Flag<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn karc_counts_and_drops_once() {
        let dropped = AtomicBool::new(false);
        let a = KArc::try_new(Flag(&dropped)).unwrap();
        let b = a.try_clone().unwrap();
        assert_eq!(KArc::ref_count(&a), 2);
        assert!(KArc::ptr_eq(&a, &b));
        drop(a);
        assert!(!dropped.load(Ordering::SeqCst));
        let raw = KArc::into_raw(b);
        // SAFETY: `raw` came from `into_raw` and is still owned.
        let borrowed = unsafe { KArc::<Flag<'_>>::borrow_raw(raw) };
        assert!(!borrowed.0.load(Ordering::SeqCst));
        // SAFETY: `raw` came from `into_raw` of the same type and is taken back once.
        let b = unsafe { KArc::<Flag<'_>>::from_raw(raw) };
        drop(b);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn zero_sized_values_work() {
        let a = KArc::try_new(()).unwrap();
        let b = a.try_clone().unwrap();
        assert_eq!(KArc::ref_count(&b), 2);
    }

    #[test]
    fn vec_helpers() {
        let mut v = vec_filled(3, 7u8).unwrap();
        vec_push(&mut v, 9).unwrap();
        vec_insert(&mut v, 0, 1).unwrap();
        assert_eq!(v, [1, 7, 7, 7, 9]);
        assert_eq!(vec_insert(&mut v, 9, 0), Err(Errno::EINVAL));
        assert_eq!(vec_from_fn(3, |i| i * 2).unwrap(), [0, 2, 4]);
    }
}
