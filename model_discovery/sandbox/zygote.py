"""Warm sandboxes: a zygote that has imported torch and the project once, and forks a fresh child per run.

Starting ``python -m model_discovery.sandbox.child`` costs seconds, nearly all of it importing torch and the
project. The zygote pays that once per parent process and then forks. Three processes take part in a run:

``zygote``
    ``python -m model_discovery.sandbox.zygote FD``, started by the parent, inside ONE bubblewrap instance when
    bubblewrap is usable (the same argv as a cold run, except that its writable bind is a per-zygote *pool* folder
    and it keeps ``CAP_SETFCAP``, which the kernel asks of whoever maps root into a nested user namespace). It
    imports only trusted code (:data:`PRELOAD`; never a design, and it runs no torch operation, so no thread pool of
    torch exists when it forks), then waits on its control socket for requests: a small JSON object (work folder,
    limits) with three descriptors (the run's own socket, stdout and stderr files). It never reads a request file;
    the child does.
``intermediate``
    Forked per request. Under bubblewrap it unshares new user, mount, PID, network, IPC, UTS (and cgroup)
    namespaces, mounts fresh tmpfs over ``/tmp`` and over the pool (so no child sees another's files, or a
    sibling's writable folder), and binds its own work folder back, writable. Then it forks the child and watches
    two things: the child's exit (a pidfd) and the run's socket. When the parent closes its end (wall time-out, or
    the parent died) it kills the child's process group; in the new PID namespace the child is PID 1, so everything
    the child left behind dies with it, on time-out and on a normal exit alike. It reports the child's exit status
    (``Popen``'s convention: ``-N`` for signal N) on the run's socket.
``child``
    PID 1 of the fresh namespaces: mounts its own ``/proc``, drops every capability (as bubblewrap's
    ``--cap-drop ALL``), starts a new session, points stdin at /dev/null and stdout/stderr at the parent's files,
    replaces its environment with exactly a cold run's (:func:`~model_discovery.sandbox.runner._child_env`),
    applies the thread budget (``torch.set_num_threads`` and the inter-op one), chdirs into its work folder, sets
    the resource limits (RLIMIT_CPU counts this process alone: it is fresh) and runs the cold child's ``main``
    (``request.json`` to ``result.json``, the guard installed there).

Without bubblewrap the zygote is a plain process and the child gets what a cold run gets there: its own session,
resource limits and the guard; the intermediate kills the child's process group after it exits or times out.

A caller's own work folder (``run(workdir=...)``, e.g. a verification's output) cannot be bound into a zygote's
namespaces afterwards (the kernel refuses to bind a mount from another mount namespace, and the zygote sees the host
read-only). So such a run goes to a zygote whose pool is the work folder's parent: the folder is there, and the
intermediate covers the rest of the pool as for private folders. A run's verifications share one parent folder, and
so one zygote; at most :data:`MAX_ZYGOTES` live at once.

Parent side: :func:`zygote_for` keeps one zygote per (thread budget, bubblewrap or not, read-only folders, pool) in this
process, started lazily, restarted when it died, shut down at exit (and with the parent: ``--die-with-parent``,
``PR_SET_PDEATHSIG``). Requests are serialised on the control socket with a lock; each run has its own socket, so
runs from several threads proceed side by side.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from model_discovery.sandbox.limits import Limits
from model_discovery.sandbox.runner import _bwrap_argv, _child_env, _set_limits, code_folders, die_with_parent

log = logging.getLogger(__name__)

# trusted modules the zygote imports before its first fork: torch and the sandbox's target modules
PRELOAD = ("torch", "model_discovery.sandbox.child", "model_discovery.checker.dynamic", "model_discovery.verify.job",
           "model_discovery.verify.kinds", "model_discovery.evals.score")
START_TIMEOUT_S = 180.0
CHILD_NAME = b"modis-sandbox"  # the child's process name (its command line is the zygote's)

_CLONE_NEWNS, _CLONE_NEWCGROUP, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_PR_SET_DUMPABLE, _PR_SET_NAME, _PR_CAPBSET_DROP, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 4, 15, 24, 36, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


# ---------------------------------------------------------------------------------------------------------------
# inside the zygote


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _isolate(workdir: str, pool: str, read_only: Sequence[str] = ()) -> None:
    """In the intermediate: fresh namespaces, and a mount table where ``workdir`` is the only writable folder of
    the pool, ``/tmp`` is new and empty but for the ``read_only`` folders the caller lets the child read (bound
    back, read-only). The child forked next is PID 1 of the new PID namespace."""
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    if libc.unshare(flags | _CLONE_NEWCGROUP) != 0:  # as bubblewrap's --unshare-cgroup-try
        _check(libc.unshare(flags), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making mounts private")
    # opened in the new mount namespace (the kernel binds only its own mounts), before the pool is covered
    work_fd = os.open(workdir, os.O_PATH | os.O_DIRECTORY)
    covers = ["/tmp"] + ([] if pool.startswith("/tmp/") else [pool])
    hidden = [(path, os.open(path, os.O_PATH)) for path in read_only
              if any(path == c or path.startswith(c + "/") for c in covers)]
    for path in covers:  # hides the pool: the other runs' folders, this run's output files
        _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755"), f"tmpfs {path}")
    os.makedirs(workdir, exist_ok=True)
    _check(libc.mount(f"/proc/self/fd/{work_fd}".encode(), workdir.encode(), None, _MS_BIND, None), "binding work")
    os.close(work_fd)
    for path, fd in hidden:  # what the cover hid of the folders the child may read, read-only as before
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()  # a mount point for a file
        _check(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, _MS_BIND | _MS_REC, None),
               f"binding {path}")
        _check(libc.mount(None, path.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                          None), f"{path} read-only")
        os.close(fd)
    if pool in covers:  # read-only around the work folder, as the host is in a cold run (/tmp stays writable)
        _check(libc.mount(None, pool.encode(), None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None),
               "pool read-only")


def _drop_capabilities() -> None:
    """In the child: no capability left, in any set, and none to be regained (bubblewrap's --cap-drop ALL)."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice 32 bits, all zero
    _check(libc.capset(header, data), "capset")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _child(request: dict, out_fd: int, err_fd: int) -> None:
    """The forked child: becomes a cold child's equal, then runs its main. Never returns."""
    code = 1
    try:
        os.setsid()
        die_with_parent()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        libc = _libc()
        if request["namespaces"]:
            _drop_capabilities()
        libc.prctl(_PR_SET_NAME, CHILD_NAME, 0, 0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((devnull, 0), (out_fd, 1), (err_fd, 2)):
            os.dup2(fd, target)
            os.close(fd)
        workdir, limits = request["workdir"], Limits(**request["limits"])
        os.environ.clear()
        os.environ.update(_child_env(workdir, limits))
        os.chdir(workdir)
        tempfile.tempdir = None  # from TMPDIR, as in a fresh interpreter
        sys.path[0] = workdir  # as ``python -m`` started in the work folder
        importlib.invalidate_caches()
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(limits.threads)  # the inter-op threads: child.main, as in a cold run
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()  # not the zygote's state, shared by every child
        _set_limits(limits)
        from model_discovery.sandbox import child

        code = child.main()
    except BaseException:  # reported on stderr, as a cold child's failure would be
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _intermediate(request: dict, call_fd: int, out_fd: int, err_fd: int) -> None:
    """Forked by the zygote per request: sets up the namespaces and starts the supervisor (PID 1 there)."""
    die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    call = socket.socket(fileno=call_fd)
    if not request["namespaces"]:
        _supervise(request, call, out_fd, err_fd)
        return
    try:
        _isolate(request["workdir"], request["pool"], request.get("read_only", ()))
    except OSError as exc:
        call.send(json.dumps({"error": f"the warm sandbox could not isolate the run: {exc}"}).encode())
        return
    init = os.fork()
    if init == 0:
        code = 0
        try:
            die_with_parent()
            _supervise(request, call, out_fd, err_fd)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    call.close()
    os.close(out_fd)
    os.close(err_fd)
    os.waitpid(init, 0)  # this process stays, so that the zygote's death reaches PID 1 (PR_SET_PDEATHSIG)


def _supervise(request: dict, call: socket.socket, out_fd: int, err_fd: int) -> None:
    """Forks the child, kills its group when it is done or the parent hangs up (time-out, or the parent died), and
    reports its exit status on the run's socket. Under namespaces this is PID 1, not the child: the kernel does not
    deliver SIGXCPU or SIGABRT to a PID 1 without a handler, and the end of PID 1 kills whatever the child left."""
    if not request["namespaces"]:  # what the child leaves behind becomes ours when the child is gone
        _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        call.close()
        _child(request, out_fd, err_fd)
    os.close(out_fd)
    os.close(err_fd)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd, call], [], [])
    if pidfd not in ready:
        os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: its group id is still its own
    try:
        os.killpg(pid, signal.SIGKILL)  # what it left in its group
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    _end_the_rest(request["namespaces"])  # before the reply: when the parent's run returns, nothing is left
    try:
        call.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
    except OSError:
        pass


def _end_the_rest(namespaces: bool) -> None:
    """Kills and reaps every process the child left: in its own PID namespace (this is PID 1 there) all of them;
    without one, those that became this subreaper's children (in the child's group or not)."""
    if namespaces:
        try:
            os.kill(-1, signal.SIGKILL)  # from PID 1: every other process of the namespace
        except ProcessLookupError:
            pass
    while True:
        if not namespaces:
            for pid in _children():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children() -> list[int]:
    """This process's children (the orphans a subreaper adopted among them), from /proc."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == me:  # the field after the state: the parent
                found.append(int(entry))
    return found


def main(control_fd: int) -> None:
    """The zygote's loop: one fork per request, until the parent closes the control socket."""
    control = socket.socket(fileno=control_fd)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a child that needs it imports it (and reports the error) itself
            traceback.print_exc()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # intermediates are reaped by the kernel
    # no process of this tree lets another reach its files through /proc/PID/{cwd,root,fd} (inherited by forks)
    _check(_libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    control.send(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 16, 3)
        except OSError:
            break
        if not message:
            break
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            code = 0
            try:
                control.close()
                _intermediate(json.loads(message), *fds)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------------------------------------------------------
# in the parent


class ZygoteGone(RuntimeError):
    """The zygote did not take the request (it died): start another."""


class WarmRefused(RuntimeError):
    """The zygote could not isolate this run (a namespace or mount operation was refused): run it cold."""


class Zygote:
    """The parent's handle on one zygote process."""

    def __init__(self, threads: int, use_bwrap: bool, read_only: Sequence[Path] = (), pool: Path | None = None):
        """``pool``: the folder under which the callers' own work folders lie (e.g. a run's verification folders);
        default: a private one, where the runs without a work folder of their own get theirs."""
        self.threads, self.use_bwrap, self.read_only = threads, use_bwrap, tuple(read_only)
        # what a child may read in its fresh /tmp: the code too (an interpreter installed under /tmp would vanish)
        self.child_reads = list(dict.fromkeys([*code_folders(), *(os.path.realpath(p) for p in self.read_only)]))
        self.base = Path(tempfile.mkdtemp(prefix="modis-zygote-"))
        self.pool = pool or self.base / "pool"
        self.pool.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = _child_env(str(self.pool), Limits(threads=threads))
        argv = [sys.executable, "-m", "model_discovery.sandbox.zygote", str(theirs.fileno())]
        if use_bwrap:
            argv = _bwrap_argv(str(self.pool), env, self.read_only, caps=("CAP_SETFCAP",)) + argv
        with open(self.base / "zygote.log", "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=self.pool, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, pass_fds=[theirs.fileno()],
                                         start_new_session=True, preexec_fn=die_with_parent)
        theirs.close()
        self.sock = ours
        ours.settimeout(START_TIMEOUT_S)
        try:
            ready = ours.recv(16)
        except OSError:
            ready = b""
        ours.settimeout(None)
        if ready != b"ready":
            self.close()
            raise RuntimeError(f"the sandbox zygote did not start: {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return (self.base / "zygote.log").read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, workdir: Path, limits: Limits, out, err) -> tuple[int | None, bool]:
        """Runs the child in ``workdir``; (its return code, or None if it was lost; whether it timed out). Raises
        :class:`ZygoteGone` if the zygote did not take the request."""
        call, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {"workdir": str(workdir), "limits": limits.model_dump(), "pool": str(self.pool),
                   "read_only": self.child_reads, "namespaces": self.use_bwrap}
        try:
            with self._lock:
                socket.send_fds(self.sock, [json.dumps(request).encode()], [theirs.fileno(), out.fileno(),
                                                                            err.fileno()])
        except OSError as exc:
            call.close()
            raise ZygoteGone(str(exc)) from exc
        finally:
            theirs.close()
        with call:
            deadline = time.monotonic() + limits.wall_s
            timed_out = not _readable(call, deadline)
            if timed_out:
                call.shutdown(socket.SHUT_WR)  # the intermediate kills the child's group and reports
                _readable(call, time.monotonic() + 30)
            try:
                reply = json.loads(call.recv(4096) or b"{}")
            except (OSError, json.JSONDecodeError):
                reply = {}
        if "error" in reply:
            raise WarmRefused(reply["error"])
        if "returncode" not in reply and not timed_out:
            try:
                self.proc.wait(timeout=2)
                raise ZygoteGone(f"the sandbox zygote died during a run in {workdir}")  # the caller runs it again
            except subprocess.TimeoutExpired:
                log.warning("the sandbox zygote lost a run in %s; its log ends: %s", workdir, self.log()[-1500:])
        return reply.get("returncode"), timed_out

    def close(self) -> None:
        """Ends the zygote (it exits when its control socket closes; its group is killed to be sure)."""
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        import shutil

        shutil.rmtree(self.base, ignore_errors=True)


def _readable(sock: socket.socket, deadline: float) -> bool:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            if select.select([sock], [], [], left)[0]:
                return True
        except InterruptedError:
            continue


_zygotes: dict[tuple, Zygote] = {}
_registry_lock = threading.Lock()
# A zygote dies with the thread that started it (PR_SET_PDEATHSIG, bubblewrap's --die-with-parent: the kernel
# means the parent *thread*), so one long-lived thread starts them all: a zygote first needed in a short-lived thread
# (a thread pool's, a web request's) would otherwise die under the next run.
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modis-zygote-starter")


MAX_ZYGOTES = 3  # each holds torch in memory (a few hundred MB): the least recently used beyond these is ended


def zygote_for(threads: int, use_bwrap: bool, read_only: Sequence[Path] = (), replace: Zygote | None = None,
               pool: Path | None = None) -> Zygote:
    """This process's zygote for these settings (and ``pool``, the folder holding the caller's work folders, or
    None for a private one): started if there is none, it died, or it is ``replace`` (which failed a request)."""
    key = (threads, use_bwrap, tuple(sorted(os.path.realpath(p) for p in read_only)),
           pool and os.path.realpath(pool))
    with _registry_lock:
        zygote = _zygotes.pop(key, None)
        if zygote is not None and (zygote is replace or not zygote.alive()):
            zygote.close()
            zygote = None
        if zygote is None:  # started from a thread that lives as long as this process (see _STARTER)
            zygote = _STARTER.submit(Zygote, threads, use_bwrap, key[2], pool and Path(key[3])).result()
        _zygotes[key] = zygote  # the most recently used last
        while len(_zygotes) > MAX_ZYGOTES:
            _zygotes.pop(next(iter(_zygotes))).close()
        return zygote


def shutdown() -> None:
    """Ends this process's zygotes (at interpreter exit; a later run starts new ones)."""
    with _registry_lock:
        for zygote in _zygotes.values():
            zygote.close()
        _zygotes.clear()


def _forget_after_fork() -> None:
    """In a forked child of the parent: the zygotes are the parent's; the child starts its own if it runs any."""
    global _registry_lock, _STARTER
    _registry_lock = threading.Lock()
    _STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modis-zygote-starter")
    for zygote in _zygotes.values():
        zygote.sock.close()
    _zygotes.clear()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_after_fork)

if __name__ == "__main__":
    main(int(sys.argv[1]))
