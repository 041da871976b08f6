//! The system calls on KVM files, as FreeBSD performs them, for the client crate's FreeBSD
//! path: `open` of a devfs node (d_open with the file as `td_fpop`, so cdevpriv attaches to
//! it), `ioctl` as `sys_ioctl` (the BSD direction and size bits decide the kernel buffer, the
//! copyin and the copyout; the driver sees the kernel buffer), `mmap` through `fo_mmap`,
//! `close` dropping the file's table reference.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use kvmport_client::Errno;
use kvmport_client::sys::Transport;

use crate::kernel::{self, Entry, FileKind, k};
use crate::mem;

const IOC_VOID: u32 = 0x2000_0000;
const IOC_OUT: u32 = 0x4000_0000;
const IOC_IN: u32 = 0x8000_0000;
const IOCPARM_MAX: usize = 8192;

/// FreeBSD errno -> this host's.
pub fn host_errno(e: i32) -> i32 {
    match e {
        35 => libc::EAGAIN,
        11 => libc::EDEADLK,
        45 => libc::EOPNOTSUPP,
        63 => libc::ENAMETOOLONG,
        78 => libc::ENOSYS,
        84 => libc::EOVERFLOW,
        60 => libc::ETIMEDOUT,
        e => e,
    }
}

/// The harness as the client's transport.
pub struct Harness;

fn rd64(a: u64) -> u64 {
    // SAFETY: callers read the module's switch tables.
    unsafe { (a as *const u64).read() }
}

fn file_of(fd: RawFd) -> Option<(u64, FileKind)> {
    k(|k| {
        let fp = *k.fdtab.get(&fd)?;
        Some((fp, k.files.get(&fp)?.clone()))
    })
}

fn hold(fp: u64) {
    // SAFETY: f_count @4 of a live file.
    unsafe {
        let c = (fp + 4) as *mut u32;
        c.write(c.read() + 1);
    }
}

fn devsw_of(cdev: u64) -> Option<u64> {
    k(|k| k.devs.values().find(|d| d.cdev == cdev).map(|d| d.devsw))
}

impl Transport for Harness {
    fn open(&self, path: &Path) -> io::Result<OwnedFd> {
        let name = path.to_string_lossy();
        let name = name.strip_prefix("/dev/").unwrap_or(&name);
        let Some(dev) = k(|k| k.devs.get(name).cloned()) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let fp = kernel::file_new(FileKind::Cdev {
            cdev: dev.cdev,
            priv_: None,
        });
        let e = Entry::new();
        let td = kernel::curthread();
        let open = rd64(dev.devsw + 16);
        let r = if open == 0 {
            0
        } else {
            k(|k| k.cur_file = fp);
            // The module's d_open with its documented arguments.
            let r = crate::kstack::call_int(open, &[dev.cdev, 3, 0x2000, td]);
            k(|k| k.cur_file = 0);
            r
        };
        if r != 0 {
            kernel::fdrop(fp, td);
            return Err(io::Error::from_raw_os_error(host_errno(r)));
        }
        drop(e);
        // SAFETY: opens /dev/null as the descriptor that stands for this file.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        k(|k| k.fdtab.insert(fd, fp));
        // SAFETY: a new descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    unsafe fn ioctl(&self, fd: RawFd, cmd: u32, arg: *mut u8) -> Result<(), Errno> {
        let Some((fp, kind)) = file_of(fd) else {
            return Err(Errno(libc::EBADF));
        };
        let size = ((cmd >> 16) & 0x1fff) as usize;
        let dir = cmd & (IOC_VOID | IOC_OUT | IOC_IN);
        if dir == 0
            || size > IOCPARM_MAX
            || (dir & (IOC_IN | IOC_OUT) != 0 && size == 0)
            || (dir & IOC_VOID != 0 && size > 0 && size != 4)
        {
            return Err(Errno(libc::ENOTTY));
        }
        let buf = mem::kalloc(size.max(8), "ioctl buffer");
        let uarg = arg as u64;
        let mut r = 0;
        if dir & IOC_IN != 0 && size > 0 {
            r = mem::copyin(uarg, buf, size);
        } else if dir == IOC_VOID && size == 0 {
            // SAFETY: `data` points at the raw argument.
            unsafe { (buf as *mut u64).write(uarg) };
        }
        if r == 0 {
            let _e = Entry::new();
            let td = kernel::curthread();
            hold(fp);
            r = match kind {
                FileKind::Cdev { cdev, .. } => match devsw_of(cdev).map(|sw| rd64(sw + 56)) {
                    Some(f) if f != 0 => {
                        k(|k| k.cur_file = fp);
                        // The module's d_ioctl with sys_ioctl's arguments.
                        let r = crate::kstack::call_int(f, &[cdev, u64::from(cmd), buf, 3, td]);
                        k(|k| k.cur_file = 0);
                        r
                    }
                    _ => libc::ENXIO,
                },
                FileKind::Module => {
                    let f = rd64(rd64(fp + 16) + 24);
                    // The module's fo_ioctl for its own file.
                    crate::kstack::call_int(f, &[fp, u64::from(cmd), buf, 0, td])
                }
                _ => libc::ENOTTY,
            };
            kernel::fdrop(fp, td);
        }
        if r == 0 && dir & IOC_OUT != 0 && size > 0 {
            r = mem::copyout(buf, uarg, size);
        }
        mem::kfree(buf);
        if r == 0 {
            Ok(())
        } else {
            Err(Errno(host_errno(r)))
        }
    }

    unsafe fn mmap(
        &self,
        fd: RawFd,
        len: usize,
        prot: i32,
        flags: i32,
        off: i64,
    ) -> io::Result<*mut u8> {
        let Some((fp, kind)) = file_of(fd) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let f = match kind {
            FileKind::Module => rd64(rd64(fp + 16) + 104),
            _ => 0,
        };
        if f == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        let _e = Entry::new();
        let td = kernel::curthread();
        // kern_mmap's `addr` lives in kernel memory.
        let addr = mem::kalloc(8, "mmap addr");
        let size = (len as u64).div_ceil(4096) * 4096;
        hold(fp);
        // The module's fo_mmap with kern_mmap's arguments.
        let r = crate::kstack::call_int(
            f,
            &[
                fp,
                kernel::curmap(),
                addr,
                size,
                u64::from(prot as u8),
                7,
                u64::from(flags as u32),
                off as u64,
                td,
            ],
        );
        // SAFETY: the arena word allocated above.
        let at = unsafe { (addr as *const u64).read() };
        mem::kfree(addr);
        kernel::fdrop(fp, td);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(host_errno(r)));
        }
        Ok(at as *mut u8)
    }

    unsafe fn munmap(&self, addr: *mut u8, len: usize) {
        kernel::unmap(addr as u64, len);
    }

    fn close(&self, fd: RawFd) {
        if let Some(fp) = k(|k| k.fdtab.remove(&fd)) {
            let _e = Entry::new();
            kernel::fdrop(fp, kernel::curthread());
        }
    }
}
