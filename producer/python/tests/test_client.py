"""wbcache.Client against the real services: every call, the JSON layer, the errors."""
import asyncio
import threading
import time

import pytest

import wbcache
from wbcache import aio
from wbcache import errors
from wbcache._wbcache import lib

from conftest import ENTITIES, Env, free_port, psql


def test_error_classes_mirror_wb_err_t() -> None:
    for name in dir(lib):
        if name.startswith("WB_ERR_") and name != "WB_ERR__COUNT":
            code = getattr(lib, name)
            assert errors.BY_CODE[code].code == code, name
    assert len(errors.BY_CODE) == lib.WB_ERR__COUNT - 1
    assert issubclass(wbcache.NotFound, LookupError)
    assert issubclass(wbcache.Timeout, TimeoutError)
    assert issubclass(wbcache.InvalidArg, ValueError)


def test_put_get_delete(env: Env, client: wbcache.Client) -> None:
    i = env.id("pgd")
    v1 = client.put("item", i, "hello")
    v2 = client.put("item", i, b"world")
    assert v2 > v1 > 0
    got = client.get("item", i)
    assert got == wbcache.Value(b"world", v2, True)
    assert got.text() == "world"
    v3 = client.delete("item", i)
    assert v3 > v2
    with pytest.raises(wbcache.NotFound, match="not found"):
        client.get("item", i)
    # The flusher applies the delete: the row is soft-deleted at that version.
    env.wait_row(f"{env.tag}_items", i, "")
    assert env.row(f"{env.tag}_items", i) == {"value": "", "version": str(v3), "deleted": "t"}


def test_put_ack_log_is_in_postgres_after_the_flusher(env: Env, client: wbcache.Client) -> None:
    i = env.id("acklog")
    v = client.put("item", i, "durable", ack=wbcache.Ack.LOG)
    row = env.wait_row(f"{env.tag}_items", i, "durable")
    assert row["version"] == str(v)


def test_put_ack_replica_without_a_replica_times_out(env: Env) -> None:
    # The standalone Redis of the tests has no replica: ack REPLICA cannot be confirmed.
    # The write is in the cache all the same and reaches PostgreSQL through the log.
    cfg = env.write_config("replica", producer_extra="  replica_timeout_ms: 200\n")
    i = env.id("ackreplica")
    with wbcache.Client(cfg) as c:
        t0 = time.monotonic()
        with pytest.raises(wbcache.Timeout):
            c.put("item", i, "unconfirmed", ack="replica")
        assert time.monotonic() - t0 >= 0.19
        assert c.stats().put_errors == 1
        assert c.stats().redis_moved == 0
    env.wait_row(f"{env.tag}_items", i, "unconfirmed")


def test_bytes_values_roundtrip(env: Env, client: wbcache.Client) -> None:
    i = env.id("blob")
    data = bytes(range(256)) + b"\0tail"
    client.put("blob", i, data, ack="log")
    assert client.get("blob", i).data == data
    env.wait_row(f"{env.tag}_blobs", i, "\\x" + data.hex())


def test_put_batch(env: Env, client: wbcache.Client) -> None:
    a, b = env.id("ba"), env.id("bb")
    client.put("item", b, "old")
    versions = client.put_batch([("item", a, "A"), ("item", b, None), ("doc", a, '{"n":1}')],
                                ack=wbcache.Ack.LOG)
    assert len(versions) == 3 and versions[0] < versions[1] < versions[2]
    assert client.get("item", a).data == b"A"
    with pytest.raises(wbcache.NotFound):
        client.get("item", b)
    assert client.json.get("doc", a) == {"n": 1}


def test_put_batch_reports_each_write(env: Env, client: wbcache.Client) -> None:
    a, b = env.id("bf1"), env.id("bf2")
    with pytest.raises(wbcache.UnknownEntity) as ei:
        client.put_batch([("item", a, "ok"), ("nosuch", b, "x"), ("item", b, "ok2")])
    results = ei.value.results  # type: ignore[attr-defined]
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], wbcache.UnknownEntity)
    assert "write 1 of 3" in str(ei.value)
    assert client.get("item", a).data == b"ok" and client.get("item", b).data == b"ok2"


def test_put_through_commits_postgres_first(env: Env, client: wbcache.Client) -> None:
    i = env.id("through")
    v = client.put_through("item", i, "committed")
    # No flusher involved: the row is there when the call returns.
    assert env.row(f"{env.tag}_items", i) == {"value": "committed", "version": str(v),
                                               "deleted": "f"}
    assert client.get("item", i) == wbcache.Value(b"committed", v, True)


def test_put_through_stale(env: Env, client: wbcache.Client) -> None:
    i = env.id("stale")
    psql(f"INSERT INTO {env.tag}_items (key, value, version) VALUES ('{i}', 'newer', "
         f"9000000000000000000)")
    with pytest.raises(wbcache.Stale):
        client.put_through("item", i, "older")
    assert env.row(f"{env.tag}_items", i)["value"] == "newer"  # type: ignore[index]


def test_get_reads_through_the_table(env: Env, client: wbcache.Client) -> None:
    i = env.id("rt")
    psql(f"INSERT INTO {env.tag}_items (key, value, version) VALUES ('{i}', 'from-pg', 7)")
    before = client.stats()
    assert client.get("item", i) == wbcache.Value(b"from-pg", 7, False)
    assert client.get("item", i) == wbcache.Value(b"from-pg", 7, True)
    after = client.stats()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 1
    assert after.loads == before.loads + 1
    with pytest.raises(wbcache.NotFound):
        client.get("item", env.id("absent"))


def test_get_or_load(env: Env, client: wbcache.Client) -> None:
    i = env.id("gol")
    calls = []

    def loader(entity: str, id_: str) -> str:
        calls.append((entity, id_))
        return "loaded"
    assert client.get_or_load("item", i, loader) == wbcache.Value(b"loaded", 0, False)
    assert client.get_or_load("item", i, loader).hit
    assert calls == [("item", i)]
    # None: not found, cached negatively (the loader is not asked again).
    j = env.id("gol-none")
    nones = []
    for _ in range(2):
        with pytest.raises(wbcache.NotFound):
            client.get_or_load("item", j, lambda e, k: nones.append(k))
    assert nones == [j]


def test_loader_exception_is_reraised_and_not_cached(env: Env, client: wbcache.Client) -> None:
    i = env.id("golx")

    class Boom(Exception):
        pass

    def bad(entity: str, id_: str) -> str:
        raise Boom("db down")
    with pytest.raises(Boom, match="db down"):
        client.get_or_load("item", i, bad)
    assert client.get_or_load("item", i, lambda e, k: "second try").data == b"second try"


def test_json_layer(env: Env, client: wbcache.Client) -> None:
    i = env.id("json")
    doc = {"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "nested": {"ok": True}}
    v = client.json.put("doc", i, doc, ack="log")
    assert client.json.get("doc", i) == doc
    row = env.wait_row(f"{env.tag}_docs", i, psql(
        "SELECT '{\"name\":\"Zoë\",\"tags\":[\"a\",\"b\"],\"n\":1.5,\"nested\":{\"ok\":true}}'"
        "::jsonb::text")[0][0])
    assert row["version"] == str(v)
    j = env.id("json-through")
    client.json.put_through("doc", j, {"x": [1, 2]})
    assert client.json.get("doc", j) == {"x": [1, 2]}
    k = env.id("json-load")
    assert client.json.get_or_load("doc", k, lambda e, id_: {"loaded": id_}) == {"loaded": k}
    with pytest.raises(ValueError):
        client.json.put("doc", j, {"nan": float("nan")})


def test_refused_value_carries_the_library_reason(env: Env, client: wbcache.Client) -> None:
    i = env.id("refused")
    with pytest.raises(wbcache.InvalidArg, match="write refused, nothing written"):
        client.put("doc", i, "{not json")
    with pytest.raises(wbcache.NotFound):
        client.get("doc", i)


def test_argument_errors(env: Env, client: wbcache.Client) -> None:
    with pytest.raises(wbcache.UnknownEntity):
        client.put("nosuch", env.id("x"), "v")
    with pytest.raises(wbcache.InvalidArg):
        client.put("item", "has{brace}", "v")
    with pytest.raises(wbcache.InvalidArg):
        client.put("item", "", "v")
    with pytest.raises(wbcache.InvalidArg):
        client.put("item", "nul\0id", "v")
    with pytest.raises(wbcache.TooLarge):
        client.put("item", env.id("big"), "x" * 100001)
    with pytest.raises(TypeError):
        client.put("item", env.id("int"), 42)  # type: ignore[arg-type]


def test_config_errors(env: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis:\n  port: not-a-port\n")
    with pytest.raises(wbcache.ConfigError, match="bad.yaml:2"):
        wbcache.Client(str(bad))
    with pytest.raises((wbcache.ConfigError, wbcache.IOFailure)):
        wbcache.Client(str(tmp_path / "missing.yaml"))


def test_redis_down_at_open(env: Env) -> None:
    cfg = env.write_config("noredis", redis_port=str(free_port()))
    with pytest.raises(wbcache.RedisError):
        wbcache.Client(cfg)


def test_postgres_down_on_a_miss(env: Env) -> None:
    cfg = env.write_config(
        "nopg", pg_dsn=f"host=127.0.0.1 port={free_port()} dbname=x user=x password=x")
    with wbcache.Client(cfg) as c:
        with pytest.raises(wbcache.PGError):
            c.get("item", env.id("nopg"))
        with pytest.raises(wbcache.PGError):
            c.put_through("item", env.id("nopg"), "v")


def test_kafka_down_queue_full_and_flush_timeout(env: Env) -> None:
    cfg = env.write_config("nokafka", brokers=f"127.0.0.1:{free_port()}",
                           producer_extra="  queue_max: 2\n  ack: cache\n",
                           kafka_timeout_ms=500)
    lines = []
    with wbcache.Client(cfg, log=lambda lvl, line: lines.append(line)) as c:
        c.put("item", env.id("q1"), "a")
        c.put("item", env.id("q2"), "b")
        with pytest.raises(wbcache.QueueFull):
            c.put("item", env.id("q3"), "c")
        with pytest.raises(wbcache.Timeout):
            c.flush(200)
        assert c.stats().queue_depth >= 2
        c.set_log_level(wbcache.LogLevel.ERROR)


def test_closed(env: Env) -> None:
    c = wbcache.Client(str(env.cfg), entities=ENTITIES)
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(wbcache.Closed):
        c.get("item", "x")
    with pytest.raises(wbcache.Closed):
        c.stats()
    with pytest.raises(wbcache.Closed):
        c.put_batch([("item", "x", "v")])

    async def aio_closed() -> None:
        ac = aio.Client(str(env.cfg))
        await ac.close()
        with pytest.raises(wbcache.Closed):
            await ac.put("item", "x", "v")
    asyncio.run(aio_closed())


def test_log_callback_gets_the_handles_lines(env: Env) -> None:
    lines = []
    threads = set()

    def on_log(level: wbcache.LogLevel, line: str) -> None:
        lines.append((level, line))
        threads.add(threading.current_thread().name)
    with wbcache.Client(str(env.cfg), log=on_log, log_level=wbcache.LogLevel.DEBUG) as c:
        c.put("item", env.id("log"), "v", ack="log")
        with pytest.raises(wbcache.InvalidArg, match="write refused"):
            c.put("doc", env.id("log"), "[1,")
    n = len(lines)
    assert any("write refused" in line for level, line in lines
               if level == wbcache.LogLevel.WARN)
    assert all(isinstance(level, wbcache.LogLevel) for level, _ in lines)
    assert "MainThread" in threads
    time.sleep(0.3)
    assert len(lines) == n  # nothing after close returned


def test_stats(env: Env, client: wbcache.Client) -> None:
    s0 = client.stats()
    i = env.id("stats")
    client.put("item", i, "v")
    client.get("item", i)
    client.put_through("item", env.id("stats-t"), "w")
    s1 = client.stats()
    assert s1.puts == s0.puts + 1
    assert s1.hits == s0.hits + 1
    assert s1.through_writes == s0.through_writes + 1


def test_resolve_longest_prefix(env: Env, client: wbcache.Client) -> None:
    assert client.resolve("pyi:42") == ("item", "42")
    assert client.resolve("pyx:42") == ("itemx", "42")
    # The config refuses overlapping prefixes; resolve still takes the longest match.
    with wbcache.Client(str(env.cfg), entities={"pyi:": "item", "pyi:x:": "itemx"}) as c:
        assert c.resolve("pyi:x:42") == ("itemx", "42")
        assert c.resolve("pyi:42") == ("item", "42")
    assert client.resolve("pyd:a:b") == ("doc", "a:b")
    with pytest.raises(wbcache.UnknownEntity):
        client.resolve("user:42")
    with pytest.raises(wbcache.UnknownEntity):
        client.resolve("pyi:")


def test_empty_value(env: Env, client: wbcache.Client) -> None:
    i = env.id("empty")
    v = client.put("item", i, b"", ack="log")
    assert client.get("item", i) == wbcache.Value(b"", v, True)
    with pytest.raises(wbcache.InvalidArg):
        client.put("doc", i, "")  # an empty value is not JSON
