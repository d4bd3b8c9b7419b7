"""The sandbox child: ``python -m model_discovery.sandbox.child`` in the work directory.

Reads ``request.json`` (``target`` = ``"package.module:function"``, ``payload``), imports the trusted target, installs
the guard, calls ``function(payload)`` and writes ``result.json``. Only the target's own code is trusted; what it
loads afterwards (a design) runs under the guard.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

from model_discovery.files import atomic_write


def _pin_interop_threads() -> None:
    """Torch's inter-op threads from the same budget as its intra-op ones (which it reads from OMP_NUM_THREADS)."""
    torch = sys.modules.get("torch")
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if torch is not None and threads.isdigit():
        try:
            torch.set_num_interop_threads(int(threads))
        except RuntimeError:  # the target already ran inter-op work; its pool stays as it is
            pass


def _write(workdir: str, result: dict) -> None:
    """Into the work directory, wherever the target left the working directory."""
    atomic_write(os.path.join(workdir, "result.json"), json.dumps(result, default=str))


def main() -> int:
    workdir = os.getcwd()
    with open("request.json") as fh:
        request = json.load(fh)
    module_name, func_name = request["target"].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    _pin_interop_threads()
    from model_discovery.sandbox import guard

    if request.get("guard", True):
        guard.install(workdir)
    try:
        value = func(request["payload"])
        _write(workdir, {"ok": True, "value": value, "violations": list(guard.violations)})
    except BaseException as exc:  # the child reports every failure, including SystemExit from design code
        _write(workdir, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-4000:], "violations": list(guard.violations)})
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
