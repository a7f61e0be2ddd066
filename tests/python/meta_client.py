"""Drives a memcached-compatible server with meta-memcache (RevenueCat's
meta protocol client, PyPI `meta-memcache`).

usage: python3 meta_client.py PORT

Covers get/set/delete, set modes (add/replace/append/prepend), cas writes
(winning and losing), touch, counters (delta, delta_initialize_and_get),
multi_get, stale-while-revalidate (delete marks stale, one client wins the
recache, the others keep the stale value; cas mismatch stored as stale),
recache policy (TTL under the threshold: one winner), leases (a miss
creates an empty placeholder, one winner, the others wait and see the
value once written) and raw meta commands with flags. Exits non-zero on
any mismatch.
"""

import uuid

from _check import Checker, port_from_argv
from meta_memcache import (
    CacheClient,
    Key,
    LeasePolicy,
    RecachePolicy,
    RequestFlags,
    ServerAddress,
    SetMode,
    StalePolicy,
    Success,
    Value,
    Miss,
    connection_pool_factory_builder,
)

port = port_from_argv()
ck = Checker("meta-memcache")


def new_client():
    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host="127.0.0.1", port=port)],
        connection_pool_factory_fn=connection_pool_factory_builder(
            connection_timeout=5, recv_timeout=5
        ),
    )


c1 = new_client()
c2 = new_client()
run = uuid.uuid4().hex[:8]


def k(name):
    return f"{run}-{name}"


# --- get / set / delete ----------------------------------------------------
ck.eq("get miss", c1.get(k("a")), None)
ck.eq("set", c1.set(k("a"), "hello", ttl=100), True)
ck.eq("get hit", c1.get(k("a")), "hello")
ck.eq("get from other client", c2.get(k("a")), "hello")
ck.eq("set bytes", c1.set(k("b"), b"\x00\xffbin", ttl=0), True)
ck.eq("get bytes", c1.get(k("b")), b"\x00\xffbin")
ck.eq("set int", c1.set(k("i"), 42, ttl=0), True)
ck.eq("get int", c1.get(k("i")), 42)
ck.eq("set dict", c1.set(k("d"), {"x": [1, 2]}, ttl=0), True)
ck.eq("get dict", c1.get(k("d")), {"x": [1, 2]})
big = "v" * 200_000
ck.eq("set big", c1.set(k("big"), big, ttl=0), True)
ck.eq("get big", c1.get(k("big")), big)
ck.eq("delete hit", c1.delete(k("a")), True)
ck.eq("delete miss", c1.delete(k("a")), False)
ck.eq("invalidate miss", c1.invalidate(k("a")), True)
ck.eq("get after delete", c1.get(k("a")), None)
ck.eq("no_reply set", c1.set(k("nr"), "q", ttl=0, no_reply=True), True)
ck.eq("get after no_reply set", c1.get(k("nr")), "q")

# --- modes ------------------------------------------------------------------
ck.eq("add new", c1.set(k("m"), "1", ttl=0, set_mode=SetMode.ADD), True)
ck.eq("add existing", c1.set(k("m"), "2", ttl=0, set_mode=SetMode.ADD), False)
ck.eq("replace missing", c1.set(k("nm"), "x", ttl=0, set_mode=SetMode.REPLACE), False)
ck.eq("replace existing", c1.set(k("m"), "3", ttl=0, set_mode=SetMode.REPLACE), True)
ck.eq("get replaced", c1.get(k("m")), "3")
ck.eq("refill existing", c1.refill(k("m"), "4", ttl=0), False)
ck.eq("refill missing", c1.refill(k("rf"), "4", ttl=0), True)
ck.eq("get refilled", c1.get(k("rf")), "4")

# --- cas --------------------------------------------------------------------
val, cas = c1.get_or_lease_cas(
    k("m"), lease_policy=LeasePolicy(miss_retries=1, miss_retry_wait=0.01)
)
ck.eq("get cas value", val, "3")
ck.true("cas token", isinstance(cas, int) and cas > 0, f"{cas!r}")
ck.eq("cas write wins", c1.set(k("m"), "5", ttl=0, cas_token=cas), True)
ck.eq("cas write loses", c1.set(k("m"), "6", ttl=0, cas_token=cas), False)
ck.eq("value after cas", c1.get(k("m")), "5")
new_cas = c1.set_cas(k("m"), "7", ttl=0)
ck.true("set_cas returns a token", isinstance(new_cas, int) and new_cas > cas)
ck.eq("delete with wrong cas", c1.delete(k("m"), cas_token=cas), False)
ck.eq("delete with right cas", c1.delete(k("m"), cas_token=new_cas), True)

# --- touch ------------------------------------------------------------------
c1.set(k("t"), "x", ttl=0)
ck.eq("touch hit", c1.touch(k("t"), ttl=500), True)
ck.eq("touch miss", c1.touch(k("nt"), ttl=500), False)
r = c1.meta_get(Key(k("t")), flags=RequestFlags(return_ttl=True))
ck.true("ttl after touch", isinstance(r, Success) and 498 <= r.flags.ttl <= 500, f"{r!r}")

# --- counters ---------------------------------------------------------------
ck.eq("delta miss", c1.delta(k("n"), 5), False)
ck.eq("delta_initialize_and_get", c1.delta_initialize_and_get(k("n"), 5, 10, 100), 10)
ck.eq("delta_and_get", c1.delta_and_get(k("n"), 5), 15)
ck.eq("delta", c1.delta(k("n"), -3), True)
ck.eq("delta_and_get after decrement", c1.delta_and_get(k("n"), 0), 12)

# --- multi_get ----------------------------------------------------------------
c1.set(k("x1"), "one", ttl=0)
c1.set(k("x2"), "two", ttl=0)
got = c1.multi_get([k("x1"), k("x2"), k("x3")])
ck.eq(
    "multi_get",
    {key.key if hasattr(key, "key") else key: v for key, v in got.items()},
    {k("x1"): "one", k("x2"): "two", k("x3"): None},
)

# --- stale-while-revalidate ---------------------------------------------------
stale = StalePolicy(mark_stale_on_deletion_ttl=30, mark_stale_on_cas_mismatch=True)
c1.set(k("s"), "old", ttl=0)
ck.eq("delete marks stale", c1.delete(k("s"), stale_policy=stale), True)
first = c1.meta_get(
    Key(k("s")), flags=RequestFlags(return_value=True, return_cas_token=True)
)
ck.true(
    "first reader of a stale item wins",
    isinstance(first, Value) and first.flags.win is True and first.flags.stale is True,
    f"{first!r}",
)
second = c2.meta_get(Key(k("s")), flags=RequestFlags(return_value=True))
ck.true(
    "second reader loses and keeps the stale value",
    isinstance(second, Value)
    and second.flags.win is False
    and second.flags.stale is True
    and second.value == "old",
    f"{second!r}",
)
# high level get: stale winner sees a miss, losers see the stale value
ck.eq("high-level get by a loser returns stale data", c2.get(k("s")), "old")
ck.eq("winner writes back", c1.set(k("s"), "new", ttl=0, cas_token=first.flags.cas_token), True)
ck.eq("fresh value after recache", c2.get(k("s")), "new")
# cas mismatch stored as stale under the policy
c1.set(k("s2"), "a", ttl=0)
_, cas_a = c1.get_or_lease_cas(k("s2"), lease_policy=LeasePolicy(miss_retries=1))
c1.set(k("s2"), "b", ttl=0)
ck.eq(
    "late cas write stored as stale",
    c1.set(k("s2"), "late", ttl=0, cas_token=cas_a, stale_policy=stale),
    True,
)
r = c1.meta_get(Key(k("s2")), flags=RequestFlags(return_value=True))
ck.true("stale copy marked", isinstance(r, Value) and r.flags.stale is True, f"{r!r}")

# --- recache policy -----------------------------------------------------------
c1.set(k("rc"), "val", ttl=10)
won = c1.meta_get(
    Key(k("rc")), flags=RequestFlags(return_value=True, recache_ttl=30)
)
ck.true("recache winner", isinstance(won, Value) and won.flags.win is True, f"{won!r}")
lost = c2.meta_get(
    Key(k("rc")), flags=RequestFlags(return_value=True, recache_ttl=30)
)
ck.true(
    "recache loser",
    isinstance(lost, Value) and lost.flags.win is False and lost.value == "val",
    f"{lost!r}",
)
ck.eq(
    "high-level get with recache policy (loser keeps value)",
    c2.get(k("rc"), recache_policy=RecachePolicy(ttl=30)),
    "val",
)

# --- leases -------------------------------------------------------------------
lease = LeasePolicy(ttl=30, miss_retries=2, miss_retry_wait=0.01, miss_max_retry_wait=0.02)
ck.eq("lease winner gets a miss", c1.get_or_lease(k("l"), lease_policy=lease), None)
raw = c2.meta_get(
    Key(k("l")), flags=RequestFlags(return_value=True, vivify_on_miss_ttl=30)
)
ck.true(
    "lease loser sees the placeholder without a win",
    isinstance(raw, Value) and raw.flags.win is False and raw.size == 0,
    f"{raw!r}",
)
ck.eq("loser gives up after retries", c2.get_or_lease(k("l"), lease_policy=lease), None)
ck.eq("winner fills", c1.set(k("l"), "filled", ttl=0), True)
ck.eq("after fill every client reads it", c2.get_or_lease(k("l"), lease_policy=lease), "filled")

# --- raw meta commands ---------------------------------------------------------
r = c1.meta_set(Key(k("raw")), "v", flags=RequestFlags(cache_ttl=0, client_flag=0, opaque=b"42", return_cas_token=True))
ck.true("meta_set opaque and cas", isinstance(r, Success) and r.flags.opaque == b"42" and (r.flags.cas_token or 0) > 0, f"{r!r}")
r = c1.meta_get(Key(k("raw")), flags=RequestFlags(return_value=True, return_size=True, return_last_access=True, return_fetched=True, opaque=b"7"))
ck.true("meta_get size/fetched/opaque", isinstance(r, Value) and r.flags.opaque == b"7" and r.flags.fetched is False, f"{r!r}")
r = c1.meta_get(Key(k("raw")), flags=RequestFlags(return_fetched=True))
ck.true("hit-before after a read", isinstance(r, Success) and r.flags.fetched is True, f"{r!r}")
r = c1.meta_get(Key(k("nope")), flags=RequestFlags(return_value=True))
ck.true("meta_get miss", isinstance(r, Miss), f"{r!r}")
r = c1.meta_delete(Key(k("nope")), flags=RequestFlags())
ck.true("meta_delete miss", isinstance(r, Miss), f"{r!r}")

ck.finish()
