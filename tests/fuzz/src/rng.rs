//! A small deterministic PRNG (SplitMix64) and the "interesting value" generators.

/// SplitMix64: 64 bits of state, good enough statistics for fuzzing, no dependencies.
pub struct Rng(u64);

/// Values that sit on common boundaries (sizes, counts, sign bits, address-space edges).
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x101,
    0xfff,
    0x1000,
    0x1001,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0xfee0_0000,
    0xffff_f000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_8000_0000_0000,
    0x0000_7fff_ffff_f000,
    0x000f_ffff_ffff_f000,
    u64::MAX - 0xfff,
    u64::MAX - 1,
    u64::MAX,
];

/// Element counts near the limits KVM checks (`nent`, `nmsrs`, `nr`, ...).
const COUNTS: &[u32] = &[
    0,
    1,
    2,
    3,
    16,
    63,
    64,
    80,
    100,
    255,
    256,
    257,
    1023,
    1024,
    4095,
    4096,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX - 1,
    u32::MAX,
];

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// Uniform index into a collection of `n` elements (`n` > 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, s: &[T]) -> T {
        s[self.index(s.len())]
    }

    /// An integer argument: a boundary value, a small number or random bits.
    pub fn value(&mut self) -> u64 {
        match self.below(4) {
            0 | 1 => self.pick(INTERESTING),
            2 => self.below(0x400),
            _ => self.next(),
        }
    }

    /// An element count near a limit, or a small one.
    pub fn count(&mut self) -> u32 {
        if self.chance(1, 2) {
            self.pick(COUNTS)
        } else {
            self.below(300) as u32
        }
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A well-mixed seed for child number `n` of a run seeded with `seed`.
pub fn child_seed(seed: u64, n: u64) -> u64 {
    let mut r = Rng::new(seed.wrapping_add(n.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    r.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..1000).all(|_| a.next() == b.next()));
        assert_ne!(Rng::new(1).next(), Rng::new(2).next());
        assert_eq!(child_seed(7, 3), child_seed(7, 3));
        assert_ne!(child_seed(7, 3), child_seed(7, 4));
    }

    #[test]
    fn bounds() {
        let mut r = Rng::new(9);
        for n in 1..100 {
            assert!(r.below(n) < n);
        }
        assert_eq!(r.below(0), 0);
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
