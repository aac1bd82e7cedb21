#!/usr/bin/env python3
"""bench_python.py — what a put / get costs from Python, measured in one run next to the
same calls from C and to plain redis-py SET / GET, sync and asyncio.

    bench_python.py --config CONFIG --bench-put BENCH_PUT [--entity session] [--ops N]
                    [--keys K] [--concurrency C] [--rows FILE]

Run by tests/bench/run (section "python": a venv with the package and redis-py); standalone
from a venv holding both (pip install ./producer/python redis) against running services,
with BENCH_PUT built as tests/bench/run builds it. Every figure is one client, 200-byte
values, keys uniform over K ids, ack cache, all gets hits:

* C: ``bench_put put|get CONFIG ENTITY N K 1 ...`` (one thread, one call at a time);
* Python sync: ``Client.put`` / ``Client.get`` in a loop on one thread;
* Python asyncio: ``await aio.Client.put`` one at a time (latency), and C tasks at once
  (throughput);
* redis-py: ``Redis.set`` / ``Redis.get`` on one connection, and ``redis.asyncio`` likewise.

Every figure is the median of --rounds rounds (each measures all of them once). Prints a
table (ops/s, p50 and p99 per call in ms, ratios) and, with --rows, appends
tests/bench/run's rows.tsv lines (section python).
"""
import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Awaitable, Callable, Dict, List, Tuple

import redis
import redis.asyncio as aredis

import wbcache
from wbcache import aio

VALUE = b"p" * 200
Result = Dict[str, float]


def summarize(lat_ns: List[int], secs: float) -> Result:
    lat = sorted(lat_ns)
    n = len(lat)

    def q(p: float) -> float:
        return lat[min(n - 1, max(0, int(p * n + 0.999999) - 1))] / 1e6
    return {"ops": n / secs, "p50": q(0.5), "p99": q(0.99)}


def timed(n: int, keys: int, call: Callable[[str], object]) -> Result:
    warm = min(n // 10, 2000)
    ids = [f"p{(i * 7919) % keys}" for i in range(n + warm)]
    for i in range(warm):
        call(ids[i])
    lat = []
    t0 = time.perf_counter()
    for i in range(warm, warm + n):
        s = time.perf_counter_ns()
        call(ids[i])
        lat.append(time.perf_counter_ns() - s)
    return summarize(lat, time.perf_counter() - t0)


async def atimed(n: int, keys: int, call: Callable[[str], Awaitable[object]],
                 conc: int = 1) -> Result:
    """n awaited calls, conc tasks at a time (each task one call after another)."""
    warm = min(n // 10, 2000)
    ids = [f"p{(i * 7919) % keys}" for i in range(n + warm)]
    for i in range(warm):
        await call(ids[i])
    lat: List[int] = []
    nxt = warm

    async def worker() -> None:
        nonlocal nxt
        while nxt < warm + n:
            i = nxt
            nxt += 1
            s = time.perf_counter_ns()
            await call(ids[i])
            lat.append(time.perf_counter_ns() - s)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return summarize(lat, time.perf_counter() - t0)


def c_bench(tool: str, mode: str, config: str, entity: str, n: int, keys: int) -> Result:
    with tempfile.NamedTemporaryFile(suffix=".cdf") as cdf:
        args = [tool, mode, config, entity, str(n), str(keys), "1"]
        args += ["1", "cache", cdf.name] if mode == "put" else [cdf.name]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    m = dict(re.findall(r"(\w+(?:/s)?)=([0-9.]+)", out))
    return {"ops": float(m["ops/s"]), "p50": float(m["p50"]), "p99": float(m["p99"])}


def one_round(a: argparse.Namespace) -> Dict[str, Result]:
    """Every figure once: C, Python sync, redis-py, then asyncio, one after another."""
    n, k, ent = a.ops, a.keys, a.entity
    host, port = a.redis_host, a.redis_port
    R: Dict[str, Result] = {}
    R["c_put"] = c_bench(a.bench_put, "put", a.config, ent, n, k)
    R["c_get"] = c_bench(a.bench_put, "get", a.config, ent, n, k)
    with wbcache.Client(a.config) as c:
        R["py_put"] = timed(n, k, lambda i: c.put(ent, i, VALUE, ack=wbcache.Ack.CACHE))
        R["py_get"] = timed(n, k, lambda i: c.get(ent, i))
        c.flush(30000)
    r = redis.Redis(host=host, port=port)
    R["redis_set"] = timed(n, k, lambda i: r.set("pybench:" + i, VALUE))
    R["redis_get"] = timed(n, k, lambda i: r.get("pybench:" + i))
    r.close()

    async def async_part() -> None:
        async with aio.Client(a.config, max_workers=a.concurrency) as ac:
            R["aio_put"] = await atimed(n, k, lambda i: ac.put(ent, i, VALUE, ack="cache"))
            R["aio_get"] = await atimed(n, k, lambda i: ac.get(ent, i))
            R["aio_put_c"] = await atimed(n, k, lambda i: ac.put(ent, i, VALUE, ack="cache"),
                                          a.concurrency)
            R["aio_get_c"] = await atimed(n, k, lambda i: ac.get(ent, i), a.concurrency)
            await ac.flush(30000)
        ar = aredis.Redis(host=host, port=port, max_connections=a.concurrency + 1)
        R["aredis_set"] = await atimed(n, k, lambda i: ar.set("pybench:" + i, VALUE))
        R["aredis_get"] = await atimed(n, k, lambda i: ar.get("pybench:" + i))
        R["aredis_set_c"] = await atimed(n, k, lambda i: ar.set("pybench:" + i, VALUE),
                                         a.concurrency)
        R["aredis_get_c"] = await atimed(n, k, lambda i: ar.get("pybench:" + i),
                                         a.concurrency)
        await ar.aclose() if hasattr(ar, "aclose") else await ar.close()
    asyncio.run(async_part())
    redis.Redis(host=host, port=port).delete(*[f"pybench:p{i}" for i in range(k)])
    return R


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--bench-put", required=True, help="the bench_put binary")
    ap.add_argument("--entity", default="session")
    ap.add_argument("--ops", type=int, default=20000, help="calls per figure and round")
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3,
                    help="every figure is the median of this many rounds (the machine may be "
                         "shared: a round measures every figure once, so a busy spell hits all)")
    ap.add_argument("--redis-host", default=os.environ.get("WB_REDIS_HOST", "127.0.0.1"))
    ap.add_argument("--redis-port", type=int, default=int(os.environ.get("WB_REDIS_PORT", 26370)),
                    help="the Redis of the config, for redis-py (default $WB_REDIS_PORT)")
    ap.add_argument("--rows", help="append tests/bench/run rows (TSV) to this file")
    a = ap.parse_args()
    n, k, ent = a.ops, a.keys, a.entity
    rounds = [one_round(a) for _ in range(a.rounds)]
    R = {fig: {m: statistics.median(r[fig][m] for r in rounds) for m in rounds[0][fig]}
         for fig in rounds[0]}

    C = a.concurrency
    # (id, what, figure, baseline id, baseline name)
    table: List[Tuple[str, str, str, str, str]] = [
        ("py_put", "Python Client.put", "py_put", "c_put", "C wb_put"),
        ("py_get", "Python Client.get", "py_get", "c_get", "C wb_get"),
        ("py_put_vs_redis", "Python Client.put", "py_put", "redis_set", "redis-py SET"),
        ("py_get_vs_redis", "Python Client.get", "py_get", "redis_get", "redis-py GET"),
        ("aio_put", "asyncio put, one at a time", "aio_put", "c_put", "C wb_put"),
        ("aio_get", "asyncio get, one at a time", "aio_get", "c_get", "C wb_get"),
        ("aio_put_vs_redis", "asyncio put, one at a time", "aio_put", "aredis_set",
         "redis.asyncio SET"),
        ("aio_get_vs_redis", "asyncio get, one at a time", "aio_get", "aredis_get",
         "redis.asyncio GET"),
        ("aio_put_c", f"asyncio put, {C} tasks", "aio_put_c", "aredis_set_c",
         f"redis.asyncio SET, {C} tasks"),
        ("aio_get_c", f"asyncio get, {C} tasks", "aio_get_c", "aredis_get_c",
         f"redis.asyncio GET, {C} tasks"),
    ]
    print(f"{n} calls per figure, median of {a.rounds} rounds, {k} keys, 200-byte values, "
          f"ack cache, entity {ent}")
    print(f"{'figure':44} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}   baseline"
          f"{'':31} {'ops/s':>9} {'p50 ms':>8}   p50 ratio  ops ratio")
    rows = []
    for rid, what, fig, base, bname in table:
        f, b = R[fig], R[base]
        p50r, opsr = f["p50"] / b["p50"], f["ops"] / b["ops"]
        print(f"{what:44} {f['ops']:9.0f} {f['p50']:8.4f} {f['p99']:8.4f}   {bname:39} "
              f"{b['ops']:9.0f} {b['p50']:8.4f}   {p50r:9.2f}  {opsr:9.2f}")
        rows.append(f"python\tpython.{rid}.p50\t{what}: p50 per call\t{f['p50']:.4f}\tms\t"
                    f"{bname} p50\t{b['p50']:.4f}\t{p50r:.3f}\tmedian of {a.rounds} x {n} calls, 200 B, "
                    f"ack cache; p99 {f['p99']:.4f} ms vs {b['p99']:.4f} ms")
        rows.append(f"python\tpython.{rid}.ops\t{what}: ops/s\t{f['ops']:.0f}\tops/s\t"
                    f"{bname}\t{b['ops']:.0f}\t{opsr:.3f}\t")
    if a.rows:
        with open(a.rows, "a") as fh:
            fh.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
