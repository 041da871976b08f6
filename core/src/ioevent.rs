//! The I/O-event bus: `KVM_IOEVENTFD` registrations, matched against guest writes so that a
//! matching write signals an eventfd instead of exiting to user space.

use alloc::vec::Vec;

use crate::abi::{
    KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO,
    KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY, KvmIoeventfd,
};
use crate::errno::{Errno, KResult};
use crate::kalloc::vec_push;
use crate::os::EventFd;

/// Most registrations per bus (Linux's `NR_IOBUS_DEVS`).
pub const MAX_PER_BUS: usize = 1000;

const VALID_FLAGS: u32 = KVM_IOEVENTFD_FLAG_DATAMATCH
    | KVM_IOEVENTFD_FLAG_PIO
    | KVM_IOEVENTFD_FLAG_DEASSIGN
    | KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY;

/// Which address space a registration listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    /// Guest physical memory.
    Mmio,
    /// x86 I/O ports.
    Pio,
    /// s390 virtio-ccw notifications.
    CcwNotify,
}

impl Bus {
    fn from_flags(flags: u32) -> Bus {
        if flags & KVM_IOEVENTFD_FLAG_PIO != 0 {
            Bus::Pio
        } else if flags & KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY != 0 {
            Bus::CcwNotify
        } else {
            Bus::Mmio
        }
    }
}

/// A validated `KVM_IOEVENTFD` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Bus listened on.
    pub bus: Bus,
    /// First byte address.
    pub addr: u64,
    /// Access length to match (0: any length, address only).
    pub len: u8,
    /// Value to match, or `None` for any value.
    pub datamatch: Option<u64>,
    /// Whether this removes a registration.
    pub deassign: bool,
    /// The eventfd's file descriptor.
    pub fd: i32,
}

impl Request {
    /// Validates the ABI struct with Linux's checks, in Linux's order (all `EINVAL`).
    pub fn parse(a: &KvmIoeventfd) -> KResult<Request> {
        let len = match a.len {
            0 | 1 | 2 | 4 | 8 => a.len as u8,
            _ => return Err(Errno::EINVAL),
        };
        if a.addr.checked_add(u64::from(len)).is_none() {
            return Err(Errno::EINVAL);
        }
        if a.flags & !VALID_FLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let matching = a.flags & KVM_IOEVENTFD_FLAG_DATAMATCH != 0;
        if len == 0 && matching {
            return Err(Errno::EINVAL);
        }
        Ok(Request {
            bus: Bus::from_flags(a.flags),
            addr: a.addr,
            len,
            datamatch: matching.then_some(a.datamatch),
            deassign: a.flags & KVM_IOEVENTFD_FLAG_DEASSIGN != 0,
            fd: a.fd,
        })
    }
}

struct Entry<E> {
    bus: Bus,
    addr: u64,
    len: u8,
    datamatch: Option<u64>,
    efd: E,
}

impl<E> Entry<E> {
    fn collides(&self, r: &Request) -> bool {
        self.bus == r.bus
            && self.addr == r.addr
            && (self.len == 0
                || r.len == 0
                || (self.len == r.len
                    && (self.datamatch.is_none()
                        || r.datamatch.is_none()
                        || self.datamatch == r.datamatch)))
    }

    fn hit(&self, bus: Bus, addr: u64, data: &[u8]) -> bool {
        if self.bus != bus || self.addr != addr {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        if usize::from(self.len) != data.len() {
            return false;
        }
        let Some(want) = self.datamatch else {
            return true;
        };
        let mut bytes = [0u8; 8];
        for (d, s) in bytes.iter_mut().zip(data) {
            *d = *s;
        }
        u64::from_le_bytes(bytes) == want
    }
}

/// The registrations of one VM.
pub struct IoBus<E: EventFd> {
    entries: Vec<Entry<E>>,
}

impl<E: EventFd> Default for IoBus<E> {
    fn default() -> Self {
        IoBus {
            entries: Vec::new(),
        }
    }
}

impl<E: EventFd> IoBus<E> {
    /// Registers `efd` for `r`: `EEXIST` if it collides with a registration, `ENOSPC` when
    /// the bus is full.
    pub fn assign(&mut self, r: &Request, efd: E) -> KResult<()> {
        if self.entries.iter().any(|e| e.collides(r)) {
            return Err(Errno::EEXIST);
        }
        if self.entries.iter().filter(|e| e.bus == r.bus).count() >= MAX_PER_BUS {
            return Err(Errno::ENOSPC);
        }
        let entry = Entry {
            bus: r.bus,
            addr: r.addr,
            len: r.len,
            datamatch: r.datamatch,
            efd,
        };
        vec_push(&mut self.entries, entry)
    }

    /// Removes the registration of `efd` that matches `r` exactly, or `ENOENT`.
    pub fn deassign(&mut self, r: &Request, efd: &E) -> KResult<()> {
        let pos = self
            .entries
            .iter()
            .position(|e| {
                e.bus == r.bus
                    && e.efd.same(efd)
                    && e.addr == r.addr
                    && e.len == r.len
                    && e.datamatch == r.datamatch
            })
            .ok_or(Errno::ENOENT)?;
        self.entries.swap_remove(pos);
        Ok(())
    }

    /// Signals the eventfd registered for a guest write of `data` at `addr`, if any, and
    /// reports whether one was.
    pub fn write(&self, bus: Bus, addr: u64, data: &[u8]) -> bool {
        match self.entries.iter().find(|e| e.hit(bus, addr, data)) {
            Some(e) => {
                e.efd.signal();
                true
            }
            None => false,
        }
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no registrations.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicU32, Ordering};

    /// Test double: an eventfd that counts signals.
    #[derive(Clone)]
    struct CountingEventFd(Arc<AtomicU32>);
    impl EventFd for CountingEventFd {
        fn signal(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn same(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
    }

    fn efd() -> CountingEventFd {
        CountingEventFd(Arc::new(AtomicU32::new(0)))
    }

    fn args(addr: u64, len: u32, flags: u32, datamatch: u64) -> KvmIoeventfd {
        KvmIoeventfd {
            datamatch,
            addr,
            len,
            fd: 3,
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn parse_rejects_like_linux() {
        for a in [
            args(0x1000, 3, 0, 0),
            args(u64::MAX - 1, 4, 0, 0),
            args(0x1000, 4, 1 << 4, 0),
            args(0x1000, 0, KVM_IOEVENTFD_FLAG_DATAMATCH, 0),
        ] {
            assert_eq!(Request::parse(&a), Err(Errno::EINVAL), "{a:?}");
        }
        let r = Request::parse(&args(0x60, 1, KVM_IOEVENTFD_FLAG_PIO, 0)).unwrap();
        assert_eq!(
            (r.bus, r.len, r.datamatch, r.deassign),
            (Bus::Pio, 1, None, false)
        );
    }

    #[test]
    fn match_collide_and_deassign() {
        let mut bus = IoBus::default();
        let a = efd();
        let b = efd();
        let dm = Request::parse(&args(0x1000, 4, KVM_IOEVENTFD_FLAG_DATAMATCH, 7)).unwrap();
        bus.assign(&dm, a.clone()).unwrap();
        // Same address and length with another datamatch value is fine; with a wildcard or a
        // length-0 registration it collides.
        let dm8 = Request::parse(&args(0x1000, 4, KVM_IOEVENTFD_FLAG_DATAMATCH, 8)).unwrap();
        bus.assign(&dm8, b.clone()).unwrap();
        let wild = Request::parse(&args(0x1000, 4, 0, 0)).unwrap();
        assert_eq!(bus.assign(&wild, b.clone()), Err(Errno::EEXIST));
        let any = Request::parse(&args(0x1000, 0, 0, 0)).unwrap();
        assert_eq!(bus.assign(&any, b.clone()), Err(Errno::EEXIST));
        // The same range on the PIO bus is independent.
        let pio = Request::parse(&args(0x1000, 4, KVM_IOEVENTFD_FLAG_PIO, 0)).unwrap();
        bus.assign(&pio, b.clone()).unwrap();

        assert!(bus.write(Bus::Mmio, 0x1000, &7u32.to_le_bytes()));
        assert!(bus.write(Bus::Mmio, 0x1000, &8u32.to_le_bytes()));
        assert!(!bus.write(Bus::Mmio, 0x1000, &9u32.to_le_bytes()));
        assert!(!bus.write(Bus::Mmio, 0x1000, &7u16.to_le_bytes()));
        assert!(bus.write(Bus::Pio, 0x1000, &[0; 4]));
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 2);

        // Deassign must name the same eventfd and the same match.
        assert_eq!(bus.deassign(&dm, &b), Err(Errno::ENOENT));
        assert_eq!(bus.deassign(&wild, &a), Err(Errno::ENOENT));
        bus.deassign(&dm, &a).unwrap();
        assert!(!bus.write(Bus::Mmio, 0x1000, &7u32.to_le_bytes()));
        assert_eq!(bus.len(), 2);
    }

    #[test]
    fn bus_capacity_is_bounded() {
        let mut bus = IoBus::default();
        for i in 0..MAX_PER_BUS as u64 {
            bus.assign(&Request::parse(&args(i * 8, 8, 0, 0)).unwrap(), efd())
                .unwrap();
        }
        let more = Request::parse(&args(1 << 40, 8, 0, 0)).unwrap();
        assert_eq!(bus.assign(&more, efd()), Err(Errno::ENOSPC));
        let pio = Request::parse(&args(0, 1, KVM_IOEVENTFD_FLAG_PIO, 0)).unwrap();
        bus.assign(&pio, efd()).unwrap();
    }
}
