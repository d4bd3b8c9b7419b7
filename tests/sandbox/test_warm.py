"""The warm sandbox: children forked from a zygote start fast, start clean, and are killed as cold ones are."""

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from model_discovery.sandbox import Limits, ProcessSandbox
from model_discovery.sandbox import zygote as zygote_module
from tests.conftest import NEEDS_BWRAP, WITH_AND_WITHOUT_BWRAP
from tests.sandbox.test_sandbox import _leftovers

W = "tests.sandbox.warm_targets"
TORCH = "tests.sandbox.torch_targets:threads"


def _zygote(sandbox: ProcessSandbox) -> zygote_module.Zygote:
    return zygote_module.zygote_for(sandbox.limits.threads, sandbox.use_bwrap)


def test_warm_is_the_default_and_starts_faster_than_cold(monkeypatch):
    monkeypatch.delenv("MODIS_SANDBOX_WARM", raising=False)
    warm = ProcessSandbox()
    assert warm.warm
    assert warm.run(TORCH, {}).ok  # the zygote is started (once) here
    start = time.monotonic()
    result = warm.run(TORCH, {})
    warm_s = time.monotonic() - start
    assert result.ok and "modis-zygote-" in str(_zygote(warm).pool)
    start = time.monotonic()
    assert ProcessSandbox(warm=False).run(TORCH, {}).ok
    cold_s = time.monotonic() - start
    assert warm_s < 1.5 and warm_s < cold_s, (warm_s, cold_s)


def test_modis_sandbox_warm_0_gives_the_cold_path(monkeypatch):
    monkeypatch.setenv("MODIS_SANDBOX_WARM", "0")
    sandbox = ProcessSandbox()
    assert not sandbox.warm
    result = sandbox.run("tests.sandbox.targets:echo", {})
    assert result.ok and "modis-zygote-" not in result.value["cwd"]
    assert ProcessSandbox(warm=True).warm  # the argument wins


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
def test_a_child_leaves_nothing_for_the_next(use_bwrap):
    """A sleeping process, a stray file in /tmp, an environment variable, another cwd: the next child sees none.
    Without bubblewrap /tmp is the host's and a process in a session of its own escapes, as in a cold run there:
    that case leaves its sleeper in the child's group and writes no file."""
    sandbox = ProcessSandbox(use_bwrap=use_bwrap, guard=False)
    name, sleep = f"modis-stray-{uuid.uuid4().hex}", "298.913"
    payload = {"name": name if use_bwrap else "", "sleep": sleep, "new_session": use_bwrap}
    first = sandbox.run(f"{W}:litter", payload)
    assert first.ok, first.error or first.stderr
    second = sandbox.run(f"{W}:look", payload)
    assert second.ok, second.error
    assert second.value == {"stray_file": False, "env": False, "cwd_is_work": True}
    assert not os.path.exists(f"/tmp/{name}")
    time.sleep(0.3)
    assert not _leftovers(f"sleep {sleep}"), "a process outlived its sandboxed run"


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
def test_the_zygote_restarts_after_being_killed(use_bwrap):
    sandbox = ProcessSandbox(use_bwrap=use_bwrap)
    assert sandbox.run("tests.sandbox.targets:echo", {}).ok
    zygote = _zygote(sandbox)
    os.killpg(zygote.proc.pid, signal.SIGKILL)
    zygote.proc.wait()
    result = sandbox.run("tests.sandbox.targets:echo", {"again": 1})
    assert result.ok and result.value["payload"] == {"again": 1}
    assert _zygote(sandbox) is not zygote and _zygote(sandbox).alive()


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
def test_a_warm_time_out_kills_everything(use_bwrap):
    sandbox = ProcessSandbox(Limits(wall_s=3), use_bwrap=use_bwrap, guard=False)
    assert sandbox.warm
    start = time.monotonic()
    result = sandbox.run("tests.sandbox.targets:spawn_sleeper_and_hang", {})
    assert result.timed_out and result.error == "timed out after 3 s"
    assert time.monotonic() - start < 10
    time.sleep(0.3)
    assert not _leftovers("sleep 299.713"), "a grandchild outlived the sandbox"
    assert not _leftovers(zygote_module.CHILD_NAME.decode(), exact=True), "the timed-out child is still there"


@NEEDS_BWRAP
@pytest.mark.parametrize("under_tmp", [True, False])
def test_a_caller_workdir_is_warm_and_its_neighbours_out_of_reach(tmp_path, under_tmp):
    """A verification's own folder: served by a zygote whose pool is the folder's parent; the child writes its own
    folder and sees nothing beside it (writes there land in its private /tmp, or are refused outside /tmp)."""
    if not under_tmp:
        # a folder outside /tmp, in the checkout (ignored by git), made here: a fresh clone has none yet
        pools = Path(__file__).parents[2] / ".pytest_cache" / "warm-pools"
        pools.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(tempfile.mkdtemp(prefix="modis-pool-", dir=pools))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "secret.txt").write_text("another job's file")
    sandbox = ProcessSandbox(use_bwrap=True, guard=False)  # the namespaces alone
    payload = {"sibling": str(tmp_path / "b" / "secret.txt")}
    first = sandbox.run(f"{W}:neighbours", payload, workdir=tmp_path / "a")
    start = time.monotonic()
    again = sandbox.run(f"{W}:neighbours", payload, workdir=tmp_path / "c")
    warm_s = time.monotonic() - start
    for result, folder in ((first, "a"), (again, "c")):
        assert result.ok, result.error
        assert result.value == {"cwd": str((tmp_path / folder).resolve()), "sibling_visible": False,
                                "parent_writable": under_tmp}
        assert (tmp_path / folder / "kept.txt").read_text() == "kept"
    assert not (tmp_path / "dropped.txt").exists()
    pool = zygote_module.zygote_for(sandbox.limits.threads, True, pool=tmp_path)
    assert pool.alive() and pool.pool == tmp_path.resolve() and warm_s < 5
    if not under_tmp:
        shutil.rmtree(tmp_path)


def test_concurrent_runs_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    sandbox = ProcessSandbox()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: sandbox.run("tests.sandbox.targets:echo", {"i": i}), range(8)))
    assert [r.value["payload"]["i"] for r in results] == list(range(8))
    assert len({r.value["cwd"] for r in results}) == 8


def test_a_zygote_first_needed_in_a_short_lived_thread_outlives_it():
    """The kernel ties a zygote's life to the thread that started it; the zygotes are all started by one that lives
    as long as the process, so a zygote started for a thread pool serves the next run too."""
    from concurrent.futures import ThreadPoolExecutor

    sandbox = ProcessSandbox(Limits(threads=3))  # a thread budget no other test uses: a new zygote
    with ThreadPoolExecutor(2) as pool:
        assert all(r.ok for r in pool.map(lambda i: sandbox.run("tests.sandbox.targets:echo", {}), range(2)))
    time.sleep(0.5)
    (zygote,) = [z for key, z in zygote_module._zygotes.items() if key[0] == 3]  # as it is, not a replacement
    assert zygote.alive()
    result = sandbox.run("tests.sandbox.targets:echo", {"after": 1})
    assert result.ok and result.value["payload"] == {"after": 1} and _zygote(sandbox) is zygote


@NEEDS_BWRAP
def test_a_project_under_tmp_stays_readable(monkeypatch):
    """A project (or a fresh virtual environment) installed under /tmp is bound back into the child's new /tmp:
    the child imports what the zygote did not."""
    root = Path(tempfile.mkdtemp(prefix="modis-project-", dir="/tmp"))
    try:
        repo = Path(__file__).resolve().parents[2]
        shutil.copytree(repo / "model_discovery", root / "model_discovery",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("tests/__init__.py", "tests/sandbox/__init__.py", "tests/sandbox/targets.py"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(repo / name, root / name)
        monkeypatch.setattr("model_discovery.sandbox.runner.PROJECT_ROOT", root)
        zygote_module.shutdown()  # a zygote of this project
        sandbox = ProcessSandbox(use_bwrap=True)
        result = sandbox.run("tests.sandbox.targets:echo", {"x": 1})
        assert result.ok, result.error + result.stderr
        assert "modis-zygote-" in result.value["cwd"] and result.value["payload"] == {"x": 1}
    finally:
        zygote_module.shutdown()
        shutil.rmtree(root, ignore_errors=True)
