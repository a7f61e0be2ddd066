//! The client protocol parser driven as a stream, the way a connection
//! drives it: parse, act on the verdict (consume, swallow, close), repeat
//! until `Incomplete`.
//!
//! Input layout: byte 0 picks the limits, bytes 1..3 a split offset, the
//! rest is the byte stream a client sent.
//!
//! Checked on every step (Pelikan-style invariants):
//! - `consumed` is > 0 and <= the bytes given, for Complete and Invalid;
//! - every accepted key is 1..=250 bytes without space or control bytes;
//! - every accepted value fits the item limit;
//! - a storage command consumes exactly line + data + 2 and its data block
//!   ends in `\r\n`; every other command consumes exactly its line;
//! - a refused storage line whose `<bytes>` is a plain usable number swallows
//!   exactly `<bytes> + 2` more bytes (the data never runs as commands);
//! - parse(encode(cmd)) == cmd for every accepted command;
//! - chunk independence: the stream fed in two pieces, split at the chosen
//!   offset, and fed byte by byte for short inputs, gives the same sequence
//!   of verdicts as the whole stream at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincache::protocol::command::Command;
use twincache::protocol::{
    encode, parse, Limits, Parsed, ProtocolError, Recovery, GET_LINE_MAX_LEN, KEY_MAX_LEN,
    LINE_MAX_LEN,
};

/// One verdict, owned so that runs over different buffers compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// The request re-encoded, and the bytes it took.
    Command(Vec<u8>, usize),
    Invalid {
        error: ProtocolError,
        consumed: usize,
        recovery: Recovery,
        silent: bool,
        unlink: Option<Vec<u8>>,
    },
    /// Swallowed data bytes (possibly in several reads).
    Swallowed(usize),
}

fn key_ok(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= KEY_MAX_LEN && k.iter().all(|&b| b > 0x20 && b != 0x7f)
}

/// The `\n` ending the first line of `buf`.
fn line_end(buf: &[u8]) -> usize {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => panic!("accepted a request without a newline: {buf:?}"),
    }
}

/// Tokens of the first line (only ' ' separates them; one `\r` before the
/// `\n` dropped).
fn tokens(buf: &[u8]) -> Vec<&[u8]> {
    let mut line = &buf[..line_end(buf) - 1];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line.split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .collect()
}

/// `<bytes>` when it is written as plain decimal digits and usable.
fn plain_len(tok: &[u8]) -> Option<usize> {
    if tok.is_empty() || tok.len() > 10 || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = std::str::from_utf8(tok).ok()?.parse().ok()?;
    (v <= i32::MAX as u64 - 2).then_some(v as usize)
}

fn check_complete(buf: &[u8], cmd: &Command<'_>, consumed: usize, limits: &Limits) {
    assert!(
        consumed > 0 && consumed <= buf.len(),
        "consumed {consumed} of {}",
        buf.len()
    );
    let line = line_end(buf);
    match cmd {
        Command::Store {
            key, flags, data, ..
        } => {
            assert!(key_ok(key), "key {key:?}");
            assert!(data.len() <= limits.max_value_len_for(key.len(), *flags));
            assert_eq!(consumed, line + data.len() + 2, "store consumed");
            assert_eq!(&buf[line..line + data.len()], *data);
            assert_eq!(&buf[consumed - 2..consumed], b"\r\n");
            let toks = tokens(buf);
            assert!(toks.len() >= 5, "store with {} tokens", toks.len());
        }
        // `ms`: a line plus its data block (memcached's meta set).
        Command::Meta(m) if m.verb == twincache::protocol::meta::MetaVerb::Set => {
            assert_eq!(consumed, line + m.data.len() + 2, "ms consumed");
            assert_eq!(&buf[line..line + m.data.len()], m.data);
            assert_eq!(&buf[consumed - 2..consumed], b"\r\n");
        }
        _ => {
            assert_eq!(consumed, line, "one-line command consumed");
            let retrieval = matches!(cmd, Command::Get { .. } | Command::Gat { .. });
            let max = if retrieval {
                GET_LINE_MAX_LEN
            } else {
                LINE_MAX_LEN
            };
            assert!(line <= max + 1, "line of {line} bytes accepted");
        }
    }
    match cmd {
        Command::Get { keys, .. } | Command::Gat { keys, .. } => {
            for k in keys.iter() {
                assert!(key_ok(k), "key {k:?}");
            }
            if matches!(cmd, Command::Get { .. }) {
                assert!(keys.iter().next().is_some(), "get without a key");
            }
        }
        Command::Delete { key, .. } | Command::Arith { key, .. } | Command::Touch { key, .. } => {
            assert!(key_ok(key), "key {key:?}")
        }
        _ => {}
    }
    // parse(encode(cmd)) == cmd
    let mut enc = Vec::new();
    encode::request(&mut enc, cmd);
    match parse(&enc, limits) {
        Parsed::Complete {
            cmd: again,
            consumed,
        } => {
            assert_eq!(
                &again,
                cmd,
                "re-encoded as {:?}",
                String::from_utf8_lossy(&enc)
            );
            assert_eq!(consumed, enc.len());
        }
        other => panic!("{cmd:?} re-encoded as {enc:?} parses as {other:?}"),
    }
}

fn check_invalid(buf: &[u8], error: ProtocolError, consumed: usize, recovery: Recovery) {
    assert!(
        consumed > 0 && consumed <= buf.len(),
        "consumed {consumed} of {}",
        buf.len()
    );
    match error {
        ProtocolError::LineTooLong => {
            assert_eq!(recovery, Recovery::Close);
            assert!(
                !buf[..consumed].contains(&b'\n'),
                "closed a line that had ended"
            );
            assert!(consumed > LINE_MAX_LEN);
        }
        ProtocolError::Hangup => assert_eq!(recovery, Recovery::Close),
        ProtocolError::BadDataChunk => {
            // line + <bytes> + 2 taken, the block's end is not `\r\n`
            assert_eq!(recovery, Recovery::Continue);
            assert_ne!(&buf[consumed - 2..consumed], b"\r\n");
            let toks = tokens(buf);
            if let Some(n) = toks.get(4).and_then(|t| plain_len(t)) {
                assert_eq!(consumed, line_end(buf) + n + 2);
            }
        }
        _ => {
            assert_ne!(recovery, Recovery::Close, "{error:?} closes");
            assert_eq!(
                consumed,
                line_end(buf),
                "{error:?} consumed more than its line"
            );
        }
    }
    if let Recovery::Swallow(n) = recovery {
        let toks = tokens(buf);
        // Which token holds <bytes>: 4 for the classic storage verbs, 2 for
        // the meta set (`ms <key> <datalen> <flags>*`).
        let len_token = match toks.first().copied() {
            Some(b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas") => 4,
            Some(b"ms") => 2,
            _ => panic!("swallow after a non-storage line"),
        };
        if let Some(v) = toks.get(len_token).and_then(|t| plain_len(t)) {
            assert_eq!(n, v + 2, "swallow of {n} for <bytes> {v}");
        }
    }
}

/// Connection-like driver over a growing buffer.
struct Driver {
    limits: Limits,
    buf: Vec<u8>,
    swallow: usize,
    closed: bool,
    events: Vec<Event>,
}

impl Driver {
    fn new(limits: Limits) -> Driver {
        Driver {
            limits,
            buf: Vec::new(),
            swallow: 0,
            closed: false,
            events: Vec::new(),
        }
    }

    /// Appends `bytes` (a read) and processes what can be processed.
    fn feed(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.buf.len() - pos);
                if n > 0 {
                    // Merge consecutive swallows so reads do not show.
                    match self.events.last_mut() {
                        Some(Event::Swallowed(m)) => *m += n,
                        _ => self.events.push(Event::Swallowed(n)),
                    }
                }
                pos += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    break;
                }
            }
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                break;
            }
            match parse(rest, &self.limits) {
                Parsed::Incomplete => break,
                Parsed::Complete { cmd, consumed } => {
                    check_complete(rest, &cmd, consumed, &self.limits);
                    let mut enc = Vec::new();
                    encode::request(&mut enc, &cmd);
                    self.events.push(Event::Command(enc, consumed));
                    pos += consumed;
                }
                Parsed::Invalid {
                    error,
                    consumed,
                    recovery,
                    silent,
                    unlink,
                } => {
                    check_invalid(rest, error, consumed, recovery);
                    self.events.push(Event::Invalid {
                        error,
                        consumed,
                        recovery,
                        silent,
                        unlink: unlink.map(<[u8]>::to_vec),
                    });
                    pos += consumed;
                    match recovery {
                        Recovery::Continue => {}
                        Recovery::Swallow(n) => self.swallow = n,
                        Recovery::Close => {
                            self.closed = true;
                            self.buf.clear();
                            return;
                        }
                    }
                }
            }
        }
        self.buf.drain(..pos);
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let limits = Limits {
        // small limits make "too large" reachable with short inputs
        item_size_max: match input[0] & 3 {
            0 => 1024 * 1024,
            1 => 100,
            2 => 64,
            _ => 2048,
        },
        cas_enabled: input[0] & 4 == 0,
    };
    let split = usize::from(u16::from_le_bytes([input[1], input[2]]));
    let data = &input[3..];
    let split = split % (data.len() + 1);

    let mut whole = Driver::new(limits);
    whole.feed(data);

    let mut two = Driver::new(limits);
    two.feed(&data[..split]);
    two.feed(&data[split..]);
    assert_eq!(two.events, whole.events, "split at {split}");
    assert_eq!(two.closed, whole.closed);
    assert_eq!(two.swallow, whole.swallow);
    assert_eq!(two.buf, whole.buf);

    if data.len() <= 512 {
        let mut bytes = Driver::new(limits);
        for b in data.chunks(1) {
            bytes.feed(b);
        }
        assert_eq!(bytes.events, whole.events, "byte by byte");
        assert_eq!(bytes.closed, whole.closed);
    }
});
