#!/usr/bin/env python3
"""Writes the seed corpus of the repl_frame target (seeds/repl_frame/seed-*).

Run from fuzz/: python3 gen_repl_seeds.py. The output is committed; rerun
after editing the frames below. Each input starts with a 3-byte header
(max_frame selector, split offset u16 LE) before the peer's bytes; the
frames are spelled out here from the wire table in
src/replication/frame.rs, independently of the Rust encoder.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(ty, payload):
    return struct.pack(">IB", len(payload) + 1, ty) + payload


def key(k):
    return struct.pack(">B", len(k)) + k


def value(v):
    return struct.pack(">I", len(v)) + v


HELLO = frame(1, b"TWNC" + struct.pack(">HBQ", 1, 1, 0x0102030405060708)
              + bytes(range(16)) + struct.pack(">QIQB", 0x0000019000000001, 1 << 20, 64 << 20, 1))
AUTH = frame(2, bytes(range(32)))
SYNC_BEGIN = frame(3, b"\x01")
SYNC_END = frame(4, b"")
ITEM = frame(5, struct.pack(">QIIB", 0x0000019000000002, 0xdeadbeef, 1800000000, 0)
             + key(b"foo") + value(b"hello"))
DELETE = frame(6, struct.pack(">Q", 0x0000019000000003) + key(b"foo"))
FLUSH = frame(7, struct.pack(">QI", 0x0000019000000004, 0))
ACK = frame(8, struct.pack(">Q", 3))
PING = frame(9, struct.pack(">QQ", 7, 0x0000019000000005))
PONG = frame(10, struct.pack(">QQ", 7, 0x0000019000000006))
REFUSED = frame(11, struct.pack(">QB", 0x0000019000000002, 1) + key(b"foo"))
GOODBYE = frame(12, b"node id clash")

FRAMES = [
    ("hello", HELLO), ("auth", AUTH), ("sync-begin", SYNC_BEGIN), ("sync-end", SYNC_END),
    ("item", ITEM), ("delete", DELETE), ("flush", FLUSH), ("ack", ACK), ("ping", PING),
    ("pong", PONG), ("refused", REFUSED), ("goodbye", GOODBYE),
]

# (name, max_frame selector, split, bytes)
EXTRA = [
    # a whole link's life, split in the middle of the Item
    ("session", 2, 4 + len(HELLO + AUTH + SYNC_BEGIN),
     HELLO + AUTH + SYNC_BEGIN + ITEM + DELETE + FLUSH + SYNC_END + ACK + PING + PONG
     + REFUSED + GOODBYE),
    # a record with the longest key and a bigger value
    ("item-max-key", 2, 0, frame(5, struct.pack(">QIIB", 1, 0, 0, 1) + key(b"k" * 250)
                                 + value(b"v" * 2000))),
    ("flush-delayed", 1, 3, frame(7, struct.pack(">QI", 0, 1800000000))),
    # strangers and broken frames
    ("memcached-get", 0, 0, b"get foo\r\n"),
    ("http", 0, 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("over-limit", 1, 2, struct.pack(">IB", 65, 12) + b"x" * 64),
    ("zero-length", 0, 0, b"\x00\x00\x00\x00"),
    ("unknown-type", 0, 0, frame(13, b"")),
    ("bad-magic", 0, 0, frame(1, b"TWNX" + HELLO[9:])),
    ("empty-key", 0, 0, frame(5, struct.pack(">QIIB", 1, 0, 0, 0) + b"\x00" + value(b"v"))),
    ("trailing", 0, 0, frame(6, struct.pack(">Q", 1) + key(b"a") + b"b")),
    ("short-key", 0, 0, frame(6, struct.pack(">Q", 1) + b"\x03ab")),
    ("bad-bool", 0, 0, frame(3, b"\x02")),
    # Hello flags: a probe (bit 1), and an unknown bit
    ("hello-probe", 0, 0, HELLO[:-1] + b"\x02"),
    ("hello-bad-flags", 0, 0, HELLO[:-1] + b"\x04"),
]


def main():
    d = os.path.join(HERE, "seeds", "repl_frame")
    os.makedirs(d, exist_ok=True)
    inputs = [(name, i % 4, i, data) for i, (name, data) in enumerate(FRAMES)]
    inputs += EXTRA
    for name, lim, split, data in inputs:
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(bytes([lim]) + struct.pack("<H", split) + data)
    # a dictionary: the magic, every type byte behind a plausible length
    with open(os.path.join(HERE, "repl_frame.dict"), "w") as f:
        f.write('magic="TWNC"\n')
        for ty in range(1, 13):
            f.write('type%d="\\x%02x"\n' % (ty, ty))
        for n in (1, 9, 13, 17, 33, 53):
            f.write('len%d="\\x00\\x00\\x00\\x%02x"\n' % (n, n))


if __name__ == "__main__":
    main()
