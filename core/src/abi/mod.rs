//! The KVM user-space ABI (`<linux/kvm.h>` and the per-architecture
//! `<asm/kvm.h>`), written out as plain `#[repr(C)]` Rust types.
//!
//! Naming: a C `struct kvm_foo_bar` is `KvmFooBar`
//! (`Kvm` + CamelCase of the name without the `kvm_` prefix); fields keep their
//! C names (`r#type` where the C name is a Rust keyword). Anonymous nested
//! structs get a named type (`KvmVcpuEventsException` for
//! `kvm_vcpu_events.exception`). C unions are byte arrays wrapped in an aligned
//! newtype with typed `read`/`write` accessors. Implicit C padding is spelled
//! out as `_padN` byte arrays so that every type can derive
//! [`zerocopy::IntoBytes`]. Flexible-array structs only carry their fixed
//! header; the trailing array is documented on the type.
//!
//! Layouts and numbers are checked against the host's `<linux/kvm.h>` by the
//! `kvmport-abi-layout` test crate.
//!
//! * [`ioctl`]: ioctl command numbers and the `_IOC` encoder.
//! * [`cap`]: the `KVM_CAP_*` extension numbers as [`cap::Cap`].
//! * [`x86`], [`arm64`], [`ppc`], [`s390x`]: architecture-specific structs,
//!   constants and ioctl numbers.
//! * Everything else (the memory-slot, IRQ, device and `kvm_run` types) is
//!   re-exported here from the private `generic` and `run` modules.

/// Defines a C union as an aligned byte-array newtype with typed accessors.
macro_rules! byte_union {
    ($(#[$meta:meta])* $name:ident, align = $align:literal, size = $size:literal) => {
        $(#[$meta])*
        #[repr(C, align($align))]
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            zerocopy::FromBytes,
            zerocopy::IntoBytes,
            zerocopy::Immutable,
            zerocopy::KnownLayout,
        )]
        pub struct $name {
            /// The raw bytes of the union.
            pub bytes: [u8; $size],
        }

        impl Default for $name {
            fn default() -> Self {
                Self { bytes: [0; $size] }
            }
        }

        impl $name {
            /// Size of the union in bytes.
            pub const SIZE: usize = $size;

            /// Reads a `T` from the start of the union; `None` if `T` is
            /// larger than the union.
            pub fn read<T: zerocopy::FromBytes>(&self) -> Option<T> {
                T::read_from_prefix(&self.bytes).ok().map(|(v, _)| v)
            }

            /// Reads a `T` from the start of the union, or a zeroed `T` if
            /// `T` does not fit.
            pub fn read_or_zeroed<T: zerocopy::FromBytes>(&self) -> T {
                self.read().unwrap_or_else(T::new_zeroed)
            }

            /// Writes `v` over the start of the union, leaving the remaining
            /// bytes untouched. Returns `false` (and writes nothing) if `T`
            /// is larger than the union.
            pub fn write<T: zerocopy::IntoBytes + zerocopy::Immutable>(&mut self, v: &T) -> bool {
                v.write_to_prefix(&mut self.bytes).is_ok()
            }

            /// Builds a zeroed union holding `v` at its start, or `None` if `T`
            /// does not fit.
            pub fn from_value<T: zerocopy::IntoBytes + zerocopy::Immutable>(v: &T) -> Option<Self> {
                let mut u = Self::default();
                if u.write(v) { Some(u) } else { None }
            }
        }
    };
}

/// Implements `Default` as all-zero bytes (for types with arrays longer than
/// 32 elements, which cannot derive `Default`).
macro_rules! zeroed_default {
    ($($name:ty),* $(,)?) => {
        $(
            impl Default for $name {
                fn default() -> Self {
                    <Self as zerocopy::FromZeros>::new_zeroed()
                }
            }
        )*
    };
}

/// Asserts at compile time that each type has the given size in bytes.
macro_rules! assert_size {
    ($($name:ty => $size:expr),* $(,)?) => {
        $(const _: () = assert!(core::mem::size_of::<$name>() == $size);)*
    };
}

pub mod arm64;
pub mod cap;
mod generic;
pub mod ioctl;
pub mod ppc;
mod run;
pub mod s390x;
pub mod x86;

pub use generic::*;
pub use run::*;
