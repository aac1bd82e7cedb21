"""The synchronous client: one libwbcache handle (``wb_client_t``) behind a Python object.

Every C call releases the GIL (CFFI API mode), so threads sharing one :class:`Client` run
their calls in parallel, as the library allows. The two callbacks C makes into Python —
the loader of ``get_or_load`` (on the calling thread) and the handle's log callback (on the
calling thread or the library's Kafka poll thread) — are ``@ffi.def_extern`` functions,
which take the GIL themselves; neither lets an exception escape into C, and the log
callback never calls into the client.
"""
import atexit
import enum
import json
import logging
import re
import threading
import weakref
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import errors
from ._wbcache import ffi, lib

__all__ = ["Ack", "LogLevel", "Value", "Stats", "Client", "JsonClient", "Data", "Loader",
           "ManyResult"]

#: What a value may be given as: bytes-like, or ``str`` (stored as UTF-8).
Data = Union[bytes, bytearray, memoryview, str]
#: A cache-aside loader: ``loader(entity, id)`` returns the value, or ``None`` (or raises
#: :class:`~wbcache.NotFound`) when there is none.
Loader = Callable[[str, str], Optional[Data]]
#: One id's answer in the ``.results`` of a failed ``get_many``: its value, ``None`` (not
#: found) or its exception.
ManyResult = Union["Value", None, errors.WbcacheError]

log = logging.getLogger("wbcache")


class Ack(enum.IntEnum):
    """Acknowledgement mode of write-behind writes (``wb_ack_t``)."""
    CACHE = 0  #: return after Redis; the Kafka send happens in the background
    LOG = 1  #: return after Kafka acknowledged the change event (acks=all)
    REPLICA = 2  #: return after Redis and a replica of the key's master confirmed it (WAIT)
    DEFAULT = -1  #: producer.ack of the config


class LogLevel(enum.IntEnum):
    """Levels of the library's log lines (``wb_log_level_t``)."""
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


# "2026-12-02T03:19:35.055Z WARN  " — the time and level the library puts before a line.
_LINE_HEAD = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+[A-Z]+\s+")
_PY_LEVEL = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


@dataclass(frozen=True)
class Value:
    """A value read from the cache or the database."""
    data: bytes  #: the value's bytes
    version: int  #: the write's version; 0 when unknown (a cache-aside fill from a loader)
    hit: bool  #: served from the cache (also after waiting for another loader), else loaded

    def text(self) -> str:
        """The value decoded as UTF-8."""
        return self.data.decode("utf-8")

    def json(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.data)


@dataclass(frozen=True)
class Stats:
    """A handle's counters (``wb_stats_t``)."""
    puts: int  #: write-behind writes acknowledged (incl. deletes)
    put_errors: int
    through_writes: int  #: write-through writes committed
    hits: int
    misses: int
    loads: int  #: loader / table reads done by this client
    refresh_requests: int  #: refresh-ahead requests published
    kafka_errors: int  #: events Kafka failed to take (the entries stay dirty)
    queue_depth: int  #: events waiting for Kafka right now
    redis_moved: int  #: Redis Cluster MOVED replies followed (a slot moved)
    redis_ask: int  #: ASK replies followed (a key of a slot being migrated)
    redis_retries: int  #: pauses for TRYAGAIN, CLUSTERDOWN or a master unreachable


def _bytes_arg(what: str, s: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str, not {type(s).__name__}")
    b = s.encode("utf-8")
    if b"\0" in b:
        raise errors.InvalidArg(f"invalid argument: {what} holds a NUL character",
                                errors.InvalidArg.code)
    return b


def _data(value: Data) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a value must be bytes or str, not {type(value).__name__}")


def _ack(ack: Union[Ack, int, str, None]) -> int:
    if ack is None:
        return int(Ack.DEFAULT)
    if isinstance(ack, str):
        return int(Ack[ack.upper()])
    return int(Ack(ack))


class _LogSink:
    """Receives the handle's log lines: to ``callback(level, line)`` if given, else to the
    ``wbcache`` logger. Lines at WARN and above logged on a thread during one of its calls
    are kept for that call's exception message."""

    def __init__(self, callback: Optional[Callable[[LogLevel, str], None]]) -> None:
        self.callback = callback
        self.local = threading.local()

    def emit(self, level: int, line: str) -> None:
        capture = getattr(self.local, "capture", None)
        if capture is not None and level >= LogLevel.WARN and len(capture) < 8:
            capture.append(_LINE_HEAD.sub("", line, count=1))
        if self.callback is not None:
            self.callback(LogLevel(level), line)
        else:
            log.log(_PY_LEVEL.get(level, logging.ERROR), "%s", line)


@ffi.def_extern()
def wbpy_log(level, line, opaque):  # type: ignore[no-untyped-def]
    """The C log callback: may run on the library's Kafka poll thread; never raises."""
    try:
        ffi.from_handle(opaque).emit(int(level), ffi.string(line).decode("utf-8", "replace"))
    except BaseException:  # noqa: BLE001 — nothing may unwind into C
        pass


class _LoadCall:
    """One get_or_load: the Python loader and the exception it raised, if any."""

    def __init__(self, fn: Loader) -> None:
        self.fn = fn
        self.exc: Optional[BaseException] = None


@ffi.def_extern()
def wbpy_load(opaque, entity, id_, valuep, lenp):  # type: ignore[no-untyped-def]
    """The C loader callback, on the thread that called get_or_load: hands the Python
    loader's value to the library in a malloc'ed buffer (the library frees it)."""
    call = ffi.from_handle(opaque)
    try:
        res = call.fn(ffi.string(entity).decode("utf-8"), ffi.string(id_).decode("utf-8"))
        if res is None:
            return lib.WB_ERR_NOT_FOUND
        b = _data(res)
        p = lib.malloc(len(b) + 1)
        if p == ffi.NULL:
            return lib.WB_ERR_NOMEM
        ffi.memmove(p, b, len(b))
        valuep[0] = p
        lenp[0] = len(b)
        return lib.WB_OK
    except errors.NotFound:
        return lib.WB_ERR_NOT_FOUND
    except BaseException as e:  # noqa: BLE001 — re-raised by get_or_load
        call.exc = e
        return lib.WB_ERR_LOADER


# Open clients, closed at interpreter exit before the library's threads could call back
# into a finalizing interpreter.
_open_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for c in list(_open_clients):
        c.close()


class Client:
    """A libwbcache client handle (``wb_client_t``): thread-safe, one per process is enough.

    ``config_path``: the YAML config (``None``: ``$WBCACHE_CONFIG``, else
    ``config/wbcache.yaml``). ``entities``: cache-key prefix → entity name, as in the
    config's ``entities`` list; needed only to address values by full cache key
    (:meth:`resolve`, the pattern classes). ``log``: ``callback(level, line)`` for the
    handle's log lines (thread-safe; it must not call into the client), default: the
    ``wbcache`` logger. ``log_level``: overrides ``log.level`` of the config.

    Opening connects to Redis and creates the Kafka producer; it raises
    :class:`~wbcache.ConfigError`, :class:`~wbcache.RedisError`, ... with the library's
    error text. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, config_path: Optional[str] = None, *,
                 entities: Optional[Mapping[str, str]] = None,
                 log: Optional[Callable[[LogLevel, str], None]] = None,
                 log_level: Optional[LogLevel] = None) -> None:
        self._sink = _LogSink(log)
        self._sink_handle = ffi.new_handle(self._sink)
        self._prefixes: List[Tuple[str, str]] = sorted(
            (entities or {}).items(), key=lambda kv: len(kv[0]), reverse=True)
        self._cond = threading.Condition()
        self._inflight = 0
        self._closing = False
        self.json = JsonClient(self)  #: the same calls with JSON values (``jsonb`` entities)
        clientp = ffi.new("wb_client_t **")
        errstr = ffi.new("char[]", 2048)
        path = ffi.NULL if config_path is None else _bytes_arg("config_path", str(config_path))
        err = lib.wb_client_open(path, lib.wbpy_log, self._sink_handle, clientp, errstr, 2048)
        if err != lib.WB_OK:
            self._h = ffi.NULL
            detail = ffi.string(errstr).decode("utf-8", "replace").strip()
            raise errors.error_for(err, self._errname(err), [detail] if detail else None)
        self._h = clientp[0]
        _open_clients.add(self)
        if log_level is not None:
            self.set_log_level(log_level)

    # ------------------------------------------------------------ plumbing
    @staticmethod
    def _errname(err: int) -> str:
        return str(ffi.string(lib.wb_err2str(err)).decode("utf-8", "replace"))

    def _enter(self) -> Any:
        with self._cond:
            if self._closing or self._h == ffi.NULL:
                raise errors.Closed("handle is shutting down: the client is closed",
                                    errors.Closed.code)
            self._inflight += 1
            return self._h

    def _leave(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    def _call_err(self, fn: Callable[..., int], *args: Any) -> Tuple[int, List[str]]:
        """Calls fn(handle, *args) (GIL released); returns its error and the warning lines
        the library logged on this thread during the call."""
        h = self._enter()
        local = self._sink.local
        outer = getattr(local, "capture", None)
        capture: List[str] = []
        local.capture = capture
        try:
            err = fn(h, *args)
        finally:
            local.capture = outer
            self._leave()
        return int(err), capture

    def _call(self, fn: Callable[..., int], *args: Any) -> None:
        """Calls fn(handle, *args) (GIL released) and raises its error, with the warning
        lines the library logged on this thread during the call."""
        err, capture = self._call_err(fn, *args)
        if err != lib.WB_OK:
            raise errors.error_for(err, self._errname(err), capture)

    def resolve(self, key: str) -> Tuple[str, str]:
        """Splits a full cache key (``"user:42"``) into (entity, id) by the longest matching
        prefix of ``entities``, as the library maps keys; raises
        :class:`~wbcache.UnknownEntity` when no prefix matches (or none were given)."""
        for prefix, entity in self._prefixes:
            if key.startswith(prefix) and len(key) > len(prefix):
                return entity, key[len(prefix):]
        raise errors.UnknownEntity(
            f"unknown entity: no entity prefix matches the key {key!r}"
            + ("" if self._prefixes else " (pass entities={prefix: name} to the client)"),
            errors.UnknownEntity.code)

    # ------------------------------------------------------------ writes
    def put(self, entity: str, id: str, value: Data, *,
            ack: Union[Ack, int, str, None] = None) -> int:
        """Write-behind put (``wb_put``): a new version, the value dirty in Redis, the change
        event to Kafka (``ack``: when to return; default producer.ack). Returns the version.
        Raises InvalidArg / TooLarge / QueueFull / UnknownEntity (nothing written),
        RedisError / Timeout (nothing acknowledged), with ack LOG KafkaError / Timeout (in
        the cache, dirty, delivered by the sweeper, but not acknowledged), with ack REPLICA
        Timeout when no replica confirmed within producer.replica_timeout_ms (likewise)."""
        v = _data(value)
        versionp = ffi.new("int64_t *")
        self._call(lib.wb_put, _bytes_arg("entity", entity), _bytes_arg("id", id),
                   ffi.from_buffer(v), len(v), _ack(ack), versionp)
        return int(versionp[0])

    def delete(self, entity: str, id: str, *, ack: Union[Ack, int, str, None] = None) -> int:
        """Write-behind delete (``wb_del``): a versioned tombstone in the cache and the log.
        Returns its version; the errors of :meth:`put`."""
        versionp = ffi.new("int64_t *")
        self._call(lib.wb_del, _bytes_arg("entity", entity), _bytes_arg("id", id), _ack(ack),
                   versionp)
        return int(versionp[0])

    def put_batch(self, writes: Iterable[Tuple[str, str, Optional[Data]]], *,
                  ack: Union[Ack, int, str, None] = None) -> List[int]:
        """Write-behind puts and deletes (value ``None``) in one Redis round trip
        (``wb_put_batch``), applied in order. Returns the versions. If any write failed,
        raises the first failure's exception with ``.results``: per write, its version or
        its exception (the others were written)."""
        items = list(writes)
        if not items:
            return []
        arr = ffi.new("wb_write_t[]", len(items))
        keep = []
        for i, (entity, id_, value) in enumerate(items):
            e = ffi.new("char[]", _bytes_arg("entity", entity))
            k = ffi.new("char[]", _bytes_arg("id", id_))
            keep += [e, k]
            arr[i].entity, arr[i].id = e, k
            if value is None:
                arr[i].value, arr[i].len = ffi.NULL, 0
            else:
                v = ffi.from_buffer(_data(value))
                keep.append(v)
                arr[i].value, arr[i].len = v, len(v)
        try:
            self._call(lib.wb_put_batch, arr, len(items), _ack(ack))
        except errors.WbcacheError as first:
            if all(arr[i].err == lib.WB_OK for i in range(len(items))):
                raise  # the call itself failed (closed client, ...), no write did
            results: List[Union[int, errors.WbcacheError]] = []
            for i in range(len(items)):
                err = arr[i].err
                results.append(int(arr[i].version) if err == lib.WB_OK else errors.error_for(
                    err, self._errname(err), prefix=f"write {i}: "))
            failed = next(i for i, r in enumerate(results) if not isinstance(r, int))
            exc = errors.error_for(int(arr[failed].err), self._errname(arr[failed].err),
                                   [str(first)], prefix=f"write {failed} of {len(items)}: ")
            exc.results = results  # type: ignore[attr-defined]
            raise exc from None
        return [int(arr[i].version) for i in range(len(items))]

    def put_through(self, entity: str, id: str, value: Data) -> int:
        """Write-through put (``wb_put_through``): a version from Redis, a version-guarded
        upsert committed in PostgreSQL, then the cache (clean, with the entity's TTL).
        Returns the version. Raises PGError / Timeout (cache untouched), Stale (PostgreSQL
        holds a newer version), RedisError, and the argument errors of :meth:`put`."""
        v = _data(value)
        versionp = ffi.new("int64_t *")
        self._call(lib.wb_put_through, _bytes_arg("entity", entity), _bytes_arg("id", id),
                   ffi.from_buffer(v), len(v), versionp)
        return int(versionp[0])

    # ------------------------------------------------------------ reads
    @staticmethod
    def _unpack(v: Any) -> Value:
        data = ffi.unpack(ffi.cast("char *", v.data), v.len) if v.len else b""
        return Value(data, int(v.version), bool(v.hit))

    def _value(self, fn: Callable[..., int], *args: Any) -> Value:
        out = ffi.new("wb_value_t *")
        self._call(fn, *args, out)
        try:
            return self._unpack(out)
        finally:
            lib.wb_value_free(out)

    def get(self, entity: str, id: str) -> Value:
        """Read-through get (``wb_get``): a hit in one round trip; a miss reads the entity's
        table under a cross-process lock and fills the cache. Raises NotFound (absent or
        deleted; cached negatively), RedisError, PGError, Timeout, UnknownEntity."""
        return self._value(lib.wb_get, _bytes_arg("entity", entity), _bytes_arg("id", id))

    def get_many(self, entity: str, ids: Iterable[str]) -> Dict[str, Value]:
        """Bulk read-through get (``wb_get_many``) of ids of one entity: :meth:`get` of each
        id in a few round trips — every lookup in one pipelined Redis round trip, the misses
        read from the table with one query, each key under the same cross-process lock as
        :meth:`get` (a key another thread or process is loading is waited for, not read
        twice). Returns ``{id: Value}`` of the ids found, in the order of ``ids``; an id
        absent or deleted (NotFound for :meth:`get`; cached negatively) is not in the dict.
        An id given twice is read once. No ids: ``{}``, nothing read.

        If an id failed otherwise (RedisError, PGError, Timeout, NoMem, InvalidArg for a
        malformed id — each id has its own result), raises the first failure's exception
        (in the order of ``ids``) with ``.results``: ``{id: Value, None (not found) or its
        exception}`` for every id (the others were read). Whole-call errors raise as they
        are, nothing read: UnknownEntity, Closed, TypeError / InvalidArg for an id that is
        not a ``str`` or holds a NUL."""
        keys = list(ids)
        if not keys:
            return {}
        n = len(keys)
        e = _bytes_arg("entity", entity)
        cids = [ffi.new("char[]", _bytes_arg("id", k)) for k in keys]
        idv = ffi.new("char *[]", cids)
        values = ffi.new("wb_value_t[]", n)
        errs = ffi.new("wb_err_t[]", n)
        out = ffi.new("wb_get_many_t *")
        out.size = ffi.sizeof("wb_get_many_t")
        out.values, out.errs = values, errs
        results: Dict[str, ManyResult] = {}
        try:
            err, capture = self._call_err(lib.wb_get_many, e, idv, n, out)
            if err == lib.WB_ERR_UNKNOWN_ENTITY:  # every errs[i] says so: one error
                raise errors.error_for(err, self._errname(err), capture)
            failed = None
            for i, k in enumerate(keys):
                code = int(errs[i])
                r: ManyResult
                if code == lib.WB_OK:
                    r = self._unpack(values[i])
                elif code == lib.WB_ERR_NOT_FOUND:
                    r = None
                else:
                    r = errors.error_for(code, self._errname(code), prefix=f"id {k!r}: ")
                    if failed is None:
                        failed = i
                # A repeated id has one answer; its copy failing (NoMem) is a failure too.
                if k not in results or isinstance(r, errors.WbcacheError):
                    results[k] = r
        finally:
            for i in range(n):
                lib.wb_value_free(values + i)
        if failed is not None:
            code = int(errs[failed])
            exc = errors.error_for(code, self._errname(code), capture,
                                   prefix=f"id {failed} of {n} ({keys[failed]!r}): ")
            exc.results = results  # type: ignore[attr-defined]
            raise exc
        if err != lib.WB_OK:
            raise errors.error_for(err, self._errname(err), capture)
        return {k: v for k, v in results.items() if isinstance(v, Value)}

    def get_or_load(self, entity: str, id: str, loader: Loader) -> Value:
        """Cache-aside get (``wb_get_or_load``): a miss calls ``loader(entity, id)`` on this
        thread — at most one loader per key at a time across every process sharing the
        Redis; the others wait for its fill. The loader returns the value (bytes or str),
        or ``None`` / raises NotFound (cached negatively, NotFound raised here). An
        exception the loader raises is re-raised here as it is (nothing cached). The fill
        only creates an absent entry: if a write got there first, its value is returned."""
        if not callable(loader):
            raise TypeError("loader must be callable")
        call = _LoadCall(loader)
        handle = ffi.new_handle(call)
        try:
            return self._value(lib.wb_get_or_load, _bytes_arg("entity", entity),
                               _bytes_arg("id", id), lib.wbpy_load, handle)
        except errors.LoaderError:
            if call.exc is not None:
                raise call.exc from None
            raise

    # ------------------------------------------------------------ handle
    def flush(self, timeout_ms: int = 5000) -> None:
        """Waits up to ``timeout_ms`` for queued change events to be acknowledged by Kafka;
        raises Timeout if some still wait (they stay dirty; the sweeper re-publishes)."""
        self._call(lib.wb_client_flush, int(timeout_ms))

    def stats(self) -> Stats:
        """The handle's counters (``wb_client_stats``)."""
        st = ffi.new("wb_stats_t *")
        h = self._enter()
        try:
            lib.wb_client_stats(h, st, ffi.sizeof("wb_stats_t"))
        finally:
            self._leave()
        return Stats(**{f.name: int(getattr(st, f.name)) for f in fields(Stats)})

    def set_log_level(self, level: Union[LogLevel, int]) -> None:
        """Drops this handle's log lines below ``level`` from now on."""
        self._call(lib.wb_client_set_log_level, int(LogLevel(level)))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing or self._h == ffi.NULL

    def close(self) -> None:
        """Waits for the calls in flight on other threads, flushes (up to
        producer.kafka_timeout_ms) and closes the handle; later calls raise Closed. Safe to
        call twice. Must not be called from a loader or the log callback."""
        with self._cond:
            if self._h == ffi.NULL or self._closing:
                return
            self._closing = True
            while self._inflight:
                self._cond.wait()
            h, self._h = self._h, ffi.NULL
        _open_clients.discard(self)
        lib.wb_client_close(h)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_h", ffi.NULL) != ffi.NULL:
                self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass


# ---------------------------------------------------------------- JSON layer
def dumps(obj: Any) -> bytes:
    """The JSON text stored for ``obj``: compact, UTF-8, no NaN/Infinity (which jsonb
    refuses)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def loads(data: bytes) -> Any:
    """The object of a stored JSON text."""
    return json.loads(data)


def _json_loader(loader: Callable[[str, str], Any]) -> Loader:
    def load(entity: str, id: str) -> Optional[bytes]:
        obj = loader(entity, id)
        return None if obj is None else dumps(obj)
    return load


class JsonClient:
    """``client.json``: the client's calls with JSON values for ``jsonb`` entities —
    ``dict`` (any JSON-serialisable object) in, ``dict`` out."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def put(self, entity: str, id: str, obj: Any, *,
            ack: Union[Ack, int, str, None] = None) -> int:
        """:meth:`Client.put` of ``json.dumps(obj)``."""
        return self._c.put(entity, id, dumps(obj), ack=ack)

    def put_batch(self, writes: Iterable[Tuple[str, str, Any]], *,
                  ack: Union[Ack, int, str, None] = None) -> List[int]:
        """:meth:`Client.put_batch`; an object ``None`` deletes."""
        return self._c.put_batch(((e, i, None if o is None else dumps(o)) for e, i, o in writes),
                                 ack=ack)

    def put_through(self, entity: str, id: str, obj: Any) -> int:
        """:meth:`Client.put_through` of ``json.dumps(obj)``."""
        return self._c.put_through(entity, id, dumps(obj))

    def delete(self, entity: str, id: str, *, ack: Union[Ack, int, str, None] = None) -> int:
        """:meth:`Client.delete`."""
        return self._c.delete(entity, id, ack=ack)

    def get(self, entity: str, id: str) -> Any:
        """:meth:`Client.get`, parsed."""
        return loads(self._c.get(entity, id).data)

    def get_many(self, entity: str, ids: Iterable[str]) -> Dict[str, Any]:
        """:meth:`Client.get_many`, parsed: ``{id: object}`` of the ids found (not found:
        absent); a failure's ``.results`` hold the :class:`Value` s."""
        return {k: loads(v.data) for k, v in self._c.get_many(entity, ids).items()}

    def get_or_load(self, entity: str, id: str, loader: Callable[[str, str], Any]) -> Any:
        """:meth:`Client.get_or_load` with a loader returning an object (``None``: none)."""
        return loads(self._c.get_or_load(entity, id, _json_loader(loader)).data)

