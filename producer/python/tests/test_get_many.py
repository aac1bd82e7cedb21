"""get_many (wb_get_many): sync, JSON, asyncio, ReadThrough by cache key, and threads
reading overlapping ids (each key loaded once)."""
import asyncio
import threading
import time
from typing import Dict, List

import pytest

import wbcache
from wbcache import aio

from conftest import ENTITIES, Env, free_port, psql


def insert_rows(env: Env, table: str, rows: Dict[str, str], version: int = 7) -> None:
    values = ", ".join(f"('{k}', '{v}', {version})" for k, v in rows.items())
    psql(f"INSERT INTO {env.tag}_{table} (key, value, version) VALUES {values}")


def test_get_many_hits_misses_and_not_found(env: Env, client: wbcache.Client) -> None:
    hit, miss, absent, deleted = (env.id(n) for n in ("gm-hit", "gm-miss", "gm-absent",
                                                       "gm-deleted"))
    v_hit = client.put("item", hit, "in the cache")
    insert_rows(env, "items", {miss: "from-pg"})
    client.put("item", deleted, "soon gone")
    client.delete("item", deleted)
    s0 = client.stats()
    got = client.get_many("item", [miss, absent, hit, deleted, hit])
    # Found ids only, in the order of ids; absent and deleted ones are not in the dict.
    assert list(got) == [miss, hit]
    assert got[hit] == wbcache.Value(b"in the cache", v_hit, True)
    assert got[miss] == wbcache.Value(b"from-pg", 7, False)
    s1 = client.stats()
    assert s1.loads == s0.loads + 2  # miss and absent: one table query, 2 keys
    # Now all four are cached (absent negatively): nothing read from the table.
    again = client.get_many("item", iter([hit, miss, absent, deleted]))
    assert again == {hit: got[hit], miss: wbcache.Value(b"from-pg", 7, True)}
    assert client.stats().loads == s1.loads
    with pytest.raises(wbcache.NotFound):
        client.get("item", absent)  # get agrees
    assert client.get_many("item", []) == {}


def test_get_many_errors(env: Env, client: wbcache.Client) -> None:
    ok, absent = env.id("gm-ok"), env.id("gm-none")
    client.put("item", ok, "fine")
    # A malformed id fails alone: the others are read, the call raises with .results.
    with pytest.raises(wbcache.InvalidArg, match=r"id 1 of 3 \('bad\{x\}'\)") as ei:
        client.get_many("item", [ok, "bad{x}", absent])
    results = ei.value.results  # type: ignore[attr-defined]
    assert list(results) == [ok, "bad{x}", absent]
    assert results[ok].data == b"fine" and results[absent] is None
    assert isinstance(results["bad{x}"], wbcache.InvalidArg)
    # Whole-call errors: nothing read, no .results.
    with pytest.raises(wbcache.UnknownEntity) as eu:
        client.get_many("nosuch", [ok])
    assert not hasattr(eu.value, "results")
    with pytest.raises(wbcache.InvalidArg):
        client.get_many("item", [ok, "nul\0id"])
    with pytest.raises(TypeError):
        client.get_many("item", [ok, 42])  # type: ignore[list-item]


def test_get_many_postgres_down_fails_the_misses_only(env: Env, client: wbcache.Client) -> None:
    cached, miss = env.id("gm-cached"), env.id("gm-nopg")
    v = client.put("item", cached, "cached")
    cfg = env.write_config(
        "gm-nopg", pg_dsn=f"host=127.0.0.1 port={free_port()} dbname=x user=x password=x")
    with wbcache.Client(cfg) as c:
        with pytest.raises(wbcache.PGError) as ei:
            c.get_many("item", [cached, miss])
    results = ei.value.results  # type: ignore[attr-defined]
    assert results[cached] == wbcache.Value(b"cached", v, True)
    assert isinstance(results[miss], wbcache.PGError)
    # Nothing was cached for the failed id: a working client reads it from the table.
    s0 = client.stats()
    assert client.get_many("item", [miss]) == {}
    assert client.stats().loads == s0.loads + 1


def test_get_many_json(env: Env, client: wbcache.Client) -> None:
    a, b, c = env.id("gmj-a"), env.id("gmj-b"), env.id("gmj-c")
    client.json.put("doc", a, {"name": "Zoë", "n": [1, 2]})
    insert_rows(env, "docs", {b: '{"from": "pg"}'})
    assert client.json.get_many("doc", [a, b, c]) == {a: {"name": "Zoë", "n": [1, 2]},
                                                       b: {"from": "pg"}}


def test_read_through_get_many_by_key(env: Env, client: wbcache.Client) -> None:
    i, x, d, gone = env.id("rtm-i"), env.id("rtm-x"), env.id("rtm-d"), env.id("rtm-gone")
    insert_rows(env, "items", {i: '"item"'})
    insert_rows(env, "itemx", {x: '"itemx"'})
    insert_rows(env, "docs", {d: '{"doc": 1}'})
    rt = wbcache.ReadThrough(client)
    keys = ["pyd:" + d, "pyi:" + i, "pyi:" + gone, "pyx:" + x, "pyd:" + d]
    s0 = client.stats()
    assert rt.get_many(keys) == {"pyd:" + d: {"doc": 1}, "pyi:" + i: "item",
                                 "pyx:" + x: "itemx"}
    assert list(rt.get_many(keys)) == ["pyd:" + d, "pyi:" + i, "pyx:" + x]
    assert client.stats().loads == s0.loads + 4  # each key once, the repeated one too
    with pytest.raises(wbcache.UnknownEntity):
        rt.get_many(["pyi:" + i, "user:1"])
    with pytest.raises(wbcache.InvalidArg) as ei:
        rt.get_many(["pyi:" + i, "pyi:bad{x}"])
    assert list(ei.value.results) == ["pyi:" + i, "pyi:bad{x}"]  # type: ignore[attr-defined]


def test_get_many_asyncio(env: Env) -> None:
    a, b, absent = env.id("gma-a"), env.id("gma-b"), env.id("gma-absent")
    insert_rows(env, "items", {b: "from-pg"})
    insert_rows(env, "docs", {b: '{"b": 2}'})

    async def main() -> None:
        async with aio.Client(str(env.cfg), entities=ENTITIES) as c:
            va = await c.put("item", a, "A")
            await c.json.put("doc", a, {"a": 1})
            got = await c.get_many("item", (k for k in [a, b, absent]))
            assert got == {a: wbcache.Value(b"A", va, True),
                           b: wbcache.Value(b"from-pg", 7, False)}
            assert await c.json.get_many("doc", [a, b, absent]) == {a: {"a": 1}, b: {"b": 2}}
            rt = aio.ReadThrough(c, deserialize=None)
            assert await rt.get_many(["pyi:" + a, "pyd:" + b, "pyd:" + absent]) == {
                "pyi:" + a: b"A", "pyd:" + b: b'{"b": 2}'}
            with pytest.raises(wbcache.InvalidArg) as ei:
                await c.get_many("item", [a, "bad{x}"])
            assert ei.value.results[a].data == b"A"  # type: ignore[attr-defined]
    asyncio.run(main())


def test_get_many_waits_for_another_loader(env: Env, client: wbcache.Client) -> None:
    """A key another thread is loading is waited for inside C (GIL released: the loader,
    Python code, runs meanwhile) and served from its fill, not read again."""
    k, other = env.id("gmw-k"), env.id("gmw-other")
    insert_rows(env, "items", {other: "row"})
    loading = threading.Event()

    def slow(entity: str, id_: str) -> str:
        loading.set()
        time.sleep(0.5)
        return "by the loader"
    t = threading.Thread(target=client.get_or_load, args=("item", k, slow))
    t.start()
    assert loading.wait(10)
    s0 = client.stats()
    got = client.get_many("item", [k, other])
    t.join()
    assert got == {k: wbcache.Value(b"by the loader", 0, True),
                   other: wbcache.Value(b"row", 7, False)}
    assert client.stats().loads == s0.loads + 2  # other by get_many, k by the loader


def test_threads_overlapping_get_many_load_each_key_once(env: Env,
                                                         client: wbcache.Client) -> None:
    """24 threads read overlapping windows of 200 rows at once: every key is read from the
    table once (stats loads), every thread gets every row of its window."""
    nthreads, nrows, window, step = 24, 200, 50, 6
    base = env.id("gmt")
    rows = {f"{base}-{n}": f"row {n}" for n in range(nrows)}
    psql(f"INSERT INTO {env.tag}_items (key, value, version) SELECT '{base}-' || n, "
         f"'row ' || n, 7 FROM generate_series(0, {nrows - 1}) n")
    keys = list(rows)
    windows = [[keys[(t * step + j) % nrows] for j in range(window)] for t in range(nthreads)]
    distinct = set().union(*windows)
    assert len(distinct) == nthreads * step + window - step  # overlapping, not all 200
    barrier = threading.Barrier(nthreads)
    results: List[Dict[str, wbcache.Value]] = [{} for _ in range(nthreads)]
    failures: List[BaseException] = []

    def reader(t: int) -> None:
        try:
            barrier.wait()
            results[t] = client.get_many("item", windows[t])
        except BaseException as e:  # noqa: BLE001
            failures.append(e)
    s0 = client.stats()
    threads = [threading.Thread(target=reader, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    assert client.stats().loads - s0.loads == len(distinct)
    for t in range(nthreads):
        assert {k: v.data.decode() for k, v in results[t].items()} == {
            k: rows[k] for k in windows[t]}
    # One thread read each key from the table; every other answer was a hit.
    loaded = [k for r in results for k, v in r.items() if not v.hit]
    assert sorted(loaded) == sorted(distinct)
