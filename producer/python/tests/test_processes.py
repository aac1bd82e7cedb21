"""Several processes: the stampede lock across processes, and a process that exits without
closing its client."""
import time

from conftest import Env, run_python

READERS = """
import sys, threading, time, wbcache
cfg, id_, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
calls = []
def loader(entity, i):
    calls.append(i)
    time.sleep(0.3)
    return "one load for all"
with wbcache.Client(cfg) as c:
    out = []
    def read():
        time.sleep(max(0.0, start - time.time()))
        out.append(c.get_or_load("item", id_, loader).data)
    ts = [threading.Thread(target=read) for _ in range(10)]
    for t in ts: t.start()
    for t in ts: t.join()
print(len(calls), sum(v == b"one load for all" for v in out))
"""

EXIT_WITHOUT_CLOSE = """
import sys, wbcache
c = wbcache.Client(sys.argv[1])
c.put("item", sys.argv[2], "flushed at exit")  # ack cache: the Kafka send is queued
# no close: the client is closed (and flushed) at interpreter exit
"""


def test_stampede_across_processes_one_load(env: Env) -> None:
    """5 processes x 10 threads miss one key at the same moment: one loader call in all."""
    i = env.id("stampede-proc")
    start = time.time() + 2.0  # every child has opened its client by then
    procs = [run_python(READERS, str(env.cfg), i, str(start)) for _ in range(5)]
    loads = served = 0
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        n_loads, n_served = map(int, out.split())
        loads += n_loads
        served += n_served
    assert loads == 1
    assert served == 50


def test_exit_without_close_flushes(env: Env) -> None:
    i = env.id("atexit")
    p = run_python(EXIT_WITHOUT_CLOSE, str(env.cfg), i)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    env.wait_row(f"{env.tag}_items", i, "flushed at exit")
