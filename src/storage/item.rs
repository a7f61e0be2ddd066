//! One item = one heap allocation: a small fixed header, then the key, then
//! the value.
//!
//! Header layout (little endian, 22 bytes):
//!
//! | bytes  | field                                        |
//! |--------|----------------------------------------------|
//! | 0..8   | store sequence (the CAS unique when enabled) |
//! | 8..12  | absolute expiry, Unix seconds, 0 = never     |
//! | 12..16 | time of the last store, Unix seconds         |
//! | 16..20 | client flags                                 |
//! | 20     | key length (1..=250)                         |
//! | 21     | bits: FETCHED, ACTIVE                        |

pub(crate) const HDR: usize = 22;

/// The item was read at least once since it was stored.
pub(crate) const FETCHED: u8 = 1;
/// The item was read since the LRU tail walk last looked at it.
pub(crate) const ACTIVE: u8 = 2;

/// Accounted size of an item, as memcached charges it against `-m` and
/// reports it in `bytes`: the 48-byte item header, the 8-byte CAS when CAS
/// is enabled, the key and its terminator, 4 bytes of flags when they are
/// non-zero, and the value with its CRLF.
pub fn item_size(key_len: usize, value_len: usize, flags: u32, cas_enabled: bool) -> u64 {
    let flags_len = if flags != 0 { 4 } else { 0 };
    let cas_len = if cas_enabled { 8 } else { 0 };
    (48 + cas_len + key_len + 1 + flags_len + value_len + 2) as u64
}

pub(crate) struct Item(Box<[u8]>);

impl Item {
    /// Builds an item whose value is the concatenation of `parts`.
    /// `key` must be 1..=255 bytes (the store checks it).
    pub(crate) fn new(
        seq: u64,
        exptime: u32,
        time: u32,
        flags: u32,
        key: &[u8],
        parts: &[&[u8]],
    ) -> Item {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        let mut b = Vec::with_capacity(HDR + key.len() + vlen);
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&exptime.to_le_bytes());
        b.extend_from_slice(&time.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b.push(key.len() as u8);
        b.push(0);
        b.extend_from_slice(key);
        for p in parts {
            b.extend_from_slice(p);
        }
        Item(b.into_boxed_slice())
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.0[at..at + 4]);
        u32::from_le_bytes(w)
    }

    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[0..8]);
        u64::from_le_bytes(w)
    }

    #[inline]
    pub(crate) fn set_seq(&mut self, seq: u64) {
        self.0[0..8].copy_from_slice(&seq.to_le_bytes());
    }

    #[inline]
    pub(crate) fn exptime(&self) -> u32 {
        self.u32_at(8)
    }

    #[inline]
    pub(crate) fn set_exptime(&mut self, exptime: u32) {
        self.0[8..12].copy_from_slice(&exptime.to_le_bytes());
    }

    #[inline]
    pub(crate) fn time(&self) -> u32 {
        self.u32_at(12)
    }

    #[inline]
    pub(crate) fn set_time(&mut self, time: u32) {
        self.0[12..16].copy_from_slice(&time.to_le_bytes());
    }

    #[inline]
    pub(crate) fn flags(&self) -> u32 {
        self.u32_at(16)
    }

    #[inline]
    fn key_len(&self) -> usize {
        self.0[20] as usize
    }

    #[inline]
    pub(crate) fn bits(&self) -> u8 {
        self.0[21]
    }

    #[inline]
    pub(crate) fn set_bits(&mut self, bits: u8) {
        self.0[21] = bits;
    }

    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.0[HDR..HDR + self.key_len()]
    }

    #[inline]
    pub(crate) fn value(&self) -> &[u8] {
        &self.0[HDR + self.key_len()..]
    }

    #[inline]
    pub(crate) fn value_mut(&mut self) -> &mut [u8] {
        let at = HDR + self.key_len();
        &mut self.0[at..]
    }

    /// Bytes of the allocation (header, key and value).
    #[inline]
    pub(crate) fn raw_len(&self) -> usize {
        self.0.len()
    }

    /// Accounted size (see [`item_size`]).
    #[inline]
    pub(crate) fn size(&self, cas_enabled: bool) -> u64 {
        item_size(
            self.key_len(),
            self.value().len(),
            self.flags(),
            cas_enabled,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let mut it = Item::new(u64::MAX - 3, 7, 9, 0xdead_beef, b"key", &[b"val", b"ue"]);
        assert_eq!(it.seq(), u64::MAX - 3);
        assert_eq!(it.exptime(), 7);
        assert_eq!(it.time(), 9);
        assert_eq!(it.flags(), 0xdead_beef);
        assert_eq!(it.key(), b"key");
        assert_eq!(it.value(), b"value");
        assert_eq!(it.bits(), 0);
        it.set_bits(FETCHED | ACTIVE);
        it.set_seq(5);
        it.set_exptime(11);
        it.set_time(12);
        it.value_mut()[0] = b'V';
        assert_eq!(
            (it.seq(), it.exptime(), it.time(), it.bits()),
            (5, 11, 12, FETCHED | ACTIVE)
        );
        assert_eq!(it.value(), b"Value");
        assert_eq!(it.key(), b"key");
        let empty = Item::new(1, 0, 0, 0, &[b'k'; 250], &[]);
        assert_eq!(empty.key().len(), 250);
        assert_eq!(empty.value(), b"");
    }

    #[test]
    fn sizes_match_memcached() {
        // Probed on memcached 1.6.18: `bytes` for key "z2", value "hello".
        assert_eq!(item_size(2, 5, 0, true), 66);
        assert_eq!(item_size(2, 5, 5, true), 70);
        assert_eq!(item_size(2, 5, 5, false), 62);
        let it = Item::new(1, 0, 0, 5, b"z2", &[b"hello"]);
        assert_eq!(it.size(true), 70);
    }
}
