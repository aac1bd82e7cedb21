"""A writer process killed (SIGKILL) after acknowledged writes: with no flusher running
while it wrote, every acknowledged write is in PostgreSQL once a wb-flusher started after
the crash has drained the log."""
import signal
import time

from conftest import Env, psql, run_python

WRITER = """
import sys, wbcache
cfg, prefix = sys.argv[1], sys.argv[2]
c = wbcache.Client(cfg)
n = 0
while True:  # until killed
    c.put("item", f"{prefix}{n}", f"value-{n}", ack=wbcache.Ack.LOG)
    print(n, flush=True)  # acknowledged by Kafka (acks=all)
    n += 1
"""
ACKED = 300


def test_killed_writer_loses_no_acknowledged_write(env: Env) -> None:
    prefix = env.id("crash") + "-"
    env.flusher.stop()
    writer = run_python(WRITER, str(env.cfg), prefix)
    acked = []
    try:
        assert writer.stdout is not None
        deadline = time.monotonic() + 60
        while len(acked) < ACKED:
            line = writer.stdout.readline()
            assert line, f"writer died: {writer.stderr.read() if writer.stderr else ''}"
            acked.append(int(line))
            assert time.monotonic() < deadline, "writer too slow"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        env.flusher.start()
    assert writer.returncode == -signal.SIGKILL
    assert acked == list(range(len(acked)))
    table = f"{env.tag}_items"
    deadline = time.monotonic() + 30
    while True:
        rows = psql(f"SELECT key, value FROM {table} WHERE key LIKE '{prefix}%'")
        got = {k: v for k, v in rows}
        missing = [n for n in acked if got.get(f"{prefix}{n}") != f"value-{n}"]
        if not missing:
            break
        assert time.monotonic() < deadline, f"{len(missing)} acknowledged writes missing"
        time.sleep(0.2)
    # Writes after the last line read may or may not have been acknowledged; none is lost
    # or mangled either way.
    assert all(v == "value-" + k[len(prefix):] for k, v in got.items())
