"""In-process guard for the sandbox child: a CPython audit hook that refuses what design code may never do.

Torch functions that do file or library I/O in C++ (``torch.save``, ``torch.ops.load_library``, ...) raise no audit
event, so the guard replaces them with refusals. It is one layer among several (the static filter before,
namespaces and resource limits around); it also works where bubblewrap does not (macOS, no user namespaces). An
audit hook cannot be removed once installed. Every refusal is recorded, so a design that catches the
``PermissionError`` is still reported.
"""

from __future__ import annotations

import os
import sys

_BLOCKED_ALWAYS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "pty.spawn", "os.startfile",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "ctypes.PyObj_FromPtr",
    "pickle.find_class", "urllib.Request", "webbrowser.open",
    "sys.settrace", "sys.setprofile", "sys._current_frames", "gc.get_referrers", "gc.get_objects",
}
# events whose first argument is a path: allowed inside the work directory only
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move", "shutil.make_archive"}
_SECRET_PATHS = (".ssh", ".aws", ".netrc", ".git-credentials", ".config/gcloud", ".docker", ".kube", ".pgpass")

violations: list[str] = []
_workdir = ""


def _inside(path) -> bool:
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == _workdir or real.startswith(_workdir + os.sep) or real == os.devnull


def _refuse(event: str, detail: str) -> None:
    message = f"sandbox refused {event}: {detail}"
    violations.append(message)
    raise PermissionError(message)


def _is_secret(path) -> bool:
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == "/etc/shadow" or any(f"/{s}" in real for s in _SECRET_PATHS)


def _hook(event: str, args: tuple) -> None:
    if event in _BLOCKED_ALWAYS:
        _refuse(event, repr(args)[:200])
    elif event == "open":
        path, mode = args[0], args[1]
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writing = writing or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        if isinstance(path, int):
            return  # re-opening an inherited descriptor
        if writing and not _inside(path):
            _refuse(event, f"writing {os.fsdecode(path)!r} outside the work directory")
        if _is_secret(path):
            _refuse(event, f"reading credentials at {os.fsdecode(path)!r}")
    elif event in _PATH_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
                _refuse(event, f"touching {os.fsdecode(path)!r} outside the work directory")


# torch functions that open files or load libraries from C++, where no audit event is raised
_TORCH_NATIVE_IO = ("save", "load", "from_file", "serialization.save", "serialization.load", "jit.save",
                    "jit.load", "ops.load_library", "classes.load_library", "onnx.export", "UntypedStorage.from_file",
                    "TypedStorage.from_file", "utils.cpp_extension.load", "utils.cpp_extension.load_inline")


def _refusing(name: str):
    def refuse(*args, **kwargs):
        _refuse(f"torch.{name}", "native file or library access is not available to designs")

    return refuse


def _disarm_torch() -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    for name in _TORCH_NATIVE_IO:
        *path, attr = name.split(".")
        owner = torch
        try:
            for part in path:
                owner = getattr(owner, part)
            if hasattr(owner, attr):
                setattr(owner, attr, _refusing(name))
        except (AttributeError, ImportError, TypeError):
            continue


def install(workdir: str) -> None:
    """Installs the guard for the rest of this process's life."""
    global _workdir
    _workdir = os.path.realpath(workdir)
    _disarm_torch()
    sys.addaudithook(_hook)
