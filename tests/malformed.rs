//! The malformed-input table (reliability.md T2), against the spawned
//! binary.
//!
//! Each case is sent on a fresh connection. The expected reply is exact.
//! It is memcached 1.6.18's reply (captured on loopback from Debian's
//! `/usr/bin/memcached`) wherever twincache matches it; where twincache
//! deliberately differs (README.md "Where twincache deliberately differs",
//! src/protocol/parse.rs module doc) the case also records memcached's
//! reply and the reason. Running the suite with
//! `TWINCACHE_TEST_BIN=/usr/bin/memcached cargo test --test malformed`
//! checks every recorded memcached reply against the real memcached.
//!
//! For every case:
//! - the reply is exact;
//! - the connection stays open (a `version` sent after the case is
//!   answered; its `VERSION` line is part of the expected reply) or closes
//!   within 100 ms of the last byte sent, exactly as specified;
//! - another connection, open the whole time, keeps being served (it
//!   also empties the cache with `flush_all` before each case);
//! - over the whole table the server's RSS changes by less than 1 MB.

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const V: &[u8] = b"VERSION 1.6.18\r\n";
const SENTINEL: &[u8] = b"version\r\n";
const CLOSE_WITHIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq)]
enum End {
    /// The connection stays open; `version` is sent after the input and
    /// its reply is part of the expected bytes.
    Open,
    /// The server closes the connection within 100 ms.
    Closed,
}

struct Case {
    name: String,
    input: Vec<u8>,
    reply: Vec<u8>,
    end: End,
    /// memcached 1.6.18's behaviour where twincache deliberately differs,
    /// with the reason.
    memcached: Option<(Vec<u8>, End, &'static str)>,
}

fn case(name: &str, input: &[u8], reply: &[u8], end: End) -> Case {
    Case {
        name: name.to_string(),
        input: input.to_vec(),
        reply: reply.to_vec(),
        end,
        memcached: None,
    }
}

fn differs(mut c: Case, mc_reply: &[u8], mc_end: End, why: &'static str) -> Case {
    c.memcached = Some((mc_reply.to_vec(), mc_end, why));
    c
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `n` times `piece`.
fn rep(piece: &[u8], n: usize) -> Vec<u8> {
    piece.repeat(n)
}

const CLE: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
const ERR: &[u8] = b"ERROR\r\n";

fn table() -> Vec<Case> {
    use End::*;
    let k250 = rep(b"k", 250);
    let k251 = rep(b"k", 251);
    let swallow = "twincache swallows the data block of a refused storage line \
                   (memcached runs it as a command)";
    let ctrl = "twincache refuses control bytes in keys";
    let mut t = vec![
        // ---- bad and negative lengths -----------------------------------
        case(
            "negative length",
            b"set k 0 0 -1\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "length 2^32-1",
            b"set k 0 0 4294967295\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "length INT_MAX",
            b"set k 0 0 2147483647\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "length of 20 digits",
            b"set k 0 0 99999999999999999999\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "length not a number",
            b"set k 0 0 abc\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "length with trailing junk",
            b"set k 0 0 1z\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        // ---- short and long data blocks ----------------------------------
        case(
            "data block too long",
            b"set k 0 0 3\r\nabcde\r\n",
            &cat(&[b"CLIENT_ERROR bad data chunk\r\n", ERR, V]),
            Open,
        ),
        case(
            "data block too short, completed by the next line",
            b"set k 0 0 3\r\na\r\nb\r\n",
            &cat(&[b"CLIENT_ERROR bad data chunk\r\n", ERR, V]),
            Open,
        ),
        case(
            "data block ended by a bare newline",
            // `abc\nv` is the block; `ersion\r\n` then is a bad command
            b"set k 0 0 3\r\nabc\n",
            &cat(&[b"CLIENT_ERROR bad data chunk\r\n", ERR]),
            Open,
        ),
        case(
            "data block cut short, the sentinel taken as data",
            b"set k 0 0 10\r\nshort",
            &cat(&[b"CLIENT_ERROR bad data chunk\r\n", ERR]),
            Open,
        ),
        case(
            "empty data block",
            b"set k 0 0 0\r\n\r\nget k\r\n",
            b"STORED\r\nVALUE k 0 0\r\n\r\nEND\r\nVERSION 1.6.18\r\n",
            Open,
        ),
        // ---- flags and exptime out of range ------------------------------
        differs(
            case(
                "flags 2^32",
                b"set k 4294967296 0 1\r\nx\r\nget k\r\n",
                &cat(&[CLE, b"END\r\n", V]),
                Open,
            ),
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\nVERSION 1.6.18\r\n",
            Open,
            "twincache refuses flags >= 2^32 (memcached stores 0)",
        ),
        case(
            "flags 2^32-1",
            b"set k 4294967295 0 1\r\nx\r\nget k\r\n",
            b"STORED\r\nVALUE k 4294967295 1\r\nx\r\nEND\r\nVERSION 1.6.18\r\n",
            Open,
        ),
        differs(
            case(
                "negative flags",
                b"set k -1 0 1\r\nx\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, ERR, V]),
            Open,
            swallow,
        ),
        differs(
            case(
                "exptime of 20 digits",
                b"set k 0 99999999999999999999 1\r\nx\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, ERR, V]),
            Open,
            swallow,
        ),
        differs(
            case(
                "exptime 2^63",
                b"set k 0 9223372036854775808 1\r\nx\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, ERR, V]),
            Open,
            swallow,
        ),
        case(
            "negative exptime: stored, invisible",
            b"set k 0 -1 1\r\nx\r\nget k\r\n",
            &cat(&[b"STORED\r\nEND\r\n", V]),
            Open,
        ),
        case(
            "touch with a bad exptime",
            b"touch k abc\r\n",
            &cat(&[b"CLIENT_ERROR invalid exptime argument\r\n", V]),
            Open,
        ),
        case(
            "gat with a bad exptime",
            b"gat abc k\r\n",
            &cat(&[b"CLIENT_ERROR invalid exptime argument\r\n", V]),
            Open,
        ),
        case(
            "flush_all with a bad delay",
            b"flush_all abc\r\n",
            &cat(&[b"CLIENT_ERROR invalid exptime argument\r\n", V]),
            Open,
        ),
        // ---- keys ----------------------------------------------------------
        differs(
            case(
                "251-byte key on set: its data is never run (smuggling)",
                &cat(&[b"set ", &k251, b" 0 0 7\r\nversion\r\n"]),
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, V, V]),
            Open,
            swallow,
        ),
        case(
            "251-byte key on get",
            &cat(&[b"get ", &k251, b"\r\n"]),
            &cat(&[CLE, V]),
            Open,
        ),
        case(
            "250-byte key",
            &cat(&[b"set ", &k250, b" 0 0 1\r\nx\r\nget ", &k250, b"\r\n"]),
            &cat(&[b"STORED\r\nVALUE ", &k250, b" 0 1\r\nx\r\nEND\r\n", V]),
            Open,
        ),
        differs(
            case(
                "0x01 in a key on set",
                b"set a\x01b 0 0 1\r\nx\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[b"STORED\r\n", V]),
            Open,
            ctrl,
        ),
        differs(
            case(
                "0x01 in a key on get",
                b"get a\x01b\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[b"END\r\n", V]),
            Open,
            ctrl,
        ),
        differs(
            case("NUL in a key", b"get a\x00b\r\n", &cat(&[CLE, V]), Open),
            &cat(&[b"END\r\n", V]),
            Open,
            ctrl,
        ),
        differs(
            case("DEL in a key", b"delete a\x7f\r\n", &cat(&[CLE, V]), Open),
            &cat(&[b"NOT_FOUND\r\n", V]),
            Open,
            ctrl,
        ),
        case(
            "0xFF key is fine",
            b"set \xff 0 0 1\r\nx\r\nget \xff\r\n",
            &cat(&[b"STORED\r\nVALUE \xff 0 1\r\nx\r\nEND\r\n", V]),
            Open,
        ),
        // ---- oversized values ------------------------------------------------
        case(
            "2 MB value at -I 1m: refused, swallowed, next set works",
            &cat(&[
                b"set k 0 0 2000000\r\n",
                &rep(b"x", 2_000_000),
                b"\r\nset k 0 0 1\r\ny\r\n",
            ]),
            &cat(&[b"SERVER_ERROR object too large for cache\r\nSTORED\r\n", V]),
            Open,
        ),
        // ---- noreply mixes -----------------------------------------------------
        case(
            "noreply with a bad length is silent",
            b"set k 0 0 -1 noreply\r\n",
            V,
            Open,
        ),
        case(
            "noreply with a bad data chunk",
            b"set k 0 0 1 noreply\r\nxx\r\n",
            &cat(&[ERR, V]),
            Open,
        ),
        case(
            "noreply not last: wrong token count",
            b"set k 0 0 1 noreply x\r\nx\r\n",
            &cat(&[ERR, ERR, V]),
            Open,
        ),
        case(
            "incr noreply on a non-number is silent",
            b"set n 0 0 1\r\na\r\nincr n 1 noreply\r\nincr n 1\r\n",
            &cat(&[
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                V,
            ]),
            Open,
        ),
        case(
            "delete usage error under noreply is silent",
            b"delete k 5 noreply\r\n",
            V,
            Open,
        ),
        case(
            "noreply pipeline",
            b"set a 0 0 1 noreply\r\n1\r\nincr a 5 noreply\r\nget a\r\ndelete a noreply\r\nget a\r\n",
            &cat(&[b"VALUE a 0 1\r\n6\r\nEND\r\nEND\r\n", V]),
            Open,
        ),
        // ---- line endings and empty lines ---------------------------------------
        case(
            "bare newlines end command lines",
            b"set k 0 0 1\nx\r\nget k\n",
            &cat(&[b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n", V]),
            Open,
        ),
        case(
            "1000 empty lines",
            &rep(b"\r\n", 1000),
            &cat(&[&rep(ERR, 1000), V]),
            Open,
        ),
        case(
            "100 bare newlines",
            &rep(b"\n", 100),
            &cat(&[&rep(ERR, 100), V]),
            Open,
        ),
        case("only spaces", b"     \r\n", &cat(&[ERR, V]), Open),
        case("a lone CR", b"\r\r\n", &cat(&[ERR, V]), Open),
        // ---- binary garbage -------------------------------------------------------
        case("NUL 0x01 0xFF", b"\x00\x01\xff\r\n", &cat(&[ERR, V]), Open),
        differs(
            case(
                "binary-protocol GET (0x80 magic)",
                // 24-byte header + key, no newline: with the sentinel it is one
                // bad text line
                b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00k",
                ERR,
                Open,
            ),
            // a binary "Not found" response
            b"\x81\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00Not found",
            Open,
            "twincache has no binary protocol",
        ),
        differs(
            case(
                "bytes 0x80..0xFF",
                &cat(&[&(0x80u8..=0xff).collect::<Vec<u8>>(), b"\r\n"]),
                &cat(&[ERR, V]),
                Open,
            ),
            b"",
            Open,
            "twincache has no binary protocol (memcached waits for a binary header)",
        ),
        case(
            "upper-case verb",
            b"GET k\r\n",
            &cat(&[ERR, V]),
            Open,
        ),
        case("tab as separator", b"get\tk\r\n", &cat(&[ERR, V]), Open),
        // ---- HTTP lines -------------------------------------------------------------
        case("HTTP GET", b"GET / HTTP/1.0\r\n\r\n", b"", Closed),
        case("HTTP PUT", b"PUT /x HTTP/1.1\r\n", b"", Closed),
        case("HTTP DELETE", b"DELETE HTTP/1.1\r\n", b"", Closed),
        // ---- long lines and huge multi-gets --------------------------------------------
        differs(
            case("4 KB line without a newline", &rep(b"x", 4096), b"", Closed),
            ERR,
            Open,
            "twincache closes every command line over 2048 bytes (memcached \
             serves it when the newline arrives in the same read)",
        ),
        case(
            "multi-get of 30,000 keys (200 KB line)",
            &cat(&[
                b"get ",
                &(0..30_000)
                    .map(|i| format!("k{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .into_bytes(),
                b"\r\n",
            ]),
            &cat(&[b"END\r\n", V]),
            Open,
        ),
        differs(
            case(
                "multi-get line over 256 KiB",
                &cat(&[b"get ", &rep(b"a ", 140_000), b"\r\n"]),
                b"",
                Closed,
            ),
            &cat(&[b"END\r\n", V]),
            Open,
            "twincache bounds get lines at 256 KiB (memcached's buffer grows without limit)",
        ),
        // ---- arithmetic ------------------------------------------------------------------
        case(
            "incr by 2^64",
            b"set n 0 0 1\r\n1\r\nincr n 18446744073709551616\r\n",
            &cat(&[b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n", V]),
            Open,
        ),
        case(
            "incr wraps at 2^64",
            b"set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\n",
            &cat(&[b"STORED\r\n0\r\n", V]),
            Open,
        ),
        case(
            "decr floors at 0",
            b"set n 0 0 1\r\n5\r\ndecr n 10\r\n",
            &cat(&[b"STORED\r\n0\r\n", V]),
            Open,
        ),
        case(
            "incr by a negative delta",
            b"incr n -1\r\n",
            &cat(&[b"CLIENT_ERROR invalid numeric delta argument\r\n", V]),
            Open,
        ),
        // ---- other refusals -----------------------------------------------------------------
        case(
            "delete with a non-zero time",
            b"delete k 1\r\n",
            &cat(&[
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
                V,
            ]),
            Open,
        ),
        case(
            "verbosity with a word",
            b"verbosity abc\r\n",
            &cat(&[CLE, V]),
            Open,
        ),
        differs(
            case(
                "cas with a negative unique",
                b"cas k 0 0 1 -1\r\nx\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, ERR, V]),
            Open,
            swallow,
        ),
        case(
            "cas without its unique",
            b"cas k 0 0 1\r\nx\r\n",
            &cat(&[ERR, ERR, V]),
            Open,
        ),
        case(
            "cache_memlimit with a word",
            b"cache_memlimit abc\r\n",
            &cat(&[ERR, V]),
            Open,
        ),
        case(
            "shutdown without -A",
            b"shutdown junk\r\n",
            &cat(&[b"ERROR: shutdown not enabled\r\n", V]),
            Open,
        ),
    ];
    // Every command with 0, 1 and 300 arguments ("a"). memcached 1.6.18's
    // replies; `stats` alone (a long varying listing) is left out, the meta
    // commands are in `meta_table`.
    let replies: &[(&str, [&[u8]; 3])] = &[
        ("get", [ERR, b"END\r\n", b"END\r\n"]),
        ("gets", [ERR, b"END\r\n", b"END\r\n"]),
        (
            "gat",
            [
                ERR,
                b"CLIENT_ERROR invalid exptime argument\r\n",
                b"CLIENT_ERROR invalid exptime argument\r\n",
            ],
        ),
        (
            "gats",
            [
                ERR,
                b"CLIENT_ERROR invalid exptime argument\r\n",
                b"CLIENT_ERROR invalid exptime argument\r\n",
            ],
        ),
        ("bget", [ERR, b"END\r\n", b"END\r\n"]),
        ("set", [ERR, ERR, ERR]),
        ("add", [ERR, ERR, ERR]),
        ("replace", [ERR, ERR, ERR]),
        ("append", [ERR, ERR, ERR]),
        ("prepend", [ERR, ERR, ERR]),
        ("cas", [ERR, ERR, ERR]),
        ("delete", [ERR, b"NOT_FOUND\r\n", ERR]),
        ("incr", [ERR, ERR, ERR]),
        ("decr", [ERR, ERR, ERR]),
        ("touch", [ERR, ERR, ERR]),
        (
            "flush_all",
            [b"OK\r\n", b"CLIENT_ERROR invalid exptime argument\r\n", ERR],
        ),
        ("version", [V, V, V]),
        ("verbosity", [ERR, CLE, ERR]),
        (
            "shutdown",
            [
                b"ERROR: shutdown not enabled\r\n",
                b"ERROR: shutdown not enabled\r\n",
                b"ERROR: shutdown not enabled\r\n",
            ],
        ),
        ("cache_memlimit", [ERR, ERR, ERR]),
        ("slabs", [ERR, ERR, ERR]),
        ("lru_crawler", [ERR, ERR, ERR]),
        ("lru", [ERR, ERR, ERR]),
        ("misbehave", [ERR, ERR, ERR]),
        ("debugtime", [ERR, ERR, ERR]),
        ("noop", [ERR, ERR, ERR]),
    ];
    for (verb, want) in replies {
        for (i, n) in [0usize, 1, 300].into_iter().enumerate() {
            let line = cat(&[verb.as_bytes(), &rep(b" a", n), b"\r\n"]);
            t.push(case(
                &format!("{verb} with {n} arguments"),
                &line,
                &cat(&[want[i], V]),
                End::Open,
            ));
        }
    }
    t.push(case(
        "stats with 1 argument",
        b"stats a\r\n",
        &cat(&[ERR, V]),
        End::Open,
    ));
    t.push(case(
        "stats with 300 arguments",
        &cat(&[b"stats", &rep(b" a", 300), b"\r\n"]),
        &cat(&[ERR, V]),
        End::Open,
    ));
    for n in [0usize, 1, 300] {
        t.push(case(
            &format!("quit with {n} arguments"),
            &cat(&[b"quit", &rep(b" a", n), b"\r\n"]),
            b"",
            End::Closed,
        ));
    }
    t.extend(meta_table());
    t
}

/// The meta protocol (`mg ms md ma mn me`): memcached 1.6.18's replies,
/// captured on loopback, unless marked `differs`.
fn meta_table() -> Vec<Case> {
    use End::*;
    let k250 = rep(b"k", 250);
    let k251 = rep(b"k", 251);
    // base64 of 252 bytes: 336 characters, so the token itself is too long
    let b64_252 = rep(b"a2tr", 84);
    let swallow = "twincache swallows the data block of a refused storage line \
                   (memcached runs it as a command)";
    let ctrl = "twincache refuses control bytes in keys";
    let bad_token: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
    let bad_flag: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
    let dup_flag: &[u8] = b"CLIENT_ERROR duplicate flag\r\n";
    let inv_dup: &[u8] = b"CLIENT_ERROR invalid or duplicate flag\r\n";
    let chunk: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
    let decoding: &[u8] = b"CLIENT_ERROR error decoding key\r\n";
    let opaque_long: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";
    vec![
        // ---- bad and duplicate flags ------------------------------------------
        case("mg: unknown flag", b"mg k !\r\n", &cat(&[bad_flag, V]), Open),
        case("mg: flag z", b"mg k z\r\n", &cat(&[bad_flag, V]), Open),
        case("mg: duplicate flag", b"mg k v v\r\n", &cat(&[dup_flag, V]), Open),
        case(
            "mg: duplicate t on a hit",
            b"set k 0 0 1\r\nx\r\nmg k t t v\r\n",
            &cat(&[b"STORED\r\n", dup_flag, V]),
            Open,
        ),
        case("mg: no key", b"mg\r\n", &cat(&[ERR, V]), Open),
        case("mg: only spaces after the verb", b"mg    \r\n", &cat(&[ERR, V]), Open),
        case("mg: upper-case verb", b"MG k v\r\n", &cat(&[ERR, V]), Open),
        case(
            "mg: T token of 300 digits",
            &cat(&[b"mg k T", &rep(b"1", 300), b"\r\n"]),
            &cat(&[bad_token, V]),
            Open,
        ),
        case(
            "mg: N token of 30 digits",
            &cat(&[b"mg k N", &rep(b"9", 30), b"\r\n"]),
            &cat(&[bad_token, V]),
            Open,
        ),
        case("mg: T not a number", b"mg k Tabc\r\n", &cat(&[bad_token, V]), Open),
        case(
            "mg: 17 flags (a duplicate O)",
            &cat(&[b"mg k", &rep(b" O1", 17), b"\r\n"]),
            &cat(&[dup_flag, V]),
            Open,
        ),
        case(
            "mg: 18 flags",
            &cat(&[b"mg k", &rep(b" O1", 18), b"\r\n"]),
            &cat(&[b"CLIENT_ERROR options flags are too long\r\n", V]),
            Open,
        ),
        case(
            "mg: 300 flags",
            &cat(&[b"mg a", &rep(b" a", 299), b"\r\n"]),
            &cat(&[b"CLIENT_ERROR options flags are too long\r\n", V]),
            Open,
        ),
        case("md: unknown flag", b"md k x\r\n", &cat(&[inv_dup, V]), Open),
        case("md: duplicate q", b"md k q q\r\n", &cat(&[inv_dup, V]), Open),
        case("md: C not a number", b"md k Cabc\r\n", &cat(&[inv_dup, V]), Open),
        case("ma: duplicate D", b"ma k D1 D1\r\n", &cat(&[inv_dup, V]), Open),
        case("ms: unknown flag", b"ms k 1 !\r\nx\r\n", &cat(&[bad_flag, V]), Open),
        case(
            "ms: noreply is not a meta flag",
            b"ms k 1 noreply\r\nx\r\n",
            &cat(&[bad_flag, V]),
            Open,
        ),
        case("ms: S is an mg flag only", b"ms k 1 S5\r\nx\r\n", &cat(&[bad_flag, V]), Open),
        case(
            "ms: E (explicit CAS) refused",
            b"ms k 1 E5\r\nx\r\n",
            &cat(&[bad_flag, V]),
            Open,
        ),
        case(
            "ms: invalid mode",
            b"ms k 1 MX\r\nx\r\n",
            &cat(&[b"CLIENT_ERROR invalid mode for ms M token\r\n", V]),
            Open,
        ),
        case("ms: T not a number", b"ms k 1 Tabc\r\nx\r\n", &cat(&[bad_token, V]), Open),
        case(
            "ms: negative client flags",
            b"ms k 1 F-1\r\nx\r\n",
            &cat(&[CLE, V]),
            Open,
        ),
        differs(
            case(
                "ms: client flags 2^32",
                b"ms k 1 F4294967296\r\nx\r\nmg k f v\r\n",
                &cat(&[CLE, b"EN\r\n", V]),
                Open,
            ),
            &cat(&[b"HD\r\nVA 1 f0\r\nx\r\n", V]),
            Open,
            "twincache refuses flags >= 2^32 (memcached stores 0)",
        ),
        case(
            "ms: two flags glued in one token",
            b"ms k 1 T10F5\r\nx\r\nmg k f t\r\n",
            &cat(&[bad_token, b"EN\r\n", V]),
            Open,
        ),
        // A refused ms line whose datalen is valid: the data block is
        // swallowed by both servers, never run as a command.
        case(
            "ms: bad flag, data block not run",
            b"ms k 7 !\r\nversion\r\n",
            &cat(&[bad_flag, V]),
            Open,
        ),
        case(
            "ms: bad T token, data block not run",
            b"ms k 7 Tabc\r\nversion\r\n",
            &cat(&[bad_token, V]),
            Open,
        ),
        case(
            "ms: duplicate flag, data block not run",
            b"ms k 7 T1 T1\r\nversion\r\n",
            &cat(&[dup_flag, V]),
            Open,
        ),
        case(
            "ms: invalid mode, data block not run",
            b"ms k 7 MX\r\nversion\r\n",
            &cat(&[b"CLIENT_ERROR invalid mode for ms M token\r\n", V]),
            Open,
        ),
        // ---- ms datalen ------------------------------------------------------------
        case("ms: no datalen", b"ms k\r\n", &cat(&[CLE, V]), Open),
        case(
            "ms: negative datalen",
            b"ms k -1\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            // memcached takes the length modulo 2^32 (here 0) and finds no
            // CRLF after 0 bytes; twincache gives the same reply
            "ms: datalen 2^32",
            b"ms k 4294967296\r\nx\r\n",
            &cat(&[chunk, ERR, V]),
            Open,
        ),
        case(
            "ms: datalen INT_MAX",
            b"ms k 2147483647\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "ms: datalen of 20 digits",
            b"ms k 99999999999999999999\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "ms: datalen not a number",
            b"ms k abc\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        case(
            "ms: datalen with trailing junk",
            b"ms k 1z\r\nx\r\n",
            &cat(&[CLE, ERR, V]),
            Open,
        ),
        // ---- ms data blocks ----------------------------------------------------------
        case(
            "ms: data block too long",
            b"ms k 3\r\nabcde\r\n",
            &cat(&[chunk, ERR, V]),
            Open,
        ),
        case(
            "ms: data block too short, completed by the next line",
            b"ms k 3\r\na\r\nb\r\n",
            &cat(&[chunk, ERR, V]),
            Open,
        ),
        case(
            "ms: empty data block",
            b"ms k 0\r\n\r\nmg k v\r\n",
            &cat(&[b"HD\r\nVA 0\r\n\r\n", V]),
            Open,
        ),
        case(
            "ms: 2 MB value at -I 1m: refused, swallowed, next ms works",
            &cat(&[
                b"ms k 2000000\r\n",
                &rep(b"x", 2_000_000),
                b"\r\nms k 1\r\ny\r\n",
            ]),
            &cat(&[b"SERVER_ERROR object too large for cache\r\nHD\r\n", V]),
            Open,
        ),
        // ---- q (the meta noreply) ---------------------------------------------------
        case(
            "ms q: HD hidden, mn answered",
            b"ms k 1 q\r\nx\r\nmn\r\n",
            &cat(&[b"MN\r\n", V]),
            Open,
        ),
        case(
            "ms q: a bad data chunk is still answered",
            b"ms k 1 q\r\nxx\r\nmn\r\n",
            &cat(&[chunk, ERR, b"MN\r\n", V]),
            Open,
        ),
        case(
            "ms q: duplicate q",
            b"ms k 1 q q\r\nx\r\nmn\r\n",
            &cat(&[dup_flag, b"MN\r\n", V]),
            Open,
        ),
        case(
            "ms q: NS is not hidden",
            b"ms k 1 q MR\r\nx\r\nmn\r\n",
            &cat(&[b"NS\r\nMN\r\n", V]),
            Open,
        ),
        case(
            "ms q: a negative datalen is answered",
            b"ms k -1 q\r\nmn\r\n",
            &cat(&[CLE, b"MN\r\n", V]),
            Open,
        ),
        case(
            "ms q: a bad token is answered",
            b"ms k 1 q Tx\r\nx\r\nmn\r\n",
            &cat(&[bad_token, b"MN\r\n", V]),
            Open,
        ),
        case(
            "ms q: too large is answered",
            &cat(&[b"ms k 2000000 q\r\n", &rep(b"x", 2_000_000), b"\r\nmn\r\n"]),
            &cat(&[b"SERVER_ERROR object too large for cache\r\nMN\r\n", V]),
            Open,
        ),
        case(
            "md q: HD hidden, NF answered",
            b"ms n 1\r\n1\r\nmd n q\r\nmd n q\r\nmn\r\n",
            &cat(&[b"HD\r\nNF\r\nMN\r\n", V]),
            Open,
        ),
        case(
            "ma q: HD and VA hidden",
            b"ms n 1\r\n1\r\nma n q\r\nma n q v\r\nmn\r\nmg n v\r\n",
            &cat(&[b"HD\r\nMN\r\nVA 1\r\n3\r\n", V]),
            Open,
        ),
        case(
            "mg q: EN hidden only without k",
            b"mg k q k v\r\nmg k k v\r\nmn\r\n",
            &cat(&[b"EN kk\r\nMN\r\n", V]),
            Open,
        ),
        // ---- base64 keys -------------------------------------------------------------
        case("mg b: key not base64", b"mg !!!! b v\r\n", &cat(&[decoding, V]), Open),
        case("mg b: key of a bad length", b"mg abc b v\r\n", &cat(&[decoding, V]), Open),
        case(
            "ms b: key not base64, data block not run",
            b"ms !!!! 7 b\r\nversion\r\n",
            &cat(&[decoding, V]),
            Open,
        ),
        case("md b: key not base64", b"md !!!! b\r\n", &cat(&[inv_dup, V]), Open),
        case(
            "mg b: a 336-character base64 key (252 bytes)",
            &cat(&[b"mg ", &b64_252, b" b v\r\n"]),
            &cat(&[CLE, V]),
            Open,
        ),
        case(
            "mg b: a key decoding to control bytes is fine",
            b"mg YQFi b v\r\n",
            &cat(&[b"EN\r\n", V]),
            Open,
        ),
        case(
            "ms b: a key decoding to a space is fine",
            b"ms YSBi 1 b\r\nx\r\nmg YSBi b v\r\n",
            &cat(&[b"HD\r\nVA 1\r\nx\r\n", V]),
            Open,
        ),
        case(
            "ms b: base64 key round trip",
            b"ms a2V5 1 b\r\nx\r\nmg a2V5 b v k\r\nget key\r\n",
            &cat(&[b"HD\r\nVA 1 ka2V5 b\r\nx\r\nVALUE key 0 1\r\nx\r\nEND\r\n", V]),
            Open,
        ),
        // ---- long keys and control bytes ----------------------------------------------
        case(
            "mg: 251-byte key",
            &cat(&[b"mg ", &k251, b" v\r\n"]),
            &cat(&[CLE, V]),
            Open,
        ),
        case(
            "ms/mg: 250-byte key",
            &cat(&[b"ms ", &k250, b" 1\r\nx\r\nmg ", &k250, b" v k\r\n"]),
            &cat(&[b"HD\r\nVA 1 k", &k250, b"\r\nx\r\n", V]),
            Open,
        ),
        differs(
            case(
                "ms: 251-byte key, its data is never run (smuggling)",
                &cat(&[b"ms ", &k251, b" 7\r\nversion\r\n"]),
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, V, V]),
            Open,
            swallow,
        ),
        differs(
            case(
                "ms b: 251-byte key, its data is never run",
                &cat(&[b"ms ", &k251, b" 7 b\r\nversion\r\n"]),
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[CLE, V, V]),
            Open,
            swallow,
        ),
        case(
            "me: 251-byte key",
            &cat(&[b"me ", &k251, b"\r\n"]),
            &cat(&[CLE, V]),
            Open,
        ),
        differs(
            case("mg: 0x01 in a key", b"mg a\x01b v\r\n", &cat(&[CLE, V]), Open),
            &cat(&[b"EN\r\n", V]),
            Open,
            ctrl,
        ),
        differs(
            case(
                "ms: 0x01 in a key, data block not run",
                b"ms a\x01b 7\r\nversion\r\n",
                &cat(&[CLE, V]),
                Open,
            ),
            &cat(&[b"HD\r\n", V]),
            Open,
            ctrl,
        ),
        differs(
            case("md: DEL in a key", b"md a\x7f\r\n", &cat(&[CLE, V]), Open),
            &cat(&[b"NF\r\n", V]),
            Open,
            ctrl,
        ),
        // ---- opaque tokens ---------------------------------------------------------------
        case(
            "mg: opaque of 31 bytes",
            &cat(&[b"mg k O", &rep(b"o", 31), b"\r\n"]),
            &cat(&[b"EN O", &rep(b"o", 31), b"\r\n", V]),
            Open,
        ),
        case(
            "mg: opaque of 32 bytes",
            &cat(&[b"mg k O", &rep(b"o", 32), b"\r\n"]),
            &cat(&[opaque_long, V]),
            Open,
        ),
        case(
            "ms: opaque too long, data block not run",
            &cat(&[b"ms k 7 O", &rep(b"o", 40), b"\r\nversion\r\n"]),
            &cat(&[opaque_long, V]),
            Open,
        ),
        case("mg: empty opaque", b"mg k O\r\n", &cat(&[b"EN O\r\n", V]), Open),
        case(
            "mn: its arguments (a long opaque) are ignored",
            &cat(&[b"mn O", &rep(b"o", 40), b" a b\r\n"]),
            &cat(&[b"MN\r\n", V]),
            Open,
        ),
        // ---- ma -----------------------------------------------------------------------------
        case("ma: delta not a number", b"ma k Dabc\r\n", &cat(&[inv_dup, V]), Open),
        case("ma: negative delta", b"ma k D-1\r\n", &cat(&[inv_dup, V]), Open),
        case(
            "ma: delta 2^64",
            b"ma k D18446744073709551616\r\n",
            &cat(&[inv_dup, V]),
            Open,
        ),
        case(
            "ma: initial not a number",
            b"ma k N0 Jabc\r\n",
            &cat(&[inv_dup, V]),
            Open,
        ),
        case(
            "ma: invalid mode",
            b"ma k MX\r\n",
            &cat(&[b"CLIENT_ERROR invalid mode for ma M token\r\n", V]),
            Open,
        ),
        case("ma: missing key", b"ma k\r\n", &cat(&[b"NF\r\n", V]), Open),
        case(
            "ma q: a missing key is answered",
            b"ma k q\r\nmn\r\n",
            &cat(&[b"NF\r\nMN\r\n", V]),
            Open,
        ),
        case(
            "ma: non-numeric value",
            b"set k 0 0 1\r\na\r\nma k\r\n",
            &cat(&[
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                V,
            ]),
            Open,
        ),
        case(
            "ma q: non-numeric value is answered",
            b"set k 0 0 1\r\na\r\nma k q\r\nmn\r\n",
            &cat(&[
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nMN\r\n",
                V,
            ]),
            Open,
        ),
        case(
            "ma: auto-create, then decrement floors at 0",
            b"ma k N0 J5 D3 v\r\nma k MD D100 v\r\n",
            &cat(&[b"VA 1\r\n5\r\nVA 1\r\n0\r\n", V]),
            Open,
        ),
        // ---- me -------------------------------------------------------------------------------
        case("me: missing key", b"me k\r\n", &cat(&[b"EN\r\n", V]), Open),
        case("me: no key", b"me\r\n", &cat(&[CLE, V]), Open),
        case("me: extra arguments", b"me k a b\r\n", &cat(&[b"EN\r\n", V]), Open),
        // ---- meta and text in one pipeline ------------------------------------------------------
        case(
            "pipeline: text set, mg, ma, get, md q, mg, ms, get, mn",
            b"set a 0 0 1\r\n1\r\nmg a v\r\nma a\r\nget a\r\nmd a q\r\nmg a\r\nms a 2 T0\r\nab\r\nget a\r\nmn\r\n",
            &cat(&[
                b"STORED\r\nVA 1\r\n1\r\nHD\r\nVALUE a 0 1\r\n2\r\nEND\r\nEN\r\nHD\r\nVALUE a 0 2\r\nab\r\nEND\r\nMN\r\n",
                V,
            ]),
            Open,
        ),
        case(
            "pipeline: q misses and hits, then text incr",
            b"mg x q v\r\nms x 1 q\r\n5\r\nma x q\r\nmg x q v\r\nmn\r\nincr x 1\r\n",
            &cat(&[b"VA 1\r\n6\r\nMN\r\n7\r\n", V]),
            Open,
        ),
        case(
            "pipeline: mn between text gets",
            b"get a\r\nmn\r\nget b\r\nmn\r\n",
            &cat(&[b"END\r\nMN\r\nEND\r\nMN\r\n", V]),
            Open,
        ),
        case(
            "pipeline: ma MD, text decr, delete, me",
            b"set n 0 0 2\r\n10\r\nma n MD D3 v\r\ndecr n 1\r\nmg n v\r\ndelete n\r\nme n\r\n",
            &cat(&[b"STORED\r\nVA 1\r\n7\r\n6\r\nVA 2\r\n6 \r\nDELETED\r\nEN\r\n", V]),
            Open,
        ),
        case(
            "pipeline: ms with F and T, text get, mg s f v",
            b"ms k 2 F7 T0\r\nhi\r\nget k\r\nmg k s f v\r\n",
            &cat(&[b"HD\r\nVALUE k 7 2\r\nhi\r\nEND\r\nVA 2 s2 f7\r\nhi\r\n", V]),
            Open,
        ),
        case(
            "pipeline: a refused ms between text commands",
            b"set a 0 0 1\r\n1\r\nms a 3 !\r\nxyz\r\nget a\r\n",
            &cat(&[b"STORED\r\n", bad_flag, b"VALUE a 0 1\r\n1\r\nEND\r\n", V]),
            Open,
        ),
    ]
}

fn against_memcached() -> bool {
    common::binary().ends_with("memcached")
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What one case produced: the bytes received, whether the server
/// closed, and how long the close took after the last byte was sent.
struct Outcome {
    got: Vec<u8>,
    closed: bool,
    close_after: Duration,
}

fn run_case(port: u16, input: &[u8], end: &End, want: &[u8]) -> Outcome {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut payload = input.to_vec();
    if *end == End::Open {
        payload.extend_from_slice(SENTINEL);
    }
    // The writer runs on its own thread: the server may answer (or close)
    // before it has read everything.
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&payload);
        Instant::now()
    });
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    let mut closed_at = None;
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    loop {
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                closed_at = Some(Instant::now());
                break;
            }
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Open cases end once the expected bytes (or more) are in
                // and nothing more arrives within 50 ms.
                if *end == End::Open && writer.is_finished() && got.len() >= want.len() {
                    break;
                }
            }
            Err(_) => {
                closed = true;
                closed_at = Some(Instant::now());
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let sent_at = writer.join().expect("writer");
    let close_after = closed_at.map_or(Duration::ZERO, |c| c.saturating_duration_since(sent_at));
    Outcome {
        got,
        closed,
        close_after,
    }
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        format!("{}... ({} bytes)", &s[..300], b.len())
    } else {
        s.into_owned()
    }
}

#[test]
fn malformed_input_table() {
    let cases = table();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mc = against_memcached();
    let server = Server::start(&[]);
    let mut observer = server.connect();
    assert_eq!(observer.call_line(b"version\r\n"), "VERSION 1.6.18\r\n");
    // The table runs twice and RSS is compared over the second pass: the
    // first one also warms up what legitimately stays allocated (buffer
    // pools, and the slab pages, within -m, that the table's stored items
    // get), so the second pass shows growth that would repeat: a leak.
    let mut rss_before = 0;
    let mut failures = Vec::new();
    for (pass, c) in (0..2).flat_map(|pass| cases.iter().map(move |c| (pass, c))) {
        if pass == 1 && std::ptr::eq(c, &cases[0]) {
            rss_before = rss_kb(server.pid());
        }
        let (reply, end) = match (&c.memcached, mc) {
            (Some((r, e, _)), true) => (r.clone(), e.clone()),
            _ => (c.reply.clone(), c.end.clone()),
        };
        // Each case starts from an empty cache.
        assert_eq!(observer.call_line(b"flush_all\r\n"), "OK\r\n");
        let out = run_case(server.port, &c.input, &end, &reply);
        let mut problems = Vec::new();
        if out.got != reply {
            problems.push(format!(
                "reply {:?}, want {:?}",
                show(&out.got),
                show(&reply)
            ));
        }
        match end {
            End::Open if out.closed => problems.push("closed, want open".into()),
            End::Closed if !out.closed => problems.push("still open, want closed".into()),
            End::Closed if out.close_after > CLOSE_WITHIN => {
                problems.push(format!("closed after {:?}", out.close_after))
            }
            _ => {}
        }
        // Another connection is still served.
        if observer.call_line(b"version\r\n") != "VERSION 1.6.18\r\n" {
            problems.push("the observer connection was not served".into());
        }
        if !problems.is_empty() {
            let why = c
                .memcached
                .as_ref()
                .map(|(_, _, w)| format!(" [divergence: {w}]"))
                .unwrap_or_default();
            failures.push(format!(
                "pass {pass}: {}{}: {}",
                c.name,
                why,
                problems.join("; ")
            ));
        }
    }
    let rss_after = rss_kb(server.pid());
    let growth = rss_after as i64 - rss_before as i64;
    println!(
        "T2 malformed: {} cases x 2 passes, {} failed, RSS over the second pass {} kB -> {} kB ({:+} kB)",
        cases.len(),
        failures.len(),
        rss_before,
        rss_after,
        growth
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if mc {
        // The RSS bound is twincache's requirement; memcached 1.6.18 grows
        // by about 212 MB over this table (its read buffer follows the
        // long get lines).
        return;
    }
    assert!(
        growth.abs() < 1024,
        "RSS changed by {growth} kB over the table's second pass (limit 1 MB)"
    );
}

/// Meta refusals where twincache does not give memcached 1.6.18's reply
/// yet (not deliberate, so not in the table): for `ms`, `md` and `ma`
/// memcached words the flag-count refusal `CLIENT_ERROR options flags too
/// long` (only `mg` says "are too long"), and it counts `ms`'s datalen
/// among the tokens, so 17 flags are already too many on `ms` (twincache
/// answers `duplicate flag` there). The `ms` data block is swallowed by
/// twincache as for every refused storage line (README), run by memcached.
/// Run with `--ignored` once src/protocol is fixed; with
/// `TWINCACHE_TEST_BIN=/usr/bin/memcached` it passes today.
#[test]
fn meta_flag_count_refusals_as_memcached() {
    use End::*;
    let long: &[u8] = b"CLIENT_ERROR options flags too long\r\n";
    let swallow = "twincache swallows the data block of a refused storage line \
                   (memcached runs it as a command)";
    let cases = vec![
        differs(
            case(
                "ms: 17 flags",
                &cat(&[b"ms k 1", &rep(b" O1", 17), b"\r\nx\r\n"]),
                &cat(&[long, V]),
                Open,
            ),
            &cat(&[long, ERR, V]),
            Open,
            swallow,
        ),
        differs(
            case(
                "ms: 300 flags",
                &cat(&[b"ms k 1", &rep(b" a", 300), b"\r\nx\r\n"]),
                &cat(&[long, V]),
                Open,
            ),
            &cat(&[long, ERR, V]),
            Open,
            swallow,
        ),
        case(
            "md: 18 flags",
            &cat(&[b"md k", &rep(b" O1", 18), b"\r\n"]),
            &cat(&[long, V]),
            Open,
        ),
        case(
            "ma: 18 flags",
            &cat(&[b"ma k", &rep(b" O1", 18), b"\r\n"]),
            &cat(&[long, V]),
            Open,
        ),
    ];
    let mc = against_memcached();
    let server = Server::start(&[]);
    let mut failures = Vec::new();
    for c in &cases {
        let (reply, end) = match (&c.memcached, mc) {
            (Some((r, e, _)), true) => (r.clone(), e.clone()),
            _ => (c.reply.clone(), c.end.clone()),
        };
        let out = run_case(server.port, &c.input, &end, &reply);
        if out.got != reply || out.closed {
            failures.push(format!(
                "{}: reply {:?} (closed: {}), want {:?}",
                c.name,
                show(&out.got),
                out.closed,
                show(&reply)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
