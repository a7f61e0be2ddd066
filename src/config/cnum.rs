//! Numbers read the way memcached reads them (C `atoi`, `strtol`,
//! `strtoul`, `atof`): leading whitespace, a sign, trailing junk ignored.

// ---------------------------------------------------------------------------
// C number parsing, as memcached does it
// ---------------------------------------------------------------------------

/// Splits off C whitespace, an optional sign and the digits of `base` that
/// follow; returns (negative, digits).
pub(super) fn c_number_prefix(s: &str, base: u32) -> (bool, &str) {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .char_indices()
        .find(|(_, c)| !c.is_digit(base))
        .map_or(rest.len(), |(i, _)| i);
    (neg, &rest[..end])
}

/// C's `strtol(s, NULL, base)` on a 64-bit platform: leading whitespace,
/// optional sign, digits until the first non-digit; saturates on overflow;
/// 0 when there are no digits.
pub(super) fn strtol(s: &str, base: u32) -> i64 {
    let (neg, digits) = c_number_prefix(s, base);
    let mut v: i64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base).unwrap_or(0) as i64;
        v = match v.checked_mul(base as i64).and_then(|v| {
            if neg {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        }) {
            Some(v) => v,
            None => return if neg { i64::MIN } else { i64::MAX },
        };
    }
    v
}

/// C's `atoi`: `(int)strtol(s, NULL, 10)` (glibc), so `"64m"` is 64 and
/// `"1g"` is 1.
pub fn atoi(s: &str) -> i32 {
    strtol(s, 10) as i32
}

/// C's `atof`: the longest prefix that reads as a decimal floating-point
/// number, 0.0 when there is none.
pub fn atof(s: &str) -> f64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        mantissa_digits += j - frac_start;
        if mantissa_digits > 0 {
            i = j;
        }
    }
    if mantissa_digits == 0 {
        return 0.0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    s[..i].parse().unwrap_or(0.0)
}

/// memcached's `safe_strtoul`: the whole string must be a number that fits
/// 32 bits (trailing whitespace allowed); a leading '-' is refused.
pub(super) fn safe_strtoul(s: &str) -> Option<u32> {
    let t = s.trim_end_matches([' ', '\t', '\n', '\r']);
    let t = t.trim_start_matches([' ', '\t', '\n', '\r']);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok())
}

/// memcached's `safe_strtol`: the whole string must be a 32-bit number.
pub(super) fn safe_strtol(s: &str) -> Option<i32> {
    let t = s.trim_matches([' ', '\t', '\n', '\r']);
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i64 = body.parse().ok()?;
    i32::try_from(if neg { -v } else { v }).ok()
}

/// `-I`: a number with an optional `k`/`m` suffix (either case), as
/// memcached reads it (the number part with `atoi`).
pub(super) fn parse_item_size(s: &str) -> i64 {
    let (body, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024i64),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    // memcached multiplies in a C int; keep its 32-bit wrap-around.
    (atoi(body) as i64).wrapping_mul(mult) as i32 as i64
}
