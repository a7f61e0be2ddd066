//! The meta protocol against the spawned binary.
//!
//! - `differential_*`: the same meta exchanges are sent to twincache and to
//!   Debian's memcached 1.6.18 on fresh servers; the replies must be equal
//!   after normalising only CAS values (`c<n>`, `cas=<n>`) and times (`l<n>`,
//!   `la=<n>`, positive `t<n>` / `exp=<n>` within one second of each other:
//!   both are compared after dropping the value).
//!   Each exchange is followed by `mn`, so every reply is read up to `MN`.
//! - `meta_memcache_client`: the published meta-memcache client (PyPI)
//!   drives twincache (tests/python/meta_client.py); skipped without
//!   python3 or the module, a failure under TWINCACHE_REQUIRE_INTEROP=1.

mod common;

use common::tools::{python_script, require_python_module, run_limited};
use common::{require_tool, Client, Server};
use std::process::Command;
use std::time::Duration;

/// Replaces the digits after `prefix` (at a token start) with `#`.
fn mask_after(s: &str, prefix: &str, keep_minus_one: bool) -> String {
    let mut out = String::new();
    for (i, line) in s.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let toks: Vec<String> = line
            .split(' ')
            .map(|t| {
                if let Some(rest) = t.strip_prefix(prefix) {
                    if !rest.is_empty()
                        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                        && !(keep_minus_one && rest == "-1")
                    {
                        return format!("{prefix}#");
                    }
                }
                t.to_string()
            })
            .collect();
        out.push_str(&toks.join(" "));
    }
    out
}

fn normalise(reply: &str) -> String {
    let mut s = reply.to_string();
    // Only on meta reply lines (values are never masked: the exchanges
    // below never store values that look like flags).
    for (p, keep) in [
        ("c", false),
        ("cas=", false),
        ("l", false),
        ("la=", false),
        ("t", true),
        ("exp=", true),
    ] {
        s = mask_after(&s, p, keep);
    }
    s
}

fn exchange(c: &mut Client, req: &[u8]) -> String {
    c.send(req);
    c.send(b"mn\r\n");
    // One `MN` per `mn` line of the request, plus ours.
    let want = 1 + req
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"mn"))
        .count();
    let mut r = Vec::new();
    while r.windows(4).filter(|w| *w == b"MN\r\n").count() < want {
        r.extend(c.read_until_any(&[b"MN\r\n"]));
    }
    String::from_utf8_lossy(&r).into_owned()
}

/// Sends every exchange to both servers (one connection each, in order) and
/// compares the normalised replies.
fn compare(exchanges: &[&[u8]], args: &[&str]) {
    if require_tool("memcached").is_none() {
        return;
    }
    let ours = Server::start(args);
    let theirs = Server::start_memcached(args);
    let mut a = ours.connect();
    let mut b = theirs.connect();
    let mut diffs = Vec::new();
    for (i, req) in exchanges.iter().enumerate() {
        let ra = exchange(&mut a, req);
        let rb = exchange(&mut b, req);
        if normalise(&ra) != normalise(&rb) {
            diffs.push(format!(
                "#{i} {:?}\n  twincache: {ra:?}\n  memcached: {rb:?}",
                String::from_utf8_lossy(req)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn differential_mg_flags_and_codes() {
    compare(
        &[
            b"mg\r\n",
            b"mg k\r\n",
            b"mg k v\r\n",
            b"mg k q\r\n",
            b"mg k k O123 v\r\n",
            b"mg k O\r\n",
            b"ms k 2 T0 F5\r\nhi\r\n",
            b"mg k\r\n",
            b"mg k q\r\n",
            b"mg k v f c t k Oab s h l\r\n",
            b"mg k h l\r\n",
            b"mg k s v q\r\n",
            b"mg k t T100 t\r\n",
            b"mg k u h\r\n",
            b"mg k zz\r\n",
            b"mg k v v\r\n",
            b"mg k !\r\n",
            b"mg k E5\r\n",
            b"mg k T\r\nmg k Tx\r\nmg k N\r\nmg k Rx\r\n",
            b"mg k Cx\r\nmg k Dx\r\nmg k Jx\r\nmg k Fx\r\nmg k MXX\r\n",
            b"mg k Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
            b"mg k v O12345678901234567890123456789012\r\n",
            b"mg k v O1234567890123456789012345678901\r\n",
            b"mg nope v O12345678901234567890123456789012\r\n",
            b"mg nope v O1234567890123456789012345678901\r\n",
            b"mg k a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n",
            b"mg k v f c k s t h l O1 u q T5 N5 R5 P L I\r\n",
            b"mg k v f c k s t h l O1 u q T5 N5 R5 P L I C1\r\n",
            b"mg k v f c k s t h l O1 u q v\r\n",
            b"mg k Tx !\r\n",
            b"mg k Tx zz Fx\r\n",
        ],
        &[],
    );
}

#[test]
fn differential_win_stale_vivify() {
    compare(
        &[
            // vivify: the first miss wins, later readers see Z
            b"mg a8 N30 v c t\r\n",
            b"mg a8 v c\r\n",
            b"mg a8 s t\r\n",
            b"ms a8 1\r\nz\r\n",
            b"mg a8 v\r\n",
            // recache: TTL under R wins once
            b"ms a9 1 T100\r\nz\r\n",
            b"mg a9 R200 v t\r\n",
            b"mg a9 R200 v t\r\n",
            b"mg a9 R50 v\r\n",
            b"ms a10 1 T100\r\nz\r\n",
            b"mg a10 R50 v\r\n",
            // invalidation: md I marks stale, X then W once, then Z X
            b"ms a7 1 I\r\nx\r\n",
            b"md a7 I T30\r\n",
            b"mg a7 v c\r\n",
            b"mg a7 v c t\r\n",
            b"md a7 I q\r\n",
            b"mg a7 v\r\n",
            // ms I with an older CAS stores a stale value
            b"ms a7 1 C1 I\r\ny\r\n",
            b"mg a7 v\r\n",
            b"ms a7 1\r\nw\r\n",
            b"mg a7 v\r\n",
            b"md missing I\r\n",
            b"mg novivify N0 q\r\n",
            b"mg novivify v\r\n",
        ],
        &[],
    );
}

#[test]
fn differential_ms_md_ma_mn_me() {
    compare(
        &[
            b"ms\r\n",
            b"ms k\r\n",
            b"ms k x\r\n",
            b"ms k -1\r\nx\r\n",
            b"ms k 2\r\nabc\r\n",
            b"ms k 2 MX\r\nab\r\n",
            b"ms k 2 M\r\nab\r\n",
            b"ms k 2 T T\r\nab\r\n",
            b"ms k 2 Tx\r\nab\r\n",
            b"ms k 2 Fx\r\nab\r\n",
            b"ms k 2 Cx\r\nab\r\n",
            b"ms k 2 E5\r\nab\r\n",
            b"ms k 2 S2\r\nab\r\n",
            b"ms k 2 zz\r\nab\r\n",
            b"ms k 2 c k O5 b\r\nab\r\n",
            b"ms k 2 c k O5\r\nab\r\n",
            b"ms k 2 q\r\nab\r\n",
            b"ms k 2 F7 T0\r\nab\r\n",
            b"mg k v f\r\n",
            b"ms k 1 q ME\r\nx\r\n",
            b"ms k 1 ME c k O5\r\nx\r\n",
            b"ms k 1 C1 c\r\nx\r\n",
            b"ms k 1 C1 q\r\nx\r\n",
            b"ms nope 1 C1 q\r\nx\r\n",
            b"ms nope 1 MR\r\nx\r\n",
            b"ms nope 1 MA\r\nx\r\n",
            b"ms nope 1 MP\r\nx\r\n",
            b"ms k 1 MA\r\nx\r\n",
            b"ms k 1 Ma\r\ny\r\n",
            b"ms k 1 MP\r\nz\r\n",
            b"ms k 1 Mp\r\nw\r\n",
            b"mg k v\r\n",
            b"ms k 1 MR\r\nr\r\n",
            b"ms k 1 Ms\r\ns\r\n",
            b"ms new 1 Me\r\ne\r\n",
            b"mg new v\r\n",
            b"ms YjE= 1 b\r\nz\r\n",
            b"mg YjE= b k v\r\n",
            b"mg b1 k v\r\n",
            b"mg !!! b\r\n",
            b"ms b1 1 b\r\nz\r\n",
            b"md YjE= b q\r\n",
            b"mg b1 v\r\n",
            // md
            b"md\r\n",
            b"md nope\r\n",
            b"md nope q\r\n",
            b"md nope q k O1\r\n",
            b"md k v\r\n",
            b"md k q q\r\n",
            b"md k x\r\n",
            b"md k C\r\n",
            b"md k Cx\r\n",
            b"ms d 1\r\nx\r\n",
            b"md d C5 q\r\n",
            b"md d q k O1\r\n",
            b"md d\r\n",
            b"ms d 1\r\nx\r\n",
            b"md d k O9\r\n",
            // ma
            b"ma\r\n",
            b"ma c\r\n",
            b"ma c q\r\n",
            b"ma c q k O1\r\n",
            b"ma c N0 J10 v\r\n",
            b"ma c v\r\n",
            b"ma c MD D100 v\r\n",
            b"ma c v v\r\n",
            b"ma c z\r\n",
            b"ma c Dx\r\nma c Jx\r\nma c Nx\r\nma c MX\r\nma c M\r\n",
            b"ma c8 N0 J5 MI D3 v t c\r\n",
            b"ma c8 M+ v\r\n",
            b"ma c8 M- D100 v\r\n",
            b"ma c8 Md v\r\n",
            b"ma c8 Mi D18446744073709551615 v\r\n",
            b"ma c8 q\r\n",
            b"ma c8 q v\r\n",
            b"ma c8 v k O2\r\n",
            b"ma c9 q N0\r\n",
            b"ma c9 C1 v\r\n",
            b"ma k v\r\n",
            b"ma c8 T100 t v\r\n",
            // mn and me
            b"mn extra\r\n",
            b"me\r\n",
            b"me nope\r\n",
            b"ms e 1\r\na\r\n",
            b"me e\r\n",
            b"mg e v\r\n",
            b"me e x\r\n",
            b"ms e 1 T100 F3\r\nab\r\n",
            b"ms e 100 T100 F3\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n",
            b"me e\r\n",
        ],
        &[],
    );
}

#[test]
fn differential_quiet_pipeline() {
    // A pipeline of quiet commands: only misses and errors answer, then MN.
    compare(
        &[
            b"ms p1 1 q\r\na\r\nms p2 1 q\r\nb\r\nmg p1 v q\r\nmg p3 v q\r\nmg p2 v q k\r\nmd p3 q\r\nmd p1 q\r\nma p4 q\r\nmg p1 q\r\n",
            b"ms p1 1 q ME\r\na\r\nms p1 1 q ME\r\na\r\nmg p1 zz q\r\n",
        ],
        &[],
    );
}

#[test]
fn too_large_and_swallow() {
    let mut big = b"ms big 1048577 T0\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1_048_577));
    big.extend_from_slice(b"\r\n");
    compare(
        &[
            b"ms big 1 T0\r\na\r\n",
            &big,
            b"mg big v\r\n",
            // the data block of a refused ms is swallowed
            b"ms big 1 zz\r\nx\r\nmg big v\r\n",
            b"ms big 2 Tx\r\nxx\r\nmg big v\r\n",
        ],
        &[],
    );
}

/// The counters meta commands move, compared with memcached after the same
/// sequence (cmd_meta counts only `me`; vivifying misses, invalidations
/// and creating `ma` misses count nowhere).
#[test]
fn stats_counters_like_memcached() {
    if require_tool("memcached").is_none() {
        return;
    }
    let seq: &[u8] =
        b"ms a 1\r\nx\r\nmg a v\r\nmg b v\r\nmg a T10 v\r\nmg c N10\r\nmd a\r\nmd a\r\n\
        ma n\r\nma n N0 J1\r\nma n\r\nma n MD\r\nms a 1 C5\r\nx\r\nms z 1 C5\r\nx\r\nmn\r\n\
        me c\r\nmd c I\r\nmg c\r\nme zz\r\nmn\r\n";
    let names = [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "cmd_meta",
        "get_hits",
        "get_misses",
        "touch_hits",
        "touch_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "total_items",
        "curr_items",
    ];
    let mut got = Vec::new();
    for server in [Server::start(&[]), Server::start_memcached(&[])] {
        let mut c = server.connect();
        c.send(seq);
        let mut r = Vec::new();
        while r.windows(4).filter(|w| *w == b"MN\r\n").count() < 2 {
            r.extend(c.read_until_any(&[b"MN\r\n"]));
        }
        let stats = c.stats("");
        let pick: Vec<(String, Option<String>)> = names
            .iter()
            .map(|n| {
                let v = stats.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                (n.to_string(), v)
            })
            .collect();
        got.push(pick);
    }
    assert_eq!(got[0], got[1], "twincache (left) vs memcached (right)");
    assert!(got[0]
        .iter()
        .any(|(n, v)| n == "cmd_meta" && v.as_deref() == Some("2")));
}

#[test]
fn meta_memcache_client() {
    let Some(python) = require_python_module("meta_memcache") else {
        return;
    };
    let server = Server::start(&[]);
    let ran = run_limited(
        Command::new(python)
            .arg(python_script("meta_client.py"))
            .arg(server.port.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
    );
    assert!(ran.success(), "meta_client.py failed\n{}", ran.transcript());
    assert!(
        ran.stdout.contains("checks ok"),
        "meta_client.py exited 0 without its summary line\n{}",
        ran.transcript()
    );
    eprintln!("{}", ran.stdout.trim_end());
}
