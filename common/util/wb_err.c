/* wb_err.c — names of the project-wide error codes (wb_err_t in wbcache.h). */
#include "wbcache.h"

const char *wb_err2str(wb_err_t err)
{
    /* A switch rather than a table: with -Wall the compiler flags a new enum
     * value that has no string here. */
    switch (err) {
    case WB_OK:
        return "success";
    case WB_ERR_INVALID_ARG:
        return "invalid argument";
    case WB_ERR_NOMEM:
        return "out of memory";
    case WB_ERR_CONFIG:
        return "invalid configuration";
    case WB_ERR_IO:
        return "I/O error";
    case WB_ERR_REDIS:
        return "Redis error";
    case WB_ERR_KAFKA:
        return "Kafka error";
    case WB_ERR_PG:
        return "PostgreSQL error";
    case WB_ERR_TIMEOUT:
        return "timed out";
    case WB_ERR_NOT_FOUND:
        return "not found";
    case WB_ERR_QUEUE_FULL:
        return "event queue full";
    case WB_ERR_TOO_LARGE:
        return "value too large";
    case WB_ERR_UNKNOWN_ENTITY:
        return "unknown entity";
    case WB_ERR_DECODE:
        return "malformed change event";
    case WB_ERR_STALE:
        return "stale version";
    case WB_ERR_LOADER:
        return "loader failed";
    case WB_ERR_CLOSED:
        return "handle closed";
    case WB_ERR__COUNT:
        break;
    }
    return "unknown error";
}
