"""The five pattern classes, sync and asyncio, by full cache key."""
import asyncio
import json
import time

import pytest

import wbcache
from wbcache import aio

from conftest import ENTITIES, Env, psql


def test_cache_aside_get_or_set(env: Env, client: wbcache.Client) -> None:
    cache = wbcache.CacheAside(client)
    key = "pyd:" + env.id("ca")
    calls = []

    def fetch() -> dict:
        calls.append(1)
        return {"id": 42, "name": "Ada"}
    assert cache.get_or_set(key, fetch) == {"id": 42, "name": "Ada"}
    assert cache.get_or_set(key, fetch) == {"id": 42, "name": "Ada"}
    assert len(calls) == 1
    assert cache.get_or_set("pyd:" + env.id("ca-none"), lambda: None) is None
    with pytest.warns(UserWarning, match="ttl"):
        cache.get_or_set(key, fetch, ttl=300)
    raw = cache.get_or_set("pyi:" + env.id("ca-raw"), lambda: "text", serialize=None,
                           deserialize=None)
    assert raw == b"text"


def test_read_through(env: Env, client: wbcache.Client) -> None:
    i = env.id("rt")
    psql(f"INSERT INTO {env.tag}_docs (key, value, version) VALUES ('{i}', '{{\"a\": 1}}', 3)")
    rt = wbcache.ReadThrough(client)
    assert rt.get("pyd:" + i) == {"a": 1}
    assert rt.get("pyd:" + env.id("rt-absent")) is None


def test_write_through(env: Env, client: wbcache.Client) -> None:
    wt = wbcache.WriteThrough(client)
    i = env.id("wt")
    v = wt.write("pyd:" + i, {"b": [1, 2]})
    assert env.row(f"{env.tag}_docs", i) == {"value": '{"b": [1, 2]}', "version": str(v),
                                              "deleted": "f"}
    assert wt.get("pyd:" + i) == {"b": [1, 2]}


def test_write_behind(env: Env, client: wbcache.Client) -> None:
    wb = wbcache.WriteBehind(client, ack=wbcache.Ack.LOG)
    i = env.id("wb")
    v = wb.write("pyd:" + i, {"c": True})
    assert wb.get("pyd:" + i) == {"c": True}
    wb.flush()
    assert env.wait_row(f"{env.tag}_docs", i, '{"c": true}')["version"] == str(v)
    v2 = wb.delete("pyd:" + i)
    assert v2 > v and wb.get("pyd:" + i) is None
    # The key goes to its prefix's entity's table.
    wbt = wbcache.WriteBehind(client, ack="log", serialize=None)
    j = env.id("wbx")
    wbt.write("pyx:" + j, "by prefix")
    env.wait_row(f"{env.tag}_itemx", j, "by prefix")
    assert env.row(f"{env.tag}_items", j) is None


def test_refresh_ahead_asks_for_a_reload_late_in_the_ttl(env: Env,
                                                        client: wbcache.Client) -> None:
    ra = wbcache.RefreshAhead(client, serialize=None, deserialize=bytes.decode)
    i = env.id("ra")
    client.put_through("hot", i, "fresh")  # clean, ttl 2 s, refresh_ahead 0.5
    s0 = client.stats()
    assert ra.get("pyh:" + i) == "fresh"
    assert client.stats().refresh_requests == s0.refresh_requests
    time.sleep(1.2)
    assert ra.get("pyh:" + i) == "fresh"  # served at once, refresh requested
    assert client.stats().refresh_requests == s0.refresh_requests + 1
    j = env.id("ra-fetch")
    assert ra.get("pyh:" + j, lambda: "from fetch") == "from fetch"


def test_patterns_async(env: Env) -> None:
    async def main() -> None:
        async with aio.Client(str(env.cfg), entities=ENTITIES) as c:
            i = env.id("apat")

            async def fetch() -> dict:
                await asyncio.sleep(0.01)
                return {"async": True}
            assert await aio.CacheAside(c).get_or_set("pyd:" + i, fetch) == {"async": True}
            assert await aio.CacheAside(c).get_or_set("pyd:" + i, lambda: {"no": 1}) == {
                "async": True}
            v = await aio.WriteThrough(c).write("pyd:" + i + "t", [1])
            assert v > 0 and await aio.ReadThrough(c).get("pyd:" + i + "t") == [1]
            wb = aio.WriteBehind(c, ack="log")
            await wb.write("pyd:" + i + "b", {"x": 1})
            assert await wb.get("pyd:" + i + "b") == {"x": 1}
            await wb.flush()
            await wb.delete("pyd:" + i + "b")
            assert await wb.get("pyd:" + i + "b") is None
            ra = aio.RefreshAhead(c)
            assert await ra.get("pyd:" + i) == {"async": True}
            assert await ra.get("pyd:" + i + "r", fetch) == {"async": True}
            assert await c.json.get("doc", i) == {"async": True}
            assert json.loads((await c.get("doc", i)).data) == {"async": True}
    asyncio.run(main())
