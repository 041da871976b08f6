//! The FreeBSD kernel interfaces kvmport uses, declared by the project itself: one module per
//! release line. Each layout names the header it was written from; nothing here is copied.
//!
//! Only [`v14`] exists: FreeBSD 14.x amd64 (`__FreeBSD_version` 1400000..1499999).

pub mod v14;

pub use v14::*;
