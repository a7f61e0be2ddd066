//! The key hash: a seeded multiply-fold hash over 16-byte blocks.
//!
//! It is fast on short keys (memcached keys are 1..=250 bytes) and keyed
//! with two secret 64-bit words drawn once per process, so a client that
//! cannot observe the seed cannot precompute colliding keys. The 64-bit
//! result is split by the store: the top bits pick a shard, the low 32 bits
//! pick a bucket inside it and are kept as a tag to skip key compares.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// A keyed hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHasher {
    k0: u64,
    k1: u64,
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn read8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read4(b: &[u8]) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w) as u64
}

impl KeyHasher {
    /// A hasher with an explicit seed (tests, reproducible runs).
    pub fn with_seed(k0: u64, k1: u64) -> KeyHasher {
        // Mix the seed so that small or related seeds still give
        // unrelated keys.
        KeyHasher {
            k0: fold_mul(k0 ^ P0, k1 ^ P1) ^ k0,
            k1: fold_mul(k1 ^ P2, k0 ^ P0) ^ k1.rotate_left(29),
        }
    }

    /// The per-process hasher: seeded once from the standard library's
    /// random source (the same one `HashMap` uses).
    pub fn process() -> KeyHasher {
        static SEED: OnceLock<KeyHasher> = OnceLock::new();
        *SEED.get_or_init(|| {
            let rs = std::collections::hash_map::RandomState::new();
            let mut a = rs.build_hasher();
            a.write_u64(0x7477_696e);
            let mut b = rs.build_hasher();
            b.write_u64(0x6361_6368);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            KeyHasher::with_seed(a.finish() ^ t, b.finish() ^ (std::process::id() as u64))
        })
    }

    /// Hashes `key`.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        let len = key.len();
        let mut h = self.k0 ^ (len as u64).wrapping_mul(P0);
        let (a, b);
        if len <= 16 {
            if len >= 8 {
                a = read8(key);
                b = read8(&key[len - 8..]);
            } else if len >= 4 {
                a = read4(key);
                b = read4(&key[len - 4..]);
            } else if len > 0 {
                a = ((key[0] as u64) << 16) | ((key[len / 2] as u64) << 8) | key[len - 1] as u64;
                b = 0;
            } else {
                a = 0;
                b = 0;
            }
        } else {
            let mut rest = key;
            while rest.len() > 16 {
                h = fold_mul(read8(rest) ^ self.k1, read8(&rest[8..]) ^ h);
                rest = &rest[16..];
            }
            // The last 16 bytes of the key (overlapping the previous
            // block when the length is not a multiple of 16).
            a = read8(&key[len - 16..]);
            b = read8(&key[len - 8..]);
        }
        let h = fold_mul(a ^ self.k1 ^ P1, b ^ h ^ P2);
        fold_mul(h ^ P0, self.k0 ^ len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_per_seed_and_seed_matters() {
        let a = KeyHasher::with_seed(1, 2);
        let b = KeyHasher::with_seed(1, 3);
        assert_eq!(a.hash(b"hello"), a.hash(b"hello"));
        assert_ne!(a.hash(b"hello"), b.hash(b"hello"));
        assert_eq!(KeyHasher::process(), KeyHasher::process());
    }

    #[test]
    fn every_length_and_no_trivial_collisions() {
        let h = KeyHasher::with_seed(7, 9);
        let mut seen = HashSet::new();
        // All prefixes of a 250-byte key, keys differing in one byte, and
        // keys that differ only by trailing zero bytes.
        let base: Vec<u8> = (0..250u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=250 {
            assert!(seen.insert(h.hash(&base[..len])), "prefix {len}");
        }
        for len in [1usize, 3, 4, 7, 8, 15, 16, 17, 33, 250] {
            for pos in 0..len {
                let mut k = base[..len].to_vec();
                k[pos] ^= 1;
                assert!(seen.insert(h.hash(&k)), "flip {len} {pos}");
            }
        }
        for len in 1..40 {
            assert!(seen.insert(h.hash(&vec![0u8; len])), "zeros {len}");
        }
    }

    #[test]
    fn spreads_over_shards_and_buckets() {
        let h = KeyHasher::with_seed(11, 13);
        let mut shards = [0u32; 64];
        let mut buckets = vec![0u32; 1024];
        let n = 64 * 1024;
        for i in 0..n {
            let k = format!("key:{i}");
            let x = h.hash(k.as_bytes());
            shards[(x >> 58) as usize] += 1;
            buckets[(x as u32 & 1023) as usize] += 1;
        }
        let per = n / 64;
        for c in shards {
            assert!(c > per * 8 / 10 && c < per * 12 / 10, "shard count {c}");
        }
        for c in buckets {
            assert!(c > 20 && c < 110, "bucket count {c}");
        }
    }
}
