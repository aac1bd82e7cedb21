"""asyncio API: :class:`Client` with the methods of :class:`wbcache.Client` as coroutines,
and the pattern classes with coroutine methods.

Blocking C calls run on the client's own thread pool (``max_workers`` threads, each
call with the GIL released), never on the event loop. A loader (or ``fetch_fn``) may be
sync — it runs on that worker thread — or async: its coroutine runs on the caller's event
loop while the C call waits for it on the worker thread.

Cancellation: a cancelled call stops waiting, but the C call it started runs to
completion on its worker thread — a write is done whole (its version, the cache entry,
the change event) or, if cancelled before it started, not at all; never half. ``close()``
waits for such calls.
"""
import asyncio
import functools
import inspect
import json
from concurrent.futures import ThreadPoolExecutor
from typing import (Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional,
                    Tuple, TypeVar, Union)

from . import _client, errors
from ._client import Ack, Data, LogLevel, Stats, Value, dumps, loads
from .patterns import (Deserialize, Serialize, decode, encode, group_keys, many_by_key,
                       ttl_ignored)

__all__ = ["Client", "AsyncJsonClient", "CacheAside", "ReadThrough", "WriteThrough",
           "WriteBehind", "RefreshAhead"]

T = TypeVar("T")
#: A loader for the asyncio client: sync or async, ``loader(entity, id)``.
AsyncLoader = Callable[[str, str], Union[Optional[Data], Awaitable[Optional[Data]]]]
AckArg = Union[Ack, int, str, None]


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn for a worker thread: a coroutine (or awaitable) fn returns is run on ``loop`` and
    waited for; a plain result is returned as it is."""
    def call(*args: Any) -> Any:
        res = fn(*args)
        if inspect.isawaitable(res):
            return asyncio.run_coroutine_threadsafe(_await(res), loop).result()
        return res
    return call


class Client:
    """An asyncio client over one libwbcache handle; the arguments of
    :class:`wbcache.Client`, plus ``max_workers`` (threads running the blocking calls).

    The constructor opens the handle on the calling thread (a blocking connect to Redis);
    ``await Client.create(...)`` opens it on a worker thread instead. Use ``async with``,
    or ``await close()``."""

    def __init__(self, config_path: Optional[str] = None, *,
                 entities: Optional[Mapping[str, str]] = None,
                 log: Optional[Callable[[LogLevel, str], None]] = None,
                 log_level: Optional[LogLevel] = None, max_workers: int = 32) -> None:
        self.sync = _client.Client(config_path, entities=entities, log=log,
                                   log_level=log_level)  #: the underlying sync client
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="wbcache-aio")
        self.json = AsyncJsonClient(self)  #: the same calls with JSON values

    @classmethod
    async def create(cls, config_path: Optional[str] = None, **kwargs: Any) -> "Client":
        """Opens a client without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(cls, config_path, **kwargs))

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.sync.closed:
            raise errors.Closed("handle is shutting down: the client is closed",
                                errors.Closed.code)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def resolve(self, key: str) -> Tuple[str, str]:
        """:meth:`wbcache.Client.resolve`."""
        return self.sync.resolve(key)

    async def put(self, entity: str, id: str, value: Data, *, ack: AckArg = None) -> int:
        """:meth:`wbcache.Client.put`."""
        return await self._run(self.sync.put, entity, id, value, ack=ack)

    async def delete(self, entity: str, id: str, *, ack: AckArg = None) -> int:
        """:meth:`wbcache.Client.delete`."""
        return await self._run(self.sync.delete, entity, id, ack=ack)

    async def put_batch(self, writes: Iterable[Tuple[str, str, Optional[Data]]], *,
                        ack: AckArg = None) -> List[int]:
        """:meth:`wbcache.Client.put_batch`."""
        return await self._run(self.sync.put_batch, list(writes), ack=ack)

    async def put_through(self, entity: str, id: str, value: Data) -> int:
        """:meth:`wbcache.Client.put_through`."""
        return await self._run(self.sync.put_through, entity, id, value)

    async def get(self, entity: str, id: str) -> Value:
        """:meth:`wbcache.Client.get`."""
        return await self._run(self.sync.get, entity, id)

    async def get_many(self, entity: str, ids: Iterable[str]) -> Dict[str, Value]:
        """:meth:`wbcache.Client.get_many`: ``{id: Value}`` of the ids found."""
        return await self._run(self.sync.get_many, entity, list(ids))

    async def get_or_load(self, entity: str, id: str, loader: AsyncLoader) -> Value:
        """:meth:`wbcache.Client.get_or_load`; ``loader`` may be a coroutine function, run
        on this event loop while the C call waits for it."""
        if not callable(loader):
            raise TypeError("loader must be callable")
        loop = asyncio.get_running_loop()
        return await self._run(self.sync.get_or_load, entity, id, _on_loop(loop, loader))

    async def flush(self, timeout_ms: int = 5000) -> None:
        """:meth:`wbcache.Client.flush`."""
        await self._run(self.sync.flush, timeout_ms)

    async def stats(self) -> Stats:
        """:meth:`wbcache.Client.stats` (no I/O: runs inline)."""
        return self.sync.stats()

    async def set_log_level(self, level: Union[LogLevel, int]) -> None:
        """:meth:`wbcache.Client.set_log_level`."""
        self.sync.set_log_level(level)

    @property
    def closed(self) -> bool:
        """True once close was called."""
        return self.sync.closed

    async def close(self) -> None:
        """Waits for the calls in flight (also cancelled ones), flushes and closes."""
        if not self.sync.closed:
            await asyncio.shield(self._run(self.sync.close))
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncJsonClient:
    """``client.json`` of the asyncio client: JSON values (``dict`` in, ``dict`` out)."""

    def __init__(self, client: Client) -> None:
        self._c = client

    async def put(self, entity: str, id: str, obj: Any, *, ack: AckArg = None) -> int:
        """put of ``json.dumps(obj)``."""
        return await self._c.put(entity, id, dumps(obj), ack=ack)

    async def put_batch(self, writes: Iterable[Tuple[str, str, Any]], *,
                        ack: AckArg = None) -> List[int]:
        """put_batch; an object ``None`` deletes."""
        return await self._c.put_batch(
            [(e, i, None if o is None else dumps(o)) for e, i, o in writes], ack=ack)

    async def put_through(self, entity: str, id: str, obj: Any) -> int:
        """put_through of ``json.dumps(obj)``."""
        return await self._c.put_through(entity, id, dumps(obj))

    async def delete(self, entity: str, id: str, *, ack: AckArg = None) -> int:
        """delete."""
        return await self._c.delete(entity, id, ack=ack)

    async def get(self, entity: str, id: str) -> Any:
        """get, parsed."""
        return loads((await self._c.get(entity, id)).data)

    async def get_many(self, entity: str, ids: Iterable[str]) -> Dict[str, Any]:
        """get_many, parsed: ``{id: object}`` of the ids found."""
        return {k: loads(v.data) for k, v in (await self._c.get_many(entity, ids)).items()}

    async def get_or_load(self, entity: str, id: str, loader: Callable[[str, str], Any]) -> Any:
        """get_or_load with a (sync or async) loader returning an object (``None``: none)."""
        async def to_json(aw: Awaitable[Any]) -> Optional[bytes]:
            obj = await aw
            return None if obj is None else dumps(obj)

        def load(e: str, i: str) -> Any:
            obj = loader(e, i)
            if inspect.isawaitable(obj):
                return to_json(obj)
            return None if obj is None else dumps(obj)
        return loads((await self._c.get_or_load(entity, id, load)).data)


# ------------------------------------------------------------------ patterns
class _Pattern:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _read(self, key: str, deserialize: Deserialize) -> Any:
        entity, id_ = self.client.resolve(key)
        try:
            return decode(deserialize, (await self.client.get(entity, id_)).data)
        except errors.NotFound:
            return None

    async def _read_many(self, keys: Iterable[str], deserialize: Deserialize) -> Dict[str, Any]:
        order, groups = group_keys(self.client, keys)
        sync = self.client.sync
        found: Dict[str, Any] = {}
        # One get_many per entity, side by side on the client's threads.
        for got in await asyncio.gather(*(
                self.client._run(many_by_key, by_id,
                                 functools.partial(sync.get_many, entity, list(by_id)))
                for entity, by_id in groups.items())):
            found.update((key, decode(deserialize, v.data)) for key, v in got.items())
        return {key: found[key] for key in order if key in found}


class CacheAside(_Pattern):
    """:class:`wbcache.CacheAside` for asyncio; ``fetch_fn`` may be sync or async."""

    async def get_or_set(self, key: str, fetch_fn: Callable[[], Any],
                         ttl: Optional[float] = None, serialize: Serialize = json.dumps,
                         deserialize: Deserialize = json.loads) -> Any:
        """See :meth:`wbcache.CacheAside.get_or_set`."""
        ttl_ignored(ttl)
        entity, id_ = self.client.resolve(key)

        async def fetch_async(aw: Awaitable[Any]) -> Optional[Data]:
            obj = await aw
            return None if obj is None else encode(serialize, obj)

        def load(_e: str, _i: str) -> Any:
            obj = fetch_fn()
            if inspect.isawaitable(obj):
                return fetch_async(obj)
            return None if obj is None else encode(serialize, obj)
        try:
            value = await self.client.get_or_load(entity, id_, load)
        except errors.NotFound:
            return None
        return decode(deserialize, value.data)


class ReadThrough(_Pattern):
    """:class:`wbcache.ReadThrough` for asyncio."""

    def __init__(self, client: Client, deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.deserialize = deserialize

    async def get(self, key: str) -> Any:
        """See :meth:`wbcache.ReadThrough.get`."""
        return await self._read(key, self.deserialize)

    async def get_many(self, keys: Iterable[str]) -> Dict[str, Any]:
        """See :meth:`wbcache.ReadThrough.get_many` (the entities' reads run side by
        side)."""
        return await self._read_many(keys, self.deserialize)


class WriteThrough(_Pattern):
    """:class:`wbcache.WriteThrough` for asyncio."""

    def __init__(self, client: Client, serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.serialize, self.deserialize = serialize, deserialize

    async def write(self, key: str, data: Any) -> int:
        """See :meth:`wbcache.WriteThrough.write`."""
        entity, id_ = self.client.resolve(key)
        return await self.client.put_through(entity, id_, encode(self.serialize, data))

    async def get(self, key: str) -> Any:
        """Read-through get of ``key`` (``None`` when absent)."""
        return await self._read(key, self.deserialize)


class WriteBehind(_Pattern):
    """:class:`wbcache.WriteBehind` for asyncio."""

    def __init__(self, client: Client, ack: AckArg = None, serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.ack = ack
        self.serialize, self.deserialize = serialize, deserialize

    async def write(self, key: str, data: Any) -> int:
        """See :meth:`wbcache.WriteBehind.write`."""
        entity, id_ = self.client.resolve(key)
        return await self.client.put(entity, id_, encode(self.serialize, data), ack=self.ack)

    async def delete(self, key: str) -> int:
        """See :meth:`wbcache.WriteBehind.delete`."""
        entity, id_ = self.client.resolve(key)
        return await self.client.delete(entity, id_, ack=self.ack)

    async def get(self, key: str) -> Any:
        """See :meth:`wbcache.WriteBehind.get`."""
        return await self._read(key, self.deserialize)

    async def flush(self, timeout_ms: int = 5000) -> None:
        """See :meth:`wbcache.WriteBehind.flush`."""
        await self.client.flush(timeout_ms)


class RefreshAhead(_Pattern):
    """:class:`wbcache.RefreshAhead` for asyncio."""

    def __init__(self, client: Client, serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.serialize, self.deserialize = serialize, deserialize

    async def get(self, key: str, fetch_fn: Optional[Callable[[], Any]] = None) -> Any:
        """See :meth:`wbcache.RefreshAhead.get`."""
        if fetch_fn is None:
            return await self._read(key, self.deserialize)
        return await CacheAside(self.client).get_or_set(key, fetch_fn, None, self.serialize,
                                                        self.deserialize)
