"""Loaded by the servers ``bench_serve_ab.py`` starts (this directory on their ``PYTHONPATH``): when
``RLM_BENCH_LOOP_IDLE`` names a file, the main thread's time in ``select`` (the event loop waiting
for work) is added up and written there (two doubles: the idle seconds of the waits ended, and the
``time.monotonic()`` at which the current wait began, 0 when none) around every wait; the benchmark
reads it around each round. Busy time = wall time - idle time: callbacks, blocking calls made on the
loop, waits for the GIL and preemption alike (everything during which the loop serves no one)."""

import os
import selectors
import struct
import threading
import time

_path = os.environ.pop("RLM_BENCH_LOOP_IDLE", "")
if _path:
    _fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    _idle = [0.0]
    _main = threading.main_thread()
    _select = selectors.EpollSelector.select

    def select(self, timeout=None):
        if threading.current_thread() is not _main:
            return _select(self, timeout)
        t = time.monotonic()
        os.pwrite(_fd, struct.pack("dd", _idle[0], t), 0)
        try:
            return _select(self, timeout)
        finally:
            _idle[0] += time.monotonic() - t
            os.pwrite(_fd, struct.pack("dd", _idle[0], 0.0), 0)

    selectors.EpollSelector.select = select
