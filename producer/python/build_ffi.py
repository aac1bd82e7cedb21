"""build_ffi.py — the CFFI (API mode) build of wbcache._wbcache against libwbcache.

Where the library comes from, first match wins:

1. ``WBCACHE_BUILD_DIR``: a CMake build tree holding ``libwbcache.so`` (the header is
   ``WBCACHE_INCLUDE_DIR``, default ``<repo>/include``); a relative path is taken from the
   repository root (pip runs this file in its own working directory);
2. ``<repo>/build/ci``, the tree ``tests/run`` and the README's build command make, when
   this package sits in the repository (``producer/python``);
3. ``pkg-config wbcache``, after ``cmake --install`` (``PKG_CONFIG_PATH`` for a prefix
   pkg-config does not search).

The extension is linked with an rpath to that library directory, so it loads the same
``libwbcache.so`` at run time without ``LD_LIBRARY_PATH``. Only the public header
``wbcache.h`` is used.
"""
import os
import pathlib
import shlex
import subprocess

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

CDEF = """
typedef enum wb_err_e {
    WB_OK, WB_ERR_INVALID_ARG, WB_ERR_NOMEM, WB_ERR_CONFIG, WB_ERR_IO, WB_ERR_REDIS,
    WB_ERR_KAFKA, WB_ERR_PG, WB_ERR_TIMEOUT, WB_ERR_NOT_FOUND, WB_ERR_QUEUE_FULL,
    WB_ERR_TOO_LARGE, WB_ERR_UNKNOWN_ENTITY, WB_ERR_DECODE, WB_ERR_STALE, WB_ERR_LOADER,
    WB_ERR_CLOSED, WB_ERR__COUNT
} wb_err_t;
typedef enum wb_ack_e {
    WB_ACK_CACHE = 0, WB_ACK_LOG = 1, WB_ACK_REPLICA = 2, WB_ACK_DEFAULT = -1
} wb_ack_t;
typedef enum wb_log_level_e {
    WB_LOG_DEBUG = 0, WB_LOG_INFO = 1, WB_LOG_WARN = 2, WB_LOG_ERROR = 3
} wb_log_level_t;

typedef struct wb_client_s wb_client_t;
typedef void (*wb_log_fn)(wb_log_level_t level, const char *line, void *opaque);
typedef wb_err_t (*wb_loader_fn)(void *opaque, const char *entity, const char *id, void **value,
                                 size_t *len);

typedef struct wb_value_s {
    void *data;
    size_t len;
    int64_t version;
    int hit;
} wb_value_t;

typedef struct wb_write_s {
    const char *entity;
    const char *id;
    const void *value;
    size_t len;
    int64_t version;
    wb_err_t err;
} wb_write_t;

typedef struct wb_get_many_s {
    size_t size;
    wb_value_t *values;
    wb_err_t *errs;
    size_t hits;
    size_t loaded;
    ...;
} wb_get_many_t;

typedef struct wb_stats_s {
    uint64_t puts;
    uint64_t put_errors;
    uint64_t through_writes;
    uint64_t hits;
    uint64_t misses;
    uint64_t loads;
    uint64_t refresh_requests;
    uint64_t kafka_errors;
    uint64_t queue_depth;
    uint64_t redis_moved;
    uint64_t redis_ask;
    uint64_t redis_retries;
    ...;
} wb_stats_t;

const char *wb_err2str(wb_err_t err);
wb_err_t wb_client_open(const char *config_path, wb_log_fn log_cb, void *log_opaque,
                        wb_client_t **clientp, char *errstr, size_t errstr_size);
wb_err_t wb_client_flush(wb_client_t *client, int timeout_ms);
void wb_client_close(wb_client_t *client);
wb_err_t wb_client_set_log_level(wb_client_t *client, wb_log_level_t level);
void wb_value_free(wb_value_t *value);
wb_err_t wb_put(wb_client_t *client, const char *entity, const char *id, const void *value,
                size_t len, wb_ack_t ack, int64_t *versionp);
wb_err_t wb_del(wb_client_t *client, const char *entity, const char *id, wb_ack_t ack,
                int64_t *versionp);
wb_err_t wb_put_batch(wb_client_t *client, wb_write_t *writes, size_t n, wb_ack_t ack);
wb_err_t wb_put_through(wb_client_t *client, const char *entity, const char *id,
                        const void *value, size_t len, int64_t *versionp);
wb_err_t wb_get(wb_client_t *client, const char *entity, const char *id, wb_value_t *out);
wb_err_t wb_get_many(wb_client_t *client, const char *entity, const char *const *ids,
                     size_t n, wb_get_many_t *out);
wb_err_t wb_get_or_load(wb_client_t *client, const char *entity, const char *id,
                        wb_loader_fn loader, void *loader_opaque, wb_value_t *out);
size_t wb_client_stats(wb_client_t *client, wb_stats_t *stats, size_t stats_size);

void *malloc(size_t size);

extern "Python" void wbpy_log(wb_log_level_t level, const char *line, void *opaque);
extern "Python" wb_err_t wbpy_load(void *opaque, const char *entity, const char *id,
                                   void **value, size_t *len);
"""


def _pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "wbcache"], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def locate():
    """Returns (include_dirs, library_dirs, where) of libwbcache, or raises SystemExit."""
    build = os.environ.get("WBCACHE_BUILD_DIR")
    include = REPO / os.environ.get("WBCACHE_INCLUDE_DIR", "include")
    if build:
        lib = (REPO / build).resolve()
        if not (lib / "libwbcache.so").exists():
            raise SystemExit(f"wbcache: WBCACHE_BUILD_DIR={build} holds no libwbcache.so")
        if not (include / "wbcache.h").exists():
            raise SystemExit(f"wbcache: no wbcache.h in {include} (set WBCACHE_INCLUDE_DIR)")
        return [str(include)], [str(lib)], f"WBCACHE_BUILD_DIR {lib}"
    tree = REPO / "build" / "ci"
    if (tree / "libwbcache.so").exists() and (include / "wbcache.h").exists():
        return [str(include)], [str(tree)], f"build tree {tree}"
    cflags, libs = _pkg_config("--cflags-only-I"), _pkg_config("--libs-only-L")
    if cflags is not None and libs is not None:
        incs = [f[2:] for f in cflags if f.startswith("-I")]
        libdirs = [f[2:] for f in libs if f.startswith("-L")]
        return incs, libdirs, "pkg-config wbcache"
    raise SystemExit(
        "wbcache: libwbcache not found: build it first (cmake -S . -B build/ci && "
        "cmake --build build/ci), or set WBCACHE_BUILD_DIR to a build tree, or install it "
        "(cmake --install) where pkg-config finds wbcache.pc")


include_dirs, library_dirs, where = locate()
print(f"wbcache: building against libwbcache from {where}")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "wbcache._wbcache",
    "#include <stdlib.h>\n#include <wbcache.h>\n",
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    runtime_library_dirs=library_dirs,
    libraries=["wbcache"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
