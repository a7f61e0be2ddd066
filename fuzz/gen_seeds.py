#!/usr/bin/env python3
"""Writes the seed corpus (seeds/<target>/seed-*) and the dictionary.

Run from fuzz/: python3 gen_seeds.py. The output is committed; rerun after
editing the lists below. parse_stream inputs start with a 3-byte header
(limits byte, split offset u16 LE) before the client bytes.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

K250 = b"k" * 250
K251 = b"k" * 251

# Every command form of memcached's text protocol (protocol.txt), valid.
VALID = [
    b"get a\r\n",
    b"get a b c\r\n",
    b"gets a b\r\n",
    b"bget a\r\n",
    b"gat 10 a b\r\n",
    b"gats 0 a\r\n",
    b"gat 10\r\n",
    b"set k 0 0 5\r\nhello\r\n",
    b"set k 4294967295 -1 0\r\n\r\n",
    b"add k 1 100 3\r\nabc\r\n",
    b"replace k 2 0 3 noreply\r\nxyz\r\n",
    b"append k 0 0 2\r\n\r\n\r\n",
    b"prepend k 0 0 4\r\n\x00\xff\r\n\r\n",
    b"cas k 0 0 1 12345\r\nx\r\n",
    b"cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n",
    b"delete k\r\n",
    b"delete k 0\r\n",
    b"delete k noreply\r\n",
    b"delete k 0 noreply\r\n",
    b"incr k 1\r\n",
    b"decr k 18446744073709551615\r\n",
    b"incr k 5 noreply\r\n",
    b"touch k 100\r\n",
    b"touch k -1 noreply\r\n",
    b"flush_all\r\n",
    b"flush_all 10\r\n",
    b"flush_all noreply\r\n",
    b"flush_all 0 noreply\r\n",
    b"version\r\n",
    b"verbosity 1\r\n",
    b"verbosity 1 noreply\r\n",
    b"quit\r\n",
    b"shutdown\r\n",
    b"shutdown graceful\r\n",
    b"cache_memlimit 64\r\n",
    b"stats\r\n",
    b"stats items\r\n",
    b"stats slabs\r\n",
    b"stats settings\r\n",
    b"stats sizes\r\n",
    b"stats conns\r\n",
    b"stats detail on\r\n",
    b"stats reset\r\n",
    b"slabs reassign 1 2\r\n",
    b"slabs automove 1\r\n",
    b"lru_crawler metadump all\r\n",
    b"lru mode flat\r\n",
    b"watch fetchers\r\n",
    b"misbehave\r\n",
    b"mn\r\n",
    b"mg k v\r\n",
    b"ms k 2\r\nhi\r\n",
    b"ms k 2 c T60 F5 MS q O12\r\nhi\r\n",
    b"ms k 2 ME I C99\r\nhi\r\n",
    b"mg k v f c t k s h l O1 q\r\n",
    b"mg k N30 v c t\r\n",
    b"mg k R30 T30 v\r\n",
    b"mg a2V5 b v k\r\n",
    b"md k q\r\n",
    b"md k I T30 C5\r\n",
    b"ma k N0 J10 D5 MI v t c\r\n",
    b"ma k MD q O9\r\n",
    b"me k\r\n",
    b"mg k v\r\nmg k2 v q\r\nmn\r\n",
    b"get " + K250 + b"\r\n",
    b"set " + K250 + b" 0 0 1\r\nx\r\n",
    b"get a\n",
    b"  get   a   b  \r\n",
    b"set k 0 0 1\r\nx\r\nget k\r\ndelete k\r\nget k\r\n",
]

# Malformed inputs (the tests/malformed.rs table) and CVE shapes.
MALFORMED = [
    b"set k 0 0 -1\r\nx\r\n",
    b"set k 0 0 4294967295\r\nx\r\n",
    b"set k 0 0 2147483647\r\nx\r\n",
    b"set k 0 0 2147483646\r\nx\r\n",
    b"set k 0 0 99999999999999999999\r\n",
    b"set k 0 0 abc\r\nx\r\n",
    b"set k 0 0 3\r\nabcde\r\n",
    b"set k 0 0 3\r\na\r\n",
    b"set k 0 0 3\nabc\n",
    b"set k 4294967296 0 1\r\nx\r\n",
    b"set k -1 0 1\r\nx\r\n",
    b"set k 0 9223372036854775808 1\r\nx\r\n",
    b"set " + K251 + b" 0 0 7\r\nversion\r\n",
    b"set a\x01b 0 0 1\r\nx\r\n",
    b"set k 0 0 2000\r\n" + b"x" * 2000 + b"\r\n",
    b"set k 0 0 1 noreply\r\nxx\r\n",
    b"set k 0 0 1 noreply x\r\nx\r\n",
    b"get " + K251 + b"\r\n",
    b"get a\x00b\r\n",
    b"get a\x7f\r\n",
    b"get\r\n",
    b"incr k 18446744073709551616\r\n",
    b"incr k -1\r\n",
    b"decr k abc\r\n",
    b"touch k abc\r\n",
    b"gat abc k\r\n",
    b"flush_all abc\r\n",
    b"verbosity\r\n",
    b"delete k 1\r\n",
    b"delete k 0 0\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"DELETE HTTP/1.1\r\n",
    b"\r\n" * 1000,
    b"\n" * 100,
    b"\x00\x01\xff\r\n",
    b"\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hello",
    b"\x80\x01\x00\x01\x08\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    b"x" * 2049,
    b"get " + b"a " * 1100 + b"\r\n",
    b"set k 0 0 10\r\nshort",
    b"cas k 0 0 1\r\nx\r\n",
    b"cas k 0 0 1 -1\r\nx\r\n",
    b"set k 0 0 1\r\nx\n",
    b"set k 0 0 0\r\n\n",
    b"stats " + b"a " * 300 + b"\r\n",
    b"noreply\r\n",
    b"shutdown junk\r\n",
    b"cache_memlimit abc\r\n",
]

HDRS = [
    (0, 0),   # default limits, no split
    (1, 5),   # -I 100, split after 5 bytes
    (2, 1),
    (5, 13),  # -I 100, no CAS
]


def write(dirname, name, data):
    d = os.path.join(HERE, "seeds", dirname)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for i, req in enumerate(VALID + MALFORMED):
        lim, split = HDRS[i % len(HDRS)]
        write("parse_stream", "%03d" % i, bytes([lim]) + struct.pack("<H", split) + req)
    # all valid forms pipelined in one stream, split in the middle
    stream = b"".join(VALID)
    write("parse_stream", "pipeline", b"\x00" + struct.pack("<H", len(stream) // 2) + stream)

    # store_model: mode byte then 3-byte ops (see decode() in store_model.rs)
    ops_exact = bytes([
        0, 0, 0x12,   # set a
        11, 0, 0,     # get a
        4, 0, 0x0f,   # append a (900 bytes)
        4, 0, 0x0f,   # append a again: too large
        7, 1, 4,      # incr b
        0, 1, 4,      # set b "100"
        7, 1, 14,     # incr b by u64::MAX - 1 (wrap)
        7, 1, 1,      # decr b
        6, 1, 0,      # cas b right
        6, 1, 1,      # cas b wrong
        13, 0, 2,     # flush_all in 2 s
        14, 0, 2,     # tick 2
        11, 1, 0,     # get b: flushed
        9, 2, 0x30,   # touch
        10, 2, 0x10,  # gat
        8, 0, 0,      # delete
        15, 0, 9,     # reclaim
    ])
    write("store_model", "exact", b"\x00" + ops_exact)
    write("store_model", "exact-sharded", b"\x01" + ops_exact)
    fill = b"".join(bytes([0, k, 0x0f]) + bytes([11, k, 0]) for k in range(8))
    write("store_model", "lossy", b"\x02" + fill + ops_exact)
    write("store_model", "lossy-sharded", b"\x0b" + fill * 2)

    verbs = [b"get", b"gets", b"gat", b"gats", b"bget", b"set", b"add", b"replace",
             b"append", b"prepend", b"cas", b"delete", b"incr", b"decr", b"touch",
             b"flush_all", b"version", b"verbosity", b"quit", b"shutdown",
             b"cache_memlimit", b"stats", b"slabs", b"lru_crawler", b"lru", b"watch",
             b"misbehave", b"mg", b"ms", b"md", b"mn", b"ma", b"me", b"noreply",
             b"graceful", b"HTTP/1.0", b"HTTP/1.1", b"GET", b"PUT"]
    lits = [b"\r\n", b"\n", b" ", b"0", b"-1", b"4294967295", b"4294967296",
            b"2147483647", b"18446744073709551615", b"18446744073709551616",
            b"9223372036854775808", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\t"]
    with open(os.path.join(HERE, "memcached.dict"), "w") as f:
        f.write("# libFuzzer dictionary: memcached text-protocol verbs and tokens\n")
        for i, w in enumerate(verbs):
            f.write('verb_%d="%s"\n' % (i, w.decode()))
        for i, w in enumerate(lits):
            f.write('tok_%d="%s"\n' % (i, "".join("\\x%02x" % b for b in w)))


if __name__ == "__main__":
    main()
