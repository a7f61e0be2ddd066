"""Drives a memcached-compatible server with pylibmc (libmemcached), ASCII.

usage: python3 pylibmc_client.py PORT

Covers get/set, get_multi/set_multi, gets + cas (winning and losing),
incr/decr, touch, delete, expiry, libmemcached's noreply mode (alone and
with buffered requests), add/replace/append/prepend, binary values, values
near 1 MB, flush_all, stats. Exits non-zero on any mismatch.
"""

import time

import pylibmc
from _check import BINARY_VALUES, Checker, port_from_argv, wait_until

port = port_from_argv()
ck = Checker("pylibmc")
server = f"127.0.0.1:{port}"
timeouts = {"connect_timeout": 5000, "receive_timeout": 5_000_000, "send_timeout": 5_000_000}

mc = pylibmc.Client([server], binary=False,
                    behaviors={"cas": True, "tcp_nodelay": True, **timeouts})

# --- flush / set / get / multi -----------------------------------------------
ck.eq("flush_all", mc.flush_all(), True)
ck.eq("set", mc.set("k1", b"v1"), True)
ck.eq("get hit", mc.get("k1"), b"v1")
ck.eq("get miss", mc.get("nope"), None)
mc.set("k2", b"v2")
mc.set("k3", b"v3")
ck.eq("get_multi", mc.get_multi(["k1", "k2", "nope", "k3"]),
      {"k1": b"v1", "k2": b"v2", "k3": b"v3"})
ck.eq("get_multi all missing", mc.get_multi(["x1", "x2"]), {})
many = {f"many:{i}": (f"value {i}" * (i % 9 + 1)).encode() for i in range(500)}
ck.eq("set_multi 500", mc.set_multi(many), [])
ck.eq("get_multi 500", mc.get_multi(list(many)), many)
ck.eq("get_multi with key_prefix", mc.get_multi(["1", "2", "999"], key_prefix="many:"),
      {"1": many["many:1"], "2": many["many:2"]})
ck.eq("str value round-trip (pylibmc text flag)", (mc.set("s", "h\u00e9llo"), mc.get("s")),
      (True, "h\u00e9llo"))
ck.eq("int value round-trip (pylibmc int flag)", (mc.set("i", 42), mc.get("i")), (True, 42))

# --- gets / cas -----------------------------------------------------------------
mc.set("c", b"one")
val, cas1 = mc.gets("c")
ck.eq("gets value", val, b"one")
ck.true("gets cas non-zero", isinstance(cas1, int) and cas1 > 0, repr(cas1))
ck.eq("cas wins", mc.cas("c", b"two", cas1), True)
val, cas2 = mc.gets("c")
ck.eq("value after cas", val, b"two")
ck.true("cas unique changed", cas2 != cas1, f"{cas1} -> {cas2}")
ck.eq("losing cas (stale unique) -> EXISTS", mc.cas("c", b"three", cas1), False)
ck.eq("value unchanged after losing cas", mc.get("c"), b"two")
ck.raises("cas on missing key -> NOT_FOUND", pylibmc.NotFound,
          lambda: mc.cas("nocas", b"v", cas2))
ck.eq("gets miss", mc.gets("nocas"), (None, None))
mc.append("c", b"!")  # any store changes the unique
ck.eq("cas after append loses", mc.cas("c", b"x", cas2), False)
ck.eq("value after losing cas", mc.get("c"), b"two!")

# --- incr / decr ----------------------------------------------------------------
mc.set("n", b"10")
ck.eq("incr", mc.incr("n", 5), 15)
ck.eq("incr default delta", mc.incr("n"), 16)
ck.eq("decr", mc.decr("n", 6), 10)
ck.eq("decr floors at 0", mc.decr("n", 1000), 0)
ck.eq("incr after floor", mc.incr("n", 3), 3)
ck.eq("value after incr", int(mc.get("n")), 3)
ck.raises("incr miss -> NotFound", pylibmc.NotFound, lambda: mc.incr("nonum", 1))
ck.raises("decr miss -> NotFound", pylibmc.NotFound, lambda: mc.decr("nonum", 1))
# memcached 1.6.18 sometimes calls a value of 2^63 or more non-numeric (it
# appears to look past the value for a minus sign, so the bytes after it in
# memory decide); a long key puts the item in a size class nothing used
# before (fresh, zeroed memory).
wrap_key = "w" * 200
mc.set(wrap_key, b"18446744073709551615")
ck.eq("incr wraps at 2^64", mc.incr(wrap_key, 2), 1)
mc.set("txt", b"abc")
ck.raises("incr non-numeric -> error", pylibmc.Error, lambda: mc.incr("txt", 1))
ck.eq("connection usable after CLIENT_ERROR", mc.get("k2"), b"v2")
ck.eq("incr on int value", mc.incr("i", 8), 50)

# --- add / replace / append / prepend / delete ---------------------------------------
ck.eq("add new", mc.add("a1", b"x"), True)
ck.eq("add existing", mc.add("a1", b"y"), False)
ck.eq("add kept old", mc.get("a1"), b"x")
ck.eq("replace existing", mc.replace("a1", b"r"), True)
ck.eq("replace missing", mc.replace("nope", b"r"), False)
ck.eq("append", mc.append("a1", b"++"), True)
ck.eq("prepend", mc.prepend("a1", b"--"), True)
ck.eq("append/prepend result", mc.get("a1"), b"--r++")
ck.eq("append missing", mc.append("nope", b"x"), False)
ck.eq("prepend missing", mc.prepend("nope", b"x"), False)
ck.eq("nothing stored for missing", mc.get("nope"), None)
ck.eq("delete hit", mc.delete("a1"), True)
ck.eq("delete miss", mc.delete("a1"), False)
ck.eq("deleted is gone", mc.get("a1"), None)
mc.set_multi({"d1": b"1", "d2": b"2"})
ck.eq("delete_multi all present", mc.delete_multi(["d1", "d2"]), True)
ck.eq("delete_multi removed", mc.get_multi(["d1", "d2"]), {})

# --- noreply -------------------------------------------------------------------------
# libmemcached's noreply mode: storage commands are written and no reply is
# read; a stray reply would be taken as the answer to the next get.
for extra in ({}, {"buffer_requests": True}):
    label = "noreply" + ("+buffered" if extra else "")
    nr = pylibmc.Client([server], binary=False,
                        behaviors={"_noreply": True, "tcp_nodelay": True, **timeouts, **extra})
    keys = [f"{label}:{i}" for i in range(200)]
    for i, k in enumerate(keys):
        nr.set(k, f"{i}".encode())
    nr.add(keys[0], b"not stored")  # NOT_STORED, silenced
    nr.replace(f"{label}:missing", b"x")  # NOT_STORED, silenced
    nr.append(keys[1], b"a")
    nr.prepend(keys[1], b"p")
    nr.replace(keys[2], b"replaced")
    want = {k: f"{i}".encode() for i, k in enumerate(keys)}
    want[keys[1]] = b"p1a"
    want[keys[2]] = b"replaced"
    ck.eq(f"{label}: get_multi on the same connection", nr.get_multi(keys + [f"{label}:missing"]),
          want)
    ck.eq(f"{label}: seen by another connection", mc.get_multi(keys), want)
    ck.eq(f"{label}: single get in sync", nr.get(keys[3]), b"3")

# --- binary values ---------------------------------------------------------------------
bkeys = {k.decode(): v for k, v in BINARY_VALUES.items()}
ck.eq("set_multi binary", mc.set_multi(bkeys), [])
ck.eq("get_multi binary", mc.get_multi(list(bkeys)), bkeys)
for k, v in bkeys.items():
    ck.eq(f"binary value {k} (get)", mc.get(k), v)

# --- large values --------------------------------------------------------------------
large = bytes((i * 13 + 1) % 256 for i in range(1024 * 1024 - 1024))
ck.eq("set ~1 MB value", mc.set("large", large), True)
ck.eq("get ~1 MB value", mc.get("large"), large)
ck.eq("get_multi with ~1 MB value", mc.get_multi(["large", "k2"]), {"large": large, "k2": b"v2"})
ck.raises("value over 1 MB refused", (pylibmc.TooBig, pylibmc.ServerError),
          lambda: mc.set("toobig", b"t" * (1024 * 1024 + 1)))
ck.eq("too large value not stored", mc.get("toobig"), None)
ck.eq("connection usable after too large", mc.get("k3"), b"v3")

# --- touch / expiry ------------------------------------------------------------------------
ck.eq("touch hit", mc.touch("k2", 100), True)
ck.eq("touch miss", mc.touch("nope", 100), False)
mc.set("exp:short", b"s", time=2)
mc.set("exp:touched", b"t", time=2)
mc.set("exp:never", b"n", time=0)
mc.set("exp:long", b"l", time=100)
mc.set_multi({"exp:m1": b"1", "exp:m2": b"2"}, time=2)
mc.set("exp:neg", b"x", time=-1)
mc.set("exp:past", b"x", time=int(time.time()) - 10)
ck.eq("negative ttl expires at once", mc.get("exp:neg"), None)
ck.eq("absolute past ttl expires at once", mc.get("exp:past"), None)
ck.eq("short ttl present at first", mc.get_multi(["exp:short", "exp:m1", "exp:m2"]),
      {"exp:short": b"s", "exp:m1": b"1", "exp:m2": b"2"})
ck.eq("touch extends", mc.touch("exp:touched", 100), True)
took = wait_until(lambda: mc.get("exp:short") is None, timeout=5.0)
ck.true("2 s ttl expires within 5 s", took is not None)
ck.true("2 s ttl lives at least ~1 s", took is None or took >= 0.9, f"took {took}")
ck.eq(
    "survivors after expiry",
    mc.get_multi(["exp:short", "exp:touched", "exp:never", "exp:long", "exp:m1", "exp:m2"]),
    {"exp:touched": b"t", "exp:never": b"n", "exp:long": b"l"},
)
ck.eq("add over expired key", mc.add("exp:short", b"again"), True)
ck.raises("incr on expired key -> NotFound", pylibmc.NotFound, lambda: mc.incr("exp:m1", 1))

# --- stats ---------------------------------------------------------------------------
stats = mc.get_stats()
ck.eq("one server in stats", len(stats), 1)
st = stats[0][1] if stats else {}
# libmemcached 1.0's memcached_stat() keeps only its fixed list of names
# (no cas_*); it parses every line, so a malformed one would fail here.
for name in ("pid", "uptime", "curr_items", "total_items", "cmd_get", "cmd_set", "get_hits",
             "get_misses", "threads", "version", "limit_maxbytes", "curr_connections"):
    ck.true(f"stats has {name}", name in st)
ck.true("uptime > 0", int(st.get("uptime", b"0")) > 0, repr(st.get("uptime")))
ck.true("get_hits > 0", int(st.get("get_hits", b"0")) > 0, repr(st.get("get_hits")))
ck.true("cmd_set > 500", int(st.get("cmd_set", b"0")) > 500, repr(st.get("cmd_set")))

# --- flush_all -----------------------------------------------------------------------
ck.eq("flush_all", mc.flush_all(), True)
ck.eq("flush empties", mc.get_multi(["k1", "k2", "large", "many:1"]), {})
ck.eq("store after flush", (mc.set("after", b"f"), mc.get("after")), (True, b"f"))

mc.disconnect_all()
ck.finish()
