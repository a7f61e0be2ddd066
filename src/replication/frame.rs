//! Frames of the peer link: [`Frame`] <-> bytes. Pure: no I/O, no clock,
//! no store.
//!
//! # Wire format
//!
//! Every frame is
//!
//! ```text
//! +----------------+--------+--------------------+
//! | length: u32 BE | type u8| payload            |
//! +----------------+--------+--------------------+
//!                  |<------- length bytes ------>|
//! ```
//!
//! `length` counts the type byte and the payload (not itself), so it is at
//! least 1; a `length` of 0 or above the receiver's `max_frame` is refused
//! as soon as the four length bytes are in, before any of the body is
//! buffered. All integers are big-endian. A bool is one byte, 0 or 1. A key
//! is `u8 length` (1..=250) then the bytes; a value is `u32 length` then
//! the bytes. A frame whose fields do not fill its `length` exactly is
//! malformed (no trailing bytes, no short fields).
//!
//! | type | frame       | payload (in order)                                                                                         | payload bytes |
//! |------|-------------|------------------------------------------------------------------------------------------------------------|---------------|
//! | 1    | `Hello`     | magic `TWNC` (4), protocol u16, node_id u8, run_id u64, nonce (16), hlc u64, item_size_max u32, memory_limit u64, flags u8 (1 wants_auth, 2 probe) | 52 |
//! | 2    | `Auth`      | mac (32)                                                                                                   | 32            |
//! | 3    | `SyncBegin` | full bool                                                                                                  | 1             |
//! | 4    | `SyncEnd`   | (none)                                                                                                     | 0             |
//! | 5    | `Item`      | version u64, flags u32, exptime u32, stale bool, key, value                                                | 23..          |
//! | 6    | `Delete`    | version u64, key                                                                                           | 10..=259      |
//! | 7    | `Flush`     | version u64, at u32                                                                                        | 12            |
//! | 8    | `Ack`       | records u64                                                                                                | 8             |
//! | 9    | `Ping`      | nonce u64, hlc u64                                                                                         | 16            |
//! | 10   | `Pong`      | nonce u64, hlc u64                                                                                         | 16            |
//! | 11   | `Refused`   | version u64, reason u8, key                                                                                | 11..=260      |
//! | 12   | `Goodbye`   | reason: the rest of the frame (0 or more bytes, not length-prefixed)                                       | 0..           |
//!
//! Any other type byte is malformed. The type byte and the length's fit to
//! that type are checked as soon as the fifth byte is in, so a stranger's
//! bytes (an HTTP request, a memcached command) are refused at once.
//!
//! Sizes: a `Hello` frame is 57 bytes on the wire, so a link that has not
//! finished its handshake can decode with a `max_frame` of
//! [`HANDSHAKE_MAX_FRAME`]. Once the peer's `item_size_max` is known, a
//! `max_frame` of `item_size_max + MAX_RECORD_OVERHEAD` admits every record
//! that fits that limit.
//!
//! What `decode` does not check (left to the link): that `protocol` is one
//! it speaks, that `Flush` has exactly one of `version` / `at` non-zero,
//! the meaning of a `Refused` reason.

/// `Hello` flag bits.
const HELLO_WANTS_AUTH: u8 = 1;
const HELLO_PROBE: u8 = 2;

/// The first four payload bytes of a `Hello`.
pub const MAGIC: [u8; 4] = *b"TWNC";
/// The peer-link protocol this code speaks (sent in `Hello`).
pub const PROTOCOL_VERSION: u16 = 1;
/// Longest key a frame may carry (memcached's limit).
pub const KEY_MAX_LEN: usize = 250;
/// Bytes of the length prefix in front of every frame.
pub const LEN_PREFIX: usize = 4;
/// The declared length of an `Item` frame with the longest key, less its
/// value: `max_frame = item_size_max + MAX_RECORD_OVERHEAD` admits every
/// record whose value fits `item_size_max`.
pub const MAX_RECORD_OVERHEAD: usize = 1 + ITEM_FIXED + KEY_MAX_LEN;
/// A `max_frame` enough for every handshake frame (`Hello`, `Auth`) and a
/// `Goodbye` reason of a few hundred bytes, for use before the peer's
/// limits are known.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// `Refused` reason: the value is larger than this side's `-I`.
pub const REFUSED_TOO_LARGE: u8 = 1;
/// `Refused` reason: this side has no memory for it (even after evicting).
pub const REFUSED_NO_MEMORY: u8 = 2;

const T_HELLO: u8 = 1;
const T_AUTH: u8 = 2;
const T_SYNC_BEGIN: u8 = 3;
const T_SYNC_END: u8 = 4;
const T_ITEM: u8 = 5;
const T_DELETE: u8 = 6;
const T_FLUSH: u8 = 7;
const T_ACK: u8 = 8;
const T_PING: u8 = 9;
const T_PONG: u8 = 10;
const T_REFUSED: u8 = 11;
const T_GOODBYE: u8 = 12;

const HELLO_LEN: usize = 4 + 2 + 1 + 8 + 16 + 8 + 4 + 8 + 1;
const MAC_LEN: usize = 32;
/// Item payload besides the key bytes and value bytes: version, flags,
/// exptime, stale, key length, value length.
const ITEM_FIXED: usize = 8 + 4 + 4 + 1 + 1 + 4;
/// Delete payload besides the key bytes: version, key length.
const DELETE_FIXED: usize = 8 + 1;
/// Refused payload besides the key bytes: version, reason, key length.
const REFUSED_FIXED: usize = 8 + 1 + 1;

/// One frame of the peer link. Keys, values and reasons borrow from the
/// buffer they were decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// First frame each side sends.
    Hello {
        protocol: u16,
        node_id: u8,
        run_id: u64,
        nonce: [u8; 16],
        hlc: u64,
        item_size_max: u32,
        memory_limit: u64,
        wants_auth: bool,
        /// The dialer only checks who answers at the peer address (its
        /// run id, authenticated when a secret is set) and closes: never
        /// a link, never replaces one.
        probe: bool,
    },
    /// HMAC proof answering the other side's nonce.
    Auth {
        mac: [u8; 32],
    },
    /// Start of this side's sync stream; full = a walk of the whole store follows.
    SyncBegin {
        full: bool,
    },
    /// This side's sync walk is complete (everything it held when the walk
    /// began has been sent).
    SyncEnd,
    /// The resulting state of a key after a write.
    Item {
        version: u64,
        flags: u32,
        exptime: u32,
        stale: bool,
        key: &'a [u8],
        value: &'a [u8],
    },
    /// A delete (the receiver keeps a tombstone at `version`).
    Delete {
        version: u64,
        key: &'a [u8],
    },
    /// flush_all: version = barrier (immediate), or at = absolute Unix
    /// seconds for a delayed flush (then version is 0).
    Flush {
        version: u64,
        at: u32,
    },
    /// Cumulative count of stream frames (SyncBegin, SyncEnd, Item,
    /// Delete, Flush) received and processed on this link: the sender
    /// drops what is acknowledged from its in-flight list.
    Ack {
        records: u64,
    },
    Ping {
        nonce: u64,
        hlc: u64,
    },
    Pong {
        nonce: u64,
        hlc: u64,
    },
    /// A record this side could not store (its -I is smaller, or no
    /// memory): reported, not fatal. See `REFUSED_*` for reasons.
    Refused {
        version: u64,
        reason: u8,
        key: &'a [u8],
    },
    /// Closing the link with a reason (e.g. node id clash, auth failure).
    Goodbye {
        reason: &'a [u8],
    },
}

impl Frame<'_> {
    /// Whether this frame is a record (`Item`, `Delete`, `Flush`): the
    /// frames an `Ack` counts.
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            Frame::Item { .. } | Frame::Delete { .. } | Frame::Flush { .. }
        )
    }

    /// The frame type's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Auth { .. } => "Auth",
            Frame::SyncBegin { .. } => "SyncBegin",
            Frame::SyncEnd => "SyncEnd",
            Frame::Item { .. } => "Item",
            Frame::Delete { .. } => "Delete",
            Frame::Flush { .. } => "Flush",
            Frame::Ack { .. } => "Ack",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::Refused { .. } => "Refused",
            Frame::Goodbye { .. } => "Goodbye",
        }
    }
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame, and the bytes it took (length prefix included).
    Frame(Frame<'a>, usize),
    /// The buffer is a strict prefix of a frame that may still be valid:
    /// read more.
    Incomplete,
    /// Not a frame of this protocol: close the link. The text says why (for
    /// the log and `stats replication`).
    Malformed(&'static str),
}

/// The payload length bounds of a frame type, or None for an unknown type.
fn payload_bounds(ty: u8) -> Option<(usize, usize)> {
    let key_min = 1;
    Some(match ty {
        T_HELLO => (HELLO_LEN, HELLO_LEN),
        T_AUTH => (MAC_LEN, MAC_LEN),
        T_SYNC_BEGIN => (1, 1),
        T_SYNC_END => (0, 0),
        T_ITEM => (ITEM_FIXED + key_min, usize::MAX),
        T_DELETE => (DELETE_FIXED + key_min, DELETE_FIXED + KEY_MAX_LEN),
        T_FLUSH => (12, 12),
        T_ACK => (8, 8),
        T_PING | T_PONG => (16, 16),
        T_REFUSED => (REFUSED_FIXED + key_min, REFUSED_FIXED + KEY_MAX_LEN),
        T_GOODBYE => (0, usize::MAX),
        _ => return None,
    })
}

/// Reads the fields of one payload, front to back, never past its end.
struct Reader<'a> {
    buf: &'a [u8],
}

type Field<T> = Result<T, &'static str>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Field<&'a [u8]> {
        if n > self.buf.len() {
            return Err("field runs past the end of the frame");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Field<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Field<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Field<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Field<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Field<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bool(&mut self) -> Field<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bool field is neither 0 nor 1"),
        }
    }

    fn key(&mut self) -> Field<&'a [u8]> {
        let n = usize::from(self.u8()?);
        if n == 0 {
            return Err("empty key");
        }
        if n > KEY_MAX_LEN {
            return Err("key longer than 250 bytes");
        }
        self.take(n)
    }

    fn value(&mut self) -> Field<&'a [u8]> {
        let n = self.u32()?;
        let n = usize::try_from(n).map_err(|_| "value length does not fit in memory")?;
        self.take(n)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn finish(self) -> Field<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes after the last field")
        }
    }
}

/// Decodes the frame at the start of `buf`. `max_frame` bounds the declared
/// length (type byte + payload, the length prefix not counted).
///
/// Returns `Incomplete` for every strict prefix of a valid frame, and
/// `Malformed` as soon as the bytes seen cannot start a valid frame: a
/// prefix that is `Malformed` stays so however many bytes follow. Never
/// reads past the declared length; keys, values and reasons borrow from
/// `buf`.
pub fn decode(buf: &[u8], max_frame: usize) -> Decoded<'_> {
    let Some(len_bytes) = buf.get(..LEN_PREFIX) else {
        return Decoded::Incomplete;
    };
    let mut lb = [0u8; LEN_PREFIX];
    lb.copy_from_slice(len_bytes);
    let Ok(len) = usize::try_from(u32::from_be_bytes(lb)) else {
        return Decoded::Malformed("frame length does not fit in memory");
    };
    if len == 0 {
        return Decoded::Malformed("zero frame length");
    }
    if len > max_frame {
        return Decoded::Malformed("frame longer than the limit");
    }
    let Some(&ty) = buf.get(LEN_PREFIX) else {
        return Decoded::Incomplete;
    };
    let Some((min, max)) = payload_bounds(ty) else {
        return Decoded::Malformed("unknown frame type");
    };
    let payload_len = len - 1;
    if payload_len < min || payload_len > max {
        return Decoded::Malformed("frame length does not fit its type");
    }
    let Some(total) = len.checked_add(LEN_PREFIX) else {
        return Decoded::Malformed("frame length does not fit in memory");
    };
    let Some(payload) = buf.get(LEN_PREFIX + 1..total) else {
        return Decoded::Incomplete;
    };
    match decode_payload(ty, payload) {
        Ok(frame) => Decoded::Frame(frame, total),
        Err(why) => Decoded::Malformed(why),
    }
}

fn decode_payload(ty: u8, payload: &[u8]) -> Field<Frame<'_>> {
    let mut r = Reader { buf: payload };
    let frame = match ty {
        T_HELLO => {
            if r.array::<4>()? != MAGIC {
                return Err("hello without the TWNC magic");
            }
            let (protocol, node_id, run_id) = (r.u16()?, r.u8()?, r.u64()?);
            let (nonce, hlc, item_size_max, memory_limit) =
                (r.array()?, r.u64()?, r.u32()?, r.u64()?);
            let flags = r.u8()?;
            if flags & !(HELLO_WANTS_AUTH | HELLO_PROBE) != 0 {
                return Err("hello with unknown flags");
            }
            Frame::Hello {
                protocol,
                node_id,
                run_id,
                nonce,
                hlc,
                item_size_max,
                memory_limit,
                wants_auth: flags & HELLO_WANTS_AUTH != 0,
                probe: flags & HELLO_PROBE != 0,
            }
        }
        T_AUTH => Frame::Auth { mac: r.array()? },
        T_SYNC_BEGIN => Frame::SyncBegin { full: r.bool()? },
        T_SYNC_END => Frame::SyncEnd,
        T_ITEM => Frame::Item {
            version: r.u64()?,
            flags: r.u32()?,
            exptime: r.u32()?,
            stale: r.bool()?,
            key: r.key()?,
            value: r.value()?,
        },
        T_DELETE => Frame::Delete {
            version: r.u64()?,
            key: r.key()?,
        },
        T_FLUSH => Frame::Flush {
            version: r.u64()?,
            at: r.u32()?,
        },
        T_ACK => Frame::Ack { records: r.u64()? },
        T_PING => Frame::Ping {
            nonce: r.u64()?,
            hlc: r.u64()?,
        },
        T_PONG => Frame::Pong {
            nonce: r.u64()?,
            hlc: r.u64()?,
        },
        T_REFUSED => Frame::Refused {
            version: r.u64()?,
            reason: r.u8()?,
            key: r.key()?,
        },
        T_GOODBYE => Frame::Goodbye { reason: r.rest() },
        _ => return Err("unknown frame type"),
    };
    r.finish()?;
    Ok(frame)
}

fn type_of(frame: &Frame<'_>) -> u8 {
    match frame {
        Frame::Hello { .. } => T_HELLO,
        Frame::Auth { .. } => T_AUTH,
        Frame::SyncBegin { .. } => T_SYNC_BEGIN,
        Frame::SyncEnd => T_SYNC_END,
        Frame::Item { .. } => T_ITEM,
        Frame::Delete { .. } => T_DELETE,
        Frame::Flush { .. } => T_FLUSH,
        Frame::Ack { .. } => T_ACK,
        Frame::Ping { .. } => T_PING,
        Frame::Pong { .. } => T_PONG,
        Frame::Refused { .. } => T_REFUSED,
        Frame::Goodbye { .. } => T_GOODBYE,
    }
}

fn payload_len(frame: &Frame<'_>) -> usize {
    match frame {
        Frame::Hello { .. } => HELLO_LEN,
        Frame::Auth { .. } => MAC_LEN,
        Frame::SyncBegin { .. } => 1,
        Frame::SyncEnd => 0,
        Frame::Item { key, value, .. } => ITEM_FIXED
            .saturating_add(key.len())
            .saturating_add(value.len()),
        Frame::Delete { key, .. } => DELETE_FIXED.saturating_add(key.len()),
        Frame::Flush { .. } => 12,
        Frame::Ack { .. } => 8,
        Frame::Ping { .. } | Frame::Pong { .. } => 16,
        Frame::Refused { key, .. } => REFUSED_FIXED.saturating_add(key.len()),
        Frame::Goodbye { reason } => reason.len(),
    }
}

/// Bytes `encode` will append (for buffer budgeting).
pub fn encoded_len(frame: &Frame<'_>) -> usize {
    payload_len(frame).saturating_add(LEN_PREFIX + 1)
}

/// Whether `frame` can be encoded so that [`decode`] gives it back: keys of
/// 1..=250 bytes, and a frame length that fits the u32 prefix.
pub fn validate(frame: &Frame<'_>) -> Result<(), &'static str> {
    let key = match frame {
        Frame::Item { key, .. } | Frame::Delete { key, .. } | Frame::Refused { key, .. } => {
            Some(key)
        }
        _ => None,
    };
    if let Some(key) = key {
        if key.is_empty() {
            return Err("empty key");
        }
        if key.len() > KEY_MAX_LEN {
            return Err("key longer than 250 bytes");
        }
    }
    if u32::try_from(payload_len(frame).saturating_add(1)).is_err() {
        return Err("frame longer than 4 GiB");
    }
    Ok(())
}

/// Appends the frame to `out`, exactly [`encoded_len`] bytes.
///
/// A frame that [`validate`] refuses (a key that is empty or longer than 250
/// bytes, more than 4 GiB in all) is still written at its full size, with a
/// key length of 0 or a length prefix of `u32::MAX`, so that the receiver
/// always finds it malformed instead of reading something else.
pub fn encode(frame: &Frame<'_>, out: &mut Vec<u8>) {
    let len = payload_len(frame).saturating_add(1);
    out.reserve(len.saturating_add(LEN_PREFIX));
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    out.push(type_of(frame));
    let key = |out: &mut Vec<u8>, key: &[u8]| {
        let n = match u8::try_from(key.len()) {
            Ok(n) if usize::from(n) <= KEY_MAX_LEN => n,
            _ => 0,
        };
        out.push(n);
        out.extend_from_slice(key);
    };
    match frame {
        Frame::Hello {
            protocol,
            node_id,
            run_id,
            nonce,
            hlc,
            item_size_max,
            memory_limit,
            wants_auth,
            probe,
        } => {
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&protocol.to_be_bytes());
            out.push(*node_id);
            out.extend_from_slice(&run_id.to_be_bytes());
            out.extend_from_slice(nonce);
            out.extend_from_slice(&hlc.to_be_bytes());
            out.extend_from_slice(&item_size_max.to_be_bytes());
            out.extend_from_slice(&memory_limit.to_be_bytes());
            let mut flags = 0;
            if *wants_auth {
                flags |= HELLO_WANTS_AUTH;
            }
            if *probe {
                flags |= HELLO_PROBE;
            }
            out.push(flags);
        }
        Frame::Auth { mac } => out.extend_from_slice(mac),
        Frame::SyncBegin { full } => out.push(u8::from(*full)),
        Frame::SyncEnd => {}
        Frame::Item {
            version,
            flags,
            exptime,
            stale,
            key: k,
            value,
        } => {
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&flags.to_be_bytes());
            out.extend_from_slice(&exptime.to_be_bytes());
            out.push(u8::from(*stale));
            key(out, k);
            let vlen = u32::try_from(value.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&vlen.to_be_bytes());
            out.extend_from_slice(value);
        }
        Frame::Delete { version, key: k } => {
            out.extend_from_slice(&version.to_be_bytes());
            key(out, k);
        }
        Frame::Flush { version, at } => {
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&at.to_be_bytes());
        }
        Frame::Ack { records } => out.extend_from_slice(&records.to_be_bytes()),
        Frame::Ping { nonce, hlc } | Frame::Pong { nonce, hlc } => {
            out.extend_from_slice(&nonce.to_be_bytes());
            out.extend_from_slice(&hlc.to_be_bytes());
        }
        Frame::Refused {
            version,
            reason,
            key: k,
        } => {
            out.extend_from_slice(&version.to_be_bytes());
            out.push(*reason);
            key(out, k);
        }
        Frame::Goodbye { reason } => out.extend_from_slice(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BIG: usize = 1 << 20;

    fn enc(f: &Frame<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(f, &mut out);
        assert_eq!(out.len(), encoded_len(f), "encoded_len of {f:?}");
        out
    }

    /// decode(encode(f)) == (f, len), and every strict prefix is Incomplete.
    fn round_trip(f: &Frame<'_>) {
        let bytes = enc(f);
        assert_eq!(validate(f), Ok(()));
        assert_eq!(
            decode(&bytes, BIG),
            Decoded::Frame(f.clone(), bytes.len()),
            "{f:?}"
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut], BIG),
                Decoded::Incomplete,
                "{f:?} cut {cut}"
            );
        }
        // bytes after the frame are not looked at
        let mut more = bytes.clone();
        more.extend_from_slice(&[0xff; 9]);
        assert_eq!(decode(&more, BIG), Decoded::Frame(f.clone(), bytes.len()));
    }

    fn hello() -> Frame<'static> {
        Frame::Hello {
            protocol: PROTOCOL_VERSION,
            node_id: 2,
            run_id: 0x0102_0304_0506_0708,
            nonce: [0xaa; 16],
            hlc: 0x1122_3344_5566_7788,
            item_size_max: 1 << 20,
            memory_limit: 64 << 20,
            wants_auth: true,
            probe: false,
        }
    }

    #[test]
    fn hello_golden_bytes() {
        let mut want = vec![0, 0, 0, 53, 1];
        want.extend_from_slice(b"TWNC");
        want.extend_from_slice(&[0, 1]); // protocol
        want.push(2); // node id
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // run id
        want.extend_from_slice(&[0xaa; 16]); // nonce
        want.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]); // hlc
        want.extend_from_slice(&[0, 0x10, 0, 0]); // item_size_max 1 MiB
        want.extend_from_slice(&[0, 0, 0, 0, 0x04, 0, 0, 0]); // memory 64 MiB
        want.push(1); // wants_auth
        assert_eq!(want.len(), 57);
        assert_eq!(enc(&hello()), want);
        round_trip(&hello());
        assert!(HANDSHAKE_MAX_FRAME >= want.len() - LEN_PREFIX);
    }

    #[test]
    fn item_golden_bytes() {
        let f = Frame::Item {
            version: 0x0000_0190_0000_0001,
            flags: 0xdead_beef,
            exptime: 1_700_000_000,
            stale: false,
            key: b"foo",
            value: b"hello",
        };
        let want: Vec<u8> = [
            &[0, 0, 0, 31, 5][..],
            &[0, 0, 1, 0x90, 0, 0, 0, 1],
            &[0xde, 0xad, 0xbe, 0xef],
            &1_700_000_000u32.to_be_bytes(),
            &[0],
            &[3],
            b"foo",
            &[0, 0, 0, 5],
            b"hello",
        ]
        .concat();
        assert_eq!(enc(&f), want);
        round_trip(&f);
    }

    #[test]
    fn every_frame_type_round_trips() {
        let k250 = [b'k'; 250];
        let frames = [
            hello(),
            Frame::Hello {
                protocol: 0xffff,
                node_id: 0,
                run_id: u64::MAX,
                nonce: [0; 16],
                hlc: 0,
                item_size_max: u32::MAX,
                memory_limit: 0,
                wants_auth: false,
                probe: true,
            },
            Frame::Auth { mac: [7; 32] },
            Frame::SyncBegin { full: true },
            Frame::SyncBegin { full: false },
            Frame::SyncEnd,
            Frame::Item {
                version: 1,
                flags: 0,
                exptime: 0,
                stale: true,
                key: b"k",
                value: b"",
            },
            Frame::Item {
                version: u64::MAX,
                flags: u32::MAX,
                exptime: u32::MAX,
                stale: false,
                key: &k250,
                value: &[0u8; 3000],
            },
            Frame::Delete {
                version: 9,
                key: b"a key with\r\nbytes\0",
            },
            Frame::Delete {
                version: 9,
                key: &k250,
            },
            Frame::Flush { version: 5, at: 0 },
            Frame::Flush {
                version: 0,
                at: 1_800_000_000,
            },
            Frame::Ack { records: 12345 },
            Frame::Ping { nonce: 1, hlc: 2 },
            Frame::Pong {
                nonce: u64::MAX,
                hlc: 3,
            },
            Frame::Refused {
                version: 77,
                reason: REFUSED_TOO_LARGE,
                key: b"big",
            },
            Frame::Refused {
                version: 78,
                reason: 200,
                key: &k250,
            },
            Frame::Goodbye { reason: b"" },
            Frame::Goodbye {
                reason: b"node id clash: both are 1",
            },
        ];
        let mut names = std::collections::BTreeSet::new();
        for f in &frames {
            round_trip(f);
            names.insert(f.name());
            let record = matches!(f.name(), "Item" | "Delete" | "Flush");
            assert_eq!(f.is_record(), record, "{f:?}");
        }
        assert_eq!(names.len(), 12, "every frame type is covered: {names:?}");
        // the largest record fits the advertised overhead exactly
        let value = [0u8; 100];
        let biggest = Frame::Item {
            version: 0,
            flags: 0,
            exptime: 0,
            stale: false,
            key: &k250,
            value: &value,
        };
        let declared = encoded_len(&biggest) - LEN_PREFIX;
        assert_eq!(declared, value.len() + MAX_RECORD_OVERHEAD);
        let bytes = enc(&biggest);
        assert!(matches!(decode(&bytes, declared), Decoded::Frame(..)));
        assert_eq!(
            decode(&bytes, declared - 1),
            Decoded::Malformed("frame longer than the limit")
        );
    }

    fn malformed(buf: &[u8]) -> &'static str {
        match decode(buf, BIG) {
            Decoded::Malformed(why) => why,
            other => panic!("{buf:?} decoded as {other:?}"),
        }
    }

    /// A frame of type `ty` with this payload, length prefix computed.
    fn raw(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(ty);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn lengths_checked_before_the_body() {
        assert_eq!(malformed(&[0, 0, 0, 0]), "zero frame length");
        // 4 bytes of a huge length: refused before any body is there
        assert_eq!(
            malformed(&[0xff, 0xff, 0xff, 0xff]),
            "frame longer than the limit"
        );
        assert_eq!(
            decode(&[0, 0, 1, 1], 256),
            Decoded::Malformed("frame longer than the limit")
        );
        assert_eq!(decode(&[0, 0, 1, 0], 256), Decoded::Incomplete);
        // a memcached or HTTP request on the replication port
        assert_eq!(malformed(b"get foo\r\n"), "frame longer than the limit");
        assert_eq!(
            malformed(b"GET / HTTP/1.1\r\n"),
            "frame longer than the limit"
        );
        // unknown type, as soon as the type byte is in
        assert_eq!(malformed(&[0, 0, 0, 5, 0]), "unknown frame type");
        assert_eq!(malformed(&[0, 0, 0, 5, 13]), "unknown frame type");
        assert_eq!(malformed(&[0, 0, 0, 1, 0xff]), "unknown frame type");
        // lengths that cannot fit the type, before the payload
        let fits = "frame length does not fit its type";
        assert_eq!(malformed(&[0, 0, 0, 54, T_HELLO]), fits);
        assert_eq!(malformed(&[0, 0, 0, 52, T_HELLO]), fits);
        assert_eq!(malformed(&[0, 0, 0, 2, T_SYNC_END]), fits);
        assert_eq!(malformed(&[0, 0, 0, 1, T_SYNC_BEGIN]), fits);
        assert_eq!(malformed(&[0, 0, 0, 23, T_ITEM]), fits); // no room for a key byte
        assert_eq!(decode(&[0, 0, 0, 24, T_ITEM], BIG), Decoded::Incomplete);
        assert_eq!(malformed(&[0, 0, 1, 5, T_DELETE]), fits); // key > 250
        assert_eq!(malformed(&[0, 0, 0, 11, T_REFUSED]), fits);
        assert_eq!(malformed(&[0, 0, 1, 6, T_REFUSED]), fits); // key > 250
        assert_eq!(decode(&[0, 0, 1, 5, T_REFUSED], BIG), Decoded::Incomplete);
        assert_eq!(malformed(&[0, 0, 0, 8, T_ACK]), fits);
    }

    #[test]
    fn field_errors() {
        // hello magic
        let mut h = enc(&hello());
        h[5] = b't';
        assert_eq!(malformed(&h), "hello without the TWNC magic");
        // hello flags: bits 0 and 1 only
        let mut h = enc(&hello());
        let last = h.len() - 1;
        for bad in [4, 8, 0x80, 0xff] {
            h[last] = bad;
            assert_eq!(malformed(&h), "hello with unknown flags");
        }
        h[last] = 3;
        match decode(&h, BIG) {
            Decoded::Frame(
                Frame::Hello {
                    wants_auth, probe, ..
                },
                _,
            ) => assert!(wants_auth && probe),
            other => panic!("flags 3 decoded as {other:?}"),
        }
        assert_eq!(
            malformed(&raw(T_SYNC_BEGIN, &[2])),
            "bool field is neither 0 nor 1"
        );
        // item stale bool
        let mut item = vec![0; 16];
        item.push(3);
        item.extend_from_slice(&[1, b'k', 0, 0, 0, 0]);
        assert_eq!(
            malformed(&raw(T_ITEM, &item)),
            "bool field is neither 0 nor 1"
        );
        item[16] = 1;
        assert!(matches!(
            decode(&raw(T_ITEM, &item), BIG),
            Decoded::Frame(..)
        ));
        // keys
        let mut del = vec![0; 8];
        del.extend_from_slice(&[0, b'x']);
        assert_eq!(malformed(&raw(T_DELETE, &del)), "empty key");
        let mut item0 = vec![0; 17];
        item0.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert_eq!(malformed(&raw(T_ITEM, &item0)), "empty key");
        let mut item251 = vec![0; 17];
        item251.push(251);
        item251.extend_from_slice(&[b'k'; 251]);
        item251.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            malformed(&raw(T_ITEM, &item251)),
            "key longer than 250 bytes"
        );
        // key length says less than the frame holds: trailing bytes
        let mut del = vec![0; 8];
        del.extend_from_slice(&[1, b'a', b'b']);
        assert_eq!(
            malformed(&raw(T_DELETE, &del)),
            "trailing bytes after the last field"
        );
        // key length says more than the frame holds
        let mut del = vec![0; 8];
        del.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(
            malformed(&raw(T_DELETE, &del)),
            "field runs past the end of the frame"
        );
        // value length disagreeing either way
        let mut item = vec![0; 17];
        item.extend_from_slice(&[1, b'k', 0, 0, 0, 2, b'v']);
        assert_eq!(
            malformed(&raw(T_ITEM, &item)),
            "field runs past the end of the frame"
        );
        let mut item = vec![0; 17];
        item.extend_from_slice(&[1, b'k', 0, 0, 0, 0, b'v']);
        assert_eq!(
            malformed(&raw(T_ITEM, &item)),
            "trailing bytes after the last field"
        );
        let mut item = vec![0; 17];
        item.extend_from_slice(&[1, b'k', 0xff, 0xff, 0xff, 0xff, b'v']);
        assert_eq!(
            malformed(&raw(T_ITEM, &item)),
            "field runs past the end of the frame"
        );
    }

    #[test]
    fn invalid_frames_encode_to_something_the_peer_refuses() {
        let k251 = [b'k'; 251];
        let k300 = [b'k'; 300];
        let bad = [
            Frame::Item {
                version: 1,
                flags: 0,
                exptime: 0,
                stale: false,
                key: b"",
                value: b"v",
            },
            Frame::Item {
                version: 1,
                flags: 0,
                exptime: 0,
                stale: false,
                key: &k251,
                value: b"v",
            },
            // 300 & 0xff = 44: a truncated length byte would read a 44-byte key
            Frame::Item {
                version: 1,
                flags: 0,
                exptime: 0,
                stale: false,
                key: &k300,
                value: b"",
            },
            Frame::Delete {
                version: 1,
                key: b"",
            },
            Frame::Delete {
                version: 1,
                key: &k300,
            },
            Frame::Refused {
                version: 1,
                reason: 0,
                key: &k251,
            },
        ];
        for f in &bad {
            assert!(validate(f).is_err(), "{f:?}");
            let bytes = enc(f);
            assert!(
                matches!(decode(&bytes, BIG), Decoded::Malformed(_)),
                "{f:?}"
            );
        }
    }

    #[test]
    fn concatenated_frames_decode_in_sequence() {
        let frames = [
            hello(),
            Frame::Auth { mac: [1; 32] },
            Frame::SyncBegin { full: true },
            Frame::Delete {
                version: 3,
                key: b"gone",
            },
            Frame::SyncEnd,
            Frame::Goodbye { reason: b"bye" },
        ];
        let mut stream = Vec::new();
        for f in &frames {
            encode(f, &mut stream);
        }
        let mut at = 0;
        for f in &frames {
            match decode(&stream[at..], BIG) {
                Decoded::Frame(got, n) => {
                    assert_eq!(&got, f);
                    at += n;
                }
                other => panic!("{other:?} at {at}"),
            }
        }
        assert_eq!(at, stream.len());
        assert_eq!(decode(&stream[at..], BIG), Decoded::Incomplete);
    }

    /// Fields for any frame; `build` picks the ones its kind needs.
    #[derive(Debug, Clone)]
    struct Raw {
        kind: u8,
        a: u64,
        b: u64,
        c: u32,
        d: u32,
        e: u16,
        f: u8,
        flag: bool,
        nonce: [u8; 16],
        mac: [u8; 32],
        key: Vec<u8>,
        value: Vec<u8>,
    }

    fn build(r: &Raw) -> Frame<'_> {
        match r.kind {
            0 => Frame::Hello {
                protocol: r.e,
                node_id: r.f,
                run_id: r.a,
                nonce: r.nonce,
                hlc: r.b,
                item_size_max: r.c,
                memory_limit: r.b ^ r.a,
                wants_auth: r.flag,
                probe: r.d & 1 == 1,
            },
            1 => Frame::Auth { mac: r.mac },
            2 => Frame::SyncBegin { full: r.flag },
            3 => Frame::SyncEnd,
            4 => Frame::Item {
                version: r.a,
                flags: r.c,
                exptime: r.d,
                stale: r.flag,
                key: &r.key,
                value: &r.value,
            },
            5 => Frame::Delete {
                version: r.a,
                key: &r.key,
            },
            6 => Frame::Flush {
                version: r.a,
                at: r.c,
            },
            7 => Frame::Ack { records: r.a },
            8 => Frame::Ping {
                nonce: r.a,
                hlc: r.b,
            },
            9 => Frame::Pong {
                nonce: r.a,
                hlc: r.b,
            },
            10 => Frame::Refused {
                version: r.a,
                reason: r.f,
                key: &r.key,
            },
            _ => Frame::Goodbye { reason: &r.value },
        }
    }

    fn arb_raw() -> impl Strategy<Value = Raw> {
        (
            (
                0u8..12,
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
            ),
            (any::<u16>(), any::<u8>(), any::<bool>()),
            (any::<[u8; 16]>(), any::<[u8; 32]>()),
            (
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 1..=8),
                    proptest::collection::vec(any::<u8>(), 1..=250),
                ],
                proptest::collection::vec(any::<u8>(), 0..600),
            ),
        )
            .prop_map(
                |((kind, a, b, c, d), (e, f, flag), (nonce, mac), (key, value))| Raw {
                    kind,
                    a,
                    b,
                    c,
                    d,
                    e,
                    f,
                    flag,
                    nonce,
                    mac,
                    key,
                    value,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn prop_round_trip_and_prefixes(r in arb_raw()) {
            round_trip(&build(&r));
        }

        #[test]
        fn prop_stream_of_frames(rs in proptest::collection::vec(arb_raw(), 0..8)) {
            let mut stream = Vec::new();
            for r in &rs {
                encode(&build(r), &mut stream);
            }
            let mut at = 0;
            for r in &rs {
                match decode(&stream[at..], BIG) {
                    Decoded::Frame(got, n) => {
                        prop_assert_eq!(got, build(r));
                        at += n;
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            prop_assert_eq!(at, stream.len());
        }

        /// Arbitrary bytes: never a panic, never more than given, and a
        /// decoded frame re-encodes to exactly the bytes it took. A
        /// Malformed prefix stays Malformed when more bytes follow.
        #[test]
        fn prop_arbitrary_bytes(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                // plausible headers: small lengths, real types
                (0u32..80, 0u8..14, proptest::collection::vec(any::<u8>(), 0..90))
                    .prop_map(|(len, ty, rest)| {
                        let mut v = len.to_be_bytes().to_vec();
                        v.push(ty);
                        v.extend_from_slice(&rest);
                        v
                    }),
                // a valid frame with one byte changed, or cut short
                (arb_raw(), any::<prop::sample::Index>(), any::<u8>(), any::<bool>())
                    .prop_map(|(r, at, byte, cut)| {
                        let mut v = Vec::new();
                        encode(&build(&r), &mut v);
                        let i = at.index(v.len());
                        if cut {
                            v.truncate(i);
                        } else {
                            v[i] = byte;
                        }
                        v
                    }),
            ],
            max in prop_oneof![Just(BIG), 0usize..100],
        ) {
            let mut was_malformed = false;
            for cut in 0..=bytes.len() {
                match decode(&bytes[..cut], max) {
                    Decoded::Frame(f, n) => {
                        prop_assert!(!was_malformed);
                        prop_assert!(n <= cut && n > LEN_PREFIX);
                        prop_assert!(n - LEN_PREFIX <= max);
                        prop_assert_eq!(validate(&f), Ok(()));
                        let mut again = Vec::new();
                        encode(&f, &mut again);
                        prop_assert_eq!(&again[..], &bytes[..n]);
                        // complete from here on, with the same frame
                        prop_assert_eq!(decode(&bytes, max), Decoded::Frame(f, n));
                        break;
                    }
                    Decoded::Incomplete => prop_assert!(!was_malformed),
                    Decoded::Malformed(_) => was_malformed = true,
                }
            }
        }

        /// A declared length above max_frame is refused with only the four
        /// length bytes in.
        #[test]
        fn prop_oversized_length_refused_early(max in 0usize..100_000, extra in 1u32..1_000_000) {
            let len = u32::try_from(max).unwrap_or(u32::MAX).saturating_add(extra);
            let header = len.to_be_bytes();
            prop_assert_eq!(decode(&header, max), Decoded::Malformed("frame longer than the limit"));
            prop_assert!(matches!(decode(&header, len as usize), Decoded::Incomplete));
        }
    }
}
