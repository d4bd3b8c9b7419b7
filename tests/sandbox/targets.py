"""Functions the sandbox tests run in the child (imported there as trusted targets; they misbehave on purpose)."""

from __future__ import annotations

import os
import socket
import subprocess
import time


def echo(payload: dict) -> dict:
    return {"payload": payload, "cwd": os.getcwd(), "env": sorted(os.environ)}


def omp_threads(payload: dict) -> str | None:
    return os.environ.get("OMP_NUM_THREADS")


def try_everything(payload: dict) -> dict:
    """Attempts each escape and reports what happened, without raising."""
    outcome = {}

    def attempt(name, fn):
        try:
            fn()
            outcome[name] = "done"
        except Exception as exc:
            outcome[name] = f"{type(exc).__name__}: {exc}"[:200]

    attempt("write_outside", lambda: open(payload["marker"], "w").write("pwned"))
    attempt("write_inside", lambda: open("inside.txt", "w").write("fine"))
    attempt("connect", lambda: socket.create_connection(("127.0.0.1", payload["port"]), timeout=2).sendall(b"x"))
    attempt("spawn", lambda: subprocess.run(["touch", payload["marker"]], check=True, timeout=5))
    attempt("read_home", lambda: os.listdir(payload["home"]))
    outcome["secret_in_env"] = any(payload["secret"] in v for v in os.environ.values())
    return outcome


def spawn_sleeper_and_hang(payload: dict) -> dict:
    """Starts a grandchild in its own process and then never returns."""
    subprocess.Popen(["sleep", "299.713"])  # a duration no unrelated process uses, so the leftover check is exact
    while True:
        time.sleep(1)


def spin(payload: dict) -> dict:
    """Computes forever, on as many threads as torch has (its note says where it is)."""
    import torch

    from model_discovery.sandbox.progress import note

    note("spinning")
    x = torch.ones(256, 256)
    while True:
        x = (x @ x).tanh()


def allocate(payload: dict) -> dict:
    blocks = [bytearray(1 << 20) for _ in range(payload["mb"])]
    return {"allocated_mb": len(blocks)}


def write_big_file(payload: dict) -> dict:
    with open("big.bin", "wb") as fh:
        fh.write(b"\0" * (payload["mb"] << 20))
    return {"written": True}


def crash(payload: dict) -> dict:
    os.abort()
