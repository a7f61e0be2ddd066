//! The zero-copy request parser.
//!
//! `parse(buf, limits)` looks at the start of `buf` and returns one of:
//! - `Complete { cmd, consumed }`: a whole request (line and, for storage
//!   commands, its data block) is at the start of `buf`;
//! - `Incomplete`: more bytes are needed (normal, not an error);
//! - `Invalid { error, consumed, recovery, silent }`: a request memcached
//!   refuses; `consumed` bytes are dropped, the reply is sent unless `silent`
//!   (noreply), then `recovery` applies.
//!
//! Line limits are enforced before the newline arrives, and the outcome
//! never depends on how the bytes were split into reads.
//!
//! Reading follows memcached 1.6.18 (checked against the real server; the
//! tests quote what it answered): only `' '` separates tokens, runs of
//! spaces and leading/trailing spaces are ignored, one `\r` before the
//! `\n` is dropped and a bare `\n` ends a line; numbers are read the way
//! C's `strtol`/`strtoul`/`strtoull` read them (leading white space, a
//! sign, trailing white space accepted; 32-bit fields keep the low 32
//! bits); `noreply` is recognised only as the last token and, once seen,
//! silences the error replies of that request too; a wrong token count is
//! always answered with `ERROR`.
//!
//! Deliberate divergences from memcached (each has a test):
//! - flags >= 2^32 are refused with `CLIENT_ERROR bad command line format`
//!   (memcached stores the low 32 bits);
//! - keys with control bytes (< 0x20, 0x7f, NUL included) are refused with
//!   `CLIENT_ERROR bad command line format` (memcached accepts them, and
//!   cuts a line at a NUL);
//! - a refused storage line whose `<bytes>` is a usable length has its
//!   data block swallowed instead of run as commands;
//! - the newline must come within the first LINE_MAX_LEN + 1 bytes
//!   whatever the reads (memcached only checks when a read leaves more
//!   than 2048 bytes without a newline, so a longer line that arrives in
//!   one piece is served there);
//! - long `gat`/`gats` lines get the `get` allowance, and every retrieval
//!   line is bounded by GET_LINE_MAX_LEN (memcached: unbounded `get`).

use super::command::{
    Args, CachedumpArgs, ClassSet, Command, CrawlTarget, Float, Keys, Num, StoreVerb, MAX_ARGS,
};
use super::error::{ProtocolError, Recovery};
use super::meta::{self, MetaLine};
use super::{GET_LINE_MAX_LEN, KEY_MAX_LEN, LINE_MAX_LEN};

/// Limits the parser enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `-I`: largest item, header included.
    pub item_size_max: usize,
    /// `-C` turns CAS off, which makes the item header 8 bytes smaller.
    pub cas_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            item_size_max: 1024 * 1024,
            cas_enabled: true,
        }
    }
}

impl Limits {
    /// memcached's per-item overhead counted against `-I`: a 48-byte header,
    /// the key's terminating NUL, the value's `\r\n` and 8 bytes of CAS.
    pub fn item_overhead(&self) -> usize {
        if self.cas_enabled {
            59
        } else {
            51
        }
    }

    /// Largest value accepted for a key of `key_len` bytes (memcached:
    /// `-I` minus key length minus 59 with CAS on).
    pub fn max_value_len(&self, key_len: usize) -> usize {
        self.item_size_max
            .saturating_sub(key_len + self.item_overhead())
    }

    /// Largest value accepted for a key of `key_len` bytes stored with
    /// `flags`: memcached keeps non-zero client flags in 4 extra bytes of
    /// the item, so the limit is 4 bytes lower then (observed on 1.6.18
    /// with `-I 1m`, key `k`: flags 0 -> 1048516 stored, 1048517 too
    /// large; flags 1 -> 1048512 stored, 1048513 too large).
    pub fn max_value_len_for(&self, key_len: usize, flags: u32) -> usize {
        let flags_len = if flags == 0 { 0 } else { 4 };
        self.item_size_max
            .saturating_sub(key_len + self.item_overhead() + flags_len)
    }
}

/// Result of one parse step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Complete {
        cmd: Command<'a>,
        consumed: usize,
    },
    Incomplete,
    Invalid {
        error: ProtocolError,
        consumed: usize,
        recovery: Recovery,
        /// true when the request carried `noreply` and memcached sends
        /// nothing for this error.
        silent: bool,
        /// For a `set` refused as too large: the key whose old item
        /// memcached unlinks (so a failed set never leaves stale data).
        unlink: Option<&'a [u8]>,
    },
}

/// Parses the request at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let nl = match find_newline(buf) {
        Ok(nl) => nl,
        Err(NoLine::Incomplete) => return Parsed::Incomplete,
        Err(NoLine::TooLong(consumed)) => return line_too_long(consumed),
    };
    let consumed = nl + 1;
    let mut line = &buf[..nl];
    // One `\r` before the `\n` is dropped; a bare `\n` also ends a line
    // (observed: `get a\n` is answered like `get a\r\n`).
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    parse_line(buf, line, consumed, limits)
}

/// Why there is no line to parse yet.
enum NoLine {
    Incomplete,
    /// Over the limit: close after dropping this many bytes.
    TooLong(usize),
}

/// Index of the `\n` ending the first line, or the verdict when there is
/// none yet. Only the bytes up to fixed offsets are looked at, so the
/// outcome never depends on how the input was split into reads.
fn find_newline(buf: &[u8]) -> Result<usize, NoLine> {
    // A line may hold LINE_MAX_LEN bytes before its `\n`: memcached closes
    // the connection once more than 2048 bytes are buffered without a
    // newline.
    let window = &buf[..buf.len().min(LINE_MAX_LEN + 1)];
    if let Some(i) = memchr::memchr(b'\n', window) {
        return Ok(i);
    }
    if buf.len() <= LINE_MAX_LEN {
        return Err(NoLine::Incomplete);
    }
    if !is_retrieval_start(buf) {
        return Err(NoLine::TooLong(LINE_MAX_LEN + 1));
    }
    let end = buf.len().min(GET_LINE_MAX_LEN + 1);
    match memchr::memchr(b'\n', &buf[LINE_MAX_LEN + 1..end]) {
        Some(i) => Ok(LINE_MAX_LEN + 1 + i),
        None if buf.len() <= GET_LINE_MAX_LEN => Err(NoLine::Incomplete),
        None => Err(NoLine::TooLong(GET_LINE_MAX_LEN + 1)),
    }
}

/// Whether a long line may be a multi-key retrieval: at most 100 leading
/// spaces, then `get `, `gets ` (as memcached), `gat ` or `gats ` (ours:
/// memcached closes long `gat` lines, we treat all four alike).
fn is_retrieval_start(buf: &[u8]) -> bool {
    let spaces = buf.iter().take(101).take_while(|&&b| b == b' ').count();
    if spaces > 100 {
        return false;
    }
    let rest = &buf[spaces..];
    rest.starts_with(b"get ")
        || rest.starts_with(b"gets ")
        || rest.starts_with(b"gat ")
        || rest.starts_with(b"gats ")
}

fn line_too_long<'a>(consumed: usize) -> Parsed<'a> {
    Parsed::Invalid {
        error: ProtocolError::LineTooLong,
        consumed,
        recovery: Recovery::Close,
        silent: false,
        unlink: None,
    }
}

fn invalid<'a>(error: ProtocolError, consumed: usize, silent: bool) -> Parsed<'a> {
    Parsed::Invalid {
        error,
        consumed,
        recovery: Recovery::Continue,
        silent,
        unlink: None,
    }
}

/// `ERROR`, always sent (noreply is not looked at before the token count).
fn unknown<'a>(consumed: usize) -> Parsed<'a> {
    invalid(ProtocolError::UnknownCommand, consumed, false)
}

fn complete(cmd: Command<'_>, consumed: usize) -> Parsed<'_> {
    Parsed::Complete { cmd, consumed }
}

/// The first space-separated token of `s` and what follows it.
#[inline]
fn next_token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = s.iter().position(|&b| b != b' ')?;
    let s = &s[start..];
    let end = memchr::memchr(b' ', s).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Most arguments a fixed-arity command takes (`cas` with `noreply`: 6).
const MAX_FIXED: usize = 6;

/// The arguments after the verb, split on spaces (only `' '` separates
/// tokens; tabs and other bytes belong to the token, as in memcached).
struct Toks<'a> {
    t: [&'a [u8]; MAX_FIXED],
    /// Number of arguments; `MAX_FIXED + 1` means "more than MAX_FIXED".
    n: usize,
}

impl<'a> Toks<'a> {
    #[inline]
    fn new(rest: &'a [u8]) -> Self {
        let mut t: [&'a [u8]; MAX_FIXED] = [&[]; MAX_FIXED];
        let mut n = 0;
        let mut i = 0;
        let len = rest.len();
        while i < len {
            if rest[i] == b' ' {
                i += 1;
                continue;
            }
            let start = i;
            while i < len && rest[i] != b' ' {
                i += 1;
            }
            if n == MAX_FIXED {
                n += 1;
                break;
            }
            t[n] = &rest[start..i];
            n += 1;
        }
        Toks { t, n }
    }

    /// memcached's `noreply` test: the last token is exactly `noreply`.
    #[inline]
    fn noreply(&self) -> bool {
        self.n >= 1 && self.n <= MAX_FIXED && self.t[self.n - 1] == b"noreply"
    }
}

fn parse_line<'a>(buf: &'a [u8], line: &'a [u8], consumed: usize, limits: &Limits) -> Parsed<'a> {
    let (verb, rest) = match next_token(line) {
        Some(v) => v,
        None => return unknown(consumed),
    };
    // No command is shorter than two bytes (memcached answers ERROR).
    if verb.len() < 2 {
        return unknown(consumed);
    }
    match verb {
        b"get" | b"bget" => parse_get(rest, false, false, consumed),
        b"gets" => parse_get(rest, true, false, consumed),
        b"gat" => parse_get(rest, false, true, consumed),
        b"gats" => parse_get(rest, true, true, consumed),
        b"set" => parse_store(buf, StoreVerb::Set, rest, consumed, limits),
        b"add" => parse_store(buf, StoreVerb::Add, rest, consumed, limits),
        b"replace" => parse_store(buf, StoreVerb::Replace, rest, consumed, limits),
        b"append" => parse_store(buf, StoreVerb::Append, rest, consumed, limits),
        b"prepend" => parse_store(buf, StoreVerb::Prepend, rest, consumed, limits),
        b"cas" => parse_store(buf, StoreVerb::Cas, rest, consumed, limits),
        b"delete" => parse_delete(rest, consumed),
        b"incr" => parse_arith(rest, true, consumed),
        b"decr" => parse_arith(rest, false, consumed),
        b"touch" => parse_touch(rest, consumed),
        b"flush_all" => parse_flush_all(rest, consumed),
        b"version" => complete(Command::Version, consumed),
        b"quit" => complete(Command::Quit, consumed),
        b"verbosity" => parse_verbosity(rest, consumed),
        b"cache_memlimit" => parse_memlimit(rest, consumed),
        b"shutdown" => parse_shutdown(rest, consumed),
        b"stats" => parse_stats(rest, consumed),
        b"slabs" => parse_slabs(rest, consumed),
        b"lru_crawler" => parse_lru_crawler(rest, consumed),
        b"lru" => parse_lru(rest, consumed),
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => {
            parse_meta(buf, verb, rest, consumed, limits)
        }
        _ => unknown_or_hangup(verb, line, consumed),
    }
}

/// An unknown verb gets `ERROR`, except that a line whose last token
/// starts with `HTTP/` and whose verb memcached does not dispatch on its
/// first letter closes the connection without a reply (observed:
/// `GET / HTTP/1.0` and `zz HTTP/1.0` close; `gxt / HTTP/1.0`,
/// `m HTTP/1.0`, `foo HTTP/ x` and `foo http/1.0` get `ERROR`).
fn unknown_or_hangup<'a>(verb: &[u8], line: &[u8], consumed: usize) -> Parsed<'a> {
    let first = verb[0];
    let dispatched = matches!(first, b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't')
        || (first == b'm' && verb.len() == 2)
        || matches!(
            verb,
            b"replace"
                | b"prepend"
                | b"bget"
                | b"flush_all"
                | b"version"
                | b"quit"
                | b"lru_crawler"
                | b"watch"
                | b"verbosity"
                | b"lru"
                | b"extstore"
                | b"refresh_certs"
        );
    // memcached's tokenizer keeps 23 tokens; the "last" one is the 23rd
    // when the line has more.
    let mut last: &[u8] = verb;
    let mut count = 0;
    let mut rest = line;
    while count < 23 {
        match next_token(rest) {
            Some((tok, after)) => {
                last = tok;
                rest = after;
                count += 1;
            }
            None => break,
        }
    }
    if verb == b"extstore" && count >= 2 {
        // extstore looks for `noreply` before refusing its arguments
        // (observed: `extstore x noreply` answers nothing).
        return invalid(ProtocolError::UnknownCommand, consumed, last == b"noreply");
    }
    if !dispatched && last.starts_with(b"HTTP/") {
        return Parsed::Invalid {
            error: ProtocolError::Hangup,
            consumed,
            recovery: Recovery::Close,
            silent: false,
            unlink: None,
        };
    }
    unknown(consumed)
}

/// Whether every space-separated key of `raw` is at most KEY_MAX_LEN long.
#[inline]
fn keys_fit(raw: &[u8]) -> bool {
    if raw.len() <= KEY_MAX_LEN {
        return true;
    }
    let mut rest = raw;
    loop {
        match memchr::memchr(b' ', rest) {
            Some(i) => {
                if i > KEY_MAX_LEN {
                    return false;
                }
                rest = &rest[i + 1..];
            }
            None => return rest.len() <= KEY_MAX_LEN,
        }
    }
}

/// A key as stored: 1..=250 bytes, no space (guaranteed by the
/// tokenizer), no control byte. memcached accepts control bytes in keys;
/// we refuse them with `CLIENT_ERROR bad command line format` (deliberate
/// divergence: such keys cannot be written back by `VALUE` lines safely).
#[inline]
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX_LEN && !key.iter().any(|&b| is_control(b))
}

#[inline]
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// `isspace` in the C locale.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The C library's view of a decimal number as memcached reads it with
/// `strtol`/`strtoul`/`strtoull`: leading white space skipped, an optional
/// sign, at least one digit, and then either the end of the token or a
/// white-space byte (whatever follows it is ignored: `1\tz` reads as 1).
/// Returns the sign and the magnitude; `None` for no digits, trailing
/// junk or a magnitude beyond 64 bits (ERANGE).
fn c_number(tok: &[u8]) -> Option<(bool, u64)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        neg = tok[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut mag: u64 = 0;
    let mut overflow = false;
    while i < tok.len() && tok[i].is_ascii_digit() {
        match mag
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(tok[i] - b'0')))
        {
            Some(m) => mag = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || overflow {
        return None;
    }
    if i < tok.len() && !is_c_space(tok[i]) {
        return None;
    }
    Some((neg, mag))
}

/// memcached's `safe_strtoul`/`safe_strtoull` (64-bit): a negative number
/// is refused unless its two's complement is below 2^63 (`-0` is 0;
/// `-18446744073709551615` is 1).
fn c_strtoull(tok: &[u8]) -> Option<u64> {
    let (neg, mag) = c_number(tok)?;
    let v = if neg { mag.wrapping_neg() } else { mag };
    if neg && (v as i64) < 0 {
        None
    } else {
        Some(v)
    }
}

/// memcached's `safe_strtol`: a 64-bit `strtol` whose result is then
/// truncated to 32 bits without a range check (observed: exptime
/// 2147483648 and `flush_all 99999999999` are accepted; `<bytes>` given
/// as 4294967297 or -4294967295 means 1).
fn c_strtol32(tok: &[u8]) -> Option<i32> {
    let (neg, mag) = c_number(tok)?;
    let v: i64 = if neg {
        if mag > 1u64 << 63 {
            return None;
        }
        (mag as i64).wrapping_neg()
    } else {
        i64::try_from(mag).ok()?
    };
    Some(v as i32)
}

/// [`c_strtol32`] for the meta parser.
pub(crate) fn c_strtol32_pub(tok: &[u8]) -> Option<i32> {
    c_strtol32(tok)
}

/// [`c_strtoull`] for the meta parser.
pub(crate) fn c_strtoull_pub(tok: &[u8]) -> Option<u64> {
    c_strtoull(tok)
}

/// A meta line (`mg ms md ma mn me`) and, for `ms`, its data block.
fn parse_meta<'a>(
    buf: &'a [u8],
    verb: &[u8],
    rest: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let Some(line) = meta::parse_meta_line(verb, rest) else {
        return unknown(consumed);
    };
    match line {
        MetaLine::Done(cmd) => complete(cmd, consumed),
        MetaLine::Error(error, swallow) => Parsed::Invalid {
            error,
            consumed,
            recovery: meta::recovery(swallow),
            silent: false,
            unlink: None,
        },
        MetaLine::NeedData(mut cmd, vlen) => {
            let mut kbuf = [0u8; KEY_MAX_LEN];
            let klen = cmd.key_bytes(&mut kbuf).map_or(cmd.key.len(), |k| k.len());
            if vlen > limits.max_value_len_for(klen, cmd.flags.client_flags) {
                // Like `set`, a refused `ms` in set mode drops the old
                // item (observed). A base64 key is not in the buffer as
                // stored, so its old item stays (divergence).
                let set_mode = cmd.flags.set_mode() == Some(meta::SetMode::Set);
                return Parsed::Invalid {
                    error: ProtocolError::TooLarge,
                    consumed,
                    recovery: Recovery::Swallow(vlen + 2),
                    silent: false,
                    unlink: (set_mode && !cmd.flags.base64).then_some(cmd.key),
                };
            }
            let end = consumed + vlen + 2;
            if buf.len() < end {
                return Parsed::Incomplete;
            }
            if &buf[end - 2..end] != b"\r\n" {
                return invalid(ProtocolError::BadDataChunk, end, false);
            }
            cmd.data = &buf[consumed..end - 2];
            complete(Command::Meta(cmd), end)
        }
    }
}

fn parse_get(rest: &[u8], with_cas: bool, touch: bool, consumed: usize) -> Parsed<'_> {
    let (exptime, area) = if touch {
        let Some((tok, after)) = next_token(rest) else {
            return unknown(consumed);
        };
        match c_strtol32(tok) {
            Some(e) => (i64::from(e), after),
            None => return invalid(ProtocolError::InvalidExptime, consumed, false),
        }
    } else {
        (0, rest)
    };
    // Trim the spaces around the key list, then check it: no control byte
    // anywhere (a branch-free scan the compiler vectorises) and no key
    // over KEY_MAX_LEN (a short key list is its own proof). memcached
    // drops every reply already built for the line when a key is too long
    // and sends only the error (observed: `get a <251 bytes> a` ->
    // CLIENT_ERROR alone), so refusing the whole line is exact.
    let first = area.iter().position(|&b| b != b' ');
    let raw: &[u8] = match first {
        None => {
            // `get` needs a key; `gat <exptime>` alone answers END
            // (observed).
            if !touch {
                return unknown(consumed);
            }
            &[]
        }
        Some(first) => {
            let last = area
                .iter()
                .rposition(|&b| b != b' ')
                .map_or(first, |l| l + 1);
            &area[first..last]
        }
    };
    if raw.iter().fold(false, |acc, &b| acc | is_control(b)) || !keys_fit(raw) {
        return invalid(ProtocolError::BadCommandLine, consumed, false);
    }
    let keys = Keys::from_validated(raw);
    let cmd = if touch {
        Command::Gat {
            exptime,
            keys,
            with_cas,
        }
    } else {
        Command::Get { keys, with_cas }
    };
    complete(cmd, consumed)
}

fn parse_store<'a>(
    buf: &'a [u8],
    verb: StoreVerb,
    rest: &'a [u8],
    consumed: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let a = Toks::new(rest);
    let is_cas = verb == StoreVerb::Cas;
    let base = if is_cas { 5 } else { 4 };
    if a.n != base && a.n != base + 1 {
        return unknown(consumed);
    }
    // The extra token is ignored unless it is `noreply` (observed:
    // `set c 0 0 1 junk` stores and answers STORED).
    let noreply = a.noreply();
    let key = a.t[0];
    // memcached refuses <bytes> below 0 or above INT_MAX - 2.
    let vlen = c_strtol32(a.t[3])
        .filter(|v| (0..=i32::MAX - 2).contains(v))
        .map(|v| v as usize);
    // Deliberate divergence: memcached runs the data block of a refused
    // line as commands (`CLIENT_ERROR ...` then `ERROR`); when <bytes> is
    // a usable length we drop the block instead.
    let reject = |error| Parsed::Invalid {
        error,
        consumed,
        recovery: match vlen {
            Some(v) => Recovery::Swallow(v + 2),
            None => Recovery::Continue,
        },
        silent: noreply,
        unlink: None,
    };
    if !valid_key(key) {
        return reject(ProtocolError::BadCommandLine);
    }
    // Deliberate divergence: flags >= 2^32 are refused (memcached keeps
    // the low 32 bits: `set c 4294967296 0 1` stores flags 0).
    let flags = match c_strtoull(a.t[1]).and_then(|f| u32::try_from(f).ok()) {
        Some(f) => f,
        None => return reject(ProtocolError::BadCommandLine),
    };
    let Some(exptime) = c_strtol32(a.t[2]) else {
        return reject(ProtocolError::BadCommandLine);
    };
    let Some(vlen) = vlen else {
        return reject(ProtocolError::BadCommandLine);
    };
    let cas_unique = if is_cas {
        match c_strtoull(a.t[4]) {
            Some(c) => c,
            None => return reject(ProtocolError::BadCommandLine),
        }
    } else {
        0
    };
    if vlen > limits.max_value_len_for(key.len(), flags) {
        return Parsed::Invalid {
            error: ProtocolError::TooLarge,
            consumed,
            recovery: Recovery::Swallow(vlen + 2),
            silent: noreply,
            unlink: if verb == StoreVerb::Set {
                Some(key)
            } else {
                None
            },
        };
    }
    let end = consumed + vlen + 2;
    if buf.len() < end {
        return Parsed::Incomplete;
    }
    if &buf[end - 2..end] != b"\r\n" {
        // The whole block is dropped; what follows is parsed as the next
        // request (observed: `set c 0 0 3\r\nabcde\r\n` answers
        // `CLIENT_ERROR bad data chunk` then `ERROR` for the empty line).
        return invalid(ProtocolError::BadDataChunk, end, noreply);
    }
    complete(
        Command::Store {
            verb,
            key,
            flags,
            exptime: i64::from(exptime),
            data: &buf[consumed..end - 2],
            cas_unique,
            noreply,
        },
        end,
    )
}

fn parse_delete(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n < 1 || a.n > 3 {
        return unknown(consumed);
    }
    let key = a.t[0];
    let mut noreply = false;
    if a.n > 1 {
        // Legacy form: `delete <key> 0 [noreply]`.
        let zero = a.t[1] == b"0";
        noreply = a.noreply();
        let ok = (a.n == 2 && (zero || noreply)) || (a.n == 3 && zero && noreply);
        if !ok {
            return invalid(ProtocolError::DeleteUsage, consumed, noreply);
        }
    }
    if !valid_key(key) {
        return invalid(ProtocolError::BadCommandLine, consumed, noreply);
    }
    complete(Command::Delete { key, noreply }, consumed)
}

fn parse_arith(rest: &[u8], incr: bool, consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n != 2 && a.n != 3 {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    let key = a.t[0];
    if !valid_key(key) {
        return invalid(ProtocolError::BadCommandLine, consumed, noreply);
    }
    let Some(delta) = c_strtoull(a.t[1]) else {
        return invalid(ProtocolError::InvalidDelta, consumed, noreply);
    };
    complete(
        Command::Arith {
            key,
            delta,
            incr,
            noreply,
        },
        consumed,
    )
}

fn parse_touch(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n != 2 && a.n != 3 {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    let key = a.t[0];
    if !valid_key(key) {
        return invalid(ProtocolError::BadCommandLine, consumed, noreply);
    }
    let Some(exptime) = c_strtol32(a.t[1]) else {
        return invalid(ProtocolError::InvalidExptime, consumed, noreply);
    };
    complete(
        Command::Touch {
            key,
            exptime: i64::from(exptime),
            noreply,
        },
        consumed,
    )
}

fn parse_flush_all(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n > 2 {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    // The delay is read unless the only argument is `noreply`; a third
    // token that is not `noreply` is ignored (observed: `flush_all 0 junk`
    // answers OK).
    let mut delay = 0i64;
    if a.n != usize::from(noreply) {
        match c_strtol32(a.t[0]) {
            Some(d) => delay = i64::from(d),
            None => return invalid(ProtocolError::FlushDelay, consumed, noreply),
        }
    }
    complete(Command::FlushAll { delay, noreply }, consumed)
}

fn parse_verbosity(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n != 1 && a.n != 2 {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    match c_strtoull(a.t[0]) {
        // memcached keeps the low 32 bits (`verbosity 5000000000` -> OK).
        Some(level) => complete(
            Command::Verbosity {
                level: level as u32,
                noreply,
            },
            consumed,
        ),
        None => invalid(ProtocolError::BadCommandLine, consumed, noreply),
    }
}

fn parse_memlimit(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    if a.n != 1 && a.n != 2 {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    match c_strtoull(a.t[0]) {
        // Low 32 bits, as memcached (`cache_memlimit 4294967360` is 64).
        Some(mb) => complete(
            Command::CacheMemlimit {
                megabytes: u64::from(mb as u32),
                noreply,
            },
            consumed,
        ),
        // memcached answers a bad number with a bare ERROR.
        None => invalid(ProtocolError::UnknownCommand, consumed, noreply),
    }
}

fn parse_shutdown(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = Toks::new(rest);
    match a.n {
        0 => complete(Command::Shutdown { graceful: false }, consumed),
        1 if a.t[0] == b"graceful" => complete(Command::Shutdown { graceful: true }, consumed),
        _ => invalid(ProtocolError::ShutdownMode, consumed, false),
    }
}

/// Most arguments memcached's tokenizer separates after the verb (it keeps
/// 23 tokens; the rest of a longer line is not looked at by the admin
/// commands).
const ADMIN_TOKENS: usize = 22;

/// The arguments of an admin command as memcached's tokenizer sees them:
/// at most [`ADMIN_TOKENS`], the count capped there.
struct AdminToks<'a> {
    t: [&'a [u8]; ADMIN_TOKENS],
    n: usize,
}

impl<'a> AdminToks<'a> {
    fn new(mut rest: &'a [u8]) -> Self {
        let mut t: [&'a [u8]; ADMIN_TOKENS] = [&[]; ADMIN_TOKENS];
        let mut n = 0;
        while n < ADMIN_TOKENS {
            match next_token(rest) {
                Some((tok, after)) => {
                    t[n] = tok;
                    n += 1;
                    rest = after;
                }
                None => break,
            }
        }
        AdminToks { t, n }
    }

    /// The last token is exactly `noreply`.
    fn noreply(&self) -> bool {
        self.n >= 1 && self.t[self.n - 1] == b"noreply"
    }
}

/// memcached's `safe_strtoul`: [`c_strtoull`] kept to its low 32 bits
/// (observed: `lru_crawler tocrawl 4294967297` sets 1).
fn c_strtoul32(tok: &[u8]) -> Option<u32> {
    c_strtoull(tok).map(|v| v as u32)
}

/// memcached's `safe_strtod`, for plain decimal numbers: leading white
/// space, a sign, digits with an optional fraction and exponent, then the
/// end of the token or white space. Infinite results (overflow) are
/// refused. `inf`, `nan` and hexadecimal forms, which C also reads, are
/// refused here.
fn c_strtod(tok: &[u8]) -> Option<f64> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let start = i;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < tok.len() && tok[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut mantissa = digits(&mut i);
    if i < tok.len() && tok[i] == b'.' {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return None;
    }
    if i < tok.len() && (tok[i] == b'e' || tok[i] == b'E') {
        let mut j = i + 1;
        if j < tok.len() && (tok[j] == b'+' || tok[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    if i < tok.len() && !is_c_space(tok[i]) {
        return None;
    }
    let text = std::str::from_utf8(&tok[start..i]).ok()?;
    let v: f64 = text.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A 32-bit unsigned argument, or the token when it is not one.
fn num_u32(tok: &[u8]) -> Num<'_, u32> {
    match c_strtoul32(tok) {
        Some(v) => Num::Ok(v),
        None => Num::Bad(tok),
    }
}

/// A signed argument read as memcached's `safe_strtol`.
fn num_i32(tok: &[u8]) -> Num<'_, i32> {
    match c_strtol32(tok) {
        Some(v) => Num::Ok(v),
        None => Num::Bad(tok),
    }
}

fn parse_stats(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let args = collect_args(rest);
    if args.get(0) != Some(&b"cachedump"[..]) {
        return complete(Command::Stats { args }, consumed);
    }
    let a = AdminToks::new(rest);
    let spec = if a.n < 3 {
        CachedumpArgs::Missing(args.get(1))
    } else {
        CachedumpArgs::Given {
            class: num_u32(a.t[1]),
            limit: num_u32(a.t[2]),
        }
    };
    complete(Command::StatsCachedump(spec), consumed)
}

/// `slabs reassign <src> <dst>` (exactly) and `slabs automove <level>`
/// / `slabs automove ratio <r>` (more tokens allowed; a last `noreply`
/// silences the reply). Observed on 1.6.18: `slabs reassign 1 2 noreply`
/// -> ERROR; `slabs automove 3` -> ERROR; `slabs automove -1` ->
/// `CLIENT_ERROR bad command line format`; `slabs automove 1 x` -> OK;
/// `slabs automove ratio` -> ERROR.
fn parse_slabs(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = AdminToks::new(rest);
    if a.n == 3 && a.t[0] == b"reassign" {
        return complete(
            Command::SlabsReassign {
                src: num_i32(a.t[1]),
                dst: num_i32(a.t[2]),
            },
            consumed,
        );
    }
    if a.n < 2 || a.t[0] != b"automove" {
        return unknown(consumed);
    }
    let noreply = a.noreply();
    if a.t[1] == b"ratio" {
        return match (a.n >= 3).then(|| c_strtod(a.t[2])).flatten() {
            Some(r) => complete(
                Command::SlabsAutomoveRatio {
                    ratio: Float(r),
                    noreply,
                },
                consumed,
            ),
            None => invalid(ProtocolError::UnknownCommand, consumed, noreply),
        };
    }
    match c_strtoul32(a.t[1]) {
        Some(level @ 0..=2) => complete(
            Command::SlabsAutomove {
                level: level as u8,
                noreply,
            },
            consumed,
        ),
        Some(_) => invalid(ProtocolError::UnknownCommand, consumed, noreply),
        None => invalid(ProtocolError::BadCommandLine, consumed, noreply),
    }
}

/// The class argument of `lru_crawler crawl|metadump`.
fn crawl_target(tok: &[u8]) -> CrawlTarget<'_> {
    match tok {
        b"all" => CrawlTarget::All,
        b"hash" => CrawlTarget::Hash,
        _ => {
            let mut set = ClassSet::default();
            for piece in tok.split(|&b| b == b',').filter(|p| !p.is_empty()) {
                match c_strtoul32(piece) {
                    Some(id) if set.insert(id) => {}
                    _ => return CrawlTarget::Bad(tok),
                }
            }
            CrawlTarget::Classes(set)
        }
    }
}

/// `lru_crawler crawl|metadump|tocrawl|sleep <arg>` and
/// `lru_crawler enable|disable`, with exactly that many tokens (observed:
/// `lru_crawler crawl all noreply` -> ERROR).
fn parse_lru_crawler(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = AdminToks::new(rest);
    let cmd = match (a.n, a.t[0]) {
        (2, b"crawl") => Command::LruCrawlerCrawl {
            target: crawl_target(a.t[1]),
        },
        (2, b"metadump") => Command::LruCrawlerMetadump {
            target: crawl_target(a.t[1]),
        },
        (2, b"tocrawl") | (2, b"sleep") => match c_strtoul32(a.t[1]) {
            Some(v) if a.t[0] == b"sleep" => Command::LruCrawlerSleep { micros: v },
            Some(v) => Command::LruCrawlerTocrawl { items: v },
            None => return invalid(ProtocolError::BadCommandLine, consumed, false),
        },
        (1, b"enable") => Command::LruCrawlerEnable { on: true },
        (1, b"disable") => Command::LruCrawlerEnable { on: false },
        _ => return unknown(consumed),
    };
    complete(cmd, consumed)
}

/// `lru tune|mode|temp_ttl ...`; a last `noreply` silences every reply,
/// errors included (observed: `lru x noreply` and `lru noreply` answer
/// nothing; `lru` alone answers ERROR).
fn parse_lru(rest: &[u8], consumed: usize) -> Parsed<'_> {
    let a = AdminToks::new(rest);
    let noreply = a.noreply();
    let refuse = || invalid(ProtocolError::UnknownCommand, consumed, noreply);
    match a.t[0] {
        b"tune" if a.n >= 5 => {
            match (
                c_strtoul32(a.t[1]),
                c_strtoul32(a.t[2]),
                c_strtod(a.t[3]),
                c_strtod(a.t[4]),
            ) {
                (Some(hot_pct), Some(warm_pct), Some(hf), Some(wf)) => complete(
                    Command::LruTune {
                        hot_pct,
                        warm_pct,
                        hot_factor: Float(hf),
                        warm_factor: Float(wf),
                        noreply,
                    },
                    consumed,
                ),
                _ => refuse(),
            }
        }
        b"mode" if a.n >= 2 => match a.t[1] {
            b"flat" => complete(
                Command::LruMode {
                    segmented: false,
                    noreply,
                },
                consumed,
            ),
            b"segmented" => complete(
                Command::LruMode {
                    segmented: true,
                    noreply,
                },
                consumed,
            ),
            _ => refuse(),
        },
        b"temp_ttl" if a.n >= 2 => match c_strtol32(a.t[1]) {
            Some(ttl) => complete(Command::LruTempTtl { ttl, noreply }, consumed),
            None => refuse(),
        },
        _ => refuse(),
    }
}

fn collect_args(mut rest: &[u8]) -> Args<'_> {
    let mut args = Args::default();
    while let Some((tok, after)) = next_token(rest) {
        if args.len == MAX_ARGS {
            break;
        }
        args.items[args.len] = tok;
        args.len += 1;
        rest = after;
    }
    args
}

#[cfg(test)]
mod tests {
    //! Expected replies come from memcached 1.6.18 (Debian, `-A`), asked
    //! on loopback with one request per connection; the observed reply is
    //! quoted next to each case.

    use super::*;
    use crate::protocol::encode;

    fn p(buf: &[u8]) -> Parsed<'_> {
        parse(buf, &Limits::default())
    }

    /// Parses one whole request that must be exactly `buf`.
    fn ok(buf: &[u8]) -> Command<'_> {
        match p(buf) {
            Parsed::Complete { cmd, consumed } => {
                assert_eq!(consumed, buf.len(), "consumed for {:?}", buf);
                cmd
            }
            other => panic!("{:?} -> {:?}", String::from_utf8_lossy(buf), other),
        }
    }

    /// Parses one refused request: (error, consumed, recovery, silent).
    fn bad(buf: &[u8]) -> (ProtocolError, usize, Recovery, bool) {
        match p(buf) {
            Parsed::Invalid {
                error,
                consumed,
                recovery,
                silent,
                ..
            } => (error, consumed, recovery, silent),
            other => panic!("{:?} -> {:?}", String::from_utf8_lossy(buf), other),
        }
    }

    /// The error of a refused one-line request that consumes the whole
    /// input, goes on, and is not silent.
    fn err(buf: &[u8]) -> ProtocolError {
        let (e, consumed, rec, silent) = bad(buf);
        assert_eq!(consumed, buf.len(), "consumed for {:?}", buf);
        assert_eq!(rec, Recovery::Continue, "{:?}", buf);
        assert!(!silent, "{:?}", buf);
        e
    }

    /// Same, for a request carrying noreply: the error is silent.
    fn silent_err(buf: &[u8]) -> ProtocolError {
        let (e, consumed, rec, silent) = bad(buf);
        assert_eq!(consumed, buf.len(), "consumed for {:?}", buf);
        assert_eq!(rec, Recovery::Continue, "{:?}", buf);
        assert!(silent, "{:?}", buf);
        e
    }

    /// Runs a byte stream through the parser like a connection would and
    /// returns what it would answer: error lines verbatim, `<verb>` for a
    /// parsed command, `<close>` for a closing error, `<more>` when the
    /// stream ends inside a request.
    fn transcript(mut buf: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut swallow = 0usize;
        loop {
            if swallow > 0 {
                let n = swallow.min(buf.len());
                buf = &buf[n..];
                swallow -= n;
                if swallow > 0 {
                    out.push("<more>".to_string());
                    return out;
                }
            }
            if buf.is_empty() {
                return out;
            }
            match p(buf) {
                Parsed::Complete { cmd, consumed } => {
                    let mut v = Vec::new();
                    encode::request(&mut v, &cmd);
                    let verb = v.split(|&b| b == b' ' || b == b'\r').next().unwrap_or(b"");
                    out.push(format!("<{}>", String::from_utf8_lossy(verb)));
                    buf = &buf[consumed..];
                }
                Parsed::Incomplete => {
                    out.push("<more>".to_string());
                    return out;
                }
                Parsed::Invalid {
                    error,
                    consumed,
                    recovery,
                    silent,
                    ..
                } => {
                    if !silent {
                        if let Some(t) = error.wire_text() {
                            out.push(t.to_string());
                        }
                    }
                    buf = &buf[consumed..];
                    match recovery {
                        Recovery::Continue => {}
                        Recovery::Swallow(n) => swallow = n,
                        Recovery::Close => {
                            out.push("<close>".to_string());
                            return out;
                        }
                    }
                }
            }
        }
    }

    fn keys<'a>(k: &Keys<'a>) -> Vec<&'a [u8]> {
        k.iter().collect()
    }

    // ---- retrieval -------------------------------------------------------

    #[test]
    fn get_and_gets() {
        match ok(b"get a\r\n") {
            Command::Get { keys: k, with_cas } => {
                assert!(!with_cas);
                assert_eq!(keys(&k), vec![b"a".as_slice()]);
            }
            c => panic!("{c:?}"),
        }
        // Duplicates are kept (observed: `gets a a` answers two VALUEs).
        match ok(b"gets a b a\r\n") {
            Command::Get { keys: k, with_cas } => {
                assert!(with_cas);
                assert_eq!(keys(&k), vec![&b"a"[..], b"b", b"a"]);
            }
            c => panic!("{c:?}"),
        }
        // Runs of spaces, leading and trailing spaces (observed: `get  a `
        // and `  get a` answer like `get a`).
        match ok(b"  get   a   b  \r\n") {
            Command::Get { keys: k, .. } => {
                assert_eq!(k.raw(), b"a   b");
                assert_eq!(keys(&k), vec![&b"a"[..], b"b"]);
            }
            c => panic!("{c:?}"),
        }
        // A bare `\n` ends a line too (observed).
        assert!(matches!(ok(b"get a\n"), Command::Get { .. }));
        // `bget` is an old alias of `get` that 1.6.18 still answers.
        assert!(matches!(
            ok(b"bget a\r\n"),
            Command::Get {
                with_cas: false,
                ..
            }
        ));
        // More keys than memcached's 24-token window.
        let mut line = b"get".to_vec();
        for i in 0..100 {
            line.extend_from_slice(format!(" k{i}").as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        match ok(&line) {
            Command::Get { keys: k, .. } => assert_eq!(k.iter().count(), 100),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn get_errors() {
        // `get`, `get ` -> ERROR (observed).
        assert_eq!(err(b"get\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"get \r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"gets\r\n"), ProtocolError::UnknownCommand);
        // Only ' ' separates tokens: `get\ta` -> ERROR (observed).
        assert_eq!(err(b"get\ta\r\n"), ProtocolError::UnknownCommand);
        // Commands are case-sensitive: `GET a` -> ERROR (observed).
        assert_eq!(err(b"GET a\r\n"), ProtocolError::UnknownCommand);
        // A 251-byte key -> CLIENT_ERROR bad command line format, and no
        // VALUE for the other keys (observed: `get a <251> a`).
        let long = [b'k'; 251];
        let line = [b"get a ".as_slice(), &long, b" a\r\n"].concat();
        assert_eq!(err(&line), ProtocolError::BadCommandLine);
        let ok250 = [b"get ".as_slice(), &long[..250], b"\r\n"].concat();
        assert!(matches!(ok(&ok250), Command::Get { .. }));
        let k250 = &long[..250];
        let many = [&b"get  "[..], k250, b"   ", k250, b" a ", k250, b"\r\n"].concat();
        match ok(&many) {
            Command::Get { keys: k, .. } => assert_eq!(keys(&k), vec![k250, k250, b"a", k250]),
            c => panic!("{c:?}"),
        }
        for bad_line in [
            [&b"get "[..], k250, b" ", &long, b"\r\n"].concat(),
            [&b"get "[..], &long, b"  a\r\n"].concat(),
            [&b"gets a  "[..], &long, b"\r\n"].concat(),
            [&b"get "[..], k250, b" ", k250, b"k\r\n"].concat(),
        ] {
            assert_eq!(err(&bad_line), ProtocolError::BadCommandLine);
        }
        // Divergence: control bytes in keys are refused (memcached looks
        // up `a\r` for `get a\r\r\n` and answers END).
        assert_eq!(err(b"get a\r\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(err(b"get a\x01b\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(err(b"get a\x7f\r\n"), ProtocolError::BadCommandLine);
        // Divergence: memcached cuts the line at a NUL (`get a\0b` looks up
        // `a`); we refuse the key.
        assert_eq!(err(b"get a\0b\r\n"), ProtocolError::BadCommandLine);
        // Bytes >= 0x80 are fine (UTF-8 keys).
        assert!(matches!(ok("get clé\r\n".as_bytes()), Command::Get { .. }));
    }

    #[test]
    fn gat_and_gats() {
        match ok(b"gat 10 a b\r\n") {
            Command::Gat {
                exptime,
                keys: k,
                with_cas,
            } => {
                assert_eq!(exptime, 10);
                assert!(!with_cas);
                assert_eq!(keys(&k), vec![&b"a"[..], b"b"]);
            }
            c => panic!("{c:?}"),
        }
        match ok(b"gats -1 a\r\n") {
            Command::Gat {
                exptime, with_cas, ..
            } => {
                assert_eq!(exptime, -1);
                assert!(with_cas);
            }
            c => panic!("{c:?}"),
        }
        // `gat 10` without keys answers END (observed): no keys.
        match ok(b"gat 10\r\n") {
            Command::Gat { keys: k, .. } => assert_eq!(k.iter().count(), 0),
            c => panic!("{c:?}"),
        }
        assert_eq!(err(b"gat\r\n"), ProtocolError::UnknownCommand);
        // Observed: `gat x a` and `gat 99999999999999999999 a` ->
        // CLIENT_ERROR invalid exptime argument.
        assert_eq!(err(b"gat x a\r\n"), ProtocolError::InvalidExptime);
        assert_eq!(
            err(b"gat 99999999999999999999 a\r\n"),
            ProtocolError::InvalidExptime
        );
        assert_eq!(err(b"gats x\r\n"), ProtocolError::InvalidExptime);
        let long = [b'k'; 251];
        let line = [b"gat 1 ".as_slice(), &long, b"\r\n"].concat();
        assert_eq!(err(&line), ProtocolError::BadCommandLine);
    }

    // ---- storage ---------------------------------------------------------

    #[test]
    fn storage_verbs() {
        let cases: [(&[u8], StoreVerb); 5] = [
            (b"set", StoreVerb::Set),
            (b"add", StoreVerb::Add),
            (b"replace", StoreVerb::Replace),
            (b"append", StoreVerb::Append),
            (b"prepend", StoreVerb::Prepend),
        ];
        for (name, verb) in cases {
            let req = [name, b" k 5 100 3\r\nabc\r\n".as_slice()].concat();
            assert_eq!(
                ok(&req),
                Command::Store {
                    verb,
                    key: b"k",
                    flags: 5,
                    exptime: 100,
                    data: b"abc",
                    cas_unique: 0,
                    noreply: false
                }
            );
        }
        assert_eq!(
            ok(b"cas k 0 -1 2 77 noreply\r\n\r\n\r\n"),
            Command::Store {
                verb: StoreVerb::Cas,
                key: b"k",
                flags: 0,
                exptime: -1,
                data: b"\r\n",
                cas_unique: 77,
                noreply: true
            }
        );
        // Binary-safe data; an empty value.
        match ok(b"set k 0 0 4\r\n\0\n\r\xff\r\n") {
            Command::Store { data, .. } => assert_eq!(data, b"\0\n\r\xff"),
            c => panic!("{c:?}"),
        }
        match ok(b"set k 0 0 0\r\n\r\n") {
            Command::Store { data, .. } => assert_eq!(data, b""),
            c => panic!("{c:?}"),
        }
        // A request followed by more input consumes only itself.
        match p(b"set k 0 0 1\r\nx\r\nget k\r\n") {
            Parsed::Complete { consumed, .. } => assert_eq!(consumed, 16),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_noreply_and_extra_token() {
        // Observed: `set b 0 0 1 noreply` stores silently.
        match ok(b"set b 0 0 1 noreply\r\nx\r\n") {
            Command::Store { noreply, .. } => assert!(noreply),
            c => panic!("{c:?}"),
        }
        // Observed: `set c 0 0 1 junk` and `set c 0 0 1 norepl` -> STORED
        // (the sixth token is ignored unless it is exactly `noreply`).
        for req in [
            &b"set c 0 0 1 junk\r\nx\r\n"[..],
            b"set c 0 0 1 norepl\r\nx\r\n",
            b"set c 0 0 1 NOREPLY\r\nx\r\n",
        ] {
            match ok(req) {
                Command::Store { noreply, .. } => assert!(!noreply),
                c => panic!("{c:?}"),
            }
        }
        // Observed: `cas a 0 0 1 1 junk` -> EXISTS (parsed, not refused).
        assert!(matches!(
            ok(b"cas a 0 0 1 1 junk\r\nx\r\n"),
            Command::Store { noreply: false, .. }
        ));
    }

    #[test]
    fn storage_numbers_as_memcached_reads_them() {
        let flags = |req: &[u8]| match ok(req) {
            Command::Store { flags, .. } => flags,
            c => panic!("{c:?}"),
        };
        let exptime = |req: &[u8]| match ok(req) {
            Command::Store { exptime, .. } => exptime,
            c => panic!("{c:?}"),
        };
        // Observed: `+5` is 5, `-0` is 0, `01` is 1, `5\t` is 5, `\t1` is 1,
        // `1\tz` is 1 and `1\x0b` is 1 (C strtoul semantics).
        assert_eq!(flags(b"set c +5 0 1\r\nx\r\n"), 5);
        assert_eq!(flags(b"set c -0 0 1\r\nx\r\n"), 0);
        assert_eq!(flags(b"set c 5\t 0 1\r\nx\r\n"), 5);
        assert_eq!(flags(b"set c 4294967295 0 1\r\nx\r\n"), u32::MAX);
        // `-18446744073709551615` wraps to 1 in strtoul and is accepted.
        assert_eq!(flags(b"set c -18446744073709551615 0 1\r\nx\r\n"), 1);
        assert!(matches!(
            ok(b"set c 0 0 01\r\nx\r\n"),
            Command::Store { .. }
        ));
        assert!(matches!(
            ok(b"set c 0 0 \t1\r\nx\r\n"),
            Command::Store { .. }
        ));
        assert!(matches!(
            ok(b"set c 0 0 1\tz\r\nx\r\n"),
            Command::Store { .. }
        ));
        assert!(matches!(
            ok(b"set c 0 0 1\x0b\r\nx\r\n"),
            Command::Store { .. }
        ));
        // Exptime is read as a 64-bit long then cut to 32 bits (observed:
        // 2147483648 and 9223372036854775807 are accepted).
        assert_eq!(exptime(b"set c 0 2147483648 1\r\nx\r\n"), -2147483648);
        assert_eq!(exptime(b"set c 0 9223372036854775807 1\r\nx\r\n"), -1);
        assert_eq!(exptime(b"set c 0 -4294967296 1\r\nx\r\n"), 0);
        // <bytes> too (observed: 4294967297 and -4294967295 store 1 byte,
        // 4294967296 stores an empty value).
        match ok(b"set c 0 0 4294967297\r\nx\r\n") {
            Command::Store { data, .. } => assert_eq!(data, b"x"),
            c => panic!("{c:?}"),
        }
        match ok(b"set c 0 0 -4294967295\r\nx\r\n") {
            Command::Store { data, .. } => assert_eq!(data, b"x"),
            c => panic!("{c:?}"),
        }
        match ok(b"set c 0 0 4294967296\r\n\r\n") {
            Command::Store { data, .. } => assert_eq!(data, b""),
            c => panic!("{c:?}"),
        }
        // Observed: cas unique 18446744073709551615 is accepted (EXISTS).
        match ok(b"cas a 0 0 1 18446744073709551615\r\nx\r\n") {
            Command::Store { cas_unique, .. } => assert_eq!(cas_unique, u64::MAX),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn storage_token_count_errors() {
        // Observed: wrong token counts -> ERROR, and the data line then
        // runs as a command (`ERROR` again).
        assert_eq!(err(b"set c 0 0\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(
            err(b"set c 0 0 1 noreply x\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(err(b"set\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"cas a 0 0 1\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(
            err(b"cas a 0 0 1 2 noreply x\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(transcript(b"cas a 0 0 1\r\nx\r\n"), vec!["ERROR", "ERROR"]);
        assert_eq!(err(b"add a 0 0\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(
            err(b"prepend a 0 0 1 2 3\r\n"),
            ProtocolError::UnknownCommand
        );
    }

    #[test]
    fn storage_bad_numbers() {
        let bcl = ProtocolError::BadCommandLine;
        // Observed: each answers CLIENT_ERROR bad command line format. With
        // a usable <bytes> we swallow the block (divergence: memcached then
        // answers ERROR for the data line).
        for line in [
            &b"set c -1 0 1\r\n"[..],
            b"set c x 0 1\r\n",
            b"set c 18446744073709551616 0 1\r\n",
            b"set c 0 x 1\r\n",
            b"set c 0 9223372036854775808 1\r\n",
            b"cas c 0 0 1 x\r\n",
            b"cas c 0 0 1 -1\r\n",
        ] {
            assert_eq!(bad(line), (bcl, line.len(), Recovery::Swallow(3), false));
            let mut stream = line.to_vec();
            stream.extend_from_slice(b"x\r\nversion\r\n");
            assert_eq!(
                transcript(&stream),
                vec!["CLIENT_ERROR bad command line format", "<version>"]
            );
        }
        // <bytes> unusable: nothing to swallow, as memcached.
        for line in [
            &b"set c 0 0 -1\r\n"[..],
            b"set c 0 0 1z\r\n",
            b"set c 0 0 0x1\r\n",
            b"set c 0 0 2147483647\r\n",
            b"set c 0 0 2147483646\r\n",
        ] {
            assert_eq!(err(line), bcl);
        }
        assert_eq!(
            transcript(b"set c 0 0 -1\r\nx\r\n"),
            vec!["CLIENT_ERROR bad command line format", "ERROR"]
        );
        // Divergence: flags >= 2^32 are refused (memcached stores 0 for
        // `set c 4294967296 0 1`).
        assert_eq!(
            bad(b"set c 4294967296 0 1\r\n"),
            (bcl, 22, Recovery::Swallow(3), false)
        );
    }

    #[test]
    fn storage_bad_key() {
        let long = [b'k'; 251];
        let line = [b"set ".as_slice(), &long, b" 0 0 1\r\n"].concat();
        // Observed: CLIENT_ERROR bad command line format, then ERROR for
        // the data line; we swallow the data instead (divergence).
        assert_eq!(
            bad(&line),
            (
                ProtocolError::BadCommandLine,
                line.len(),
                Recovery::Swallow(3),
                false
            )
        );
        let ok250 = [b"set ".as_slice(), &long[..250], b" 0 0 1\r\nx\r\n"].concat();
        assert!(matches!(ok(&ok250), Command::Store { .. }));
        // Divergence: control bytes in the key.
        assert_eq!(bad(b"set a\tb 0 0 1\r\n").0, ProtocolError::BadCommandLine);
        // Observed with noreply: silent (then ERROR for the data line in
        // memcached; swallowed here).
        let line = [b"set ".as_slice(), &long, b" 0 0 1 noreply\r\n"].concat();
        assert_eq!(
            bad(&line),
            (
                ProtocolError::BadCommandLine,
                line.len(),
                Recovery::Swallow(3),
                true
            )
        );
    }

    #[test]
    fn storage_noreply_silences_errors() {
        // Observed: `set c 0 0 noreply\r\nx\r\n` answers only ERROR (for
        // `x`): the CLIENT_ERROR is suppressed because the last token is
        // `noreply`, and <bytes> is unusable so nothing is swallowed.
        assert_eq!(
            bad(b"set c 0 0 noreply\r\n"),
            (ProtocolError::BadCommandLine, 19, Recovery::Continue, true)
        );
        assert_eq!(transcript(b"set c 0 0 noreply\r\nx\r\n"), vec!["ERROR"]);
        // Observed: `set c -1 0 1 noreply` -> nothing.
        assert_eq!(
            bad(b"set c -1 0 1 noreply\r\n"),
            (
                ProtocolError::BadCommandLine,
                22,
                Recovery::Swallow(3),
                true
            )
        );
    }

    #[test]
    fn bad_data_chunk() {
        // Observed: `set c 0 0 3\r\nabcde\r\n` -> CLIENT_ERROR bad data
        // chunk, then ERROR: the 5 bytes `abcde` are the block (3 + 2),
        // the `\r\n` after it is an empty line.
        assert_eq!(
            bad(b"set c 0 0 3\r\nabcde\r\n"),
            (ProtocolError::BadDataChunk, 18, Recovery::Continue, false)
        );
        assert_eq!(
            transcript(b"set c 0 0 3\r\nabcde\r\nget c\r\n"),
            vec!["CLIENT_ERROR bad data chunk", "ERROR", "<get>"]
        );
        // Observed: `set a 0 0 1\r\nxy\r\n` -> bad data chunk then ERROR
        // for the lone `\n`.
        assert_eq!(
            transcript(b"set a 0 0 1\r\nxy\r\n"),
            vec!["CLIENT_ERROR bad data chunk", "ERROR"]
        );
        // Observed: `set a 0 0 1\r\nx\n` waits for one more byte.
        assert_eq!(p(b"set a 0 0 1\r\nx\n"), Parsed::Incomplete);
        assert_eq!(bad(b"set a 0 0 1\r\nx\rz").0, ProtocolError::BadDataChunk);
        // Observed with noreply: only ERROR for the empty line.
        assert_eq!(
            transcript(b"set c 0 0 3 noreply\r\nabcde\r\n"),
            vec!["ERROR"]
        );
    }

    #[test]
    fn too_large() {
        let l = Limits::default();
        // Observed (-I 1m, key `k`): 1048516 bytes stored, 1048517 too
        // large; with non-zero flags 1048512 stored, 1048513 too large.
        assert_eq!(l.max_value_len_for(1, 0), 1048516);
        assert_eq!(l.max_value_len_for(1, 1), 1048512);
        let fits = b"set k 0 0 1048516\r\n";
        assert_eq!(p(fits), Parsed::Incomplete);
        let big = b"set k 0 0 1048517\r\n";
        // Decided from the line alone; the block is swallowed.
        match p(big) {
            Parsed::Invalid {
                error,
                consumed,
                recovery,
                silent,
                unlink,
            } => {
                assert_eq!(error, ProtocolError::TooLarge);
                assert_eq!(consumed, big.len());
                assert_eq!(recovery, Recovery::Swallow(1048519));
                assert!(!silent);
                assert_eq!(unlink, Some(&b"k"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p(b"set k 1 0 1048512\r\n"), Parsed::Incomplete);
        assert_eq!(bad(b"set k 1 0 1048513\r\n").0, ProtocolError::TooLarge);
        // Only `set` unlinks the old item.
        match p(b"append k 0 0 1048517\r\n") {
            Parsed::Invalid { error, unlink, .. } => {
                assert_eq!(error, ProtocolError::TooLarge);
                assert_eq!(unlink, None);
            }
            other => panic!("{other:?}"),
        }
        // Observed: `set k 0 0 1048517 noreply` + data + `version` ->
        // only VERSION.
        assert_eq!(
            bad(b"set k 0 0 1048517 noreply\r\n"),
            (
                ProtocolError::TooLarge,
                27,
                Recovery::Swallow(1048519),
                true
            )
        );
        // Observed: `set c 0 0 2147483645` is too large (memcached answers
        // once the 2 GB block has been read).
        assert_eq!(
            bad(b"set c 0 0 2147483645\r\n"),
            (
                ProtocolError::TooLarge,
                22,
                Recovery::Swallow(2147483647),
                false
            )
        );
        // Observed with `-I 2m`: 2097092 stored, 2097093 too large; with
        // `-C`: 1048524 stored, 1048525 too large, and with flags 1:
        // 1048520 stored, 1048521 too large.
        let two = Limits {
            item_size_max: 2 * 1024 * 1024,
            cas_enabled: true,
        };
        assert_eq!(two.max_value_len_for(1, 0), 2097092);
        let no_cas = Limits {
            item_size_max: 1024 * 1024,
            cas_enabled: false,
        };
        assert_eq!(no_cas.max_value_len_for(1, 0), 1048524);
        assert_eq!(no_cas.max_value_len_for(1, 1), 1048520);
        // -C makes the header 8 bytes smaller; -I changes the bound.
        let small = Limits {
            item_size_max: 1000,
            cas_enabled: false,
        };
        assert_eq!(small.max_value_len_for(1, 0), 1000 - 1 - 51);
        let at = format!("set k 0 0 {}\r\n", 948);
        assert_eq!(parse(at.as_bytes(), &small), Parsed::Incomplete);
        let over = format!("set k 0 0 {}\r\n", 949);
        assert!(matches!(
            parse(over.as_bytes(), &small),
            Parsed::Invalid {
                error: ProtocolError::TooLarge,
                ..
            }
        ));
    }

    // ---- delete / incr / decr / touch ----------------------------------

    #[test]
    fn delete() {
        assert_eq!(
            ok(b"delete a\r\n"),
            Command::Delete {
                key: b"a",
                noreply: false
            }
        );
        assert_eq!(
            ok(b"delete a noreply\r\n"),
            Command::Delete {
                key: b"a",
                noreply: true
            }
        );
        // Legacy zero hold time (observed: `delete zz 0` -> NOT_FOUND,
        // `delete a 0 noreply` -> nothing).
        assert_eq!(
            ok(b"delete a 0\r\n"),
            Command::Delete {
                key: b"a",
                noreply: false
            }
        );
        assert_eq!(
            ok(b"delete a 0 noreply\r\n"),
            Command::Delete {
                key: b"a",
                noreply: true
            }
        );
        let usage = ProtocolError::DeleteUsage;
        // Observed: usage error for `delete a 5`, `delete a 0 0`,
        // `delete a noreply 0`, `delete a noreply x`; silent for
        // `delete a 5 noreply`.
        assert_eq!(err(b"delete a 5\r\n"), usage);
        assert_eq!(err(b"delete a 0 0\r\n"), usage);
        assert_eq!(err(b"delete a noreply 0\r\n"), usage);
        assert_eq!(err(b"delete a noreply x\r\n"), usage);
        assert_eq!(silent_err(b"delete a 5 noreply\r\n"), usage);
        // Observed: `delete` and `delete a b c d` -> ERROR.
        assert_eq!(err(b"delete\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"delete a b c d\r\n"), ProtocolError::UnknownCommand);
        // Observed: 251-byte key -> bad command line format; silent with
        // noreply; `delete <251> 0` not silent.
        let long = [b'k'; 251];
        let l = |tail: &[u8]| [b"delete ".as_slice(), &long, tail].concat();
        assert_eq!(err(&l(b"\r\n")), ProtocolError::BadCommandLine);
        assert_eq!(err(&l(b" 0\r\n")), ProtocolError::BadCommandLine);
        assert_eq!(
            silent_err(&l(b" noreply\r\n")),
            ProtocolError::BadCommandLine
        );
        assert_eq!(err(b"delete a\x01\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(
            wire(&usage),
            "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
        );
    }

    fn wire(e: &ProtocolError) -> &'static str {
        e.wire_text().unwrap_or("")
    }

    #[test]
    fn incr_decr() {
        assert_eq!(
            ok(b"incr a 5\r\n"),
            Command::Arith {
                key: b"a",
                delta: 5,
                incr: true,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"decr a 18446744073709551615 noreply\r\n"),
            Command::Arith {
                key: b"a",
                delta: u64::MAX,
                incr: false,
                noreply: true
            }
        );
        // Observed: `incr a -0` and `incr a 1\t` reach the item (the value
        // error comes from the store): -0 is 0, a trailing tab is fine.
        assert!(matches!(
            ok(b"incr a -0\r\n"),
            Command::Arith { delta: 0, .. }
        ));
        assert!(matches!(
            ok(b"incr a 1\t\r\n"),
            Command::Arith { delta: 1, .. }
        ));
        // Observed: `incr a 1 junk` is parsed (not noreply).
        assert!(matches!(
            ok(b"incr a 1 junk\r\n"),
            Command::Arith { noreply: false, .. }
        ));
        let delta = ProtocolError::InvalidDelta;
        assert_eq!(err(b"incr a x\r\n"), delta);
        assert_eq!(err(b"incr a -1\r\n"), delta);
        assert_eq!(err(b"incr a 18446744073709551616\r\n"), delta);
        assert_eq!(err(b"decr a x\r\n"), delta);
        assert_eq!(wire(&delta), "CLIENT_ERROR invalid numeric delta argument");
        // Observed: `incr a x noreply` -> nothing.
        assert_eq!(silent_err(b"incr a x noreply\r\n"), delta);
        // Observed: `incr a`, `incr a 1 2 3` -> ERROR.
        assert_eq!(err(b"incr a\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"incr a 1 2 3\r\n"), ProtocolError::UnknownCommand);
        let long = [b'k'; 251];
        let line = [b"incr ".as_slice(), &long, b" 1\r\n"].concat();
        assert_eq!(err(&line), ProtocolError::BadCommandLine);
        let line = [b"incr ".as_slice(), &long, b" 1 noreply\r\n"].concat();
        assert_eq!(silent_err(&line), ProtocolError::BadCommandLine);
    }

    #[test]
    fn error_precedence() {
        // When several things are wrong, the first check memcached makes
        // decides the reply (observed for each line).
        let long = [b'k'; 251];
        let l = |verb: &[u8], tail: &[u8]| [verb, b" ".as_slice(), &long, tail].concat();
        // Key length before the delta / exptime.
        assert_eq!(err(&l(b"incr", b" x\r\n")), ProtocolError::BadCommandLine);
        assert_eq!(err(&l(b"touch", b" x\r\n")), ProtocolError::BadCommandLine);
        // The legacy-argument check before the key length.
        assert_eq!(err(&l(b"delete", b" 5\r\n")), ProtocolError::DeleteUsage);
        // The gat exptime before the keys.
        assert_eq!(err(&l(b"gat x", b"\r\n")), ProtocolError::InvalidExptime);
        // The token count before anything else.
        assert_eq!(
            err(&l(b"incr", b" x y z\r\n")),
            ProtocolError::UnknownCommand
        );
        // Observed: `incr n +5` and `incr n \t3` add 5 and 3.
        assert!(matches!(
            ok(b"incr n +5\r\n"),
            Command::Arith { delta: 5, .. }
        ));
        assert!(matches!(
            ok(b"incr n \t3\r\n"),
            Command::Arith { delta: 3, .. }
        ));
    }

    #[test]
    fn touch() {
        assert_eq!(
            ok(b"touch a 10\r\n"),
            Command::Touch {
                key: b"a",
                exptime: 10,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"touch a -1 noreply\r\n"),
            Command::Touch {
                key: b"a",
                exptime: -1,
                noreply: true
            }
        );
        // Observed: `touch a 1 junk` -> TOUCHED.
        assert!(matches!(
            ok(b"touch a 1 junk\r\n"),
            Command::Touch { noreply: false, .. }
        ));
        let exp = ProtocolError::InvalidExptime;
        assert_eq!(err(b"touch a x\r\n"), exp);
        assert_eq!(wire(&exp), "CLIENT_ERROR invalid exptime argument");
        // Observed: `touch a x noreply` -> nothing.
        assert_eq!(silent_err(b"touch a x noreply\r\n"), exp);
        assert_eq!(err(b"touch a\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"touch a 1 2 3\r\n"), ProtocolError::UnknownCommand);
        let long = [b'k'; 251];
        let line = [b"touch ".as_slice(), &long, b" 1\r\n"].concat();
        assert_eq!(err(&line), ProtocolError::BadCommandLine);
        let line = [b"touch ".as_slice(), &long, b" 1 noreply\r\n"].concat();
        assert_eq!(silent_err(&line), ProtocolError::BadCommandLine);
    }

    // ---- other commands --------------------------------------------------

    #[test]
    fn flush_all() {
        let f = |d, n| Command::FlushAll {
            delay: d,
            noreply: n,
        };
        assert_eq!(ok(b"flush_all\r\n"), f(0, false));
        assert_eq!(ok(b"flush_all 10\r\n"), f(10, false));
        assert_eq!(ok(b"flush_all noreply\r\n"), f(0, true));
        assert_eq!(ok(b"flush_all 10 noreply\r\n"), f(10, true));
        // Observed: `flush_all 0 junk` -> OK, `flush_all -1` -> OK,
        // `flush_all 99999999999` -> OK (cut to 32 bits).
        assert_eq!(ok(b"flush_all 0 junk\r\n"), f(0, false));
        assert_eq!(ok(b"flush_all -1\r\n"), f(-1, false));
        assert_eq!(
            ok(b"flush_all 99999999999\r\n"),
            f(i64::from(99999999999i64 as i32), false)
        );
        // Observed: `flush_all junk`, `flush_all 1x` -> CLIENT_ERROR
        // invalid exptime argument; silent with noreply.
        // (With -F memcached answers `CLIENT_ERROR flush_all not allowed`
        // to `flush_all junk`: hence a variant of its own.)
        assert_eq!(err(b"flush_all junk\r\n"), ProtocolError::FlushDelay);
        assert_eq!(err(b"flush_all 1x\r\n"), ProtocolError::FlushDelay);
        assert_eq!(
            silent_err(b"flush_all junk noreply\r\n"),
            ProtocolError::FlushDelay
        );
        assert_eq!(
            wire(&ProtocolError::FlushDelay),
            "CLIENT_ERROR invalid exptime argument"
        );
        // Observed: `flush_all 0 0 0` -> ERROR.
        assert_eq!(err(b"flush_all 0 0 0\r\n"), ProtocolError::UnknownCommand);
    }

    #[test]
    fn version_quit_shutdown() {
        assert_eq!(ok(b"version\r\n"), Command::Version);
        // Observed: arguments are ignored (`version junk x y` -> VERSION,
        // `quit junk` closes), leading/trailing spaces too.
        assert_eq!(ok(b"version junk x y\r\n"), Command::Version);
        assert_eq!(ok(b" version \r\n"), Command::Version);
        assert_eq!(ok(b"quit\r\n"), Command::Quit);
        assert_eq!(ok(b"quit junk\r\n"), Command::Quit);
        // Observed: `version\r\r\n` -> ERROR (the verb is `version\r`).
        assert_eq!(err(b"version\r\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(ok(b"shutdown\r\n"), Command::Shutdown { graceful: false });
        assert_eq!(
            ok(b"shutdown graceful\r\n"),
            Command::Shutdown { graceful: true }
        );
        // Observed with -A: `shutdown junk`, `shutdown graceful x`,
        // `shutdown gracefull` -> CLIENT_ERROR invalid shutdown mode.
        for line in [
            &b"shutdown junk\r\n"[..],
            b"shutdown graceful x\r\n",
            b"shutdown gracefull\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::ShutdownMode);
        }
        assert_eq!(
            wire(&ProtocolError::ShutdownMode),
            "CLIENT_ERROR invalid shutdown mode"
        );
    }

    #[test]
    fn verbosity() {
        assert_eq!(
            ok(b"verbosity 1\r\n"),
            Command::Verbosity {
                level: 1,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"verbosity 1 noreply\r\n"),
            Command::Verbosity {
                level: 1,
                noreply: true
            }
        );
        // Observed: `verbosity 1 junk` -> OK; `verbosity 5000000000` -> OK;
        // `verbosity 1\r\r\n` -> OK (the `\r` ends the number).
        assert!(matches!(
            ok(b"verbosity 1 junk\r\n"),
            Command::Verbosity {
                level: 1,
                noreply: false
            }
        ));
        assert!(matches!(
            ok(b"verbosity 5000000000\r\n"),
            Command::Verbosity { .. }
        ));
        assert!(matches!(
            ok(b"verbosity 1\r\r\n"),
            Command::Verbosity { level: 1, .. }
        ));
        // Observed: no argument or 3 -> ERROR; junk, -1 -> CLIENT_ERROR bad
        // command line format; silent with noreply.
        assert_eq!(err(b"verbosity\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"verbosity 1 2 3\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"verbosity junk\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(err(b"verbosity -1\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(
            silent_err(b"verbosity noreply\r\n"),
            ProtocolError::BadCommandLine
        );
        assert_eq!(
            silent_err(b"verbosity junk noreply\r\n"),
            ProtocolError::BadCommandLine
        );
    }

    #[test]
    fn cache_memlimit() {
        assert_eq!(
            ok(b"cache_memlimit 64\r\n"),
            Command::CacheMemlimit {
                megabytes: 64,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"cache_memlimit 64 noreply\r\n"),
            Command::CacheMemlimit {
                megabytes: 64,
                noreply: true
            }
        );
        // Observed: `cache_memlimit 64 junk` -> OK, `cache_memlimit
        // 4294967360` -> OK (low 32 bits: 64).
        assert!(matches!(
            ok(b"cache_memlimit 64 junk\r\n"),
            Command::CacheMemlimit {
                megabytes: 64,
                noreply: false
            }
        ));
        assert!(matches!(
            ok(b"cache_memlimit 4294967360\r\n"),
            Command::CacheMemlimit { megabytes: 64, .. }
        ));
        // Observed: no argument, junk, -1 and too many tokens -> ERROR;
        // `cache_memlimit junk noreply` -> nothing.
        assert_eq!(err(b"cache_memlimit\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(
            err(b"cache_memlimit junk\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(err(b"cache_memlimit -1\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(
            err(b"cache_memlimit 64 1 2\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(
            silent_err(b"cache_memlimit junk noreply\r\n"),
            ProtocolError::UnknownCommand
        );
    }

    #[test]
    fn stats() {
        match ok(b"stats\r\n") {
            Command::Stats { args } => assert_eq!(args.len, 0),
            c => panic!("{c:?}"),
        }
        match ok(b"stats  reset extra\r\n") {
            Command::Stats { args } => {
                assert_eq!(args.as_slice(), &[&b"reset"[..], b"extra"]);
            }
            c => panic!("{c:?}"),
        }
        // Arguments beyond MAX_ARGS are dropped.
        match ok(b"stats 1 2 3 4 5 6 7 8 9 10\r\n") {
            Command::Stats { args } => {
                assert_eq!(args.len, MAX_ARGS);
                assert_eq!(args.get(MAX_ARGS - 1), Some(&b"8"[..]));
            }
            c => panic!("{c:?}"),
        }
        // Observed: `stats\tx` -> ERROR.
        assert_eq!(err(b"stats\tx\r\n"), ProtocolError::UnknownCommand);
    }

    // ---- memory admin commands --------------------------------------------
    // Replies observed on memcached 1.6.18 for each case are quoted; exec
    // turns the typed commands into them (its tests check the text).

    #[test]
    fn stats_cachedump() {
        let cd = |b: &'static [u8]| match ok(b) {
            Command::StatsCachedump(spec) => spec,
            c => panic!("{c:?}"),
        };
        // `stats cachedump 1 10` -> items then END.
        assert_eq!(
            cd(b"stats cachedump 1 10\r\n"),
            CachedumpArgs::Given {
                class: Num::Ok(1),
                limit: Num::Ok(10)
            }
        );
        // `stats cachedump` / `stats cachedump 1` ->
        // `CLIENT_ERROR bad command line`.
        assert_eq!(cd(b"stats cachedump\r\n"), CachedumpArgs::Missing(None));
        assert_eq!(
            cd(b"stats  cachedump 1\r\n"),
            CachedumpArgs::Missing(Some(&b"1"[..]))
        );
        // `stats cachedump x 1`, `1 x`, `1 -1` -> `CLIENT_ERROR bad command
        // line format`.
        assert_eq!(
            cd(b"stats cachedump x 1\r\n"),
            CachedumpArgs::Given {
                class: Num::Bad(b"x"),
                limit: Num::Ok(1)
            }
        );
        assert_eq!(
            cd(b"stats cachedump 1 -1\r\n"),
            CachedumpArgs::Given {
                class: Num::Ok(1),
                limit: Num::Bad(b"-1")
            }
        );
        // `stats cachedump 4294967297 1` reads class 1; `1\t 1` is class 1;
        // `1 10 extra` ignores the extra token.
        assert_eq!(
            cd(b"stats cachedump 4294967297 4294967296\r\n"),
            CachedumpArgs::Given {
                class: Num::Ok(1),
                limit: Num::Ok(0)
            }
        );
        assert_eq!(
            cd(b"stats cachedump 1\t 1\r\n"),
            CachedumpArgs::Given {
                class: Num::Ok(1),
                limit: Num::Ok(1)
            }
        );
        assert_eq!(
            cd(b"stats cachedump 300 10 extra\r\n"),
            CachedumpArgs::Given {
                class: Num::Ok(300),
                limit: Num::Ok(10)
            }
        );
        // Other sub-commands stay generic.
        assert!(matches!(
            ok(b"stats sizes_enable\r\n"),
            Command::Stats { .. }
        ));
        assert!(matches!(ok(b"stats slabs x\r\n"), Command::Stats { .. }));
    }

    #[test]
    fn slabs_commands() {
        assert_eq!(
            ok(b"slabs reassign 1 2\r\n"),
            Command::SlabsReassign {
                src: Num::Ok(1),
                dst: Num::Ok(2)
            }
        );
        // `slabs reassign -1 -1` -> SAME; `4294967297 1` -> SAME (32 bits).
        assert_eq!(
            ok(b"slabs reassign 4294967297 -1\r\n"),
            Command::SlabsReassign {
                src: Num::Ok(1),
                dst: Num::Ok(-1)
            }
        );
        // `slabs reassign x 1` -> `CLIENT_ERROR bad command line format`
        // (after the reassign-enabled check, so exec answers it).
        assert_eq!(
            ok(b"slabs reassign x 1\r\n"),
            Command::SlabsReassign {
                src: Num::Bad(b"x"),
                dst: Num::Ok(1)
            }
        );
        // `slabs`, `slabs reassign`, `slabs reassign 1`, `slabs reassign 1
        // 2 x`, `slabs reassign 1 2 noreply`, `slabs automove`, `slabs
        // bogus x` -> ERROR.
        for line in [
            &b"slabs\r\n"[..],
            b"slabs reassign\r\n",
            b"slabs reassign 1\r\n",
            b"slabs reassign 1 2 x\r\n",
            b"slabs reassign 1 2 noreply\r\n",
            b"slabs reassign x 1 noreply\r\n",
            b"slabs automove\r\n",
            b"slabs bogus x\r\n",
            // `slabs automove 3` -> ERROR; `ratio` without a number or
            // with junk -> ERROR.
            b"slabs automove 3\r\n",
            b"slabs automove ratio\r\n",
            b"slabs automove ratio x\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::UnknownCommand, "{line:?}");
        }
        // `slabs automove -1` / `x` -> `CLIENT_ERROR bad command line format`.
        assert_eq!(err(b"slabs automove -1\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(err(b"slabs automove x\r\n"), ProtocolError::BadCommandLine);
        // A last `noreply` silences everything (`slabs automove x noreply`,
        // `slabs automove 1 noreply` -> nothing).
        assert_eq!(
            silent_err(b"slabs automove x noreply\r\n"),
            ProtocolError::BadCommandLine
        );
        assert_eq!(
            silent_err(b"slabs automove noreply\r\n"),
            ProtocolError::BadCommandLine
        );
        assert_eq!(
            ok(b"slabs automove 1 noreply\r\n"),
            Command::SlabsAutomove {
                level: 1,
                noreply: true
            }
        );
        // `slabs automove 1 x y z` -> OK; `4294967297` -> OK (level 1).
        for line in [
            &b"slabs automove 1 x y z\r\n"[..],
            b"slabs automove 4294967297\r\n",
        ] {
            assert_eq!(
                ok(line),
                Command::SlabsAutomove {
                    level: 1,
                    noreply: false
                }
            );
        }
        assert_eq!(
            ok(b"slabs automove 0\r\n"),
            Command::SlabsAutomove {
                level: 0,
                noreply: false
            }
        );
        // `slabs automove ratio 0.5 x` -> OK.
        assert_eq!(
            ok(b"slabs automove ratio 0.5 x\r\n"),
            Command::SlabsAutomoveRatio {
                ratio: Float(0.5),
                noreply: false
            }
        );
    }

    #[test]
    fn lru_crawler_commands() {
        let crawl = |b: &'static [u8]| match ok(b) {
            Command::LruCrawlerCrawl { target } => target,
            c => panic!("{c:?}"),
        };
        let set = |ids: &[u32]| {
            let mut s = ClassSet::default();
            for &i in ids {
                assert!(s.insert(i));
            }
            CrawlTarget::Classes(s)
        };
        assert_eq!(crawl(b"lru_crawler crawl all\r\n"), CrawlTarget::All);
        // `crawl hash` -> `ERROR an unknown error happened` (exec).
        assert_eq!(crawl(b"lru_crawler crawl hash\r\n"), CrawlTarget::Hash);
        // `1`, `1,2`, `1,,2`, `,1`, `1,`, `63`, `4294967297` -> OK.
        assert_eq!(crawl(b"lru_crawler crawl 1,,2\r\n"), set(&[1, 2]));
        assert_eq!(crawl(b"lru_crawler crawl ,1\r\n"), set(&[1]));
        assert_eq!(crawl(b"lru_crawler crawl 1,\r\n"), set(&[1]));
        assert_eq!(crawl(b"lru_crawler crawl 63\r\n"), set(&[63]));
        assert_eq!(crawl(b"lru_crawler crawl 4294967297\r\n"), set(&[1]));
        // `,` -> `NOTSTARTED no items to crawl`.
        assert_eq!(crawl(b"lru_crawler crawl ,\r\n"), set(&[]));
        // `0`, `64`, `-1`, `1x`, `1,x`, `ALL` -> `BADCLASS invalid class id`.
        for tok in [&b"0"[..], b"64", b"-1", b"1x", b"1,x", b"ALL"] {
            let mut line = b"lru_crawler crawl ".to_vec();
            line.extend_from_slice(tok);
            line.extend_from_slice(b"\r\n");
            match ok(&line) {
                Command::LruCrawlerCrawl { target } => {
                    assert_eq!(target, CrawlTarget::Bad(tok), "{tok:?}")
                }
                c => panic!("{c:?}"),
            }
        }
        assert_eq!(
            ok(b"lru_crawler metadump hash\r\n"),
            Command::LruCrawlerMetadump {
                target: CrawlTarget::Hash
            }
        );
        assert_eq!(
            ok(b"lru_crawler metadump 1,2\r\n"),
            Command::LruCrawlerMetadump {
                target: set(&[1, 2])
            }
        );
        assert_eq!(
            ok(b"lru_crawler sleep 1000001\r\n"),
            Command::LruCrawlerSleep { micros: 1_000_001 }
        );
        // `sleep 4294967297` / `tocrawl 4294967297` -> OK, value 1.
        assert_eq!(
            ok(b"lru_crawler sleep 4294967297\r\n"),
            Command::LruCrawlerSleep { micros: 1 }
        );
        assert_eq!(
            ok(b"lru_crawler tocrawl 4294967297\r\n"),
            Command::LruCrawlerTocrawl { items: 1 }
        );
        assert_eq!(
            ok(b"lru_crawler enable\r\n"),
            Command::LruCrawlerEnable { on: true }
        );
        assert_eq!(
            ok(b"lru_crawler disable\r\n"),
            Command::LruCrawlerEnable { on: false }
        );
        // `sleep x`, `sleep -1`, `tocrawl x`, `tocrawl -1` -> `CLIENT_ERROR
        // bad command line format`.
        for line in [
            &b"lru_crawler sleep x\r\n"[..],
            b"lru_crawler sleep -1\r\n",
            b"lru_crawler tocrawl x\r\n",
            b"lru_crawler tocrawl -1\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::BadCommandLine, "{line:?}");
        }
        // Wrong token counts and unknown sub-commands -> ERROR, noreply
        // not looked at.
        for line in [
            &b"lru_crawler\r\n"[..],
            b"lru_crawler crawl\r\n",
            b"lru_crawler crawl all x\r\n",
            b"lru_crawler crawl all noreply\r\n",
            b"lru_crawler metadump\r\n",
            b"lru_crawler metadump all noreply\r\n",
            b"lru_crawler metadump hash x\r\n",
            b"lru_crawler sleep\r\n",
            b"lru_crawler enable x\r\n",
            b"lru_crawler bogus\r\n",
            b"lru_crawler mgdump all\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::UnknownCommand, "{line:?}");
        }
    }

    #[test]
    fn lru_commands() {
        assert_eq!(
            ok(b"lru tune 10 10 0.5 1.5\r\n"),
            Command::LruTune {
                hot_pct: 10,
                warm_pct: 10,
                hot_factor: Float(0.5),
                warm_factor: Float(1.5),
                noreply: false
            }
        );
        // Ranges are exec's: `lru tune 50 40 0.5 1.5` -> `ERROR hot and
        // warm pcts must not exceed 80`; `10 10 0 1.5` -> `ERROR hot/warm
        // age factors must be greater than 0`.
        assert!(matches!(
            ok(b"lru tune 50 40 0 1.5 noreply\r\n"),
            Command::LruTune {
                hot_pct: 50,
                noreply: true,
                ..
            }
        ));
        assert_eq!(
            ok(b"lru mode flat\r\n"),
            Command::LruMode {
                segmented: false,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"lru mode segmented\r\n"),
            Command::LruMode {
                segmented: true,
                noreply: false
            }
        );
        assert_eq!(
            ok(b"lru temp_ttl -1\r\n"),
            Command::LruTempTtl {
                ttl: -1,
                noreply: false
            }
        );
        // `lru`, `lru tune`, `lru tune 10 10 0.5`, `lru tune 10 10 x 1.5`,
        // `lru mode`, `lru mode x`, `lru temp_ttl x`, `lru x` -> ERROR.
        for line in [
            &b"lru\r\n"[..],
            b"lru tune\r\n",
            b"lru tune 10 10 0.5\r\n",
            b"lru tune 10 10 x 1.5\r\n",
            b"lru mode\r\n",
            b"lru mode x\r\n",
            b"lru temp_ttl x\r\n",
            b"lru x\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::UnknownCommand, "{line:?}");
        }
        // `lru tune 10 10 0.5 1.5 noreply` -> nothing.
        assert!(matches!(
            ok(b"lru tune 10 10 0.5 1.5 noreply\r\n"),
            Command::LruTune { noreply: true, .. }
        ));
        assert_eq!(
            silent_err(b"lru tune 10 10 0.5 noreply\r\n"),
            ProtocolError::UnknownCommand
        );
    }

    #[test]
    fn c_decimals() {
        assert_eq!(c_strtod(b"0.5"), Some(0.5));
        assert_eq!(c_strtod(b"1."), Some(1.0));
        assert_eq!(c_strtod(b".5"), Some(0.5));
        assert_eq!(c_strtod(b"-2e3"), Some(-2000.0));
        assert_eq!(c_strtod(b" 1.5\t"), Some(1.5));
        assert_eq!(c_strtod(b"1e"), None);
        assert_eq!(c_strtod(b"1e+"), None);
        assert_eq!(c_strtod(b"."), None);
        assert_eq!(c_strtod(b"x"), None);
        assert_eq!(c_strtod(b"1x"), None);
        assert_eq!(c_strtod(b"1e999"), None);
        assert_eq!(c_strtod(b""), None);
    }

    proptest::proptest! {
        /// The admin commands: canonical encoding parses back to the same
        /// command, and every strict prefix is incomplete.
        #[test]
        fn admin_requests_round_trip(
            kind in 0u8..14,
            a in proptest::prelude::any::<u32>(),
            b in proptest::prelude::any::<u32>(),
            x in -1.0e12f64..1.0e12,
            y in proptest::prelude::any::<f64>(),
            ids in proptest::prelude::any::<u64>(),
            noreply in proptest::prelude::any::<bool>(),
            junk in "[a-z]{1,6}",
        ) {
            let mut set = ClassSet::default();
            for i in 1..=63u32 {
                if ids & (1 << i) != 0 {
                    set.insert(i);
                }
            }
            let y = if y.is_finite() { y } else { 2.5 };
            // A junk token must not be a keyword or a number.
            let junk = if junk == "all" || junk == "hash" { "x".to_string() } else { junk };
            let target = match a % 4 {
                0 => CrawlTarget::All,
                1 => CrawlTarget::Hash,
                2 => CrawlTarget::Classes(set),
                _ => CrawlTarget::Bad(junk.as_bytes()),
            };
            let n32 = |v: u32, bad: bool| if bad { Num::Bad(junk.as_bytes()) } else { Num::Ok(v) };
            let cmd = match kind {
                0 => Command::StatsCachedump(CachedumpArgs::Given {
                    class: n32(a, b % 3 == 0),
                    limit: n32(b, a % 3 == 0),
                }),
                1 => Command::StatsCachedump(CachedumpArgs::Missing(
                    (a % 2 == 0).then_some(junk.as_bytes()),
                )),
                2 => Command::SlabsReassign {
                    src: if b % 3 == 0 { Num::Bad(junk.as_bytes()) } else { Num::Ok(a as i32) },
                    dst: Num::Ok(b as i32),
                },
                3 => Command::SlabsAutomove { level: (a % 3) as u8, noreply },
                4 => Command::SlabsAutomoveRatio { ratio: Float(x), noreply },
                5 => Command::LruCrawlerCrawl { target },
                6 => Command::LruCrawlerMetadump { target },
                7 => Command::LruCrawlerSleep { micros: a },
                8 => Command::LruCrawlerTocrawl { items: a },
                9 => Command::LruCrawlerEnable { on: noreply },
                10 => Command::LruTune {
                    hot_pct: a,
                    warm_pct: b,
                    hot_factor: Float(x),
                    warm_factor: Float(y),
                    noreply,
                },
                11 => Command::LruMode { segmented: a % 2 == 0, noreply },
                12 => Command::LruTempTtl { ttl: a as i32, noreply },
                _ => Command::SlabsAutomove { level: 2, noreply: false },
            };
            let mut bytes = Vec::new();
            encode::request(&mut bytes, &cmd);
            match p(&bytes) {
                Parsed::Complete { cmd: got, consumed } => {
                    proptest::prop_assert_eq!(consumed, bytes.len());
                    proptest::prop_assert_eq!(got, cmd);
                }
                other => proptest::prop_assert!(false, "{:?} -> {:?}", String::from_utf8_lossy(&bytes), other),
            }
            for k in 0..bytes.len() {
                proptest::prop_assert_eq!(p(&bytes[..k]), Parsed::Incomplete);
            }
        }
    }

    proptest::proptest! {
        /// Admin-looking junk: no panic, and every prefix is either
        /// incomplete or the verdict of the whole.
        #[test]
        fn admin_junk_is_chunk_independent(
            pieces in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("slabs ".to_string()),
                proptest::strategy::Just("lru_crawler ".to_string()),
                proptest::strategy::Just("lru ".to_string()),
                proptest::strategy::Just("stats cachedump ".to_string()),
                proptest::strategy::Just("reassign ".to_string()),
                proptest::strategy::Just("automove ".to_string()),
                proptest::strategy::Just("ratio ".to_string()),
                proptest::strategy::Just("crawl ".to_string()),
                proptest::strategy::Just("metadump ".to_string()),
                proptest::strategy::Just("tune ".to_string()),
                proptest::strategy::Just("noreply".to_string()),
                proptest::strategy::Just(",".to_string()),
                proptest::strategy::Just(" ".to_string()),
                proptest::strategy::Just("\r\n".to_string()),
                "-?[0-9]{1,12}(\\.[0-9]{0,3})?( |,)?",
                "[a-z]{1,5} ?",
            ], 0..14),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let buf = pieces.concat().into_bytes();
            let whole = p(&buf);
            let k = cut.index(buf.len() + 1);
            let part = p(&buf[..k]);
            proptest::prop_assert!(part == Parsed::Incomplete || part == whole);
        }
    }

    #[test]
    fn unknown_commands() {
        // Observed: each -> ERROR.
        for line in [
            &b"\r\n"[..],
            b"\n",
            b"   \r\n",
            b"x\r\n",
            b"xy\r\n",
            b"g\r\n",
            b"GET a\r\n",
            b"Set a 0 0 1\r\n",
            b"MG a v\r\n",
            b"mz a\r\n",
            // Meta verbs without a key.
            b"mg\r\n",
            b"ms\r\n",
            b"md\r\n",
            b"ma\r\n",
            b"slabs\r\n",
            b"lru_crawler\r\n",
            b"gxt / HTTP/1.0\r\n",
            b"m HTTP/1.0\r\n",
            b"foo HTTP/ x\r\n",
            b"foo http/1.0\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::UnknownCommand, "{:?}", line);
        }
        assert_eq!(wire(&ProtocolError::UnknownCommand), "ERROR");
        // Admin verbs memcached dispatches by name are never a hang-up
        // (observed: `watch HTTP/1.0`, `extstore HTTP/1.0` -> ERROR;
        // `refresh_certs HTTP/1.0` -> `Error TLS not enabled`).
        for line in [
            &b"watch HTTP/1.0\r\n"[..],
            b"extstore HTTP/1.0\r\n",
            b"refresh_certs HTTP/1.0\r\n",
            b"lru_crawler HTTP/1.0\r\n",
            b"lru\r\n",
        ] {
            assert_eq!(err(line), ProtocolError::UnknownCommand, "{:?}", line);
        }
        // Observed: `lru x noreply`, `lru noreply`, `extstore x noreply`
        // answer nothing; `lru_crawler x noreply`, `slabs x noreply` ERROR.
        assert_eq!(
            silent_err(b"lru x noreply\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(
            silent_err(b"lru noreply\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(
            silent_err(b"extstore x noreply\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(
            err(b"lru_crawler x noreply\r\n"),
            ProtocolError::UnknownCommand
        );
        assert_eq!(err(b"slabs x noreply\r\n"), ProtocolError::UnknownCommand);
    }

    #[test]
    fn nul_bytes_are_ordinary_bytes() {
        // Divergence: memcached ends the C string at a NUL, so it answers
        // `version\0junk` with VERSION, `get a\0b` as `get a`, treats
        // `set k\0z 0 0 1` as `set k` (ERROR) and would delete `a` for
        // `delete a\0b`. Here a NUL is an ordinary (control) byte: the
        // verb is unknown, or the key is refused.
        assert_eq!(err(b"version\0junk\r\n"), ProtocolError::UnknownCommand);
        assert_eq!(err(b"delete a\0b\r\n"), ProtocolError::BadCommandLine);
        assert_eq!(
            bad(b"set k\0z 0 0 1\r\n"),
            (
                ProtocolError::BadCommandLine,
                15,
                Recovery::Swallow(3),
                false
            )
        );
        // Inside a data block a NUL is data.
        assert!(matches!(
            ok(b"set k 0 0 1\r\n\0\r\n"),
            Command::Store { .. }
        ));
    }

    #[test]
    fn http_request_lines_hang_up() {
        // Observed: each closes the connection without a reply (also
        // `misbehave HTTP/1.0` and `mcp HTTP/1.0`: not built in).
        for line in [
            &b"misbehave HTTP/1.0\r\n"[..],
            b"mcp HTTP/1.0\r\n",
            b"GET / HTTP/1.0\r\n",
            b"GET / HTTP/1.1\r\n",
            b"zz HTTP/1.0\r\n",
            b"HTTP/1.0\r\n",
            b"foo HTTP/\r\n",
            b"POST /x HTTP/1.1\r\n",
        ] {
            assert_eq!(
                bad(line),
                (ProtocolError::Hangup, line.len(), Recovery::Close, false),
                "{:?}",
                line
            );
        }
        assert_eq!(ProtocolError::Hangup.wire_text(), None);
        // Observed: a known verb wins (`version HTTP/1.0` -> VERSION,
        // `get a HTTP/1.0` is a two-key get).
        assert_eq!(ok(b"version HTTP/1.0\r\n"), Command::Version);
        assert!(matches!(ok(b"get a HTTP/1.0\r\n"), Command::Get { .. }));
        // memcached looks at the 23rd token when there are more (observed:
        // `zz` + 21 × `a` + `HTTP/1.0 b c` closes; `zz` + 23 × `a` +
        // `HTTP/1.0` answers ERROR).
        let mut l = b"zz ".to_vec();
        l.extend_from_slice(&b"a ".repeat(21));
        l.extend_from_slice(b"HTTP/1.0 b c\r\n");
        assert_eq!(bad(&l).0, ProtocolError::Hangup);
        let mut l = b"zz ".to_vec();
        l.extend_from_slice(&b"a ".repeat(23));
        l.extend_from_slice(b"HTTP/1.0\r\n");
        assert_eq!(err(&l), ProtocolError::UnknownCommand);
        // Observed: what follows the request line is never read.
        assert_eq!(
            transcript(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            vec!["<close>"]
        );
    }

    // ---- line limits -----------------------------------------------------

    #[test]
    fn long_lines() {
        // Observed: 2049 bytes without a newline close the connection;
        // 2048 bytes wait for more.
        let x = vec![b'x'; 2049];
        assert_eq!(p(&x[..2048]), Parsed::Incomplete);
        assert_eq!(
            bad(&x),
            (ProtocolError::LineTooLong, 2049, Recovery::Close, false)
        );
        // Observed: 2048 bytes, then `\n` in a later read -> ERROR (the
        // line is processed).
        let mut l = vec![b'x'; 2048];
        l.push(b'\n');
        assert_eq!(err(&l), ProtocolError::UnknownCommand);
        // Divergence: memcached processes a longer line when its newline
        // came in the same read (`set k 0 0 1 <3000 x>\r\n` -> STORED); the
        // outcome here never depends on the reads, so it closes.
        let mut l = b"set k 0 0 1 ".to_vec();
        l.extend_from_slice(&[b'x'; 3000]);
        l.extend_from_slice(b"\r\nx\r\n");
        assert_eq!(bad(&l).0, ProtocolError::LineTooLong);
        assert_eq!(bad(&l).2, Recovery::Close);
    }

    #[test]
    fn long_retrieval_lines() {
        // Observed: `get <3000 bytes>` without newline waits; with up to
        // 100 leading spaces too; 101 spaces close.
        let mut g = b"get ".to_vec();
        g.extend_from_slice(&[b'a'; 3000]);
        assert_eq!(p(&g), Parsed::Incomplete);
        let mut s = vec![b' '; 100];
        s.extend_from_slice(&g);
        assert_eq!(p(&s), Parsed::Incomplete);
        let mut s = vec![b' '; 101];
        s.extend_from_slice(&g);
        assert_eq!(bad(&s).0, ProtocolError::LineTooLong);
        // Observed: a 4000-byte `get a a a ...` line answers END.
        let mut line = b"get".to_vec();
        while line.len() < 4000 {
            line.extend_from_slice(b" a");
        }
        line.extend_from_slice(b"\r\n");
        assert!(matches!(ok(&line), Command::Get { .. }));
        // Divergence: `gat` lines get the same allowance (memcached closes:
        // `gat 1 <3000 bytes>`).
        let mut t = b"gat 1 ".to_vec();
        t.extend_from_slice(&[b'a'; 3000]);
        assert_eq!(p(&t), Parsed::Incomplete);
        // Our bound: GET_LINE_MAX_LEN bytes before the newline.
        let mut big = b"gets".to_vec();
        while big.len() < GET_LINE_MAX_LEN {
            big.extend_from_slice(b" k");
        }
        big.truncate(GET_LINE_MAX_LEN);
        assert_eq!(p(&big), Parsed::Incomplete);
        let mut at = big.clone();
        at.push(b'\n');
        assert!(matches!(p(&at), Parsed::Complete { .. }));
        big.push(b'k');
        assert_eq!(
            bad(&big),
            (
                ProtocolError::LineTooLong,
                GET_LINE_MAX_LEN + 1,
                Recovery::Close,
                false
            )
        );
        big.extend_from_slice(b"\r\n");
        assert_eq!(bad(&big).0, ProtocolError::LineTooLong);
    }

    // ---- splitting -------------------------------------------------------

    /// Valid requests: every strict prefix is Incomplete and the whole is
    /// one Complete request.
    const VALID: &[&[u8]] = &[
        b"get a\r\n",
        b"get a\n",
        b"gets a b c\r\n",
        b"gat 0 a\r\n",
        b"gats 100 a b\r\n",
        b"gat 10\r\n",
        b"bget a\r\n",
        b"set k 0 0 1\r\nx\r\n",
        b"set k 4294967295 -1 5 noreply\r\nhello\r\n",
        b"add k 0 0 0\r\n\r\n",
        b"replace k 1 2 2\r\n\r\n\r\n",
        b"append k 0 0 3\r\nabc\r\n",
        b"prepend k 0 0 3\r\nabc\r\n",
        b"cas k 0 0 1 99\r\nx\r\n",
        b"cas k 0 0 1 99 noreply\r\nx\r\n",
        b"delete k\r\n",
        b"delete k 0\r\n",
        b"delete k 0 noreply\r\n",
        b"delete k noreply\r\n",
        b"incr k 1\r\n",
        b"decr k 18446744073709551615 noreply\r\n",
        b"touch k 10\r\n",
        b"touch k 10 noreply\r\n",
        b"flush_all\r\n",
        b"flush_all 5\r\n",
        b"flush_all noreply\r\n",
        b"flush_all 5 noreply\r\n",
        b"version\r\n",
        b"verbosity 1\r\n",
        b"verbosity 1 noreply\r\n",
        b"quit\r\n",
        b"shutdown\r\n",
        b"shutdown graceful\r\n",
        b"cache_memlimit 100\r\n",
        b"cache_memlimit 100 noreply\r\n",
        b"stats\r\n",
        b"stats settings\r\n",
        b"stats cachedump 1 100\r\n",
        b"stats cachedump x\r\n",
        b"stats cachedump 1 -1\r\n",
        b"slabs reassign 1 2\r\n",
        b"slabs reassign -1 x\r\n",
        b"slabs automove 2\r\n",
        b"slabs automove 1 noreply\r\n",
        b"slabs automove ratio 0.5\r\n",
        b"lru_crawler crawl all\r\n",
        b"lru_crawler crawl 1,2,63\r\n",
        b"lru_crawler crawl ,\r\n",
        b"lru_crawler crawl 0\r\n",
        b"lru_crawler metadump hash\r\n",
        b"lru_crawler metadump all\n",
        b"lru_crawler sleep 100\r\n",
        b"lru_crawler tocrawl 0\r\n",
        b"lru_crawler enable\r\n",
        b"lru_crawler disable\r\n",
        b"lru tune 10 20 0.5 1.5\r\n",
        b"lru mode flat noreply\r\n",
        b"lru temp_ttl -1\r\n",
    ];

    #[test]
    fn every_split_of_valid_requests() {
        for req in VALID {
            let whole = p(req);
            let Parsed::Complete { consumed, .. } = whole else {
                panic!("{:?} -> {:?}", String::from_utf8_lossy(req), whole);
            };
            assert_eq!(consumed, req.len(), "{:?}", String::from_utf8_lossy(req));
            for k in 0..req.len() {
                assert_eq!(
                    p(&req[..k]),
                    Parsed::Incomplete,
                    "{:?} cut at {k}",
                    String::from_utf8_lossy(req)
                );
            }
            // Followed by anything, the same request comes out.
            let mut more = req.to_vec();
            more.extend_from_slice(b"get x\r\n");
            assert_eq!(p(&more), whole);
            // And the canonical encoding parses back to it.
            let Parsed::Complete { cmd, .. } = &whole else {
                unreachable!()
            };
            let mut enc = Vec::new();
            encode::request(&mut enc, cmd);
            assert_eq!(&ok(&enc), cmd);
        }
    }

    #[test]
    fn every_split_of_refused_requests() {
        // A prefix is either Incomplete or the same verdict as the whole.
        let refused: &[&[u8]] = &[
            b"set c -1 0 1\r\nx\r\n",
            b"set c 0 0 3\r\nabcde\r\n",
            b"set k 0 0 1048517\r\n",
            b"delete a 5\r\n",
            b"GET / HTTP/1.0\r\n",
            b"bogus\r\n",
            b"slabs automove 3\r\n",
            b"slabs automove x noreply\r\n",
            b"slabs reassign 1 2 noreply\r\n",
            b"lru_crawler sleep x\r\n",
            b"lru_crawler crawl all noreply\r\n",
            b"lru tune 1 2 x 1\r\n",
            b"lru mode x noreply\r\n",
        ];
        for req in refused {
            let whole = p(req);
            assert!(matches!(whole, Parsed::Invalid { .. }));
            for k in 0..req.len() {
                let part = p(&req[..k]);
                assert!(
                    part == Parsed::Incomplete || part == whole,
                    "{:?} cut at {k}: {:?}",
                    String::from_utf8_lossy(req),
                    part
                );
            }
        }
    }

    #[test]
    fn pipelined_stream() {
        let stream = b"set a 0 0 1\r\n1\r\nget a b\r\nincr a 1 noreply\r\nbogus\r\nversion\r\n";
        assert_eq!(
            transcript(stream),
            vec!["<set>", "<get>", "<incr>", "ERROR", "<version>"]
        );
    }

    #[test]
    fn c_numbers() {
        assert_eq!(c_strtoull(b"0"), Some(0));
        assert_eq!(c_strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(c_strtoull(b"18446744073709551616"), None);
        assert_eq!(c_strtoull(b"-1"), None);
        assert_eq!(c_strtoull(b"-0"), Some(0));
        assert_eq!(
            c_strtoull(b"-9223372036854775809"),
            Some(9223372036854775807)
        );
        assert_eq!(c_strtoull(b""), None);
        assert_eq!(c_strtoull(b"-"), None);
        assert_eq!(c_strtoull(b"+"), None);
        assert_eq!(c_strtoull(b"\t"), None);
        assert_eq!(c_strtoull(b"1 "), Some(1));
        assert_eq!(c_strtoull(b"1\0"), None);
        assert_eq!(c_strtol32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(c_strtol32(b"2147483647"), Some(i32::MAX));
        assert_eq!(c_strtol32(b"-9223372036854775808"), Some(0));
        assert_eq!(c_strtol32(b"-9223372036854775809"), None);
        assert_eq!(c_strtol32(b"9223372036854775808"), None);
        assert_eq!(c_strtol32(b"4294967295"), Some(-1));
    }
}
