"""Run trusted code that loads untrusted design code in a child process, and get a structured result back.

Layers, each used where the OS allows it:

1. bubblewrap: read-only root, private /tmp, credentials hidden, only the work directory writable, new user, PID,
   network, IPC and UTS namespaces (no network at all), capabilities dropped, environment cleared;
2. resource limits: address space, CPU seconds, file size (bounds output too), process count;
3. a wall-clock timeout that kills the child's whole process group (and, under bubblewrap, its PID namespace);
4. the in-process guard (:mod:`model_discovery.sandbox.guard`) against network, processes, writes outside the work
   directory, credential reads, pickle and ctypes.

The child's environment holds no API keys or cloud credentials: it is built from scratch, not filtered.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from model_discovery.files import tail
from model_discovery.sandbox.limits import Limits
from model_discovery.sandbox.progress import PROGRESS_FILE

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_RESULT_MAX_BYTES = 4 << 20
_HIDDEN = ("/root", "/home", "/run", "/var/run", "/mnt", "/media", "/srv")


class SandboxResult(BaseModel):
    """What came back from one run. ``ok`` means the target returned a value."""

    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    violations: list[str] = []
    timed_out: bool = False
    returncode: int | None = None
    signal: str | None = None
    wall_s: float = 0.0
    isolation: str = "rlimits"
    stdout: str = ""
    stderr: str = ""
    output_bytes: int = 0
    progress: str | None = None  # the child's last note in progress.txt: which phase it was in


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """Whether bubblewrap can create namespaces here (installed, and user namespaces allowed)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    probe = [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.lru_cache(maxsize=1)
def isolation_level() -> str:
    """``bwrap+rlimits+guard`` with namespaces, else ``rlimits+guard`` (said once, in the log)."""
    if bwrap_available():
        return "bwrap+rlimits+guard"
    log.warning("bubblewrap is not usable here: sandboxed runs fall back to resource limits and the in-process "
                "guard, without namespaces (install the 'bubblewrap' package for full isolation).")
    return "rlimits+guard"


def _child_env(workdir: str, limits: Limits) -> dict[str, str]:
    threads = str(limits.threads)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": os.path.join(workdir, "tmp"),
        "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
        "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads, "MODIS_SANDBOXED": "1",
        **{k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_CBWR") if k in os.environ},
    }


def code_folders() -> list[str]:
    """The interpreter's and the project's folders (real paths): every sandboxed child must read them."""
    return sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, str(PROJECT_ROOT))})


def _bwrap_argv(workdir: str, env: dict[str, str], read_only: Sequence[Path] = (),
                caps: Sequence[str] = ()) -> list[str]:
    """bubblewrap's arguments for a run in ``workdir``; ``caps`` are kept (only the warm sandbox's zygote keeps
    one, to build its children's namespaces)."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for device in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):  # GPUs stay usable
        argv += ["--dev-bind", device, device]
    for path in _HIDDEN:  # where credentials live
        if os.path.isdir(path) and not os.path.islink(path):
            argv += ["--tmpfs", path]
    # the interpreter and code we run, and what the caller lets the child read
    for real in dict.fromkeys([*code_folders(), *(os.path.realpath(p) for p in read_only)]):
        argv += ["--ro-bind", real, real]
    argv += ["--bind", workdir, workdir, "--chdir", workdir, "--unshare-all", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", *(arg for cap in caps for arg in ("--cap-add", cap)), "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--"]


try:
    _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing is loaded between fork and exec
except OSError:
    _LIBC = None
PR_SET_PDEATHSIG = 1


# The CUDA runtime reserves far more address space than any RLIMIT_AS a training could live with (the GPU's memory
# and more, as inaccessible mappings), so where GPUs are present the data segment is limited instead: it counts the
# writable memory a process really uses, not the reservations.
MEMORY_RLIMIT = resource.RLIMIT_DATA if glob.glob("/dev/nvidia[0-9]*") else resource.RLIMIT_AS


def die_with_parent() -> None:
    """Between fork and exec: the child is killed when its parent dies (Linux; elsewhere a no-op), so a parent
    killed with SIGKILL leaves nothing running behind it."""
    if _LIBC is not None and sys.platform.startswith("linux"):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _set_limits(limits: Limits) -> None:
    """Runs in the child between fork and exec. The child dies with its parent (bubblewrap's --die-with-parent
    does the same inside the sandbox)."""
    die_with_parent()
    mb = 1 << 20
    resource.setrlimit(MEMORY_RLIMIT, (limits.memory_mb * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; the guard and namespaces cover it there
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_procs,) * 2)


def _read_result(workdir: Path) -> dict | None:
    path = workdir / "result.json"
    if not path.is_file() or path.stat().st_size > _RESULT_MAX_BYTES:
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def warm_default() -> bool:
    """Whether sandboxes fork from a warm zygote by default: yes, unless ``MODIS_SANDBOX_WARM=0``."""
    return os.environ.get("MODIS_SANDBOX_WARM", "1").strip().lower() not in ("0", "false", "no", "off")


class ProcessSandbox:
    """Runs ``target(payload)`` in a fresh, isolated Python process per call (the default sandbox).

    The process is forked from a warm zygote that has imported torch and the project already
    (:mod:`model_discovery.sandbox.zygote`), or started cold (``python -m model_discovery.sandbox.child``) where the
    zygote cannot serve the call: ``warm=False`` or ``MODIS_SANDBOX_WARM=0``, or a zygote that fails to start or
    refuses the call. A caller's own ``workdir`` goes to a zygote whose writable pool is that folder's parent. Both
    paths give the child the same isolation, limits and result."""

    def __init__(self, limits: Limits | None = None, use_bwrap: bool | None = None, guard: bool = True,
                 warm: bool | None = None):
        """``use_bwrap=False`` or ``guard=False`` turn a layer off, to test the others alone; ``warm=None`` follows
        ``MODIS_SANDBOX_WARM`` (on unless ``0``)."""
        self.limits = limits or Limits()
        self.use_bwrap = bwrap_available() if use_bwrap is None else use_bwrap and bwrap_available()
        self.guard = guard
        self.warm = warm_default() if warm is None else warm

    @property
    def isolation(self) -> str:
        level = isolation_level() if self.use_bwrap else "rlimits+guard"
        return level if self.guard else level.replace("+guard", "")

    def run(self, target: str, payload: dict, files: dict[str, str] | None = None,
            limits: Limits | None = None, workdir: Path | None = None,
            read_only: Sequence[Path] = ()) -> SandboxResult:
        """Calls ``target`` (``"module:function"``, trusted) with ``payload`` in a child; ``files`` are written
        into its work directory first (e.g. the design source). The work directory is private and removed
        afterwards, unless ``workdir`` names one to use and keep (a job's output folder, which it resumes from).
        ``read_only`` folders stay readable under bubblewrap (which hides /tmp and the home's secrets)."""
        limits = limits or self.limits
        zygote = self._zygote(limits, workdir, read_only)
        if zygote is None:
            return self._run(target, payload, files, limits, workdir, read_only, None)
        from model_discovery.sandbox.zygote import WarmRefused, ZygoteGone

        try:
            try:
                return self._run(target, payload, files, limits, workdir, read_only, zygote)
            except ZygoteGone:  # it died before or while running it: once more, with a new one
                return self._run(target, payload, files, limits, workdir, read_only,
                                 self._zygote(limits, workdir, read_only, replace=zygote))
        except WarmRefused as exc:  # before the child existed: never weaker isolation, so cold
            log.warning("%s: starting the child cold", exc)
            return self._run(target, payload, files, limits, workdir, read_only, None)

    def _run(self, target: str, payload: dict, files: dict[str, str] | None, limits: Limits,
             workdir: Path | None, read_only: Sequence[Path], zygote) -> SandboxResult:
        # a warm child under bubblewrap sees only what its zygote's pool holds: its private folder lives there
        private = zygote.pool if zygote is not None and workdir is None else None
        with tempfile.TemporaryDirectory(prefix="modis-sandbox-", dir=private) as tmp:
            work = Path(workdir).resolve() if workdir else Path(tmp) / "work"
            (work / "tmp").mkdir(parents=True, exist_ok=True)
            for name, text in (files or {}).items():
                (work / name).write_text(text)
            request = {"target": target, "payload": payload, "guard": self.guard}
            (work / "request.json").write_text(json.dumps(request))
            try:
                return self._spawn(work, Path(tmp), limits, read_only, zygote)
            finally:
                for name in ("request.json", "result.json", PROGRESS_FILE):
                    (work / name).unlink(missing_ok=True)

    def _zygote(self, limits: Limits, workdir: Path | None, read_only: Sequence[Path], replace=None):
        """The warm zygote for this call (a new one instead of ``replace``), or None for the cold path."""
        if not self.warm:
            return None
        from model_discovery.sandbox import zygote

        # under bubblewrap a caller's own folder is reachable only through a zygote whose pool holds it
        pool = Path(workdir).resolve().parent if workdir is not None and self.use_bwrap else None
        try:
            return zygote.zygote_for(limits.threads, self.use_bwrap, read_only, replace=replace, pool=pool)
        except (OSError, RuntimeError) as exc:
            log.warning("the warm sandbox is not available (%s): starting the child cold", exc)
            return None

    def _spawn(self, workdir: Path, tmp: Path, limits: Limits, read_only: Sequence[Path], zygote) -> SandboxResult:
        out_path, err_path = tmp / "stdout", tmp / "stderr"
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            if zygote is not None:
                returncode, timed_out = self._fork(zygote, workdir, limits, out, err)
                via_bwrap = False  # the intermediate reports a signal as -N, as Popen does
            else:
                returncode, timed_out = self._start_cold(workdir, limits, read_only, out, err)
                via_bwrap = self.use_bwrap
        wall = time.monotonic() - start
        stdout, n_out = tail(out_path, limits.output_bytes)
        stderr, n_err = tail(err_path, limits.output_bytes)
        result = None if timed_out else _read_result(workdir)
        progress = workdir / PROGRESS_FILE
        note = progress.read_bytes()[:400].decode(errors="replace") if progress.is_file() else None
        sig = _signal_name(returncode, via_bwrap)
        base = dict(timed_out=timed_out, returncode=returncode, signal=sig, wall_s=wall,
                    isolation=self.isolation, stdout=stdout, stderr=stderr, output_bytes=n_out + n_err,
                    progress=note)
        if result is None:
            why = (f"timed out after {limits.wall_s:.0f} s" if timed_out else
                   f"used up its {limits.cpu_s} CPU-seconds" if sig == "SIGXCPU" else
                   f"killed by {sig}" if sig else f"exited with code {returncode} without a result")
            return SandboxResult(ok=False, error=why, **base)
        return SandboxResult(ok=bool(result.get("ok")), value=result.get("value"), error=result.get("error"),
                             traceback=result.get("traceback"), violations=result.get("violations", []), **base)

    def _start_cold(self, workdir: Path, limits: Limits, read_only: Sequence[Path], out, err) -> tuple[int, bool]:
        """A new interpreter (under bubblewrap where used); (its return code, whether it timed out)."""
        env = _child_env(str(workdir), limits)
        argv = [sys.executable, "-m", "model_discovery.sandbox.child"]  # env is ours, so PYTHON* vars are too
        if self.use_bwrap:
            argv = _bwrap_argv(str(workdir), env, read_only) + argv
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=lambda: _set_limits(limits))
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc)
        return proc.returncode, timed_out

    @staticmethod
    def _fork(zygote, workdir: Path, limits: Limits, out, err) -> tuple[int | None, bool]:
        """A fork of the warm zygote; (its return code, whether it timed out)."""
        return zygote.run(workdir, limits, out, err)


def _signal_name(returncode: int | None, via_bwrap: bool) -> str | None:
    """The signal that ended the child (bubblewrap reports a child's death by signal N as exit code 128 + N)."""
    number = -returncode if returncode and returncode < 0 else None
    if via_bwrap and returncode and 128 < returncode < 128 + 65:
        number = returncode - 128
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()

