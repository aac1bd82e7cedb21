"""Threads and asyncio tasks on one client: parallel calls, loaders, the stampede lock,
cancellation."""
import asyncio
import threading
import time
from typing import List

import wbcache
from wbcache import aio

from conftest import ENTITIES, Env

STAMPEDE = 50


def test_threads_share_one_client(env: Env, client: wbcache.Client) -> None:
    ids = [env.id("thr") for _ in range(8)]
    errors: List[BaseException] = []

    def worker(i: str) -> None:
        try:
            last = 0
            for n in range(50):
                v = client.put("item", i, f"{i}:{n}")
                assert v > last
                last = v
                assert client.get("item", i).data == f"{i}:{n}".encode()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in ids:
        assert client.get("item", i).data == f"{i}:49".encode()


def test_stampede_threads_one_load(env: Env, client: wbcache.Client) -> None:
    """50 threads miss one key at once: one loader call, every thread gets its value. The
    waiting threads wait inside C; if they held the GIL the loader could not run."""
    i = env.id("stampede-thr")
    calls = []
    lock = threading.Lock()
    barrier = threading.Barrier(STAMPEDE)
    results: List[bytes] = []

    def loader(entity: str, id_: str) -> str:
        with lock:
            calls.append(threading.get_ident())
        time.sleep(0.3)
        return "loaded once"

    def reader() -> None:
        barrier.wait()
        v = client.get_or_load("item", i, loader)
        with lock:
            results.append(v.data)
    threads = [threading.Thread(target=reader) for _ in range(STAMPEDE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [b"loaded once"] * STAMPEDE


def test_stampede_asyncio_tasks_one_load(env: Env) -> None:
    """50 asyncio tasks miss one key at once with an async loader: one load."""
    i = env.id("stampede-aio")
    calls = []

    async def main() -> List[bytes]:
        loop_thread = threading.get_ident()
        async with aio.Client(str(env.cfg), entities=ENTITIES, max_workers=STAMPEDE) as c:
            async def loader(entity: str, id_: str) -> str:
                # An async loader runs on the caller's event loop.
                assert threading.get_ident() == loop_thread
                calls.append(id_)
                await asyncio.sleep(0.3)
                return "loaded by a coroutine"
            values = await asyncio.gather(*(c.get_or_load("item", i, loader)
                                            for _ in range(STAMPEDE)))
            return [v.data for v in values]
    assert asyncio.run(main()) == [b"loaded by a coroutine"] * STAMPEDE
    assert calls == [i]


def test_asyncio_tasks_and_the_loop_stays_free(env: Env) -> None:
    ids = [env.id("aio") for _ in range(100)]

    async def main() -> None:
        async with aio.Client(str(env.cfg), entities=ENTITIES) as c:
            ticks = 0
            done = False

            async def ticker() -> None:
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0.001)
            t = asyncio.create_task(ticker())
            versions = await asyncio.gather(*(c.put("item", i, i) for i in ids))
            values = await asyncio.gather(*(c.get("item", i) for i in ids))

            def slow(entity: str, id_: str) -> str:  # a sync loader: on a worker thread
                time.sleep(0.3)
                return "slow"
            before = ticks
            assert (await c.get_or_load("item", env.id("slow"), slow)).data == b"slow"
            assert ticks - before > 20  # the loop kept running during the blocking call
            done = True
            await t
            assert all(v > 0 for v in versions)
            assert [v.data.decode() for v in values] == ids
            assert (await c.stats()).puts >= 100
    asyncio.run(main())


def test_cancellation_never_leaves_a_write_half_done(env: Env) -> None:
    """A cancelled put_batch stops waiting, but the batch it started is written whole."""
    ids = [env.id("cancel") for _ in range(300)]

    async def main() -> None:
        c = aio.Client(str(env.cfg), entities=ENTITIES)
        task = asyncio.create_task(c.put_batch([("item", i, "whole") for i in ids]))
        await asyncio.sleep(0.005)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await c.close()  # waits for the call the cancelled task started
    asyncio.run(main())
    with wbcache.Client(str(env.cfg)) as c:
        present = 0
        for i in ids:
            try:
                assert c.get("item", i).data == b"whole"
                present += 1
            except wbcache.NotFound:
                pass
    assert present in (0, len(ids))
