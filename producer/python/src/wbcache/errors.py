"""Exceptions mirroring ``wb_err_t``: one class per error code, all under :class:`WbcacheError`.

The message is the library's name of the code (``wb_err2str``) followed by what the library
said about this call: the error text of an open, or the warning lines it logged on the
calling thread during the failed call (a refused value names the reason and byte offset).
"""
from typing import Dict, List, Optional, Type

__all__ = [
    "WbcacheError", "InvalidArg", "NoMem", "ConfigError", "IOFailure", "RedisError",
    "KafkaError", "PGError", "Timeout", "NotFound", "QueueFull", "TooLarge", "UnknownEntity",
    "DecodeError", "Stale", "LoaderError", "Closed", "BY_CODE", "error_for",
]


class WbcacheError(Exception):
    """Base of every error the library reports. ``code`` is the ``wb_err_t`` value."""

    code: int = -1

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArg(WbcacheError, ValueError):
    """WB_ERR_INVALID_ARG: a NULL, empty or malformed argument, or a value the entity's column
    cannot hold (nothing was written)."""
    code = 1


class NoMem(WbcacheError, MemoryError):
    """WB_ERR_NOMEM: allocation failed."""
    code = 2


class ConfigError(WbcacheError):
    """WB_ERR_CONFIG: the configuration file is invalid (one ``FILE:LINE:COL: key: what`` line
    per error)."""
    code = 3


class IOFailure(WbcacheError, OSError):
    """WB_ERR_IO: file or socket error."""
    code = 4


class RedisError(WbcacheError):
    """WB_ERR_REDIS: Redis unreachable or replied with an error."""
    code = 5


class KafkaError(WbcacheError):
    """WB_ERR_KAFKA: Kafka client or broker error (with ack log: the write is in the cache,
    dirty, and the sweeper delivers it, but it is not acknowledged)."""
    code = 6


class PGError(WbcacheError):
    """WB_ERR_PG: PostgreSQL unreachable or the statement failed."""
    code = 7


class Timeout(WbcacheError, TimeoutError):
    """WB_ERR_TIMEOUT: an operation exceeded its configured timeout."""
    code = 8


class NotFound(WbcacheError, LookupError):
    """WB_ERR_NOT_FOUND: the key is absent or deleted. A loader may raise it too (same as
    returning ``None``): the miss is cached negatively."""
    code = 9


class QueueFull(WbcacheError):
    """WB_ERR_QUEUE_FULL: producer.queue_max events already wait for Kafka (nothing written)."""
    code = 10


class TooLarge(WbcacheError, ValueError):
    """WB_ERR_TOO_LARGE: the value is above producer.max_value_bytes (nothing written)."""
    code = 11


class UnknownEntity(WbcacheError, LookupError):
    """WB_ERR_UNKNOWN_ENTITY: the entity name is not in the config (or a cache key matches
    no prefix given to the client)."""
    code = 12


class DecodeError(WbcacheError):
    """WB_ERR_DECODE: a change event is malformed."""
    code = 13


class Stale(WbcacheError):
    """WB_ERR_STALE: a version guard refused an older write (PostgreSQL holds a newer one)."""
    code = 14


class LoaderError(WbcacheError):
    """WB_ERR_LOADER: the loader failed. A loader that raises has its own exception re-raised
    by ``get_or_load`` instead; this class is what the code maps to."""
    code = 15


class Closed(WbcacheError):
    """WB_ERR_CLOSED: the client is closed or closing."""
    code = 16


BY_CODE: Dict[int, Type[WbcacheError]] = {
    cls.code: cls
    for cls in (InvalidArg, NoMem, ConfigError, IOFailure, RedisError, KafkaError, PGError,
                Timeout, NotFound, QueueFull, TooLarge, UnknownEntity, DecodeError, Stale,
                LoaderError, Closed)
}


def error_for(code: int, name: str, details: Optional[List[str]] = None,
              prefix: str = "") -> WbcacheError:
    """The exception for ``code``: ``[prefix]name[: detail; detail]``."""
    msg = prefix + name
    if details:
        msg += ": " + "; ".join(details)
    cls = BY_CODE.get(code, WbcacheError)
    return cls(msg, code)
