//! Split-anywhere equivalence through the real server (reliability.md T1b):
//! a pipeline built from a table of requests (valid, refused, noreply,
//! swallowed data blocks, bare newlines) must get byte-for-byte the same
//! replies however it is cut into writes: in one write, byte by byte, in
//! random chunks, and split in two at every byte offset.
//!
//! The parser-level properties (never panics, never consumes more than it
//! was given, strict prefixes are Incomplete, parse(encode(cmd)) == cmd,
//! prefixes agree with the whole) live in tests/parser_props.rs; this file
//! drives the spawned binary so the connection's buffering, swallowing and
//! backpressure are part of what is checked.

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The requests of the pipeline. Every run starts with `flush_all`, so the
/// replies depend only on the run itself (CAS uniques are masked).
fn table() -> Vec<Vec<u8>> {
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    let mut t: Vec<Vec<u8>> = [
        &b"flush_all\r\n"[..],
        b"set a 0 0 5\r\nhello\r\n",
        b"get a\r\n",
        b"gets a\r\n",
        b"add a 0 0 1\r\nx\r\n",
        b"replace a 7 0 3\r\nabc\r\n",
        b"append a 0 0 2\r\n\r\n\r\n",
        b"prepend a 0 0 1 noreply\r\n>\r\n",
        b"get a b a\r\n",
        b"cas a 0 0 1 1\r\nz\r\n",
        b"cas nokey 0 0 1 1\r\nz\r\n",
        b"set n 0 0 2\r\n10\r\n",
        b"incr n 5\r\n",
        b"decr n 100\r\n",
        b"incr n 18446744073709551616\r\n",
        b"incr a 1\r\n",
        b"touch n 100\r\n",
        b"gat 100 n a\r\n",
        b"delete a\r\n",
        b"delete a\r\n",
        b"delete n 0 noreply\r\n",
        b"get n\n",
        b"set b 0 0 3\nxyz\r\n",
        b"set c 0 0 3\r\nabcde\r\n",
        b"set d 0 0 -1\r\n",
        b"set e 4294967296 0 2\r\nzz\r\n",
        b"set f\x01 0 0 2\r\nzz\r\n",
        b"\r\n",
        b"\n",
        b"   \r\n",
        b"bogus command\r\n",
        b"GET a\r\n",
        b"\x00\x01\xff\r\n",
        b"verbosity 1 noreply\r\n",
        b"flush_all 0 noreply\r\n",
        b"set h 0 0 1 noreply\r\nq\r\n",
        b"get h\r\n",
        b"version\r\n",
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    // a refused 2,000-byte value (-I 1k) whose block is swallowed
    t.push([&b"set g 0 0 2000\r\n"[..], &[b'v'; 2000], b"\r\nget g\r\n"].concat());
    t.push(format!("set {k250} 0 0 1\r\nx\r\nget {k250}\r\n").into_bytes());
    t.push(format!("set {k251} 0 0 7\r\nversion\r\n").into_bytes());
    t.push(format!("get a {k251}\r\n").into_bytes());
    // the end marker
    t.push(b"set __end 0 0 3\r\nend\r\nget __end\r\n".to_vec());
    t
}

const END_MARK: &[u8] = b"VALUE __end 0 3\r\nend\r\nEND\r\n";

/// `VALUE <key> <flags> <bytes> <cas>` lines get their CAS masked.
fn mask_cas(replies: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(replies.len());
    let mut rest = replies;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |i| i + 2);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if line.starts_with(b"VALUE ") {
            let text = String::from_utf8_lossy(line);
            let toks: Vec<&str> = text.trim_end().split(' ').collect();
            if toks.len() == 5 {
                out.extend_from_slice(
                    format!("{} {} {} {} <cas>\r\n", toks[0], toks[1], toks[2], toks[3]).as_bytes(),
                );
                // the data block that follows is copied as is
                if let Ok(len) = toks[3].parse::<usize>() {
                    let n = (len + 2).min(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                continue;
            }
            if let Some(len) = toks.get(3).and_then(|t| t.parse::<usize>().ok()) {
                out.extend_from_slice(line);
                let n = (len + 2).min(rest.len());
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// Sends `chunks` one write each (with `gap` between them) on a new
/// connection and returns the replies up to the end marker.
fn run(port: u16, chunks: &[&[u8]], gap: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut reader = s.try_clone().expect("clone");
    let owned: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
    let writer = std::thread::spawn(move || {
        for c in owned {
            s.write_all(&c).expect("write");
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        s
    });
    reader
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !got.ends_with(END_MARK) {
        match reader.read(&mut buf) {
            Ok(0) => panic!("closed; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no end marker; got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    drop(writer.join().expect("writer"));
    mask_cas(&got)
}

fn pipeline() -> Vec<u8> {
    table().concat()
}

fn start() -> Server {
    Server::start(&["-I", "1k", "-o", "slab_chunk_max=512"])
}

/// xorshift64*
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn diff(a: &[u8], b: &[u8]) -> String {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = i.saturating_sub(60);
    format!(
        "first difference at byte {i}:\n whole: {:?}\n split: {:?}",
        String::from_utf8_lossy(&a[from..(i + 60).min(a.len())]),
        String::from_utf8_lossy(&b[from..(i + 60).min(b.len())])
    )
}

#[test]
fn the_reference_replies_are_what_the_table_expects() {
    // Not a tautology check: a few anchors in the one-write replies, so a
    // server that answered everything with ERROR would not pass the
    // equivalence tests below by being consistently wrong.
    let server = start();
    let p = pipeline();
    let whole = run(server.port, &[&p], Duration::ZERO);
    let text = String::from_utf8_lossy(&whole);
    for anchor in [
        "STORED\r\nVALUE a 0 5\r\nhello\r\nEND\r\nVALUE a 0 5 <cas>\r\nhello\r\nEND\r\nNOT_STORED\r\nSTORED\r\n",
        "VALUE a 7 6\r\n>abc\r\n\r\nEND\r\n",
        "STORED\r\n15\r\n0\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        "DELETED\r\nNOT_FOUND\r\nEND\r\n",
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        "SERVER_ERROR object too large for cache\r\nEND\r\n",
        "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n",
        "VALUE h 0 1\r\nq\r\nEND\r\nVERSION 1.6.18\r\n",
    ] {
        assert!(text.contains(anchor), "missing {anchor:?} in {text:?}");
    }
}

#[test]
fn byte_by_byte_and_random_chunks_give_the_same_replies() {
    let server = start();
    let p = pipeline();
    let whole = run(server.port, &[&p], Duration::ZERO);
    // byte by byte, each byte its own segment
    let bytes: Vec<&[u8]> = p.chunks(1).collect();
    let got = run(server.port, &bytes, Duration::ZERO);
    assert!(got == whole, "byte by byte: {}", diff(&whole, &got));
    // random chunkings
    let mut seed = 0x1234_5678_9abc_def1u64;
    for round in 0..20 {
        let mut chunks = Vec::new();
        let mut rest = &p[..];
        while !rest.is_empty() {
            let max = [3u64, 17, 64, 700][round % 4];
            let n = (1 + rng(&mut seed) % max) as usize;
            let (c, r) = rest.split_at(n.min(rest.len()));
            chunks.push(c);
            rest = r;
        }
        let gap = if round % 5 == 0 {
            Duration::from_micros(200)
        } else {
            Duration::ZERO
        };
        let got = run(server.port, &chunks, gap);
        assert!(got == whole, "round {round}: {}", diff(&whole, &got));
    }
}

/// Every split offset of the pipeline, the two halves written 1 ms apart
/// so that the server reads them separately.
#[test]
fn every_split_offset_gives_the_same_replies() {
    let server = start();
    let p = pipeline();
    let whole = run(server.port, &[&p], Duration::ZERO);
    // The split points: every offset (the pipeline is ~3.5 KB; the
    // 2,000-byte swallowed block is stepped through 25 bytes at a time).
    let block = p
        .windows(2000)
        .position(|w| w.iter().all(|&b| b == b'v'))
        .expect("the swallowed block");
    let offsets: Vec<usize> = (1..p.len())
        .filter(|&i| i <= block || i >= block + 2000 || (i - block) % 25 == 0)
        .collect();
    let mut failures = Vec::new();
    for &i in &offsets {
        let got = run(server.port, &[&p[..i], &p[i..]], Duration::from_millis(1));
        if got != whole {
            failures.push(format!("split at {i}: {}", diff(&whole, &got)));
        }
    }
    println!(
        "T1b split-anywhere: {} split offsets over {} bytes, {} differ",
        offsets.len(),
        p.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A pipeline that ends in a hang-up (an HTTP request line): the replies
/// before it are the same whatever the split, and the connection closes.
#[test]
fn a_closing_pipeline_closes_the_same_way_at_every_split() {
    let server = start();
    let p = b"set a 0 0 1\r\nx\r\nget a\r\nGET / HTTP/1.1\r\nget a\r\n".to_vec();
    let run_closing = |chunks: &[&[u8]]| {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        for c in chunks {
            // the server may already have closed: ignore write errors
            let _ = s.write_all(c);
            std::thread::sleep(Duration::from_millis(1));
        }
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (got, false)
                }
                Err(_) => return (got, true),
            }
        }
    };
    let want = b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n".to_vec();
    for i in 1..p.len() {
        let (got, closed) = run_closing(&[&p[..i], &p[i..]]);
        assert!(closed, "split at {i}: not closed");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "split at {i}"
        );
    }
}

// ---- the fuzz seed corpus, replayed on stable ---------------------------

mod replay {
    use twincache::protocol::{encode, parse, Limits, Parsed, ProtocolError, Recovery};

    /// One verdict of the connection-like driver, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Event {
        Command(Vec<u8>, usize),
        Invalid(ProtocolError, usize, Recovery, bool),
        Swallowed(usize),
    }

    /// The parse loop of a connection: parse, act on the verdict, repeat.
    pub struct Driver {
        limits: Limits,
        buf: Vec<u8>,
        swallow: usize,
        pub closed: bool,
        pub events: Vec<Event>,
    }

    impl Driver {
        pub fn new(limits: Limits) -> Driver {
            Driver {
                limits,
                buf: Vec::new(),
                swallow: 0,
                closed: false,
                events: Vec::new(),
            }
        }

        pub fn feed(&mut self, bytes: &[u8]) {
            if self.closed {
                return;
            }
            self.buf.extend_from_slice(bytes);
            let mut pos = 0;
            loop {
                if self.swallow > 0 {
                    let n = self.swallow.min(self.buf.len() - pos);
                    if n > 0 {
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
                        assert!(consumed > 0 && consumed <= rest.len());
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
                        ..
                    } => {
                        assert!(consumed > 0 && consumed <= rest.len());
                        self.events
                            .push(Event::Invalid(error, consumed, recovery, silent));
                        pos += consumed;
                        match recovery {
                            Recovery::Continue => {}
                            Recovery::Swallow(n) => self.swallow = n,
                            Recovery::Close => {
                                self.closed = true;
                                return;
                            }
                        }
                    }
                }
            }
            self.buf.drain(..pos);
        }
    }

    /// The limits byte of a parse_stream fuzz input (as the target reads it).
    pub fn limits(b: u8) -> Limits {
        Limits {
            item_size_max: match b & 3 {
                0 => 1024 * 1024,
                1 => 100,
                2 => 64,
                _ => 2048,
            },
            cas_enabled: b & 4 == 0,
        }
    }
}

/// T1b at the parser level: every seed of the parse_stream fuzz target
/// (fuzz/seeds/parse_stream, in git), split at every byte offset, gives the
/// verdicts of the whole input.
#[test]
fn fuzz_seeds_split_at_every_offset() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse_stream");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz/seeds/parse_stream")
        .flatten()
        .map(|e| e.path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 100, "{} seeds", seeds.len());
    let mut splits = 0usize;
    for path in &seeds {
        let input = std::fs::read(path).expect("seed");
        assert!(input.len() >= 3, "{path:?}");
        let limits = replay::limits(input[0]);
        let data = &input[3..];
        let mut whole = replay::Driver::new(limits);
        whole.feed(data);
        for k in 0..=data.len() {
            let mut two = replay::Driver::new(limits);
            two.feed(&data[..k]);
            two.feed(&data[k..]);
            assert_eq!(two.events, whole.events, "{path:?} split at {k}");
            assert_eq!(two.closed, whole.closed, "{path:?} split at {k}");
            splits += 1;
        }
    }
    println!(
        "T1b seeds: {} seeds, {splits} splits, all equal",
        seeds.len()
    );
}

// ---- stream-level chunk independence (proptest) --------------------------

mod stream_props {
    use super::replay::{limits, Driver};
    use proptest::prelude::*;

    /// Pieces of protocol traffic, including storage commands with data
    /// blocks of the announced, a shorter or a longer length, refused
    /// lines whose blocks are swallowed, and long lines.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"get a b\r\n".to_vec()),
            Just(b"gets a\n".to_vec()),
            Just(b"gat 10 a\r\n".to_vec()),
            Just(b"delete a noreply\r\n".to_vec()),
            Just(b"incr a 18446744073709551616\r\n".to_vec()),
            Just(b"GET / HTTP/1.0\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\x80\x00\x01".to_vec()),
            (
                prop_oneof![Just("set"), Just("add"), Just("append"), Just("cas")],
                prop_oneof![
                    Just("k".to_string()),
                    Just("k".repeat(251)),
                    Just("a\u{1}b".to_string())
                ],
                prop_oneof![Just("0"), Just("4294967296"), Just("-1")],
                0usize..300,
                -2i64..3,
                any::<bool>(),
            )
                .prop_map(|(verb, key, flags, len, delta, noreply)| {
                    let cas = if verb == "cas" { " 7" } else { "" };
                    let nr = if noreply { " noreply" } else { "" };
                    let mut v = format!("{verb} {key} {flags} 0 {len}{cas}{nr}\r\n").into_bytes();
                    let actual = (len as i64 + delta).max(0) as usize;
                    v.extend(std::iter::repeat_n(b'd', actual));
                    v.extend_from_slice(b"\r\n");
                    v
                }),
            (2040usize..2060).prop_map(|n| [vec![b'x'; n], b"\r\n".to_vec()].concat()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(piece(), 1..12).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
            ..ProptestConfig::default()
        })]

        /// The same stream cut into arbitrary reads gives the same verdicts
        /// (commands, errors, swallowed bytes, close) as in one read.
        #[test]
        fn stream_verdicts_do_not_depend_on_reads(
            s in stream(),
            lim in 0u8..8,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        ) {
            let limits = limits(lim);
            let mut whole = Driver::new(limits);
            whole.feed(&s);
            let mut offsets: Vec<usize> = cuts.iter().map(|c| c.index(s.len() + 1)).collect();
            offsets.sort();
            let mut parts = Driver::new(limits);
            let mut at = 0;
            for o in offsets {
                parts.feed(&s[at..o]);
                at = o;
            }
            parts.feed(&s[at..]);
            prop_assert_eq!(&parts.events, &whole.events);
            prop_assert_eq!(parts.closed, whole.closed);
        }
    }
}
