"""Drives a memcached-compatible server with pymemcache's base Client.

usage: python3 pymemcache_client.py PORT

Covers get/set, get_many, gets + cas (winning and losing), incr/decr,
touch/gat, delete, expiry, the default noreply path, add/replace/append/
prepend, flags, binary values, values near 1 MB, flush_all, version, stats.
Exits non-zero on any mismatch.
"""

import re
import time

from _check import BINARY_VALUES, Checker, port_from_argv, wait_until
from pymemcache.client.base import Client
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheServerError,
)

port = port_from_argv()
ck = Checker("pymemcache")


class FlagSerde:
    """Keeps flags visible: get() returns (value, flags)."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags


def client(**kw):
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, **kw)


mc = client()  # default_noreply=True, as applications use it
quiet = client(default_noreply=False)  # every command waits for its reply

# --- version / flush -------------------------------------------------------
ver = mc.version()
ck.true("version is n.n.n", re.fullmatch(rb"\d+\.\d+\.\d+", ver) is not None, repr(ver))
ck.eq("flush_all", quiet.flush_all(noreply=False), True)

# --- set / get / get_many --------------------------------------------------
ck.eq("set", quiet.set(b"k1", b"v1"), True)
ck.eq("get hit", quiet.get(b"k1"), b"v1")
ck.eq("get miss", quiet.get(b"nope"), None)
ck.eq("get miss default", quiet.get(b"nope", default=b"dflt"), b"dflt")
quiet.set(b"k2", b"v2")
quiet.set(b"k3", b"v3")
ck.eq(
    "get_many",
    quiet.get_many([b"k1", b"k2", b"nope", b"k3"]),
    {b"k1": b"v1", b"k2": b"v2", b"k3": b"v3"},
)
ck.eq("get_many none", quiet.get_many([b"x1", b"x2"]), {})
ck.eq("get_many empty list", quiet.get_many([]), {})
ck.eq("overwrite", (quiet.set(b"k1", b"v1b"), quiet.get(b"k1")), (True, b"v1b"))
many = {f"many:{i}".encode(): f"value {i}".encode() * (i % 7 + 1) for i in range(300)}
ck.eq("set_many (reply)", quiet.set_many(many, noreply=False), [])
ck.eq("get_many 300", quiet.get_many(list(many)), many)

# --- flags ------------------------------------------------------------------
fl = client(default_noreply=False, serde=FlagSerde())
for f in (0, 1, 12345, 2**31, 2**32 - 1):
    fl.set(b"flagged", b"x", flags=f)
    ck.eq(f"flags {f} round-trip", fl.get(b"flagged"), (b"x", f))

# --- gets / cas -------------------------------------------------------------
quiet.set(b"c", b"one")
val, cas1 = quiet.gets(b"c")
ck.eq("gets value", val, b"one")
ck.true("gets cas is a positive integer token", cas1 is not None and int(cas1) > 0, repr(cas1))
ck.eq("cas wins", quiet.cas(b"c", b"two", cas1), True)
val, cas2 = quiet.gets(b"c")
ck.eq("value after cas", val, b"two")
ck.true("cas unique changed", cas2 != cas1, f"{cas1!r} -> {cas2!r}")
ck.eq("losing cas (stale unique) -> EXISTS", quiet.cas(b"c", b"three", cas1), False)
ck.eq("value unchanged after losing cas", quiet.get(b"c"), b"two")
ck.eq("cas on missing key -> NOT_FOUND", quiet.cas(b"nocas", b"v", cas2), None)
ck.eq("gets miss", quiet.gets(b"nocas"), (None, None))
quiet.set(b"c2", b"other")
gm = quiet.gets_many([b"c", b"c2", b"nocas"])
ck.eq("gets_many keys", sorted(gm), [b"c", b"c2"])
ck.eq("gets_many values", (gm[b"c"][0], gm[b"c2"][0]), (b"two", b"other"))
ck.eq("gets_many cas matches gets", gm[b"c"][1], cas2)
quiet.set(b"c", b"bumped")  # any store changes the unique
ck.eq("cas after plain set loses", quiet.cas(b"c", b"x", cas2), False)

# --- incr / decr ------------------------------------------------------------
quiet.set(b"n", b"10")
ck.eq("incr", quiet.incr(b"n", 5), 15)
ck.eq("decr", quiet.decr(b"n", 3), 12)
ck.eq("decr floors at 0", quiet.decr(b"n", 100), 0)
ck.eq("value after decr parses as 0", int(quiet.get(b"n")), 0)
ck.eq("incr after floor", quiet.incr(b"n", 7), 7)
ck.eq("incr miss", quiet.incr(b"nonum", 1), None)
ck.eq("decr miss", quiet.decr(b"nonum", 1), None)
# memcached 1.6.18 sometimes calls a value of 2^63 or more non-numeric (it
# appears to look past the value for a minus sign, so the bytes after it in
# memory decide); a long key puts the item in a size class nothing used
# before (fresh, zeroed memory).
wrap_key = b"w" * 200
quiet.set(wrap_key, b"18446744073709551615")
ck.eq("incr wraps at 2^64", quiet.incr(wrap_key, 1), 0)
quiet.set(b"txt", b"abc")
ck.raises("incr non-numeric", MemcacheClientError, lambda: quiet.incr(b"txt", 1))
ck.eq("connection usable after CLIENT_ERROR", quiet.get(b"k2"), b"v2")
ck.eq("incr noreply returns None", mc.incr(b"n", 1, noreply=True), None)
ck.eq("incr noreply applied (same connection)", int(mc.get(b"n")), 8)

# --- add / replace / append / prepend ----------------------------------------
ck.eq("add new", quiet.add(b"a1", b"x"), True)
ck.eq("add existing", quiet.add(b"a1", b"y"), False)
ck.eq("add kept old", quiet.get(b"a1"), b"x")
ck.eq("replace existing", quiet.replace(b"a1", b"r"), True)
ck.eq("replace missing", quiet.replace(b"nope", b"r"), False)
ck.eq("replace missing stored nothing", quiet.get(b"nope"), None)
ck.eq("append", quiet.append(b"a1", b"++"), True)
ck.eq("prepend", quiet.prepend(b"a1", b"--"), True)
ck.eq("append/prepend result", quiet.get(b"a1"), b"--r++")
ck.eq("append missing", quiet.append(b"nope", b"x"), False)
ck.eq("prepend missing", quiet.prepend(b"nope", b"x"), False)
ck.eq("append/prepend stored nothing", quiet.get(b"nope"), None)

# --- delete -------------------------------------------------------------------
ck.eq("delete hit", quiet.delete(b"a1", noreply=False), True)
ck.eq("delete miss", quiet.delete(b"a1", noreply=False), False)
ck.eq("deleted is gone", quiet.get(b"a1"), None)

# --- noreply (pymemcache's default) -------------------------------------------
# Each of these writes a request and reads nothing back; a stray reply from
# the server would be read as the answer to the get that follows.
for i in range(200):
    mc.set(f"nr:{i}".encode(), f"{i}".encode())
ck.eq("200 noreply sets then get_many", mc.get_many([f"nr:{i}".encode() for i in range(200)]),
      {f"nr:{i}".encode(): f"{i}".encode() for i in range(200)})
mc.set_many({f"nrm:{i}".encode(): b"m" * i for i in range(100)})  # one write, 100 sets
ck.eq("noreply set_many then get_many", mc.get_many([f"nrm:{i}".encode() for i in range(100)]),
      {f"nrm:{i}".encode(): b"m" * i for i in range(100)})
mc.add(b"nr:0", b"not stored")  # NOT_STORED, silenced
mc.replace(b"nr:missing", b"x")  # NOT_STORED, silenced
mc.append(b"nr:1", b"a")
mc.prepend(b"nr:1", b"p")
mc.delete(b"nr:2")
mc.delete(b"nr:missing")  # NOT_FOUND, silenced
mc.touch(b"nr:3", 100)
mc.touch(b"nr:missing", 100)  # NOT_FOUND, silenced
mc.incr(b"nr:4", 10, noreply=True)
mc.decr(b"nr:5", 1, noreply=True)
mc.incr(b"nr:missing", 1, noreply=True)
ck.eq(
    "after noreply mix",
    mc.get_many([b"nr:0", b"nr:1", b"nr:2", b"nr:3", b"nr:4", b"nr:5", b"nr:missing"]),
    {b"nr:0": b"0", b"nr:1": b"p1a", b"nr:3": b"3", b"nr:4": b"14", b"nr:5": b"4"},
)
ck.eq("version after noreply mix", mc.version(), ver)

# --- binary values -------------------------------------------------------------
for k, v in BINARY_VALUES.items():
    mc.set(k, v)
ck.eq("binary values (get_many)", mc.get_many(list(BINARY_VALUES)), BINARY_VALUES)
for k, v in BINARY_VALUES.items():
    ck.eq(f"binary value {k!r} (get)", mc.get(k), v)

# --- large values -----------------------------------------------------------
large = bytes((i * 7 + 3) % 256 for i in range(1024 * 1024 - 1024))
ck.eq("set ~1 MB value", quiet.set(b"large", large), True)
ck.eq("get ~1 MB value", quiet.get(b"large"), large)
half = b"h" * (512 * 1024 + 17)
quiet.set(b"half", half)
ck.eq("get_many with large values", quiet.get_many([b"large", b"half", b"k2"]),
      {b"large": large, b"half": half, b"k2": b"v2"})
too_big = b"t" * (1024 * 1024 + 1)
ck.raises("too large value -> SERVER_ERROR", MemcacheServerError,
          lambda: quiet.set(b"toobig", too_big))
ck.eq("too large value not stored", quiet.get(b"toobig"), None)
# With noreply the server stays silent even on that error, and swallows the
# data: the next reply on the same connection must be the get's.
mc.set(b"toobig", too_big)
ck.eq("noreply too large: next get in sync", mc.get(b"k2"), b"v2")
ck.eq("noreply too large: not stored", mc.get(b"toobig"), None)

# --- touch / gat / expiry ---------------------------------------------------------
ck.eq("touch hit", quiet.touch(b"k2", 100, noreply=False), True)
ck.eq("touch miss", quiet.touch(b"nope", 100, noreply=False), False)
# pymemcache 4.0 has no gat(): send it raw (raw_command strips the END)
ck.eq("gat hit", quiet.raw_command(b"gat 100 k3", b"END\r\n"), b"VALUE k3 0 2\r\nv3\r\n")
ck.eq("gat miss", quiet.raw_command(b"gat 100 nope", b"END\r\n"), b"")

quiet.set(b"exp:short", b"s", expire=2)
quiet.set(b"exp:touched", b"t", expire=2)
quiet.set(b"exp:gat", b"g", expire=2)
quiet.set(b"exp:never", b"n", expire=0)
quiet.set(b"exp:long", b"l", expire=100)
quiet.add(b"exp:added", b"a", expire=2)
quiet.set(b"exp:neg", b"x", expire=-1)  # negative: expired at once
quiet.set(b"exp:past", b"x", expire=int(time.time()) - 10)  # absolute, in the past
ck.eq("negative ttl expires at once", quiet.get(b"exp:neg"), None)
ck.eq("absolute past ttl expires at once", quiet.get(b"exp:past"), None)
ck.eq("short ttl present at first", quiet.get(b"exp:short"), b"s")
ck.eq("touch extends", quiet.touch(b"exp:touched", 100, noreply=False), True)
ck.eq("gat extends", quiet.raw_command(b"gat 100 exp:gat", b"END\r\n"), b"VALUE exp:gat 0 1\r\ng\r\n")
took = wait_until(lambda: quiet.get(b"exp:short") is None, timeout=5.0)
ck.true("2 s ttl expires within 5 s", took is not None)
ck.true("2 s ttl lives at least ~1 s", took is None or took >= 0.9, f"took {took}")
ck.eq("add with ttl expired too", quiet.get(b"exp:added"), None)
ck.eq(
    "survivors after expiry",
    quiet.get_many([b"exp:touched", b"exp:gat", b"exp:never", b"exp:long", b"exp:short"]),
    {b"exp:touched": b"t", b"exp:gat": b"g", b"exp:never": b"n", b"exp:long": b"l"},
)
ck.eq("add over expired key", quiet.add(b"exp:short", b"again"), True)
ck.eq("touch to -1 expires", quiet.touch(b"exp:long", -1, noreply=False), True)
ck.eq("touched to -1 is gone", quiet.get(b"exp:long"), None)

# --- stats ------------------------------------------------------------------
st = quiet.stats()
for name in (b"pid", b"uptime", b"curr_items", b"total_items", b"cmd_get", b"cmd_set",
             b"get_hits", b"get_misses", b"cas_misses", b"cas_hits", b"cas_badval",
             b"curr_connections"):
    ck.true(f"stats has {name!r}", name in st, "")
ck.true("uptime > 0", st.get(b"uptime", 0) > 0, repr(st.get(b"uptime")))
ck.true("cas_hits >= 1", st.get(b"cas_hits", 0) >= 1, repr(st.get(b"cas_hits")))
ck.true("cas_badval >= 2", st.get(b"cas_badval", 0) >= 2, repr(st.get(b"cas_badval")))
ck.true("cas_misses >= 1", st.get(b"cas_misses", 0) >= 1, repr(st.get(b"cas_misses")))

# --- flush_all ----------------------------------------------------------------
ck.true("items before flush", quiet.get(b"k2") == b"v2")
mc.flush_all()  # noreply by default
ck.eq("flush_all (noreply) empties", mc.get_many([b"k2", b"k3", b"large", b"nr:0"]), {})
mc.set(b"after", b"flush")
ck.eq("store after flush", mc.get(b"after"), b"flush")
ck.eq("flush_all with reply", quiet.flush_all(noreply=False), True)
ck.eq("flush empties again", quiet.get(b"after"), None)

mc.quit()
quiet.close()
fl.close()
ck.finish()
