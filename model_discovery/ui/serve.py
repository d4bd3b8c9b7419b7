"""``serve(run_dir)``: the front-end on a free loopback port for as long as the ``with`` block lasts (used by the
browser test, ``scripts/screenshots.py`` and ``scripts/bench_ui.py``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(run_dir: str | Path, timeout_s: float = 90.0) -> Iterator[str]:
    """Starts ``./run_demo.sh RUN_DIR --port P`` and yields ``http://127.0.0.1:P`` once it answers."""
    port = free_port()
    proc = subprocess.Popen([str(ROOT / "run_demo.sh"), str(run_dir), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout_s
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"run_demo.sh did not start: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
