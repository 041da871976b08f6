/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * kvmport on FreeBSD: how a C VMM issues KVM commands.
 *
 * FreeBSD's ioctl(2) reinterprets the direction and size bits of Linux-encoded KVM
 * command numbers before any driver sees them, and cannot return a positive value (such as
 * a new fd). kvmport.ko therefore takes every KVM command inside one wrapper command,
 * KVMPORT_IOCTL, on /dev/kvm, VM and vCPU fds alike. Command numbers and structures are
 * Linux's <linux/kvm.h>; mmap of a vCPU fd is unchanged.
 *
 *     int vm = kvmport_ioctl(kvm_fd, KVM_CREATE_VM, 0);
 *
 * kvmport_ioctl returns what Linux's ioctl would: the result (>= 0), or -1 with errno set
 * (Linux error numbers translated to FreeBSD's).
 */
#ifndef KVMPORT_FREEBSD_H
#define KVMPORT_FREEBSD_H

#include <sys/types.h>
#include <sys/ioccom.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <stdint.h>

struct kvmport_ioctl {
	uint32_t linux_cmd; /* the Linux KVM command number */
	uint32_t pad;       /* zero */
	uint64_t arg;       /* the Linux argument: an integer or a user address */
	int64_t ret;        /* out: the Linux result, or -errno (Linux numbering) */
};

#define KVMPORT_IOCTL _IOWR('k', 1, struct kvmport_ioctl)

_Static_assert(sizeof(struct kvmport_ioctl) == 24, "struct kvmport_ioctl is 24 bytes");
_Static_assert(KVMPORT_IOCTL == 0xc0186b01UL, "KVMPORT_IOCTL is _IOWR('k', 1, 24 bytes)");

static inline int
kvmport_errno_from_linux(int e)
{
	switch (e) {
	case 11: return EAGAIN;
	case 35: return EDEADLK;
	case 36: return ENAMETOOLONG;
	case 38: return ENOSYS;
	case 75: return EOVERFLOW;
	case 95: return EOPNOTSUPP;
	case 110: return ETIMEDOUT;
	default: return e; /* 1..34 are the same on both */
	}
}

static inline long
kvmport_ioctl(int fd, unsigned long linux_cmd, unsigned long arg)
{
	struct kvmport_ioctl req = { (uint32_t)linux_cmd, 0, arg, 0 };

	if (ioctl(fd, KVMPORT_IOCTL, &req) == -1)
		return -1;
	if (req.ret < 0) {
		errno = kvmport_errno_from_linux((int)-req.ret);
		return -1;
	}
	return (long)req.ret;
}

#endif /* KVMPORT_FREEBSD_H */
