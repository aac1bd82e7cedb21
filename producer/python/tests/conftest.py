"""Fixtures of the wbcache Python tests: the real local services (deploy/local/services up),
Kafka topics and a config of this run's own, and a wb-flusher child from the build tree.

Environment (as `deploy/local/services env` prints it): WB_REDIS_HOST, WB_REDIS_PORT,
WB_KAFKA_BROKERS, WB_PG_DSN; WBCACHE_BUILD_DIR (default <repo>/build/ci) for wb-flusher.
Everything this run creates is named after its tag (topics, tables, the dirty index, the
ids), and removed at the end.
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

import pytest

import wbcache

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
BUILD = pathlib.Path(os.environ.get("WBCACHE_BUILD_DIR", REPO / "build" / "ci"))
SERVICES = REPO / "deploy" / "local" / "services"

REDIS_HOST = os.environ.get("WB_REDIS_HOST", "127.0.0.1")
REDIS_PORT = os.environ.get("WB_REDIS_PORT", "26370")
BROKERS = os.environ.get("WB_KAFKA_BROKERS", "127.0.0.1:26372")
PG_DSN = os.environ.get(
    "WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache password=wbcache")

#: cache-key prefix -> entity of the test config (the library refuses overlapping prefixes).
ENTITIES = {"pyi:": "item", "pyx:": "itemx", "pyd:": "doc", "pyh:": "hot", "pyb:": "blob"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_yaml(tag: str, http_port: int, producer_extra: str = "", redis_port: str = "",
                brokers: str = "", pg_dsn: str = "", kafka_timeout_ms: int = 5000) -> str:
    """A config for this run: its own topics, dirty index, tables and flusher group."""
    return f"""\
redis:
  host: {REDIS_HOST}
  port: {redis_port or REDIS_PORT}
  timeout_ms: 1000
  dirty_index: "{tag}:dirty"
kafka:
  brokers: "{brokers or BROKERS}"
  topics: {{changes: {tag}.changes, refresh: {tag}.refresh, dead_letter: {tag}.dlq}}
  partitions: 3
postgres:
  dsn: "{pg_dsn or PG_DSN}"
  connect_timeout_ms: 2000
  statement_timeout_ms: 5000
  schema: create
producer:
  ttl_jitter_pct: 0
  negative_ttl_ms: 3000
  lock_ttl_ms: 5000
  lock_wait_ms: 8000
  refresh_dedupe_ms: 1000
  kafka_timeout_ms: {kafka_timeout_ms}
  max_value_bytes: 100000
{producer_extra}flusher:
  group_id: {tag}.group
  http_listen: "127.0.0.1:{http_port}"
  batch: {{max_wait_ms: 50}}
  retry: {{initial_ms: 100, max_ms: 1000}}
log:
  level: info
entities:
  - {{name: item, prefix: "pyi:", table: {tag}_items, ttl_ms: 60000, value_type: text}}
  - {{name: itemx, prefix: "pyx:", table: {tag}_itemx, ttl_ms: 60000, value_type: text}}
  - {{name: doc, prefix: "pyd:", table: {tag}_docs, ttl_ms: 60000, value_type: jsonb}}
  - {{name: hot, prefix: "pyh:", table: {tag}_hot, ttl_ms: 2000, refresh_ahead: 0.5, value_type: text}}
  - {{name: blob, prefix: "pyb:", table: {tag}_blobs, ttl_ms: 60000, value_type: bytea}}
"""


def psql(sql: str) -> List[List[str]]:
    """Rows of sql run by psql on the test database (fields split on tabs)."""
    out = subprocess.run(["psql", PG_DSN, "-X", "-qAt", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          "-c", sql], check=True, capture_output=True, text=True,
                         env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})
    return [line.split("\t") for line in out.stdout.splitlines()]


def kafka_tool(*args: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen([str(SERVICES), "kafka-tool", "TopicCommand", "--bootstrap-server",
                             BROKERS, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Flusher:
    """A wb-flusher child of the test with the run's config (like tests/support/
    flusher_harness.c): start, wait until /readyz, stop."""

    def __init__(self, cfg: pathlib.Path, http_port: int, log: pathlib.Path) -> None:
        self.cfg, self.http_port, self.log = cfg, http_port, log
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 60) -> None:
        binary = BUILD / "wb-flusher"
        assert binary.exists(), f"{binary} not built (set WBCACHE_BUILD_DIR)"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([str(binary), "-c", str(self.cfg)], stdout=logf,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"wb-flusher exited: {self.log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"wb-flusher not ready in {timeout}s: {self.log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Env:
    """This run's names and config."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tag = f"py{os.getpid()}_{int(time.time() * 1000) % 100000000}"
        self.tmp = tmp
        self.http_port = free_port()
        self.cfg = tmp / "wbcache-test.yaml"
        self.cfg.write_text(config_yaml(self.tag, self.http_port))
        self.flusher = Flusher(self.cfg, self.http_port, tmp / "wb-flusher.log")
        self.tables = [f"{self.tag}_{t}" for t in ("items", "itemx", "docs", "hot", "blobs")]
        self._seq = 0

    def id(self, name: str) -> str:
        """A unique id of this run."""
        self._seq += 1
        return f"{self.tag}-{name}-{self._seq}"

    def write_config(self, name: str, **kw: Any) -> str:
        """Another config of this run (producer_extra, redis_port, brokers, pg_dsn,
        kafka_timeout_ms)."""
        path = self.tmp / f"{name}.yaml"
        path.write_text(config_yaml(self.tag, self.http_port, **kw))
        return str(path)

    def row(self, table: str, key: str) -> Optional[Dict[str, str]]:
        rows = psql(f"SELECT value, version, deleted FROM {table} WHERE key = '{key}'")
        if not rows:
            return None
        return {"value": rows[0][0], "version": rows[0][1], "deleted": rows[0][2]}

    def wait_row(self, table: str, key: str, value: str, timeout: float = 20) -> Dict[str, str]:
        """Waits until the row of key holds value (the flusher applied it)."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.row(table, key)
            if row is not None and row["value"] == value:
                return row
            assert time.monotonic() < deadline, f"{table} {key}: {row} after {timeout}s"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Topics of this run, a wb-flusher (which creates the tables), cleanup at the end."""
    e = Env(tmp_path_factory.mktemp("wbcache"))
    creators = [kafka_tool("--create", "--if-not-exists", "--topic", f"{e.tag}.{t}",
                           "--partitions", "3", "--replication-factor", "1")
                for t in ("changes", "refresh", "dlq")]
    for p in creators:
        out = p.communicate()[0].decode(errors="replace")
        assert p.returncode == 0, f"topic creation failed: {out}"
    try:
        e.flusher.start()
        yield e
    finally:
        e.flusher.stop()
        psql("DROP TABLE IF EXISTS " + ", ".join(e.tables))
        keys = subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "--scan",
                               "--pattern", f"*{e.tag}*"], capture_output=True, text=True)
        names = keys.stdout.split()
        for i in range(0, len(names), 500):
            subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "DEL",
                            *names[i:i + 500]], capture_output=True, check=False)
        kafka_tool("--delete", "--topic", f"{e.tag}\\..*").communicate()


@pytest.fixture
def client(env: Env) -> Iterator[wbcache.Client]:
    with wbcache.Client(str(env.cfg), entities=ENTITIES) as c:
        yield c


def run_python(code: str, *args: str) -> "subprocess.Popen[str]":
    """A child Python running code with args (the same interpreter, so the same wbcache)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
