"""The five caching patterns in the shapes Python services know from ``redis.asyncio``
reference classes, over a :class:`wbcache.Client`. Each takes a full cache key
(``"user:42"``), resolved to (entity, id) by the client's ``entities`` prefixes (longest
match, as the library maps keys). Values go through ``serialize`` / ``deserialize``
(JSON by default, for ``jsonb`` entities; pass ``None`` for raw bytes / str).

What each gains over the reference implementation:

* :class:`CacheAside` — ``get_or_set`` takes a cross-process stampede lock: one
  ``fetch_fn`` call per key at a time, the other callers get its fill.
* :class:`ReadThrough` — misses read the entity's PostgreSQL table under the same lock;
  "not found" is cached briefly. ``get_many`` reads many keys in one round trip and one
  query per entity.
* :class:`WriteThrough` — a version-guarded upsert committed in PostgreSQL before the cache
  is touched; an older write can never overwrite a newer one.
* :class:`WriteBehind` — no process-local dict: the write is in Redis (pinned, dirty) and
  in the Kafka log; wb-flusher applies it to PostgreSQL in order of versions. A crash
  loses nothing acknowledged.
* :class:`RefreshAhead` — a hit late in its TTL asks wb-refresher to reload the key; no
  reader blocks on the refresh.
"""
import json
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import errors
from ._client import Ack, Client, Data

__all__ = ["CacheAside", "ReadThrough", "WriteThrough", "WriteBehind", "RefreshAhead"]

Serialize = Optional[Callable[[Any], Data]]
Deserialize = Optional[Callable[[bytes], Any]]


def ttl_ignored(ttl: Optional[float], stacklevel: int = 3) -> None:
    """Per-call TTLs are not the library's: each entity has its ttl_ms in the config."""
    if ttl is not None:
        warnings.warn("wbcache: the ttl argument is ignored; the entity's ttl_ms in the "
                      "config applies", stacklevel=stacklevel)


def encode(serialize: Serialize, data: Any) -> Data:
    """``serialize(data)``, or data itself when serialize is None."""
    return data if serialize is None else serialize(data)


def decode(deserialize: Deserialize, raw: bytes) -> Any:
    """``deserialize(raw)``, or raw itself when deserialize is None."""
    return raw if deserialize is None else deserialize(raw)


class _Pattern:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _key(self, key: str) -> Tuple[str, str]:
        return self.client.resolve(key)

    def _read(self, key: str, deserialize: Deserialize) -> Any:
        entity, id_ = self._key(key)
        try:
            return decode(deserialize, self.client.get(entity, id_).data)
        except errors.NotFound:
            return None

    def _read_many(self, keys: Iterable[str], deserialize: Deserialize) -> Dict[str, Any]:
        order, groups = group_keys(self.client, keys)
        found: Dict[str, Any] = {}
        for entity, by_id in groups.items():
            got = many_by_key(by_id, lambda: self.client.get_many(entity, list(by_id)))
            found.update((key, decode(deserialize, v.data)) for key, v in got.items())
        return {key: found[key] for key in order if key in found}


def group_keys(client: Any, keys: Iterable[str]) -> Tuple[List[str], Dict[str, Dict[str, str]]]:
    """The keys (once each, in order) and, per entity, {id: key}; raises UnknownEntity for a
    key no prefix matches (nothing read)."""
    order: List[str] = []
    groups: Dict[str, Dict[str, str]] = {}
    for key in keys:
        entity, id_ = client.resolve(key)
        if id_ not in groups.setdefault(entity, {}):
            groups[entity][id_] = key
            order.append(key)
    return order, groups


def many_by_key(by_id: Dict[str, str], call: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """call()'s {id: value} as {key: value}; a failure's ``.results`` keyed by key too."""
    try:
        return {by_id[id_]: v for id_, v in call().items()}
    except errors.WbcacheError as e:
        results = getattr(e, "results", None)
        if results is not None:
            e.results = {by_id[id_]: r for id_, r in results.items()}  # type: ignore[attr-defined]
        raise


class CacheAside(_Pattern):
    """Cache-aside with a stampede lock (``wb_get_or_load``)."""

    def get_or_set(self, key: str, fetch_fn: Callable[[], Any], ttl: Optional[float] = None,
                   serialize: Serialize = json.dumps,
                   deserialize: Deserialize = json.loads) -> Any:
        """The cached value of ``key``; on a miss ``fetch_fn()`` is called (once per key at a
        time across processes), its result stored and returned. ``None`` from fetch_fn is
        cached as "not found" (producer.negative_ttl_ms) and returned as ``None``. ``ttl`` is
        accepted for compatibility and ignored with a warning (the entity's ttl_ms)."""
        ttl_ignored(ttl)
        entity, id_ = self._key(key)

        def load(_e: str, _i: str) -> Optional[Data]:
            obj = fetch_fn()
            return None if obj is None else encode(serialize, obj)
        try:
            return decode(deserialize, self.client.get_or_load(entity, id_, load).data)
        except errors.NotFound:
            return None


class ReadThrough(_Pattern):
    """Read-through from the entity's PostgreSQL table (``wb_get``)."""

    def __init__(self, client: Client, deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.deserialize = deserialize

    def get(self, key: str) -> Any:
        """The value of ``key`` from the cache, else its table row; ``None`` if neither has
        it (or it is deleted)."""
        return self._read(key, self.deserialize)

    def get_many(self, keys: Iterable[str]) -> Dict[str, Any]:
        """The values of ``keys`` (full cache keys, of one or several entities), as
        ``{key: value}`` in the order of ``keys``; a key neither the cache nor its table has
        (or deleted) is not in the dict. One :meth:`Client.get_many` per entity: one round
        trip for the lookups, one table query for the misses. An error raises as
        :meth:`Client.get_many`'s does, its ``.results`` keyed by cache key (the failing
        entity's keys); a key no prefix matches raises UnknownEntity before anything is
        read."""
        return self._read_many(keys, self.deserialize)


class WriteThrough(_Pattern):
    """Write-through: PostgreSQL committed first, then the cache (``wb_put_through``)."""

    def __init__(self, client: Client, serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.serialize, self.deserialize = serialize, deserialize

    def write(self, key: str, data: Any) -> int:
        """Stores ``data`` in PostgreSQL and the cache; returns its version. Raises
        :class:`~wbcache.PGError` (cache untouched) or :class:`~wbcache.Stale`."""
        entity, id_ = self._key(key)
        return self.client.put_through(entity, id_, encode(self.serialize, data))

    def get(self, key: str) -> Any:
        """Read-through get of ``key`` (``None`` when absent)."""
        return self._read(key, self.deserialize)


class WriteBehind(_Pattern):
    """Write-behind: Redis now, PostgreSQL through Kafka and wb-flusher (``wb_put``)."""

    def __init__(self, client: Client, ack: Union[Ack, int, str, None] = None,
                 serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.ack = ack
        self.serialize, self.deserialize = serialize, deserialize

    def write(self, key: str, data: Any) -> int:
        """Writes ``data`` behind; returns its version once acknowledged (``ack``: by Redis,
        or by Kafka with ``Ack.LOG``)."""
        entity, id_ = self._key(key)
        return self.client.put(entity, id_, encode(self.serialize, data), ack=self.ack)

    def delete(self, key: str) -> int:
        """Deletes ``key`` behind (a versioned tombstone); returns its version."""
        entity, id_ = self._key(key)
        return self.client.delete(entity, id_, ack=self.ack)

    def get(self, key: str) -> Any:
        """The newest value of ``key`` (also one not yet in PostgreSQL); ``None`` if absent."""
        return self._read(key, self.deserialize)

    def flush(self, timeout_ms: int = 5000) -> None:
        """Waits until the change events sent so far are in Kafka (Timeout otherwise)."""
        self.client.flush(timeout_ms)


class RefreshAhead(_Pattern):
    """Refresh-ahead: a hit after ``refresh_ahead`` x TTL (entity config) publishes one
    refresh request; wb-refresher reloads the row from the table. Readers never wait."""

    def __init__(self, client: Client, serialize: Serialize = json.dumps,
                 deserialize: Deserialize = json.loads) -> None:
        super().__init__(client)
        self.serialize, self.deserialize = serialize, deserialize

    def get(self, key: str, fetch_fn: Optional[Callable[[], Any]] = None) -> Any:
        """The value of ``key``. A miss calls ``fetch_fn()`` like
        :meth:`CacheAside.get_or_set`, or without fetch_fn reads the table; the refresh of a
        late hit always reloads the table (wb-refresher). ``None`` when absent."""
        if fetch_fn is None:
            return self._read(key, self.deserialize)
        return CacheAside(self.client).get_or_set(key, fetch_fn, None, self.serialize,
                                                  self.deserialize)
