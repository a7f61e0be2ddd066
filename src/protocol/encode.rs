//! The only place reply text is produced.

use super::command::{CachedumpArgs, Command, CrawlTarget, Num, StoreVerb};
use super::error::ProtocolError;
use super::meta::MetaVerb;

/// Fixed one-line replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    End,
    Reset,
    Error,
    /// `SERVER_ERROR out of memory storing object`
    OutOfMemoryStoring,
    /// `CLIENT_ERROR cannot increment or decrement non-numeric value`
    NonNumeric,
    /// `CLIENT_ERROR flush_all not allowed`
    FlushDisabled,
    /// `ERROR: shutdown not enabled`
    ShutdownDisabled,
    /// `CLIENT_ERROR bad command line format`
    BadCommandLine,
    /// `CLIENT_ERROR usage: stats detail on|off|dump`
    StatsDetailUsage,
    /// `ERROR Too many open connections` (then the connection is closed)
    TooManyConnections,
    /// `SERVER_ERROR out of memory reading request` (then the connection
    /// is closed): partial requests already hold all the read-buffer
    /// memory allowed.
    OutOfMemoryReading,
    /// `MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m`
    MemlimitTooSmall,
    /// `MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes`
    MemlimitNotMegabytes,
    /// `BUSY currently processing reassign request`
    ReassignBusy,
    /// `BADCLASS invalid src or dst class id`
    ReassignBadClass,
    /// `NOSPARE source class has no spare pages`
    ReassignNoSpare,
    /// `SAME src and dst class are identical`
    ReassignSame,
    /// `CLIENT_ERROR slab reassignment disabled`
    ReassignDisabled,
    /// `BUSY currently processing crawler request`
    CrawlerBusy,
    /// `BADCLASS invalid class id`
    CrawlerBadClass,
    /// `NOTSTARTED no items to crawl`
    CrawlerNotStarted,
    /// `ERROR an unknown error happened`
    CrawlerError,
    /// `CLIENT_ERROR lru crawler disabled`
    CrawlerDisabled,
    /// `ERROR failed to start lru crawler thread`
    CrawlerStartFailed,
    /// `CLIENT_ERROR sleep must be one second or less`
    CrawlerSleepTooLong,
    /// `ERROR metadump not allowed`
    MetadumpDisabled,
    /// `CLIENT_ERROR stats cachedump not allowed`
    CachedumpDisabled,
    /// `CLIENT_ERROR bad command line` (cachedump with too few arguments)
    CachedumpUsage,
    /// `CLIENT_ERROR Illegal slab id`
    IllegalSlabId,
    /// `ERROR hot and warm pcts must not exceed 80`
    LruPctTooLarge,
    /// `ERROR hot/warm age factors must be greater than 0`
    LruFactorNotPositive,
}

impl Reply {
    pub fn text(self) -> &'static [u8] {
        match self {
            Reply::Stored => b"STORED\r\n",
            Reply::NotStored => b"NOT_STORED\r\n",
            Reply::Exists => b"EXISTS\r\n",
            Reply::NotFound => b"NOT_FOUND\r\n",
            Reply::Deleted => b"DELETED\r\n",
            Reply::Touched => b"TOUCHED\r\n",
            Reply::Ok => b"OK\r\n",
            Reply::End => b"END\r\n",
            Reply::Reset => b"RESET\r\n",
            Reply::Error => b"ERROR\r\n",
            Reply::OutOfMemoryStoring => b"SERVER_ERROR out of memory storing object\r\n",
            Reply::NonNumeric => {
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
            }
            Reply::FlushDisabled => b"CLIENT_ERROR flush_all not allowed\r\n",
            Reply::ShutdownDisabled => b"ERROR: shutdown not enabled\r\n",
            Reply::BadCommandLine => b"CLIENT_ERROR bad command line format\r\n",
            Reply::StatsDetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            Reply::TooManyConnections => b"ERROR Too many open connections\r\n",
            Reply::OutOfMemoryReading => b"SERVER_ERROR out of memory reading request\r\n",
            Reply::MemlimitTooSmall => {
                b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
            }
            Reply::MemlimitNotMegabytes => {
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
            }
            Reply::ReassignBusy => b"BUSY currently processing reassign request\r\n",
            Reply::ReassignBadClass => b"BADCLASS invalid src or dst class id\r\n",
            Reply::ReassignNoSpare => b"NOSPARE source class has no spare pages\r\n",
            Reply::ReassignSame => b"SAME src and dst class are identical\r\n",
            Reply::ReassignDisabled => b"CLIENT_ERROR slab reassignment disabled\r\n",
            Reply::CrawlerBusy => b"BUSY currently processing crawler request\r\n",
            Reply::CrawlerBadClass => b"BADCLASS invalid class id\r\n",
            Reply::CrawlerNotStarted => b"NOTSTARTED no items to crawl\r\n",
            Reply::CrawlerError => b"ERROR an unknown error happened\r\n",
            Reply::CrawlerDisabled => b"CLIENT_ERROR lru crawler disabled\r\n",
            Reply::CrawlerStartFailed => b"ERROR failed to start lru crawler thread\r\n",
            Reply::CrawlerSleepTooLong => b"CLIENT_ERROR sleep must be one second or less\r\n",
            Reply::MetadumpDisabled => b"ERROR metadump not allowed\r\n",
            Reply::CachedumpDisabled => b"CLIENT_ERROR stats cachedump not allowed\r\n",
            Reply::CachedumpUsage => b"CLIENT_ERROR bad command line\r\n",
            Reply::IllegalSlabId => b"CLIENT_ERROR Illegal slab id\r\n",
            Reply::LruPctTooLarge => b"ERROR hot and warm pcts must not exceed 80\r\n",
            Reply::LruFactorNotPositive => b"ERROR hot/warm age factors must be greater than 0\r\n",
        }
    }
}

pub fn reply(out: &mut Vec<u8>, r: Reply) {
    out.extend_from_slice(r.text());
}

/// The reply line of a protocol error, if memcached sends one.
pub fn protocol_error(out: &mut Vec<u8>, e: ProtocolError) {
    if let Some(text) = e.wire_text() {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The header line of one retrieved item:
/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n`. The caller appends the data
/// with [`value_data`].
pub fn value_header(out: &mut Vec<u8>, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, flags as u64);
    out.push(b' ');
    push_u64(out, len as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        push_u64(out, cas);
    }
    out.extend_from_slice(b"\r\n");
}

/// The data block of a retrieved item, with its `\r\n`.
pub fn value_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// One whole `VALUE` block.
pub fn value(out: &mut Vec<u8>, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    value_header(out, key, flags, data.len(), cas);
    value_data(out, data);
}

/// The reply to incr/decr: bare digits.
pub fn number(out: &mut Vec<u8>, n: u64) {
    push_u64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// `VERSION <v>`
pub fn version(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(b"VERSION ");
    out.extend_from_slice(v.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One `STAT <name> <value>` line.
pub fn stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    let _ = write!(out, "{value}");
    out.extend_from_slice(b"\r\n");
}

/// One per-class line of `stats slabs`: `STAT <class>:<name> <value>`.
pub fn class_stat(out: &mut Vec<u8>, class: u32, name: &str, value: u64) {
    out.extend_from_slice(b"STAT ");
    push_u64(out, u64::from(class));
    out.push(b':');
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

/// One per-class line of `stats items`: `STAT items:<class>:<name> <value>`.
pub fn item_class_stat(out: &mut Vec<u8>, class: u32, name: &str, value: u64) {
    out.extend_from_slice(b"STAT items:");
    push_u64(out, u64::from(class));
    out.push(b':');
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

/// One line of `stats sizes`: `STAT <bucket bytes> <items>`.
pub fn size_stat(out: &mut Vec<u8>, bucket: u64, count: u64) {
    out.extend_from_slice(b"STAT ");
    push_u64(out, bucket);
    out.push(b' ');
    push_u64(out, count);
    out.extend_from_slice(b"\r\n");
}

/// One item of `stats cachedump`: `ITEM <key> [<bytes> b; <exptime> s]`
/// (the key as stored, the absolute expiry or 0).
pub fn cachedump_item(out: &mut Vec<u8>, key: &[u8], bytes: u64, exptime: u32) {
    out.extend_from_slice(b"ITEM ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" [");
    push_u64(out, bytes);
    out.extend_from_slice(b" b; ");
    push_u64(out, u64::from(exptime));
    out.extend_from_slice(b" s]\r\n");
}

/// The fields of one `lru_crawler metadump` line.
#[derive(Debug, Clone, Copy)]
pub struct MetaItem<'a> {
    pub key: &'a [u8],
    /// Absolute expiry, `None` for never (printed as -1).
    pub exptime: Option<u32>,
    pub last_access: u32,
    pub cas: u64,
    pub fetched: bool,
    pub class: u32,
    pub size: u64,
}

/// One item of `lru_crawler metadump`, ended by a bare `\n` as memcached
/// does: `key=<url-encoded> exp=<abs|-1> la=<abs> cas=<n> fetch=<yes|no>
/// cls=<n> size=<n>`.
pub fn metadump_item(out: &mut Vec<u8>, m: &MetaItem<'_>) {
    out.extend_from_slice(b"key=");
    url_encode(out, m.key);
    out.extend_from_slice(b" exp=");
    match m.exptime {
        Some(e) => push_u64(out, u64::from(e)),
        None => out.extend_from_slice(b"-1"),
    }
    out.extend_from_slice(b" la=");
    push_u64(out, u64::from(m.last_access));
    out.extend_from_slice(b" cas=");
    push_u64(out, m.cas);
    out.extend_from_slice(if m.fetched {
        b" fetch=yes cls=".as_slice()
    } else {
        b" fetch=no cls="
    });
    push_u64(out, u64::from(m.class));
    out.extend_from_slice(b" size=");
    push_u64(out, m.size);
    out.push(b'\n');
}

/// Percent-encodes every byte but ASCII letters, digits and `-._~`, with
/// upper-case hex digits (observed: `k%20` -> `k%2520`, `/` -> `%2F`).
pub fn url_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// A free-form error line such as `CLIENT_ERROR <msg>` or
/// `SERVER_ERROR <msg>`.
pub fn error_line(out: &mut Vec<u8>, kind: &str, msg: &str) {
    out.extend_from_slice(kind.as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `n`, with a `-` when negative.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// A number argument as given: its digits, or the token that was not one.
fn num<T: Copy>(out: &mut Vec<u8>, n: Num<'_, T>, digits: impl FnOnce(&mut Vec<u8>, T)) {
    match n {
        Num::Ok(v) => digits(out, v),
        Num::Bad(tok) => out.extend_from_slice(tok),
    }
}

/// A decimal number in a form C's `strtod` reads back exactly (Rust's
/// shortest round-trip representation, never in exponent form).
fn push_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

fn crawl_target(out: &mut Vec<u8>, t: CrawlTarget<'_>) {
    match t {
        CrawlTarget::All => out.extend_from_slice(b"all"),
        CrawlTarget::Hash => out.extend_from_slice(b"hash"),
        CrawlTarget::Classes(set) if set.is_empty() => out.push(b','),
        CrawlTarget::Classes(set) => {
            for (i, id) in set.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_u64(out, u64::from(id));
            }
        }
        CrawlTarget::Bad(tok) => out.extend_from_slice(tok),
    }
}

/// The canonical wire form of a request (what a client would send), data
/// block included. `parse` reads it back as the same command; used by
/// tests and tools.
pub fn request(out: &mut Vec<u8>, cmd: &Command<'_>) {
    fn noreply(out: &mut Vec<u8>, on: bool) {
        if on {
            out.extend_from_slice(b" noreply");
        }
    }
    match *cmd {
        Command::Get { keys, with_cas } => {
            out.extend_from_slice(if with_cas { b"gets " } else { b"get " });
            out.extend_from_slice(keys.raw());
        }
        Command::Gat {
            exptime,
            keys,
            with_cas,
        } => {
            out.extend_from_slice(if with_cas { b"gats " } else { b"gat " });
            push_i64(out, exptime);
            if !keys.raw().is_empty() {
                out.push(b' ');
                out.extend_from_slice(keys.raw());
            }
        }
        Command::Store {
            verb,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            noreply: nr,
        } => {
            out.extend_from_slice(match verb {
                StoreVerb::Set => b"set ".as_slice(),
                StoreVerb::Add => b"add ",
                StoreVerb::Replace => b"replace ",
                StoreVerb::Append => b"append ",
                StoreVerb::Prepend => b"prepend ",
                StoreVerb::Cas => b"cas ",
            });
            out.extend_from_slice(key);
            out.push(b' ');
            push_u64(out, u64::from(flags));
            out.push(b' ');
            push_i64(out, exptime);
            out.push(b' ');
            push_u64(out, data.len() as u64);
            if verb == StoreVerb::Cas {
                out.push(b' ');
                push_u64(out, cas_unique);
            }
            noreply(out, nr);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
        }
        Command::Delete { key, noreply: nr } => {
            out.extend_from_slice(b"delete ");
            out.extend_from_slice(key);
            noreply(out, nr);
        }
        Command::Arith {
            key,
            delta,
            incr,
            noreply: nr,
        } => {
            out.extend_from_slice(if incr { b"incr " } else { b"decr " });
            out.extend_from_slice(key);
            out.push(b' ');
            push_u64(out, delta);
            noreply(out, nr);
        }
        Command::Touch {
            key,
            exptime,
            noreply: nr,
        } => {
            out.extend_from_slice(b"touch ");
            out.extend_from_slice(key);
            out.push(b' ');
            push_i64(out, exptime);
            noreply(out, nr);
        }
        Command::FlushAll { delay, noreply: nr } => {
            out.extend_from_slice(b"flush_all");
            if delay != 0 {
                out.push(b' ');
                push_i64(out, delay);
            }
            noreply(out, nr);
        }
        Command::Version => out.extend_from_slice(b"version"),
        Command::Verbosity { level, noreply: nr } => {
            out.extend_from_slice(b"verbosity ");
            push_u64(out, u64::from(level));
            noreply(out, nr);
        }
        Command::Quit => out.extend_from_slice(b"quit"),
        Command::Shutdown { graceful } => {
            out.extend_from_slice(if graceful {
                b"shutdown graceful".as_slice()
            } else {
                b"shutdown"
            });
        }
        Command::CacheMemlimit {
            megabytes,
            noreply: nr,
        } => {
            out.extend_from_slice(b"cache_memlimit ");
            push_u64(out, megabytes);
            noreply(out, nr);
        }
        Command::Stats { args } => {
            out.extend_from_slice(b"stats");
            for a in args.as_slice() {
                out.push(b' ');
                out.extend_from_slice(a);
            }
        }
        Command::StatsCachedump(spec) => {
            out.extend_from_slice(b"stats cachedump");
            match spec {
                CachedumpArgs::Missing(None) => {}
                CachedumpArgs::Missing(Some(a)) => {
                    out.push(b' ');
                    out.extend_from_slice(a);
                }
                CachedumpArgs::Given { class, limit } => {
                    out.push(b' ');
                    num(out, class, |o, v| push_u64(o, u64::from(v)));
                    out.push(b' ');
                    num(out, limit, |o, v| push_u64(o, u64::from(v)));
                }
            }
        }
        Command::SlabsReassign { src, dst } => {
            out.extend_from_slice(b"slabs reassign ");
            num(out, src, |o, v| push_i64(o, i64::from(v)));
            out.push(b' ');
            num(out, dst, |o, v| push_i64(o, i64::from(v)));
        }
        Command::SlabsAutomove { level, noreply: nr } => {
            out.extend_from_slice(b"slabs automove ");
            push_u64(out, u64::from(level));
            noreply(out, nr);
        }
        Command::SlabsAutomoveRatio { ratio, noreply: nr } => {
            out.extend_from_slice(b"slabs automove ratio ");
            push_f64(out, ratio.0);
            noreply(out, nr);
        }
        Command::LruCrawlerCrawl { target } => {
            out.extend_from_slice(b"lru_crawler crawl ");
            crawl_target(out, target);
        }
        Command::LruCrawlerMetadump { target } => {
            out.extend_from_slice(b"lru_crawler metadump ");
            crawl_target(out, target);
        }
        Command::LruCrawlerSleep { micros } => {
            out.extend_from_slice(b"lru_crawler sleep ");
            push_u64(out, u64::from(micros));
        }
        Command::LruCrawlerTocrawl { items } => {
            out.extend_from_slice(b"lru_crawler tocrawl ");
            push_u64(out, u64::from(items));
        }
        Command::LruCrawlerEnable { on } => out.extend_from_slice(if on {
            b"lru_crawler enable".as_slice()
        } else {
            b"lru_crawler disable"
        }),
        Command::LruTune {
            hot_pct,
            warm_pct,
            hot_factor,
            warm_factor,
            noreply: nr,
        } => {
            out.extend_from_slice(b"lru tune ");
            push_u64(out, u64::from(hot_pct));
            out.push(b' ');
            push_u64(out, u64::from(warm_pct));
            out.push(b' ');
            push_f64(out, hot_factor.0);
            out.push(b' ');
            push_f64(out, warm_factor.0);
            noreply(out, nr);
        }
        Command::LruMode {
            segmented,
            noreply: nr,
        } => {
            out.extend_from_slice(if segmented {
                b"lru mode segmented".as_slice()
            } else {
                b"lru mode flat"
            });
            noreply(out, nr);
        }
        Command::LruTempTtl { ttl, noreply: nr } => {
            out.extend_from_slice(b"lru temp_ttl ");
            push_i64(out, i64::from(ttl));
            noreply(out, nr);
        }
        Command::MetaNoop => out.extend_from_slice(b"mn"),
        Command::Meta(ref m) => {
            out.extend_from_slice(match m.verb {
                MetaVerb::Get => b"mg ",
                MetaVerb::Set => b"ms ",
                MetaVerb::Delete => b"md ",
                MetaVerb::Arith => b"ma ",
                MetaVerb::Debug => b"me ",
            });
            out.extend_from_slice(m.key);
            if m.verb == MetaVerb::Set {
                out.push(b' ');
                push_u64(out, m.data.len() as u64);
            }
            // The flag text as received (its spacing included), so that
            // parse(request(cmd)) == cmd holds for any accepted request.
            out.extend_from_slice(m.flags.raw);
            if m.verb == MetaVerb::Set {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(m.data);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Meta return codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCode {
    /// `HD`: success without a value.
    Hd,
    /// `VA <len>`: a value follows.
    Va(usize),
    /// `EN`: miss (`mg`, `me`).
    En,
    /// `NF`: not found.
    Nf,
    /// `NS`: not stored.
    Ns,
    /// `EX`: CAS mismatch.
    Ex,
}

/// Starts a meta reply line; return flags follow with [`meta_flag_u64`]
/// and the like, then [`meta_end`].
pub fn meta_code(out: &mut Vec<u8>, code: MetaCode) {
    match code {
        MetaCode::Hd => out.extend_from_slice(b"HD"),
        MetaCode::Va(n) => {
            out.extend_from_slice(b"VA ");
            push_u64(out, n as u64);
        }
        MetaCode::En => out.extend_from_slice(b"EN"),
        MetaCode::Nf => out.extend_from_slice(b"NF"),
        MetaCode::Ns => out.extend_from_slice(b"NS"),
        MetaCode::Ex => out.extend_from_slice(b"EX"),
    }
}

/// ` <f><n>`
pub fn meta_flag_u64(out: &mut Vec<u8>, f: u8, n: u64) {
    out.push(b' ');
    out.push(f);
    push_u64(out, n);
}

/// ` <f><n>` with a sign.
pub fn meta_flag_i64(out: &mut Vec<u8>, f: u8, n: i64) {
    out.push(b' ');
    out.push(f);
    push_i64(out, n);
}

/// ` <f>` alone (`W`, `X`, `Z`).
pub fn meta_flag(out: &mut Vec<u8>, f: u8) {
    out.push(b' ');
    out.push(f);
}

/// A flag token echoed as received (`O<opaque>`).
pub fn meta_token(out: &mut Vec<u8>, tok: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(tok);
}

/// ` k<key>`; a binary (`b`) key in base64, followed by ` b`.
pub fn meta_key(out: &mut Vec<u8>, key: &[u8], base64: bool) {
    out.extend_from_slice(b" k");
    if base64 {
        super::meta::base64_encode(out, key);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// Ends a meta reply line.
pub fn meta_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// `MN`
pub fn meta_noop(out: &mut Vec<u8>) {
    out.extend_from_slice(b"MN\r\n");
}

/// The `me` line: `ME <key> exp=<rel|-1> la=<rel> cas=<n> fetch=<yes|no>
/// cls=<n> size=<n>`.
#[allow(clippy::too_many_arguments)]
pub fn meta_debug(
    out: &mut Vec<u8>,
    key: &[u8],
    exp: i64,
    la: u64,
    cas: u64,
    fetched: bool,
    class: u32,
    size: u64,
) {
    out.extend_from_slice(b"ME ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" exp=");
    push_i64(out, exp);
    out.extend_from_slice(b" la=");
    push_u64(out, la);
    out.extend_from_slice(b" cas=");
    push_u64(out, cas);
    out.extend_from_slice(if fetched {
        b" fetch=yes cls=".as_slice()
    } else {
        b" fetch=no cls=".as_slice()
    });
    push_u64(out, u64::from(class));
    out.extend_from_slice(b" size=");
    push_u64(out, size);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn golden_strings() {
        assert_eq!(enc(|o| reply(o, Reply::Stored)), b"STORED\r\n");
        assert_eq!(
            enc(|o| value(o, b"k", 5, b"bar", None)),
            b"VALUE k 5 3\r\nbar\r\n"
        );
        assert_eq!(
            enc(|o| value(o, b"k", 4294967295, b"", Some(18446744073709551615))),
            b"VALUE k 4294967295 0 18446744073709551615\r\n\r\n".to_vec()
        );
        assert_eq!(enc(|o| number(o, 0)), b"0\r\n");
        assert_eq!(enc(|o| number(o, 1234567890)), b"1234567890\r\n");
        assert_eq!(enc(|o| version(o, "1.6.18")), b"VERSION 1.6.18\r\n");
        assert_eq!(enc(|o| stat(o, "pid", 42)), b"STAT pid 42\r\n");
        assert_eq!(
            enc(|o| protocol_error(o, ProtocolError::TooLarge)),
            b"SERVER_ERROR object too large for cache\r\n"
        );
        assert_eq!(enc(|o| protocol_error(o, ProtocolError::LineTooLong)), b"");
    }

    #[test]
    fn memory_admin_golden_strings() {
        // Each line as memcached 1.6.18 sent it.
        for (r, text) in [
            (
                Reply::ReassignBusy,
                "BUSY currently processing reassign request",
            ),
            (
                Reply::ReassignBadClass,
                "BADCLASS invalid src or dst class id",
            ),
            (
                Reply::ReassignNoSpare,
                "NOSPARE source class has no spare pages",
            ),
            (Reply::ReassignSame, "SAME src and dst class are identical"),
            (Reply::CrawlerBadClass, "BADCLASS invalid class id"),
            (Reply::CrawlerNotStarted, "NOTSTARTED no items to crawl"),
            (Reply::CrawlerError, "ERROR an unknown error happened"),
            (Reply::CrawlerDisabled, "CLIENT_ERROR lru crawler disabled"),
            (
                Reply::CrawlerStartFailed,
                "ERROR failed to start lru crawler thread",
            ),
            (
                Reply::CrawlerSleepTooLong,
                "CLIENT_ERROR sleep must be one second or less",
            ),
            (Reply::MetadumpDisabled, "ERROR metadump not allowed"),
            (
                Reply::CachedumpDisabled,
                "CLIENT_ERROR stats cachedump not allowed",
            ),
            (Reply::CachedumpUsage, "CLIENT_ERROR bad command line"),
            (Reply::IllegalSlabId, "CLIENT_ERROR Illegal slab id"),
            (
                Reply::LruPctTooLarge,
                "ERROR hot and warm pcts must not exceed 80",
            ),
            (
                Reply::LruFactorNotPositive,
                "ERROR hot/warm age factors must be greater than 0",
            ),
        ] {
            assert_eq!(r.text(), format!("{text}\r\n").as_bytes());
        }
        assert_eq!(
            enc(|o| class_stat(o, 12, "cmd_set", 3)),
            b"STAT 12:cmd_set 3\r\n"
        );
        assert_eq!(
            enc(|o| item_class_stat(o, 1, "number", 0)),
            b"STAT items:1:number 0\r\n"
        );
        assert_eq!(enc(|o| size_stat(o, 96, 1)), b"STAT 96 1\r\n");
        assert_eq!(
            enc(|o| cachedump_item(o, b"k%20", 200, 0)),
            b"ITEM k%20 [200 b; 0 s]\r\n"
        );
        // Observed: key `a-._~/:!*b\xc3\xa9+` is dumped as below.
        assert_eq!(
            enc(|o| url_encode(o, "a-._~/:!*b\u{e9}+".as_bytes())),
            b"a-._~%2F%3A%21%2Ab%C3%A9%2B"
        );
        assert_eq!(
            enc(|o| metadump_item(
                o,
                &MetaItem {
                    key: b"bb",
                    exptime: Some(1795297383),
                    last_access: 1795297283,
                    cas: 3,
                    fetched: true,
                    class: 1,
                    size: 75
                }
            )),
            b"key=bb exp=1795297383 la=1795297283 cas=3 fetch=yes cls=1 size=75\n"
        );
    }

    #[test]
    fn request_golden_strings() {
        use crate::protocol::command::Args;
        use crate::protocol::{Command, Keys, StoreVerb};
        let req = |c: Command<'_>| enc(|o| request(o, &c));
        assert_eq!(
            req(Command::Get {
                keys: Keys::from_validated(b"a b"),
                with_cas: true
            }),
            b"gets a b\r\n"
        );
        assert_eq!(
            req(Command::Gat {
                exptime: -5,
                keys: Keys::from_validated(b""),
                with_cas: false
            }),
            b"gat -5\r\n"
        );
        assert_eq!(
            req(Command::Store {
                verb: StoreVerb::Cas,
                key: b"k",
                flags: 7,
                exptime: 0,
                data: b"ab",
                cas_unique: 9,
                noreply: true
            }),
            b"cas k 7 0 2 9 noreply\r\nab\r\n"
        );
        assert_eq!(
            req(Command::Store {
                verb: StoreVerb::Prepend,
                key: b"k",
                flags: 0,
                exptime: 1,
                data: b"",
                cas_unique: 0,
                noreply: false
            }),
            b"prepend k 0 1 0\r\n\r\n"
        );
        assert_eq!(
            req(Command::Delete {
                key: b"k",
                noreply: true
            }),
            b"delete k noreply\r\n"
        );
        assert_eq!(
            req(Command::Arith {
                key: b"k",
                delta: 3,
                incr: false,
                noreply: false
            }),
            b"decr k 3\r\n"
        );
        assert_eq!(
            req(Command::Touch {
                key: b"k",
                exptime: 10,
                noreply: false
            }),
            b"touch k 10\r\n"
        );
        assert_eq!(
            req(Command::FlushAll {
                delay: 0,
                noreply: true
            }),
            b"flush_all noreply\r\n"
        );
        assert_eq!(
            req(Command::FlushAll {
                delay: -1,
                noreply: false
            }),
            b"flush_all -1\r\n"
        );
        assert_eq!(req(Command::Version), b"version\r\n");
        assert_eq!(req(Command::Quit), b"quit\r\n");
        assert_eq!(
            req(Command::Shutdown { graceful: true }),
            b"shutdown graceful\r\n"
        );
        assert_eq!(
            req(Command::Verbosity {
                level: 2,
                noreply: true
            }),
            b"verbosity 2 noreply\r\n"
        );
        assert_eq!(
            req(Command::CacheMemlimit {
                megabytes: 64,
                noreply: false
            }),
            b"cache_memlimit 64\r\n"
        );
        let mut args = Args::default();
        args.items[0] = b"slabs";
        args.len = 1;
        assert_eq!(req(Command::Stats { args }), b"stats slabs\r\n");
        assert_eq!(enc(|o| push_i64(o, i64::MIN)), b"-9223372036854775808");
    }
}
