//! incr and decr: reading a counter the way memcached does, rewriting
//! it in place when the new number fits, else storing a new item.

use super::alloc::Step;
use super::item;
use super::shard::{Shard, Validity};
use super::slabs::Ref;
use super::{ArithOutcome, Store};

impl Store {
    pub fn arith(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        let Some((h, si)) = self.locate(key) else {
            return ArithOutcome::NotFound;
        };
        self.write_with_room(
            si,
            now,
            |sh, v, res| self.arith_locked(sh, si, key, h, incr, delta, v, res),
            || ArithOutcome::OutOfMemory,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn arith_locked(
        &self,
        sh: &mut Shard,
        si: usize,
        key: &[u8],
        h: u32,
        incr: bool,
        delta: u64,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Step<ArithOutcome> {
        let Ok(idx) = sh.lookup(key, h, v) else {
            return Step::Done(ArithOutcome::NotFound);
        };
        let parsed = match sh.value_inline(idx) {
            Some(val) => parse_counter(val),
            None => parse_counter(&sh.value_vec(idx)),
        };
        let Some(current) = parsed else {
            return Step::Done(ArithOutcome::NonNumeric);
        };
        let value = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let c = sh.class_of(idx);
        if incr {
            sh.lru[c].c.incr_hits += 1;
        } else {
            sh.lru[c].c.decr_hits += 1;
        }
        let mut buf = [0u8; 20];
        let digits = format_u64(value, &mut buf);
        let old_len = sh.vlen(idx);
        if digits.len() <= old_len && !sh.is_chained(idx) {
            // memcached rewrites the value in place, space padded, when the
            // new number fits in the old length.
            let (seq, stale) = self.next_seq(v.now);
            // The rewritten counter counts as not fetched again (observed
            // with `mg <key> h` after incr/ma on 1.6.18).
            let mut b = sh.bits(idx) & !item::FETCHED;
            if stale {
                b |= item::STALE;
            }
            sh.set_bits(idx, b);
            if let Some(val) = sh.value_inline_mut(idx) {
                val[..digits.len()].copy_from_slice(digits);
                val[digits.len()..].fill(b' ');
            }
            sh.set_seq(idx, seq);
            sh.set_time(idx, v.now);
            sh.bump(idx);
            return Step::Done(ArithOutcome::Value {
                value,
                cas: self.cas_of(seq),
            });
        }
        let (flags, exptime) = (sh.flags(idx), sh.exptime(idx));
        let mut padded = digits.to_vec();
        if padded.len() < old_len {
            padded.resize(old_len, b' ');
        }
        let (head, conts) = match self.get_chunks(sh, si, (key.len(), padded.len(), flags), v, res)
        {
            Ok(x) => x,
            Err(c) => return Step::Need(c),
        };
        if sh.find(key, h) != Some(idx) {
            res.push(head);
            res.extend(conts);
            return Step::Done(ArithOutcome::NotFound);
        }
        let (seq, stale) = self.next_seq(v.now);
        sh.write_item(head, &conts, seq, exptime, v.now, flags, key, &[&padded]);
        if stale {
            let b = sh.bits(head);
            sh.set_bits(head, b | item::STALE);
        }
        sh.replace(idx, head);
        Step::Done(ArithOutcome::Value {
            value,
            cas: self.cas_of(seq),
        })
    }
}

/// Writes `v` in decimal into `buf`; returns the digits.
fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads a counter the way memcached does (strtoull plus its checks):
/// leading whitespace, an optional sign, decimal digits that fit in 64
/// bits, then the end of the value, a whitespace byte or a NUL. A negative
/// number is refused unless it wraps to a value below 2^63, as strtoull
/// does. An empty value is not a number.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < value.len() && is_c_space(value[i]) {
        i += 1;
    }
    let neg = match value.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: u64 = 0;
    while let Some(&b) = value.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        i += 1;
    }
    if i == start {
        return None;
    }
    match value.get(i) {
        None => {}
        Some(&b) if b == 0 || is_c_space(b) => {}
        Some(_) => return None,
    }
    let v = if neg { n.wrapping_neg() } else { n };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}
