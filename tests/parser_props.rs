//! Property tests for the text-protocol parser.

use proptest::prelude::*;
use twincache::protocol::command::{Args, MAX_ARGS};
use twincache::protocol::encode;
use twincache::protocol::meta::parse_flags;
use twincache::protocol::{parse, Command, Keys, Limits, MetaCmd, MetaVerb, Parsed, StoreVerb};

fn limits() -> Limits {
    Limits::default()
}

/// Bytes that look like protocol traffic more often than random bytes do.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"get ".to_vec()),
        Just(b"gets ".to_vec()),
        Just(b"gat ".to_vec()),
        Just(b"set ".to_vec()),
        Just(b"cas ".to_vec()),
        Just(b"delete ".to_vec()),
        Just(b"incr ".to_vec()),
        Just(b"touch ".to_vec()),
        Just(b"flush_all ".to_vec()),
        Just(b"noreply".to_vec()),
        Just(b"mg ".to_vec()),
        Just(b"ms ".to_vec()),
        Just(b"md ".to_vec()),
        Just(b"ma ".to_vec()),
        Just(b"mn".to_vec()),
        Just(b"me ".to_vec()),
        Just(b" v f c k t".to_vec()),
        Just(b" T30 N5 R1 C9 MS MI D3 J4 F7 O12".to_vec()),
        Just(b" b".to_vec()),
        Just(b" q".to_vec()),
        Just(b"HTTP/1.0".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"0 ".to_vec()),
        Just(b"-1 ".to_vec()),
        Just(b"4294967296 ".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        "[0-9]{1,3}".prop_map(|s| s.into_bytes()),
        "[a-z]{1,5}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

/// Keys: 1..=250 bytes without space or control bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9_:.-]{1,20}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(prop_oneof![0x21u8..0x7f, 0x80u8..=0xff], 1..=250),
    ]
}

/// A space-separated key list (single spaces).
fn key_list(min: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(key(), min..6).prop_map(|ks| ks.join(&b' '))
}

/// An argument for `stats`: a non-empty token without space, `\r` or `\n`.
fn arg() -> impl Strategy<Value = Vec<u8>> {
    "[a-z0-9]{1,8}".prop_map(|s| s.into_bytes())
}

/// Owned description of a command, turned into a borrowed [`Command`].
#[derive(Debug, Clone)]
enum Owned {
    Get(Vec<u8>, bool),
    Gat(i32, Vec<u8>, bool),
    Store(u8, Vec<u8>, u32, i32, Vec<u8>, u64, bool),
    Delete(Vec<u8>, bool),
    Arith(Vec<u8>, u64, bool, bool),
    Touch(Vec<u8>, i32, bool),
    Flush(i32, bool),
    Version,
    Verbosity(u32, bool),
    Quit,
    Shutdown(bool),
    Memlimit(u32, bool),
    Stats(Vec<Vec<u8>>),
    /// Meta verb (0 mg, 1 ms, 2 md, 3 ma, 4 me), key, flag tokens joined
    /// with a leading space each, data (ms).
    Meta(u8, Vec<u8>, Vec<u8>, Vec<u8>),
    MetaNoop,
}

/// Flag tokens valid for every meta verb (no duplicates, no `b`), plus
/// a mode the verb accepts.
fn meta_flags(verb: u8) -> impl Strategy<Value = Vec<u8>> {
    let all = [
        "v", "f", "c", "k", "s", "t", "h", "l", "q", "u", "Oab12", "T-1", "N10", "R5", "I", "C5",
        "J1", "D2", "F7", "P", "L",
    ];
    let modes: &'static [&'static str] = match verb {
        1 => &["MS", "ME", "MA", "MP", "MR"],
        3 => &["MI", "M+", "MD", "M-"],
        _ => &["MS"],
    };
    (
        // 17 flags at most; on ms the data length counts as one of them.
        proptest::sample::subsequence(all.to_vec(), 0..=if verb == 1 { 15 } else { 16 }),
        proptest::option::of(proptest::sample::select(modes.to_vec())),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut toks, mode, at)| {
            if let Some(m) = mode {
                let i = at.index(toks.len() + 1);
                toks.insert(i, m);
            }
            toks.iter()
                .flat_map(|t| [b" ".as_slice(), t.as_bytes()].concat())
                .collect()
        })
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (key_list(1), any::<bool>()).prop_map(|(k, c)| Owned::Get(k, c)),
        (any::<i32>(), key_list(0), any::<bool>()).prop_map(|(e, k, c)| Owned::Gat(e, k, c)),
        (
            0u8..6,
            key(),
            any::<u32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(v, k, f, e, d, c, n)| Owned::Store(v, k, f, e, d, c, n)),
        (key(), any::<bool>()).prop_map(|(k, n)| Owned::Delete(k, n)),
        (key(), any::<u64>(), any::<bool>(), any::<bool>())
            .prop_map(|(k, d, i, n)| Owned::Arith(k, d, i, n)),
        (key(), any::<i32>(), any::<bool>()).prop_map(|(k, e, n)| Owned::Touch(k, e, n)),
        (any::<i32>(), any::<bool>()).prop_map(|(d, n)| Owned::Flush(d, n)),
        Just(Owned::Version),
        (any::<u32>(), any::<bool>()).prop_map(|(l, n)| Owned::Verbosity(l, n)),
        Just(Owned::Quit),
        any::<bool>().prop_map(Owned::Shutdown),
        (any::<u32>(), any::<bool>()).prop_map(|(m, n)| Owned::Memlimit(m, n)),
        proptest::collection::vec(arg(), 0..=MAX_ARGS).prop_map(Owned::Stats),
        (0u8..5)
            .prop_flat_map(|v| (
                Just(v),
                key(),
                meta_flags(v),
                proptest::collection::vec(any::<u8>(), 0..64)
            ))
            .prop_map(|(v, k, f, d)| {
                let f = if v == 4 { Vec::new() } else { f };
                let d = if v == 1 { d } else { Vec::new() };
                Owned::Meta(v, k, f, d)
            }),
        Just(Owned::MetaNoop),
    ]
}

fn verb(v: u8) -> StoreVerb {
    match v {
        0 => StoreVerb::Set,
        1 => StoreVerb::Add,
        2 => StoreVerb::Replace,
        3 => StoreVerb::Append,
        4 => StoreVerb::Prepend,
        _ => StoreVerb::Cas,
    }
}

fn borrow(o: &Owned) -> Command<'_> {
    match o {
        Owned::Get(k, c) => Command::Get {
            keys: Keys::from_validated(k),
            with_cas: *c,
        },
        Owned::Gat(e, k, c) => Command::Gat {
            exptime: i64::from(*e),
            keys: Keys::from_validated(k),
            with_cas: *c,
        },
        Owned::Store(v, k, f, e, d, c, n) => {
            let verb = verb(*v);
            Command::Store {
                verb,
                key: k,
                flags: *f,
                exptime: i64::from(*e),
                data: d,
                cas_unique: if verb == StoreVerb::Cas { *c } else { 0 },
                noreply: *n,
            }
        }
        Owned::Delete(k, n) => Command::Delete {
            key: k,
            noreply: *n,
        },
        Owned::Arith(k, d, i, n) => Command::Arith {
            key: k,
            delta: *d,
            incr: *i,
            noreply: *n,
        },
        Owned::Touch(k, e, n) => Command::Touch {
            key: k,
            exptime: i64::from(*e),
            noreply: *n,
        },
        Owned::Flush(d, n) => Command::FlushAll {
            delay: i64::from(*d),
            noreply: *n,
        },
        Owned::Version => Command::Version,
        Owned::Verbosity(l, n) => Command::Verbosity {
            level: *l,
            noreply: *n,
        },
        Owned::Quit => Command::Quit,
        Owned::Shutdown(g) => Command::Shutdown { graceful: *g },
        Owned::Memlimit(m, n) => Command::CacheMemlimit {
            megabytes: u64::from(*m),
            noreply: *n,
        },
        Owned::Meta(v, k, f, d) => Command::Meta(MetaCmd {
            verb: match v {
                0 => MetaVerb::Get,
                1 => MetaVerb::Set,
                2 => MetaVerb::Delete,
                3 => MetaVerb::Arith,
                _ => MetaVerb::Debug,
            },
            key: k,
            flags: match parse_flags(f) {
                Ok(fl) => fl,
                Err(e) => panic!("generated flags {:?}: {e:?}", String::from_utf8_lossy(f)),
            },
            data: d,
        }),
        Owned::MetaNoop => Command::MetaNoop,
        Owned::Stats(a) => {
            let mut args = Args::default();
            for (i, x) in a.iter().enumerate() {
                args.items[i] = x;
            }
            args.len = a.len();
            Command::Stats { args }
        }
    }
}

/// The request must not be too large for the default limits (values here
/// are at most 63 bytes) and must use keys the parser accepts.
fn request_bytes(cmd: &Command<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    encode::request(&mut v, cmd);
    v
}

fn check_shape(buf: &[u8], p: &Parsed<'_>) -> Result<(), TestCaseError> {
    match p {
        Parsed::Complete { consumed, .. } | Parsed::Invalid { consumed, .. } => {
            prop_assert!(*consumed > 0);
            prop_assert!(*consumed <= buf.len());
        }
        Parsed::Incomplete => {}
    }
    Ok(())
}

proptest! {
    // 2000 cases by default; PROPTEST_CASES overrides (e.g. for long runs).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_random_bytes(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        let p = parse(&buf, &limits());
        check_shape(&buf, &p)?;
    }

    #[test]
    fn never_panics_on_protocolish_bytes(buf in protocolish()) {
        let p = parse(&buf, &limits());
        check_shape(&buf, &p)?;
    }

    /// Chunk independence: any prefix of any input either needs more bytes
    /// or gives exactly the verdict of the whole input.
    #[test]
    fn prefixes_agree_with_the_whole(buf in protocolish(), cut in any::<prop::sample::Index>()) {
        let whole = parse(&buf, &limits());
        let k = cut.index(buf.len() + 1);
        let part = parse(&buf[..k], &limits());
        prop_assert!(
            part == Parsed::Incomplete || part == whole,
            "prefix {} of {:?}: {:?} vs {:?}", k, String::from_utf8_lossy(&buf), part, whole
        );
    }

    /// Long lines: the verdict is the same for every split, including
    /// when no newline ever arrives.
    #[test]
    fn long_lines_are_chunk_independent(
        prefix in prop_oneof![Just(&b"get "[..]), Just(&b"set "[..]), Just(&b"x"[..]), Just(&b"  gets "[..])],
        fill in 1500usize..3000,
        nl in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = prefix.to_vec();
        buf.resize(prefix.len() + fill, b'a');
        if nl {
            buf.extend_from_slice(b"\r\n");
        }
        let whole = parse(&buf, &limits());
        let k = cut.index(buf.len() + 1);
        let part = parse(&buf[..k], &limits());
        prop_assert!(part == Parsed::Incomplete || part == whole);
    }

    #[test]
    fn encoded_requests_parse_back(o in owned()) {
        let cmd = borrow(&o);
        let bytes = request_bytes(&cmd);
        match parse(&bytes, &limits()) {
            Parsed::Complete { cmd: got, consumed } => {
                prop_assert_eq!(consumed, bytes.len());
                prop_assert_eq!(got, cmd);
            }
            other => prop_assert!(false, "{:?} -> {:?}", String::from_utf8_lossy(&bytes), other),
        }
    }

    #[test]
    fn strict_prefixes_of_valid_requests_are_incomplete(o in owned(), cut in any::<prop::sample::Index>()) {
        let cmd = borrow(&o);
        let bytes = request_bytes(&cmd);
        let k = cut.index(bytes.len());
        prop_assert_eq!(parse(&bytes[..k], &limits()), Parsed::Incomplete);
    }

    /// Pipelined requests come out one by one, in order.
    #[test]
    fn pipelines_parse_in_order(os in proptest::collection::vec(owned(), 1..8)) {
        let cmds: Vec<Command<'_>> = os.iter().map(borrow).collect();
        let mut stream = Vec::new();
        for c in &cmds {
            encode::request(&mut stream, c);
        }
        let mut rest = &stream[..];
        for c in &cmds {
            match parse(rest, &limits()) {
                Parsed::Complete { cmd, consumed } => {
                    prop_assert_eq!(&cmd, c);
                    rest = &rest[consumed..];
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert!(rest.is_empty());
    }
}
