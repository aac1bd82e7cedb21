"""wbcache — Python binding of libwbcache (CFFI, API mode).

``wbcache.Client`` (sync, thread-safe) and ``wbcache.aio.Client`` (asyncio) expose the
library's calls; ``CacheAside``, ``ReadThrough``, ``WriteThrough``, ``WriteBehind`` and
``RefreshAhead`` give them the shapes of the usual Python reference classes; errors are
the classes of :mod:`wbcache.errors`, one per ``wb_err_t``. See README.md.
"""
from . import aio, errors
from ._client import Ack, Client, Data, JsonClient, Loader, LogLevel, Stats, Value
from .errors import (Closed, ConfigError, DecodeError, InvalidArg, IOFailure, KafkaError,
                     LoaderError, NoMem, NotFound, PGError, QueueFull, RedisError, Stale,
                     TooLarge, Timeout, UnknownEntity, WbcacheError)
from .patterns import CacheAside, ReadThrough, RefreshAhead, WriteBehind, WriteThrough

__version__ = "0.1.0"

__all__ = [
    "aio", "errors", "Ack", "Client", "Data", "JsonClient", "Loader", "LogLevel", "Stats",
    "Value", "CacheAside", "ReadThrough", "RefreshAhead", "WriteBehind", "WriteThrough",
    "WbcacheError", "InvalidArg", "NoMem", "ConfigError", "IOFailure", "RedisError",
    "KafkaError", "PGError", "Timeout", "NotFound", "QueueFull", "TooLarge", "UnknownEntity",
    "DecodeError", "Stale", "LoaderError", "Closed",
]
