//! The peer-link frame decoder driven as a stream, the way a replication
//! link drives it: decode, consume the frame, repeat until `Incomplete`;
//! a `Malformed` closes the link.
//!
//! Input layout: byte 0 picks `max_frame`, bytes 1..3 a split offset, the
//! rest is the byte stream a peer sent.
//!
//! Checked on every step:
//! - a decoded frame took more than the length prefix, no more than the
//!   bytes given, and no more than `max_frame` + 4;
//! - it re-encodes to exactly the bytes it took (`encoded_len` agrees), and
//!   `validate` accepts it;
//! - every strict prefix of those bytes is `Incomplete` (all of them for
//!   short frames, a sample for long ones);
//! - a `Malformed` verdict stays `Malformed` with more bytes after it;
//! - chunk independence: the stream fed in two pieces, split at the chosen
//!   offset, and byte by byte for short inputs, gives the same frames and
//!   the same verdict as the whole stream at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincache::replication::frame::{
    decode, encode, encoded_len, validate, Decoded, HANDSHAKE_MAX_FRAME, LEN_PREFIX,
};

/// Prefix lengths of a frame of `n` bytes that are checked to be Incomplete.
fn prefixes(n: usize) -> Vec<usize> {
    if n <= 300 {
        (0..n).collect()
    } else {
        let mut v: Vec<usize> = (0..=LEN_PREFIX + 1).collect();
        v.extend([n / 2, n - 2, n - 1]);
        v
    }
}

/// A link's receive side: a buffer, the frames decoded (re-encoded, so
/// runs over different buffers compare) and whether it closed.
struct Link {
    max_frame: usize,
    buf: Vec<u8>,
    frames: Vec<Vec<u8>>,
    closed: Option<&'static str>,
}

impl Link {
    fn new(max_frame: usize) -> Link {
        Link {
            max_frame,
            buf: Vec::new(),
            frames: Vec::new(),
            closed: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.closed.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            match decode(rest, self.max_frame) {
                Decoded::Incomplete => break,
                Decoded::Malformed(why) => {
                    // more bytes do not make it valid
                    let mut longer = rest.to_vec();
                    longer.extend_from_slice(&[0, 1, 0xff]);
                    assert!(
                        matches!(decode(&longer, self.max_frame), Decoded::Malformed(_)),
                        "Malformed({why}) became valid with more bytes"
                    );
                    self.closed = Some(why);
                    self.buf.clear();
                    return;
                }
                Decoded::Frame(frame, n) => {
                    assert!(
                        n > LEN_PREFIX && n <= rest.len(),
                        "consumed {n} of {}",
                        rest.len()
                    );
                    assert!(n - LEN_PREFIX <= self.max_frame);
                    assert_eq!(validate(&frame), Ok(()), "{frame:?}");
                    assert_eq!(encoded_len(&frame), n, "{frame:?}");
                    let mut again = Vec::with_capacity(n);
                    encode(&frame, &mut again);
                    assert_eq!(&again[..], &rest[..n], "re-encoding {frame:?}");
                    // the frame alone decodes the same; its prefixes wait
                    assert_eq!(
                        decode(&rest[..n], self.max_frame),
                        Decoded::Frame(frame.clone(), n)
                    );
                    for cut in prefixes(n) {
                        assert_eq!(
                            decode(&rest[..cut], self.max_frame),
                            Decoded::Incomplete,
                            "prefix {cut} of {frame:?}"
                        );
                    }
                    self.frames.push(again);
                    pos += n;
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
    // small limits make "longer than the limit" reachable
    let max_frame = match input[0] & 3 {
        0 => HANDSHAKE_MAX_FRAME,
        1 => 64,
        2 => 1 << 20,
        _ => usize::MAX,
    };
    let split = usize::from(u16::from_le_bytes([input[1], input[2]]));
    let data = &input[3..];
    let split = split % (data.len() + 1);

    let mut whole = Link::new(max_frame);
    whole.feed(data);

    let mut two = Link::new(max_frame);
    two.feed(&data[..split]);
    two.feed(&data[split..]);
    assert_eq!(two.frames, whole.frames, "split at {split}");
    assert_eq!(two.closed, whole.closed);
    assert_eq!(two.buf, whole.buf);

    if data.len() <= 512 {
        let mut bytes = Link::new(max_frame);
        for b in data.chunks(1) {
            bytes.feed(b);
        }
        assert_eq!(bytes.frames, whole.frames, "byte by byte");
        assert_eq!(bytes.closed, whole.closed);
    }
});
