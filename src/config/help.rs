//! `-h`, `-V`, `-i` texts.

// ---------------------------------------------------------------------------
// -h, -V, -i
// ---------------------------------------------------------------------------

/// `-V`
pub fn version_text() -> String {
    format!(
        "twincache {} (memcached {} compatible)",
        crate::TWINCACHE_VERSION,
        crate::MEMCACHED_VERSION
    )
}

pub(super) fn license_text() -> String {
    format!(
        "twincache {} is distributed under the terms of the MIT license or the \
         Apache License 2.0, at your option.",
        crate::TWINCACHE_VERSION
    )
}

/// `-h`
pub fn help_text() -> String {
    let mut s = String::new();
    s.push_str(&version_text());
    s.push_str(
        "
Usage: twincache [options]
A cache server that speaks the memcached text protocol. Options follow
memcached 1.6: short options may be bundled (-vvm64), long options take
--name=value or --name value.

Network
  -p, --port=<num>             TCP port (default 11211; 0 = no TCP listener)
  -l, --listen=<list>          addresses to listen on, separated by ',' or ';':
                               host, host:port, [v6addr]:port, a bare IPv6
                               address, or * for every interface; may be
                               repeated; a host name listens on all its
                               addresses; an entry's port overrides -p.
                               Default: 127.0.0.1 only. NOTE: memcached listens
                               on every interface by default; twincache does not
                               unless you ask for it (-l '*').
  -U, --udp-port=<num>         only 0 is accepted: UDP is not served
                               (DDoS amplification, CVE-2018-1000115)
  -s, --unix-socket=<file>     listen on this Unix socket instead of TCP
  -a, --unix-mask=<octal>      permissions of the Unix socket (default 700)
  -b, --listen-backlog=<num>   listen(2) backlog (default 1024)
  -c, --conn-limit=<num>       most client connections at once (default 1024)
  -B, --protocol=<name>        ascii or auto (default auto); binary is refused
  -R, --max-reqs-per-event=<n> requests served per connection before others
                               get a turn (default 20)
  -t, --threads=<num>          worker threads (default 4)

Memory and items
  -m, --memory-limit=<mb>      memory for items in megabytes (default 64)
  -M, --disable-evictions      answer an error when memory is full instead of
                               evicting old items
  -I, --max-item-size=<size>   largest item, k/m suffix allowed
                               (default 1m, from 1k to 1024m, at most -m/2)
  -f, --slab-growth-factor=<f> size-class growth factor (default 1.25)
  -n, --slab-min-size=<bytes>  smallest item space (default 48)
  -C, --disable-cas            turn CAS off
  -L, --enable-largepages      accepted; large pages are not used yet
  -k, --lock-memory            mlockall() all memory (a failure only warns)
  -e, --memory-file=<file>     accepted with a warning; no warm restart

Commands
  -A, --enable-shutdown        allow the \"shutdown\" command
  -F, --disable-flush-all      refuse \"flush_all\"
  --disable-dumping            refuse cachedump/metadump (memcached's -X; the
                               short -X is the replication port)
  -W, --disable-watch          refuse \"watch\"
  -D <char>                    key prefix delimiter for per-prefix stats;
                               turns detail stats on

Replication (twincache)
  -x <host>[:<port>]           the peer node: a host name, an IPv4 address or
                               [v6addr]; the port defaults to our own -X.
                               Replication is on only with -x. It needs CAS
                               (no -C)
  -X <port>                    replication port (default 11212), on the same
                               addresses as -l; must differ from the client
                               port. memcached's -X is --disable-dumping here
  -q <num>                     outbox bound in entries (default 1000000)
  --repl-outbox-bytes=<size>   outbox bound in bytes, k/m/g suffix allowed
                               (default 64m); a full outbox makes the peer
                               resync, it never drops writes silently
  --repl-secret-file=<file>    shared secret for the challenge-response
                               handshake of the link (default none: only the
                               peer's address is accepted, with a warning)
  --repl-sync-timeout=<sec>    how long a starting node waits for its initial
                               sync before opening the client port anyway
                               (default 30; 0 = do not wait)
  --node-id=<1..255>           tie-break id of this node's versions
                               (default: derived at start)
  --repl-heartbeat-ms=<ms>     ping interval on the link (default 500)
  --repl-timeout-ms=<ms>       silence after which the peer is declared dead,
                               more than the heartbeat (default 3000)
  --repl-backoff-max-ms=<ms>   cap of the exponential redial backoff, which
                               starts at 50 ms (default 2000)
  --repl-drain-timeout=<sec>   how long a graceful stop waits for the outbox
                               to drain (default 5)
  --repl-tombstone-ttl=<sec>   how long delete tombstones are kept
                               (default 3600)
  --repl-tombstone-bytes=<size> memory for delete tombstones, k/m/g suffix
                               allowed (default 16m)

Process
  -d, --daemon                 run in the background (not under systemd)
  -u, --user=<user>            user to switch to when started as root
                               (required when started as root)
  -P, --pidfile=<file>         write the process id here (also without -d)
  -r, --enable-coredumps       raise the core file size limit
  -v, --verbose                more logging: -v info, -vv debug, -vvv trace
  -N, --napi-ids=<num>         accepted for compatibility, not used
  -h, --help                   this text
  -V, --version                print the version
  -i, --license                print the license

Refused (twincache does not implement them, and will not start rather than
silently run without them): -S/--enable-sasl, -Y/--auth-file,
-Z/--enable-ssl, -B binary, -U <non-zero>, -o ssl_*, -o ext_*, -o proxy_*.

Extended options: -o, --extended=<opt>[,<opt>...]
  maxconns_fast, no_maxconns_fast  close connections over -c at once with an
                                   error line (default on)
  idle_timeout=<sec>               close client connections idle this long
                                   (default 0 = never)
  hashpower=<12..32>               initial hash table size as a power of two
  Accepted and range-checked like memcached, shown in \"stats settings\", with
  no effect yet: no_hashexpand, slab_reassign, no_slab_reassign,
  slab_automove[=0|1|2], no_slab_automove, slab_automove_ratio,
  slab_automove_window, slab_automove_freeratio, slab_chunk_max, slab_sizes,
  no_chunked_items, lru_crawler, no_lru_crawler, lru_crawler_sleep,
  lru_crawler_tocrawl, lru_maintainer, no_lru_maintainer, hot_lru_pct,
  warm_lru_pct, hot_max_factor, warm_max_factor, temporary_ttl,
  tail_repair_time, hash_algorithm=jenkins|murmur3|xxh3, track_sizes, modern,
  no_modern, inline_ascii_resp, no_inline_ascii_resp, watcher_logbuf_size,
  worker_logbuf_size, read_buf_mem_limit, resp_obj_mem_limit, drop_privileges,
  no_drop_privileges, sock_cookie_id, relaxed_privileges.
",
    );
    s
}
