//! Typed requests borrowing from the read buffer.

/// The six storage verbs of the text protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerb {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A validated, space-separated list of keys (1..=250 bytes each, no
/// control bytes). Iterating yields each key in request order, duplicates
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    /// The raw key list as received (single spaces or runs of spaces
    /// between keys; already validated by the parser). Empty only for
    /// `gat <exptime>` / `gats <exptime>` without keys, which memcached
    /// answers with a bare `END`.
    raw: &'a [u8],
}

impl<'a> Keys<'a> {
    /// Wraps an already validated key list. Only the parser (and tests)
    /// should build one.
    pub fn from_validated(raw: &'a [u8]) -> Self {
        Keys { raw }
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn iter(&self) -> KeyIter<'a> {
        KeyIter { rest: self.raw }
    }
}

impl<'a> IntoIterator for Keys<'a> {
    type Item = &'a [u8];
    type IntoIter = KeyIter<'a>;
    fn into_iter(self) -> KeyIter<'a> {
        self.iter()
    }
}

/// Iterator over the keys of a [`Keys`].
#[derive(Debug, Clone)]
pub struct KeyIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let (key, tail) = rest.split_at(end);
        self.rest = tail;
        Some(key)
    }
}

/// Up to this many arguments are kept for admin commands (`stats`, `slabs`,
/// `lru_crawler`, ...). memcached's tokenizer keeps 24 tokens.
pub const MAX_ARGS: usize = 8;

/// Whitespace-separated arguments of an admin command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Args<'a> {
    pub items: [&'a [u8]; MAX_ARGS],
    pub len: usize,
}

impl<'a> Args<'a> {
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i < self.len {
            Some(self.items[i])
        } else {
            None
        }
    }
    pub fn as_slice(&self) -> &[&'a [u8]] {
        &self.items[..self.len]
    }
}

/// One parsed client request.
///
/// Expiry times are the raw client numbers (relative seconds, absolute Unix
/// time or negative); `exec` converts them with the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get` / `gets` (with_cas).
    Get {
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `gat` / `gats` (with_cas).
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `set add replace append prepend cas`.
    Store {
        verb: StoreVerb,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        /// The unique of a `cas` command; 0 for the others.
        cas_unique: u64,
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    /// `incr` (incr = true) / `decr`.
    Arith {
        key: &'a [u8],
        delta: u64,
        incr: bool,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`; delay 0 when absent.
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    /// `shutdown [graceful]`.
    Shutdown {
        graceful: bool,
    },
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// `stats [args...]`.
    Stats {
        args: Args<'a>,
    },
    /// Admin commands whose arguments `exec` interprets: `slabs`,
    /// `lru_crawler`, `lru`, `watch`, `misbehave`, `debugtime`, ...
    Admin {
        verb: &'a [u8],
        args: Args<'a>,
    },
}
