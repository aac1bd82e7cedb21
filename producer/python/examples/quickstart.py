#!/usr/bin/env python3
"""quickstart.py — the five caching patterns from Python, sync and asyncio, against the
local services:

    deploy/local/services up                      # Redis, Kafka, PostgreSQL on loopback
    eval "$(deploy/local/services env)"           # WB_* ports for config/wbcache.yaml
    python producer/python/examples/quickstart.py [CONFIG]   # default config/wbcache.yaml

Write-through and read-through misses need the entity tables, which wb-flusher creates at
start (postgres.schema: create): run `build/ci/wb-flusher` (or deploy/local/demo) to see
those too, and the write-behind rows arrive in PostgreSQL.
"""
import asyncio
import logging
import os
import pathlib
import sys
from typing import Any, Dict

import wbcache
from wbcache import aio

REPO = pathlib.Path(__file__).resolve().parents[3]
CONFIG = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "WBCACHE_CONFIG", str(REPO / "config" / "wbcache.yaml"))
# cache-key prefix -> entity, as in the config's entities list
ENTITIES = {"user:": "user", "session:": "session"}


def load_profile() -> Dict[str, Any]:
    """The slow source a cache-aside miss falls back to (here: made up)."""
    return {"id": 44, "name": "Grace", "source": "loader"}


def sync_demo() -> None:
    with wbcache.Client(CONFIG, entities=ENTITIES) as client:
        # Write-behind: Redis now (dirty, pinned), the change event in Kafka (ack LOG: the
        # call returns once Kafka has it), PostgreSQL through wb-flusher.
        users = wbcache.WriteBehind(client, ack=wbcache.Ack.LOG)
        version = users.write("user:42", {"id": 42, "name": "Ada"})
        print(f"write-behind user:42 -> version {version}; read back: {users.get('user:42')}")

        # Cache-aside: one load per key at a time across processes (stampede lock).
        cache = wbcache.CacheAside(client)
        print("cache-aside user:44 ->", cache.get_or_set("user:44", load_profile))

        # Write-through and read-through need the table (wb-flusher creates it).
        try:
            v = wbcache.WriteThrough(client).write("user:43", {"id": 43, "name": "Alan"})
            print(f"write-through user:43 -> version {v} (committed in PostgreSQL)")
            print("read-through user:43 ->", wbcache.ReadThrough(client).get("user:43"))
            # Many keys: one round trip for the lookups, one query for the misses; keys
            # that exist nowhere are not in the dict.
            print("read-through many ->", wbcache.ReadThrough(client).get_many(
                ["user:42", "user:43", "user:404"]))
        except wbcache.PGError as e:
            print(f"write-through: {e} (is wb-flusher running? it creates the tables)")

        # Refresh-ahead needs no call: a hit late in the TTL asks wb-refresher to reload.
        print("refresh-ahead user:42 ->", wbcache.RefreshAhead(client).get("user:42"))

        # Plain calls, text values, errors as exceptions.
        client.put("session", "s1", "token-abc")
        print("session s1 ->", client.get("session", "s1").text())
        try:
            client.get("nosuch", "1")
        except wbcache.UnknownEntity as e:
            print("unknown entity ->", type(e).__name__, e)
        print(client.stats())


async def async_demo() -> None:
    async with aio.Client(CONFIG, entities=ENTITIES) as client:
        async def fetch() -> Dict[str, Any]:  # an async loader runs on this event loop
            await asyncio.sleep(0.01)
            return {"id": 45, "source": "async loader"}
        print("aio cache-aside user:45 ->", await aio.CacheAside(client).get_or_set(
            "user:45", fetch))
        versions = await asyncio.gather(*(client.json.put("user", str(n), {"n": n})
                                          for n in range(100, 110)))
        print(f"aio: 10 concurrent puts -> versions {min(versions)}..{max(versions)}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sync_demo()
    asyncio.run(async_demo())
