//! Long replies (`lru_crawler metadump`, `stats cachedump`, `stats sizes`)
//! written a part at a time as the connection's output drains.

use std::collections::BTreeMap;

use super::{Ctx, Flow};
use crate::protocol::command::ClassSet;
use crate::protocol::encode::{self, MetaItem, Reply};
use crate::storage::{DumpCursor, DumpEntry};

/// A long reply in progress (`lru_crawler metadump`, `stats cachedump`,
/// `stats sizes`): where its walk over the store stands. Owns everything
/// it needs, so it outlives the request buffer.
#[derive(Debug)]
pub struct Continuation {
    cursor: DumpCursor,
    kind: StreamKind,
}

#[derive(Debug)]
pub(super) enum StreamKind {
    /// `None`: every class.
    Metadump { classes: Option<ClassSet> },
    Cachedump {
        class: u32,
        /// 0 = no limit.
        limit: u32,
        shown: u32,
        bytes: usize,
        full: bool,
    },
    /// Item counts per 32-byte size bucket.
    Sizes { buckets: BTreeMap<u64, u64> },
}

/// Slots of the store examined per `Store::dump` call of a stream.
const STREAM_SLOTS: usize = 512;
/// A resume step stops once it has appended this many bytes...
const STREAM_CHUNK: usize = 64 * 1024;
/// ... or after this many `Store::dump` calls.
const STREAM_CALLS: usize = 16;
/// `stats cachedump` stops before its reply would pass 2 MiB, as
/// memcached's does.
const CACHEDUMP_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Size buckets of `stats sizes` (bytes).
const SIZE_BUCKET: u64 = 32;

impl Continuation {
    fn new(kind: StreamKind) -> Continuation {
        Continuation {
            cursor: DumpCursor::default(),
            kind,
        }
    }

    fn take(&mut self, e: &DumpEntry<'_>, out: &mut Vec<u8>) {
        match &mut self.kind {
            StreamKind::Metadump { classes } => {
                if classes.is_some_and(|c| !c.contains(e.class)) {
                    return;
                }
                encode::metadump_item(
                    out,
                    &MetaItem {
                        key: e.key,
                        exptime: (e.exptime != 0).then_some(e.exptime),
                        last_access: e.last_access,
                        cas: e.cas,
                        fetched: e.fetched,
                        class: e.class,
                        size: e.size as u64,
                    },
                );
            }
            StreamKind::Cachedump {
                class,
                limit,
                shown,
                bytes,
                full,
            } => {
                if *full || e.class != *class {
                    return;
                }
                let start = out.len();
                encode::cachedump_item(out, e.key, e.value_len as u64, e.exptime);
                let len = out.len() - start;
                // memcached keeps room for its `END\r\n` and a NUL.
                if *bytes + len + 6 > CACHEDUMP_MAX_BYTES {
                    out.truncate(start);
                    *full = true;
                    return;
                }
                *bytes += len;
                *shown += 1;
                if *limit != 0 && *shown >= *limit {
                    *full = true;
                }
            }
            StreamKind::Sizes { buckets } => {
                let bucket = (e.size as u64).div_ceil(SIZE_BUCKET) * SIZE_BUCKET;
                *buckets.entry(bucket).or_insert(0) += 1;
            }
        }
    }

    fn finished(&self) -> bool {
        self.cursor.is_done() || matches!(self.kind, StreamKind::Cachedump { full: true, .. })
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let StreamKind::Sizes { buckets } = &self.kind {
            for (&bucket, &count) in buckets {
                encode::size_stat(out, bucket, count);
            }
        }
        encode::reply(out, Reply::End);
    }
}

/// Appends the next part of a long reply. Returns true when the reply is
/// complete (its `END` written); the continuation is then spent.
pub fn resume(ctx: &Ctx<'_>, cont: &mut Continuation, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut calls = 0;
    while !cont.finished() && calls < STREAM_CALLS && out.len() - start < STREAM_CHUNK {
        calls += 1;
        let mut cursor = cont.cursor;
        ctx.shared
            .store
            .dump(&mut cursor, STREAM_SLOTS, ctx.now, |e| cont.take(&e, out));
        cont.cursor = cursor;
    }
    if cont.finished() {
        cont.finish(out);
        return true;
    }
    false
}

/// Starts a long reply: its first part now, the rest through [`resume`].
pub(super) fn stream(ctx: &Ctx<'_>, kind: StreamKind, out: &mut Vec<u8>) -> Flow {
    let mut cont = Continuation::new(kind);
    if resume(ctx, &mut cont, out) {
        Flow::Continue
    } else {
        Flow::Stream(cont)
    }
}

#[cfg(test)]
mod tests {
    //! Reply text is compared with what memcached 1.6.18 answered to the
    //! same request (quoted where it matters).

    use super::super::testing::T;
    use super::super::{execute, NoServer};
    use super::*;
    use crate::protocol::command::CrawlTarget;
    use crate::protocol::Command;

    fn entry(key: &[u8], class: u32) -> DumpEntry<'_> {
        DumpEntry {
            key,
            exptime: 0,
            last_access: 1000,
            cas: 7,
            fetched: false,
            class,
            value_len: 10,
            size: 75,
        }
    }

    #[test]
    fn cachedump_limit_class_and_size_cap() {
        let mut out = Vec::new();
        let mut c = Continuation::new(StreamKind::Cachedump {
            class: 3,
            limit: 2,
            shown: 0,
            bytes: 0,
            full: false,
        });
        c.take(&entry(b"a", 3), &mut out);
        c.take(&entry(b"b", 4), &mut out);
        assert!(!c.finished());
        c.take(&entry(b"c", 3), &mut out);
        assert!(c.finished());
        c.take(&entry(b"d", 3), &mut out);
        c.finish(&mut out);
        assert_eq!(
            out,
            b"ITEM a [10 b; 0 s]\r\nITEM c [10 b; 0 s]\r\nEND\r\n".to_vec()
        );

        // Limit 0 means every item, up to memcached's 2 MiB reply.
        let key = [b'k'; 250];
        let mut out = Vec::new();
        let mut c = Continuation::new(StreamKind::Cachedump {
            class: 1,
            limit: 0,
            shown: 0,
            bytes: 0,
            full: false,
        });
        let mut n = 0;
        while !c.finished() {
            c.take(&entry(&key, 1), &mut out);
            n += 1;
            assert!(n < 100_000);
        }
        c.finish(&mut out);
        let line = b"ITEM ".len() + 250 + b" [10 b; 0 s]\r\n".len();
        assert!(out.len() <= CACHEDUMP_MAX_BYTES);
        assert!(out.len() + line + 6 > CACHEDUMP_MAX_BYTES);
        assert!(out.ends_with(b"s]\r\nEND\r\n"));
    }

    #[test]
    fn metadump_lines() {
        let mut out = Vec::new();
        let mut set = ClassSet::default();
        set.insert(2);
        let mut c = Continuation::new(StreamKind::Metadump { classes: Some(set) });
        let mut e = entry(b"k%20/", 2);
        e.exptime = 1795297383;
        e.fetched = true;
        c.take(&e, &mut out);
        c.take(&entry(b"other", 3), &mut out);
        c.take(&entry(b"a", 2), &mut out);
        c.finish(&mut out);
        // memcached ends each item with a bare \n and the dump with END\r\n.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "key=k%2520%2F exp=1795297383 la=1000 cas=7 fetch=yes cls=2 size=75\n\
             key=a exp=-1 la=1000 cas=7 fetch=no cls=2 size=75\nEND\r\n"
        );
    }

    #[test]
    fn metadump_streams_every_item_once() {
        let t = T::new(&[]);
        let mut input = Vec::new();
        for i in 0..3000 {
            input.extend_from_slice(format!("set key{i} 0 0 3 noreply\r\nabc\r\n").as_bytes());
        }
        assert_eq!(t.run(&input), b"");
        let ctx = Ctx {
            shared: &t.shared,
            stats: &t.stats,
            now: t.shared.clock.now(),
            server: &NoServer,
        };
        let mut out = Vec::new();
        let cmd = Command::LruCrawlerMetadump {
            target: CrawlTarget::All,
        };
        let Flow::Stream(mut cont) = execute(&ctx, &cmd, &mut out) else {
            panic!("3000 items fit in one step?")
        };
        let mut steps = 1;
        let mut peak = out.len();
        loop {
            let before = out.len();
            let done = resume(&ctx, &mut cont, &mut out);
            peak = peak.max(out.len() - before);
            steps += 1;
            if done {
                break;
            }
        }
        assert!(steps > 1);
        // A step stops after the dump call that passes STREAM_CHUNK; the
        // lines here are under 80 bytes.
        assert!(peak <= STREAM_CHUNK + STREAM_SLOTS * 80, "{peak}");
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\nEND\r\n"));
        let mut keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("key="))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(keys.len(), 3000);
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 3000);
    }
}
