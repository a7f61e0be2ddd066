//! The meta dialect (`mg ms md ma mn me`), as memcached 1.6.18 reads it.
//!
//! A meta request is `<verb> <key> [<datalen>] <flag>*`: each flag is one
//! token whose first byte names it, some followed by a number or a token.
//! The parser validates everything memcached validates before touching the
//! store and keeps the flags as the raw slice of the line ([`MetaFlags`]),
//! so that exec can answer the return flags in request order (zero-copy).
//!
//! Observed on 1.6.18 (the tests quote it):
//! - one flag parser serves all four commands: the accepted letters are
//!   `b c f h k l q s t u v C D F I J L M N O P R T`; anything else is
//!   `CLIENT_ERROR invalid flag`, a letter given twice `CLIENT_ERROR
//!   duplicate flag` (`md`/`ma` answer any flag error with `CLIENT_ERROR
//!   invalid or duplicate flag`); `E` (explicit CAS), `S` and `x` are
//!   refused: 1.6.18 does not have them yet (an `E` added later must keep
//!   CAS uniques unique and increasing: the item's sequence is both its
//!   CAS and its place in flush ordering, so the store would take
//!   `max(E, next)` and move its counter past it, `fetch_max`, never
//!   reuse a lower value);
//! - a bad number after `N T R C` is `CLIENT_ERROR bad token in command
//!   line format`, after `F` `CLIENT_ERROR bad command line format`, after
//!   `J`/`D` `CLIENT_ERROR invalid numeric initial/delta value`; an `M`
//!   token must be two bytes (`CLIENT_ERROR incorrect length for M
//!   token`); flag errors do not stop the scan, the last message wins (a
//!   bad `F` leaves the message as it was), but an invalid or duplicate
//!   letter stops it at once;
//! - more than 17 flags (16 on `ms`, whose data length counts):
//!   `CLIENT_ERROR options flags are too long` on `mg`, `CLIENT_ERROR
//!   options flags too long` on `ms`/`md`/`ma`;
//! - `b`: the key is base64 (`CLIENT_ERROR error decoding key`);
//! - an opaque token over 32 bytes (`O` included): `CLIENT_ERROR opaque
//!   token too long`.
//!
//! Deliberate divergences, as in the text dialect (see `parse`): keys with
//! control bytes are refused with `CLIENT_ERROR bad command line format`,
//! and a refused `ms` line whose length is usable has its data block
//! swallowed (memcached runs it as a command after a too-long key).

use super::command::Command;
use super::error::{ProtocolError, Recovery};
use super::KEY_MAX_LEN;

/// Most flags a meta request may carry.
pub const MAX_FLAGS: usize = 17;
/// Longest opaque token, the `O` included (observed: `O` and 31 bytes
/// pass, 32 bytes after the `O` are refused).
pub const OPAQUE_MAX_LEN: usize = 32;

/// The meta verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVerb {
    Get,
    Set,
    Delete,
    Arith,
    Debug,
}

/// `ms` modes (`M<E|A|P|R|S>`; 1.6.18 refuses lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    Set,
    Add,
    Append,
    Prepend,
    Replace,
}

/// The validated flags of one meta request, borrowing the raw flag tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaFlags<'a> {
    /// The flag tokens as received (validated), for output in order.
    pub raw: &'a [u8],
    pub base64: bool,
    pub value: bool,
    pub quiet: bool,
    pub no_bump: bool,
    pub invalidate: bool,
    /// `N<ttl>`: create on miss with this exptime (raw client number).
    pub vivify: Option<i64>,
    /// `T<ttl>`.
    pub ttl: Option<i64>,
    /// `R<ttl>`.
    pub recache: Option<i64>,
    /// `F<flags>`.
    pub client_flags: u32,
    /// `C<cas>`.
    pub compare_cas: Option<u64>,
    /// `M<mode>` byte.
    pub mode: Option<u8>,
    /// `J<initial>` (default 0).
    pub initial: u64,
    /// `D<delta>` (default 1).
    pub delta: u64,
}

impl<'a> MetaFlags<'a> {
    /// The flag tokens in request order.
    pub fn tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        self.raw.split(|&b| b == b' ').filter(|t| !t.is_empty())
    }

    /// Whether flag letter `f` was given.
    pub fn has(&self, f: u8) -> bool {
        self.tokens().any(|t| t[0] == f)
    }

    /// Whether the write mode is `ms`'s `S` set (the default).
    pub fn set_mode(&self) -> Option<SetMode> {
        match self.mode {
            None | Some(b'S') => Some(SetMode::Set),
            Some(b'E') => Some(SetMode::Add),
            Some(b'A') => Some(SetMode::Append),
            Some(b'P') => Some(SetMode::Prepend),
            Some(b'R') => Some(SetMode::Replace),
            Some(_) => None,
        }
    }

    /// `ma` mode: Some(true) increment, Some(false) decrement.
    pub fn arith_incr(&self) -> Option<bool> {
        match self.mode {
            None | Some(b'I' | b'+') => Some(true),
            Some(b'D' | b'-') => Some(false),
            Some(_) => None,
        }
    }
}

/// One meta request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaCmd<'a> {
    pub verb: MetaVerb,
    /// The key token as sent (base64 text when `flags.base64`).
    pub key: &'a [u8],
    pub flags: MetaFlags<'a>,
    /// `ms` only: the data block (without its `\r\n`).
    pub data: &'a [u8],
}

impl<'a> MetaCmd<'a> {
    /// The key as stored: decoded from base64 with `b`. Into `buf`.
    pub fn key_bytes<'b>(&self, buf: &'b mut [u8; KEY_MAX_LEN]) -> Option<&'b [u8]>
    where
        'a: 'b,
    {
        if self.flags.base64 {
            let n = base64_decode(self.key, buf)?;
            Some(&buf[..n])
        } else {
            let n = self.key.len().min(KEY_MAX_LEN);
            buf[..n].copy_from_slice(&self.key[..n]);
            Some(&buf[..n])
        }
    }
}

/// What the line parser does next with a meta line.
pub(crate) enum MetaLine<'a> {
    /// A request without a data block (or `mn`).
    Done(Command<'a>),
    /// `ms`: needs `len` bytes of data and `\r\n` after the line.
    NeedData(MetaCmd<'a>, usize),
    /// Refused; swallow the data block when its length is known.
    Error(ProtocolError, Option<usize>),
}

fn letter_index(b: u8) -> Option<u32> {
    match b {
        b'a'..=b'z' => Some(u32::from(b - b'a')),
        b'A'..=b'Z' => Some(26 + u32::from(b - b'A')),
        _ => None,
    }
}

/// memcached's `safe_strtol` for the TTL-like flags (32-bit truncation).
fn ttl_number(tok: &[u8]) -> Option<i64> {
    super::parse::c_strtol32_pub(tok).map(i64::from)
}

/// Reads the flag tokens of `raw`. `Err` carries memcached's message.
pub fn parse_flags(raw: &[u8]) -> Result<MetaFlags<'_>, ProtocolError> {
    let mut f = MetaFlags {
        raw,
        delta: 1,
        ..MetaFlags::default()
    };
    let mut seen: u64 = 0;
    let mut err: Option<ProtocolError> = None;
    for tok in raw.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        let o = tok[0];
        let arg = &tok[1..];
        let Some(idx) = letter_index(o) else {
            return Err(ProtocolError::InvalidFlag);
        };
        if seen & (1 << idx) != 0 {
            return Err(ProtocolError::DuplicateFlag);
        }
        seen |= 1 << idx;
        match o {
            b'b' => f.base64 = true,
            b'N' | b'T' | b'R' => match ttl_number(arg) {
                Some(n) => match o {
                    b'N' => f.vivify = Some(n),
                    b'T' => f.ttl = Some(n),
                    _ => f.recache = Some(n),
                },
                None => err = Some(ProtocolError::BadToken),
            },
            b'l' | b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' => {}
            b'v' => f.value = true,
            b'u' => f.no_bump = true,
            b'q' => f.quiet = true,
            b'F' => match super::parse::c_strtoull_pub(arg).and_then(|v| u32::try_from(v).ok()) {
                Some(v) => f.client_flags = v,
                None => err = Some(err.unwrap_or(ProtocolError::BadCommandLine)),
            },
            b'C' => match super::parse::c_strtoull_pub(arg) {
                Some(v) => f.compare_cas = Some(v),
                None => err = Some(ProtocolError::BadToken),
            },
            b'M' => {
                if tok.len() != 2 {
                    err = Some(ProtocolError::MTokenLength);
                } else {
                    f.mode = Some(tok[1]);
                }
            }
            b'J' => match super::parse::c_strtoull_pub(arg) {
                Some(v) => f.initial = v,
                None => err = Some(ProtocolError::InitialValue),
            },
            b'D' => match super::parse::c_strtoull_pub(arg) {
                Some(v) => f.delta = v,
                None => err = Some(ProtocolError::DeltaValue),
            },
            b'I' => f.invalidate = true,
            _ => return Err(ProtocolError::InvalidFlag),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_val(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Standard base64 with padding; `None` when `src` is not valid base64 or
/// decodes to nothing or to more than `out` holds.
pub fn base64_decode(src: &[u8], out: &mut [u8]) -> Option<usize> {
    if src.is_empty() || !src.len().is_multiple_of(4) {
        return None;
    }
    let mut n = 0;
    let quads = src.len() / 4;
    for (qi, q) in src.chunks(4).enumerate() {
        let last = qi + 1 == quads;
        let pad = q.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc: u32 = 0;
        for &b in &q[..4 - pad] {
            acc = (acc << 6) | b64_val(b)?;
        }
        acc <<= 6 * pad as u32;
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        for &b in &bytes[..3 - pad] {
            *out.get_mut(n)? = b;
            n += 1;
        }
    }
    if n == 0 {
        None
    } else {
        Some(n)
    }
}

/// Standard base64 with padding, appended to `out`.
pub fn base64_encode(out: &mut Vec<u8>, src: &[u8]) {
    for c in src.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let acc = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((acc >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Validates the key token for `flags` (`b`: base64 decoding to a key).
fn check_key(key: &[u8], flags: &MetaFlags<'_>) -> Result<(), ProtocolError> {
    if flags.base64 {
        let mut buf = [0u8; KEY_MAX_LEN];
        if base64_decode(key, &mut buf).is_none() {
            return Err(ProtocolError::DecodingKey);
        }
        Ok(())
    } else if key.iter().any(|&b| b < 0x20 || b == 0x7f) {
        Err(ProtocolError::BadCommandLine)
    } else {
        Ok(())
    }
}

/// Reads a meta line after its verb (`mg ms md ma mn me`); `rest` is the
/// line after the verb.
pub(crate) fn parse_meta_line<'a>(verb: &[u8], rest: &'a [u8]) -> Option<MetaLine<'a>> {
    let verb = match verb {
        b"mn" => return Some(MetaLine::Done(Command::MetaNoop)),
        b"mg" => MetaVerb::Get,
        b"ms" => MetaVerb::Set,
        b"md" => MetaVerb::Delete,
        b"ma" => MetaVerb::Arith,
        b"me" => MetaVerb::Debug,
        _ => return None,
    };
    let trimmed = {
        let s = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        let e = rest.iter().rposition(|&b| b != b' ').map_or(s, |e| e + 1);
        &rest[s..e.max(s)]
    };
    let (key, after) = match trimmed.iter().position(|&b| b == b' ') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, &trimmed[trimmed.len()..]),
    };
    if key.is_empty() {
        return Some(MetaLine::Error(
            if verb == MetaVerb::Debug {
                ProtocolError::BadCommandLine
            } else {
                ProtocolError::UnknownCommand
            },
            None,
        ));
    }
    if verb == MetaVerb::Debug {
        // `me <key>`: further tokens are ignored (observed).
        if key.len() > KEY_MAX_LEN {
            return Some(MetaLine::Error(ProtocolError::BadCommandLine, None));
        }
        let flags = MetaFlags {
            delta: 1,
            ..MetaFlags::default()
        };
        if check_key(key, &flags).is_err() {
            return Some(MetaLine::Error(ProtocolError::BadCommandLine, None));
        }
        return Some(MetaLine::Done(Command::Meta(MetaCmd {
            verb,
            key,
            flags,
            data: &[],
        })));
    }
    // `ms` takes the data length before its flags.
    let (vlen, flag_area): (Option<Option<usize>>, &[u8]) = if verb == MetaVerb::Set {
        let a = after.trim_ascii_start();
        let (tok, more) = match a.iter().position(|&b| b == b' ') {
            Some(i) => (&a[..i], &a[i..]),
            None => (a, &a[a.len()..]),
        };
        if tok.is_empty() {
            return Some(MetaLine::Error(ProtocolError::BadCommandLine, None));
        }
        let v = super::parse::c_strtol32_pub(tok)
            .filter(|v| (0..=i32::MAX - 2).contains(v))
            .map(|v| v as usize);
        (Some(v), more)
    } else {
        (None, after)
    };
    let swallow = vlen.flatten().map(|v| v + 2);
    if key.len() > KEY_MAX_LEN {
        return Some(MetaLine::Error(ProtocolError::BadCommandLine, swallow));
    }
    let nflags = flag_area
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .count();
    // memcached counts `ms`'s data length as one of the tokens, and words
    // the refusal differently for mg than for ms/md/ma.
    let limit = if verb == MetaVerb::Set {
        MAX_FLAGS - 1
    } else {
        MAX_FLAGS
    };
    if nflags > limit {
        let e = if verb == MetaVerb::Get {
            ProtocolError::FlagsTooLong
        } else {
            ProtocolError::OptionsTooLong
        };
        return Some(MetaLine::Error(e, swallow));
    }
    if let Some(None) = vlen {
        return Some(MetaLine::Error(ProtocolError::BadCommandLine, None));
    }
    let flags = match parse_flags(flag_area) {
        Ok(f) => f,
        Err(e) => {
            let e = match verb {
                MetaVerb::Delete | MetaVerb::Arith => ProtocolError::InvalidOrDuplicateFlag,
                _ => e,
            };
            return Some(MetaLine::Error(e, swallow));
        }
    };
    if let Err(e) = check_key(key, &flags) {
        let e = match verb {
            MetaVerb::Delete | MetaVerb::Arith if e == ProtocolError::DecodingKey => {
                ProtocolError::InvalidOrDuplicateFlag
            }
            _ => e,
        };
        return Some(MetaLine::Error(e, swallow));
    }
    if flags
        .tokens()
        .any(|t| t[0] == b'O' && t.len() > OPAQUE_MAX_LEN)
    {
        return Some(MetaLine::Error(ProtocolError::OpaqueTooLong, swallow));
    }
    match verb {
        MetaVerb::Set if flags.set_mode().is_none() => {
            return Some(MetaLine::Error(ProtocolError::MsMode, swallow))
        }
        MetaVerb::Arith if flags.arith_incr().is_none() => {
            return Some(MetaLine::Error(ProtocolError::MaMode, None))
        }
        _ => {}
    }
    let cmd = MetaCmd {
        verb,
        key,
        flags,
        data: &[],
    };
    match vlen {
        Some(Some(v)) => Some(MetaLine::NeedData(cmd, v)),
        _ => Some(MetaLine::Done(Command::Meta(cmd))),
    }
}

/// Recovery for a refused meta line.
pub(crate) fn recovery(swallow: Option<usize>) -> Recovery {
    match swallow {
        Some(n) => Recovery::Swallow(n),
        None => Recovery::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse, Limits, Parsed};

    fn p(buf: &[u8]) -> Parsed<'_> {
        parse(buf, &Limits::default())
    }

    fn ok(buf: &[u8]) -> MetaCmd<'_> {
        match p(buf) {
            Parsed::Complete {
                cmd: Command::Meta(m),
                consumed,
            } => {
                assert_eq!(consumed, buf.len(), "{:?}", String::from_utf8_lossy(buf));
                m
            }
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    /// The reply text and recovery of a refused line.
    fn err(buf: &[u8]) -> (&'static str, Recovery) {
        match p(buf) {
            Parsed::Invalid {
                error, recovery, ..
            } => (error.wire_text().unwrap_or(""), recovery),
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn mg_flags() {
        let m = ok(b"mg k v f c t k Oab s h l q u\r\n");
        assert_eq!(m.verb, MetaVerb::Get);
        assert_eq!(m.key, b"k");
        assert!(m.flags.value && m.flags.quiet && m.flags.no_bump);
        assert_eq!(
            m.flags.tokens().collect::<Vec<_>>(),
            [
                &b"v"[..],
                b"f",
                b"c",
                b"t",
                b"k",
                b"Oab",
                b"s",
                b"h",
                b"l",
                b"q",
                b"u"
            ]
        );
        let m = ok(b"mg k T30 N-1 R5\r\n");
        assert_eq!(m.flags.ttl, Some(30));
        assert_eq!(m.flags.vivify, Some(-1));
        assert_eq!(m.flags.recache, Some(5));
        // Runs of spaces are one separator.
        let m = ok(b"mg   k   v  \r\n");
        assert_eq!(m.key, b"k");
        assert_eq!(m.flags.tokens().count(), 1);
    }

    #[test]
    fn flag_errors_as_memcached() {
        // Observed on 1.6.18.
        let c = Recovery::Continue;
        assert_eq!(err(b"mg k zz\r\n"), ("CLIENT_ERROR invalid flag", c));
        assert_eq!(err(b"mg k !\r\n"), ("CLIENT_ERROR invalid flag", c));
        assert_eq!(err(b"mg k E5\r\n"), ("CLIENT_ERROR invalid flag", c));
        assert_eq!(err(b"mg k S5\r\n"), ("CLIENT_ERROR invalid flag", c));
        assert_eq!(err(b"mg k v v\r\n"), ("CLIENT_ERROR duplicate flag", c));
        for f in ["T", "Tx", "N", "R", "C", "Cx"] {
            let line = format!("mg k {f}\r\n");
            assert_eq!(
                err(line.as_bytes()),
                ("CLIENT_ERROR bad token in command line format", c),
                "{f}"
            );
        }
        assert_eq!(
            err(b"mg k F\r\n"),
            ("CLIENT_ERROR bad command line format", c)
        );
        assert_eq!(
            err(b"mg k J\r\n"),
            ("CLIENT_ERROR invalid numeric initial value", c)
        );
        assert_eq!(
            err(b"mg k D\r\n"),
            ("CLIENT_ERROR invalid numeric delta value", c)
        );
        assert_eq!(
            err(b"mg k M\r\n"),
            ("CLIENT_ERROR incorrect length for M token", c)
        );
        assert_eq!(
            err(b"mg k MSS\r\n"),
            ("CLIENT_ERROR incorrect length for M token", c)
        );
        // A bad `F` sets no message of its own; an invalid letter stops
        // the scan at once (observed).
        assert_eq!(
            err(b"mg k Tx Fx\r\n"),
            ("CLIENT_ERROR bad token in command line format", c)
        );
        assert_eq!(
            err(b"mg k Fx Tx\r\n"),
            ("CLIENT_ERROR bad token in command line format", c)
        );
        assert_eq!(err(b"mg k Tx zz Fx\r\n"), ("CLIENT_ERROR invalid flag", c));
        assert_eq!(err(b"mg !!! b\r\n"), ("CLIENT_ERROR error decoding key", c));
        assert_eq!(
            err(b"mg k O12345678901234567890123456789012\r\n"),
            ("CLIENT_ERROR opaque token too long", c)
        );
        ok(b"mg k O1234567890123456789012345678901\r\n");
        let many = b"mg k a b c d e f g h i j k l m n o p q r\r\n";
        assert_eq!(err(many), ("CLIENT_ERROR options flags are too long", c));
        ok(b"mg k v f c k s t h l O1 u q T5 N5 R5 P L\r\n");
        let long = [b"mg ".as_slice(), &[b'k'; 251], b" v\r\n"].concat();
        assert_eq!(err(&long), ("CLIENT_ERROR bad command line format", c));
        assert_eq!(err(b"mg\r\n"), ("ERROR", c));
        // md and ma answer every flag error alike.
        for line in [
            &b"md k x\r\n"[..],
            b"md k q q\r\n",
            b"md k C\r\n",
            b"ma k v v\r\n",
            b"ma k z\r\n",
            b"ma k Dx\r\n",
            b"ma k Jx\r\n",
            b"ma k Nx\r\n",
            b"md zz0 b\r\n",
        ] {
            assert_eq!(err(line), ("CLIENT_ERROR invalid or duplicate flag", c));
        }
        assert_eq!(
            err(b"ma k MX\r\n"),
            ("CLIENT_ERROR invalid mode for ma M token", c)
        );
        assert_eq!(
            err(b"ma k Mi\r\n"),
            ("CLIENT_ERROR invalid mode for ma M token", c)
        );
        assert_eq!(err(b"me\r\n"), ("CLIENT_ERROR bad command line format", c));
    }

    #[test]
    fn ms_data_and_errors() {
        let m = ok(b"ms k 2 T0 F5 MA c\r\nhi\r\n");
        assert_eq!(m.data, b"hi");
        assert_eq!(m.flags.client_flags, 5);
        assert_eq!(m.flags.set_mode(), Some(SetMode::Append));
        assert_eq!(p(b"ms k 2 T0\r\nhi\r"), Parsed::Incomplete);
        assert_eq!(p(b"ms k 2 T0\r\n"), Parsed::Incomplete);
        let c = Recovery::Continue;
        assert_eq!(
            err(b"ms k\r\n"),
            ("CLIENT_ERROR bad command line format", c)
        );
        assert_eq!(
            err(b"ms k x\r\n"),
            ("CLIENT_ERROR bad command line format", c)
        );
        assert_eq!(
            err(b"ms k -1\r\n"),
            ("CLIENT_ERROR bad command line format", c)
        );
        assert_eq!(err(b"ms\r\n"), ("ERROR", c));
        let sw = Recovery::Swallow(4);
        assert_eq!(
            err(b"ms k 2 MX\r\n"),
            ("CLIENT_ERROR invalid mode for ms M token", sw)
        );
        assert_eq!(
            err(b"ms k 2 Ms\r\n"),
            ("CLIENT_ERROR invalid mode for ms M token", sw)
        );
        assert_eq!(err(b"ms k 2 T T\r\n"), ("CLIENT_ERROR duplicate flag", sw));
        assert_eq!(
            err(b"ms k 2 Tx\r\n"),
            ("CLIENT_ERROR bad token in command line format", sw)
        );
        assert_eq!(
            err(b"ms k 2 Fx\r\n"),
            ("CLIENT_ERROR bad command line format", sw)
        );
        assert_eq!(err(b"ms k 2 S2\r\n"), ("CLIENT_ERROR invalid flag", sw));
        assert_eq!(
            err(b"ms b1 2 b\r\n"),
            ("CLIENT_ERROR error decoding key", sw)
        );
        assert_eq!(
            err(b"ms k 2000000\r\n"),
            (
                "SERVER_ERROR object too large for cache",
                Recovery::Swallow(2_000_002)
            )
        );
        match p(b"ms k 2\r\nabc\r\n") {
            Parsed::Invalid {
                error, consumed, ..
            } => {
                assert_eq!(error, ProtocolError::BadDataChunk);
                assert_eq!(consumed, 12);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn base64_keys() {
        let m = ok(b"mg YjE= b k\r\n");
        let mut buf = [0u8; KEY_MAX_LEN];
        assert_eq!(m.key_bytes(&mut buf), Some(&b"b1"[..]));
        let mut out = Vec::new();
        base64_encode(&mut out, b"b1");
        assert_eq!(out, b"YjE=");
        for (raw, enc) in [
            (&b"f"[..], &b"Zg=="[..]),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
        ] {
            let mut out = Vec::new();
            base64_encode(&mut out, raw);
            assert_eq!(out, enc);
            let mut back = [0u8; 8];
            let n = base64_decode(enc, &mut back).unwrap_or(0);
            assert_eq!(&back[..n], raw);
        }
        let mut b = [0u8; 8];
        assert_eq!(base64_decode(b"Zg=a", &mut b), None);
        assert_eq!(base64_decode(b"Zg", &mut b), None);
        assert_eq!(base64_decode(b"", &mut b), None);
    }

    #[test]
    fn mn_and_me() {
        assert_eq!(
            p(b"mn\r\n"),
            Parsed::Complete {
                cmd: Command::MetaNoop,
                consumed: 4
            }
        );
        assert!(matches!(
            p(b"mn extra\r\n"),
            Parsed::Complete {
                cmd: Command::MetaNoop,
                ..
            }
        ));
        let m = ok(b"me k x y\r\n");
        assert_eq!(m.verb, MetaVerb::Debug);
        assert_eq!(m.key, b"k");
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for req in [
            &b"mg k v f c\r\n"[..],
            b"ms k 5 T0 c\r\nhello\r\n",
            b"md k q\r\n",
            b"ma k N0 J1 v\r\n",
            b"mn\r\n",
            b"me k\r\n",
        ] {
            for cut in 0..req.len() {
                assert_eq!(p(&req[..cut]), Parsed::Incomplete, "{cut}");
            }
        }
    }
}
