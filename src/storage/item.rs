//! Item layout inside a chunk, and memcached's size accounting.
//!
//! Header (34 bytes, native endian, unaligned):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..4   | LRU prev (towards the head) — free-list link when free |
//! | 4..8   | LRU next (towards the tail)                        |
//! | 8..12  | next item in the hash chain                        |
//! | 12..20 | store sequence (the CAS unique when enabled)       |
//! | 20..24 | absolute expiry, Unix seconds, 0 = never           |
//! | 24..28 | last access, Unix seconds                          |
//! | 28..32 | value length                                       |
//! | 32     | key length (1..=250)                               |
//! | 33     | bits: FETCHED, ACTIVE, HAS_FLAGS, CHAINED, STALE, INVALID, WIN_SENT |
//!
//! Then: client flags (4 bytes, only when non-zero), the first
//! continuation chunk (4 bytes, only for chained items), the key, and the
//! value (or its first part). A chained item's continuation chunks hold
//! the next chunk's ref (4 bytes) and then value bytes.
//!
//! memcached spends 48 bytes of header, 8 of CAS, a key terminator and
//! the value's CRLF (59 bytes) on every item; this header is 34 (38 with
//! flags).

pub(crate) const PREV: usize = 0;
pub(crate) const NEXT: usize = 4;
pub(crate) const HNEXT: usize = 8;
pub(crate) const SEQ: usize = 12;
pub(crate) const EXP: usize = 20;
pub(crate) const TIME: usize = 24;
pub(crate) const VLEN: usize = 28;
pub(crate) const KLEN: usize = 32;
pub(crate) const BITS: usize = 33;
pub(crate) const HDR: usize = 34;

/// The item was read at least once since it was stored.
pub(crate) const FETCHED: u8 = 1;
/// The item was read since the LRU tail walk last looked at it.
pub(crate) const ACTIVE: u8 = 2;
/// Client flags are stored (non-zero).
pub(crate) const HAS_FLAGS: u8 = 4;
/// The value continues in other chunks.
pub(crate) const CHAINED: u8 = 8;
/// Stored with a clock at or before a delayed flush that had already
/// passed: dead from the start.
pub(crate) const STALE: u8 = 16;
/// Meta protocol: the item was invalidated (`md I`, `ms I`) and is served
/// as stale (`X`) until replaced.
pub(crate) const INVALID: u8 = 32;
/// Meta protocol: a win token (`W`) was handed out for this item; later
/// readers see `Z` until it is replaced.
pub(crate) const WIN_SENT: u8 = 64;
/// Meta protocol: stored with a base64 (`b`) key; `k` returns it encoded.
pub(crate) const KEY_BINARY: u8 = 128;

/// Bytes a continuation chunk spends on its link.
pub(crate) const LINK: usize = 4;

/// Accounted size of an item, as memcached charges it and reports it in
/// `bytes`: the 48-byte item header, the 8-byte CAS when CAS is enabled,
/// the key and its terminator, 4 bytes of flags when they are non-zero,
/// and the value with its CRLF.
pub fn item_size(key_len: usize, value_len: usize, flags: u32, cas_enabled: bool) -> u64 {
    let flags_len = if flags != 0 { 4 } else { 0 };
    let cas_len = if cas_enabled { 8 } else { 0 };
    (48 + cas_len + key_len + 1 + flags_len + value_len + 2) as u64
}

/// Bytes before the key: header, flags and chain link when present.
#[inline]
pub(crate) fn key_offset(bits: u8) -> usize {
    HDR + if bits & HAS_FLAGS != 0 { 4 } else { 0 } + if bits & CHAINED != 0 { LINK } else { 0 }
}

/// Bytes an unchained item needs in one chunk.
#[inline]
pub(crate) fn footprint(key_len: usize, value_len: usize, flags: u32) -> usize {
    HDR + if flags != 0 { 4 } else { 0 } + key_len + value_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_memcached() {
        // Probed on memcached 1.6.18: `bytes` for key "z2", value "hello".
        assert_eq!(item_size(2, 5, 0, true), 66);
        assert_eq!(item_size(2, 5, 5, true), 70);
        assert_eq!(item_size(2, 5, 5, false), 62);
    }

    #[test]
    fn header_is_lean() {
        assert_eq!(footprint(11, 100, 0), 145);
        assert_eq!(key_offset(HAS_FLAGS | CHAINED), HDR + 8);
        assert_eq!(HDR, 34);
    }
}
