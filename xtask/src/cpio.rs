//! A writer for uncompressed `newc` cpio archives, the format Linux unpacks as an initramfs.
//!
//! Every entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex fields), the path
//! with a terminating NUL padded to a multiple of 4 bytes (counting the header), and the data
//! padded to a multiple of 4 bytes. The archive ends with an entry named `TRAILER!!!`.
//! Timestamps, owners and inode numbers are fixed, so the same inputs give the same bytes.

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
/// Regular file type bits of `st_mode`.
const S_IFREG: u32 = 0o100_000;
/// Symbolic link type bits of `st_mode`.
const S_IFLNK: u32 = 0o120_000;

/// Character device type bits of `st_mode`.
const S_IFCHR: u32 = 0o020_000;

/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// An in-memory `newc` archive under construction. Entries are owned by root, with mtime 0.
#[derive(Debug)]
pub struct Archive {
    /// The bytes written so far.
    buf: Vec<u8>,
    /// The inode number of the next entry.
    next_ino: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            next_ino: 1,
        }
    }

    /// Adds a directory `path` (relative, e.g. `bin`) with permission bits `perm`.
    /// Parents must be added first.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, &[]);
    }

    /// Adds a regular file `path` with permission bits `perm` and contents `data`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, data);
    }

    /// Adds a symbolic link `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes());
    }

    /// Adds a character device node `path` with device number `major:minor`.
    pub fn chardev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry_dev(path, S_IFCHR | (perm & 0o7777), (major, minor));
    }

    /// Appends the trailer and returns the finished archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(TRAILER, 0, 0, 1, 0, (0, 0));
        self.buf
    }

    /// Appends one entry with a fresh inode number.
    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let size = u32::try_from(data.len()).expect("cpio newc entries are limited to 4 GiB");
        self.header(path, ino, mode, nlink, size, (0, 0));
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// Appends a device node entry (no data) with a fresh inode number.
    fn entry_dev(&mut self, path: &str, mode: u32, rdev: (u32, u32)) {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(path, ino, mode, 1, 0, rdev);
    }

    /// Appends a header and the NUL-terminated, padded name. `rdev` is a device node's
    /// (major, minor).
    fn header(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, size: u32, rdev: (u32, u32)) {
        assert!(
            !name.is_empty() && !name.contains('\0'),
            "bad cpio name {name:?}"
        );
        let namesize = u32::try_from(name.len() + 1).expect("cpio name too long");
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Pads the archive with NULs to a multiple of 4 bytes.
    fn pad(&mut self) {
        while self.buf.len() & 3 != 0 {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Archive;

    /// One header as the 13 field values, for readable expectations.
    fn header(fields: [u32; 13]) -> Vec<u8> {
        let mut v = b"070701".to_vec();
        for f in fields {
            v.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        v
    }

    #[test]
    fn writes_exact_newc_bytes() {
        let mut a = Archive::new();
        a.dir("bin", 0o755);
        a.file("init", 0o755, b"hello");
        a.symlink("bin/sh", "busybox");
        a.chardev("dev/console", 0o600, 5, 1);
        let got = a.finish();

        let mut want = Vec::new();
        // "bin": header 110 + name 4 = 114, padded to 116.
        want.extend(header([1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0]));
        want.extend_from_slice(b"bin\0\0\0");
        // "init": 110 + 5 = 115, padded to 116; data 5 bytes padded to 8.
        want.extend(header([2, 0o100755, 0, 0, 1, 0, 5, 0, 0, 0, 0, 5, 0]));
        want.extend_from_slice(b"init\0\0");
        want.extend_from_slice(b"hello\0\0\0");
        // "bin/sh": 110 + 7 = 117, padded to 120; target 7 bytes padded to 8.
        want.extend(header([3, 0o120777, 0, 0, 1, 0, 7, 0, 0, 0, 0, 7, 0]));
        want.extend_from_slice(b"bin/sh\0\0\0\0");
        want.extend_from_slice(b"busybox\0");
        // "dev/console": 110 + 12 = 122, padded to 124; no data; rdev 5:1.
        want.extend(header([4, 0o20600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0]));
        want.extend_from_slice(b"dev/console\0\0\0");
        // Trailer: 110 + 11 = 121, padded to 124.
        want.extend(header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]));
        want.extend_from_slice(b"TRAILER!!!\0\0\0\0");

        assert_eq!(got.len() % 4, 0);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(got, want);
    }

    #[test]
    fn header_fields_are_8_hex_digits() {
        let mut a = Archive::new();
        a.file("f", 0o644, &[7; 0x1234]);
        let got = a.finish();
        assert_eq!(&got[..6], b"070701");
        let field = |i: usize| std::str::from_utf8(&got[6 + 8 * i..14 + 8 * i]).unwrap();
        assert_eq!(field(0), "00000001"); // ino
        assert_eq!(field(1), "000081a4"); // mode 0100644
        assert_eq!(field(6), "00001234"); // filesize
        assert_eq!(field(11), "00000002"); // namesize "f\0"
        // Data starts at 112 (110 + 2), already aligned; 0x1234 bytes are a multiple of 4.
        assert_eq!(&got[110..112], b"f\0");
        assert_eq!(got[112], 7);
        assert_eq!(&got[112 + 0x1234..112 + 0x1234 + 6], b"070701");
        assert!(got.ends_with(b"TRAILER!!!\0\0\0\0"));
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let got = Archive::new().finish();
        let want = concat!(
            "070701",
            "00000000", // ino
            "00000000", // mode
            "00000000", // uid
            "00000000", // gid
            "00000001", // nlink
            "00000000", // mtime
            "00000000", // filesize
            "00000000", // devmajor
            "00000000", // devminor
            "00000000", // rdevmajor
            "00000000", // rdevminor
            "0000000b", // namesize
            "00000000", // check
            "TRAILER!!!\0\0\0\0",
        );
        assert_eq!(got.len(), 124);
        assert_eq!(got, want.as_bytes());
    }
}
