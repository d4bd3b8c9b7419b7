"""Each layer of the sandbox on its own, and together."""

import os
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from model_discovery.sandbox import Limits, ProcessSandbox
from tests.conftest import NEEDS_BWRAP, WITH_AND_WITHOUT_BWRAP

T = "tests.sandbox.targets"
SECRET = "sk-test-" + uuid.uuid4().hex


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    yield srv
    srv.close()


def _connected(srv) -> bool:
    try:
        srv.accept()[0].close()
        return True
    except TimeoutError:
        return False


@pytest.fixture
def payload(tmp_path, listener, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    marker = Path("/tmp") / f"modis-marker-{uuid.uuid4().hex}"
    yield {"marker": str(marker), "port": listener.getsockname()[1], "home": str(Path.home()), "secret": SECRET}
    assert not marker.exists(), "a sandboxed run wrote outside its work directory"
    marker.unlink(missing_ok=True)


def test_result_env_and_workdir():
    result = ProcessSandbox().run(f"{T}:echo", {"x": [1, 2]})
    assert result.ok and result.value["payload"] == {"x": [1, 2]}
    assert "modis-sandbox-" in result.value["cwd"]
    assert not {"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "ANTHROPIC_API_KEY"} & set(result.value["env"])


@pytest.mark.parametrize("layers", [pytest.param("bwrap+rlimits+guard", marks=NEEDS_BWRAP),
                                    pytest.param("bwrap+rlimits", marks=NEEDS_BWRAP), "rlimits+guard"])
def test_escapes_fail_in_every_layer_combination(layers, payload, listener):
    sandbox = ProcessSandbox(use_bwrap="bwrap" in layers, guard="guard" in layers)
    assert sandbox.isolation == layers
    result = sandbox.run(f"{T}:try_everything", payload)
    assert result.ok, result.error
    out = result.value
    assert out["write_inside"] == "done"
    assert out["connect"] != "done" and out["secret_in_env"] is False
    assert not _connected(listener)  # and the payload fixture checks that the marker never appeared on the host
    if "guard" in layers:  # refused outright
        assert out["write_outside"] != "done" and out["spawn"] != "done"
        assert any("sandbox refused" in v for v in result.violations)
    else:  # bubblewrap alone lets them happen, inside a private /tmp and PID namespace that vanish with the run
        assert out["write_outside"] == "done" and out["spawn"] == "done"


def _leftovers(pattern: str, exact: bool = False) -> list[str]:
    """Processes matching ``pattern`` (the command line; ``exact``: the process name) that this test process's
    sandboxes started: their working directory is under its temp dir (tests running side by side each have
    their own, so one never sees another's children)."""
    out = subprocess.run(["pgrep", "-ax" if exact else "-af", pattern], capture_output=True, text=True).stdout
    ours = []
    for line in out.splitlines():
        try:
            cwd = os.readlink(f"/proc/{line.split()[0]}/cwd")
        except OSError:  # gone meanwhile
            continue
        if "pgrep" not in line and cwd.startswith(tempfile.gettempdir()):
            ours.append(line)
    return ours


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
def test_timeout_kills_the_whole_group(use_bwrap):
    start = time.monotonic()
    result = ProcessSandbox(Limits(wall_s=4), use_bwrap=use_bwrap, guard=False).run(f"{T}:spawn_sleeper_and_hang", {})
    assert result.timed_out and not result.ok and "timed out" in result.error
    assert time.monotonic() - start < 15
    time.sleep(0.5)
    assert not _leftovers("sleep 299.713"), "a grandchild outlived the sandbox"


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
def test_the_cpu_budget_ends_a_busy_child_whatever_the_wall_clock(use_bwrap):
    """CPU seconds, not wall seconds: a spinning child is stopped by SIGXCPU after its budget (on every thread), and
    the result says so and where it was."""
    result = ProcessSandbox(Limits(cpu_s=3, wall_s=120, threads=2), use_bwrap=use_bwrap, guard=False).run(
        f"{T}:spin", {})
    assert not result.ok and not result.timed_out and result.signal == "SIGXCPU"
    assert result.error == "used up its 3 CPU-seconds" and result.progress == "spinning"
    assert result.wall_s < 60


def test_memory_limit():
    result = ProcessSandbox(Limits(memory_mb=2048), guard=False).run(f"{T}:allocate", {"mb": 4096})
    assert not result.ok and "MemoryError" in (result.error or "")


def test_file_size_limit():
    result = ProcessSandbox(Limits(file_mb=8)).run(f"{T}:write_big_file", {"mb": 32})
    assert not result.ok and "File too large" in (result.error or "")


def test_crash_is_reported_not_raised():
    result = ProcessSandbox().run(f"{T}:crash", {})
    assert not result.ok and result.signal == "SIGABRT"


@NEEDS_BWRAP
def test_no_network_namespace_even_without_guard(listener):
    code = f"{T}:try_everything"
    result = ProcessSandbox(use_bwrap=True, guard=False).run(code, {"marker": "/nonexistent/x", "home": "/root",
                                                                    "port": listener.getsockname()[1],
                                                                    "secret": SECRET})
    assert "Network is unreachable" in result.value["connect"] or "refused" in result.value["connect"]
    assert not _connected(listener)


def test_child_environment_is_built_not_inherited(monkeypatch):
    monkeypatch.setenv("MODIS_TEST_LEAK", "should-not-pass")
    result = ProcessSandbox().run(f"{T}:echo", {})
    assert "MODIS_TEST_LEAK" not in result.value["env"]
    assert os.environ["MODIS_TEST_LEAK"] == "should-not-pass"


def test_one_thread_budget_for_torch_and_blas():
    """torch's intra- and inter-op threads and the BLAS libraries' all come from the limits' one number."""
    value = ProcessSandbox(Limits(threads=1), guard=False).run("tests.sandbox.torch_targets:threads", {}).value
    assert value == {"intra": 1, "inter": 1, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1"}


def test_the_thread_budget_shares_the_cores_among_workers(monkeypatch, tmp_path):
    """workers x threads <= cores by default: a run's verifications, local workers and Ray actors get that share."""
    from model_discovery import DiscoveryConfig
    from model_discovery.evolution.executors import LocalExecutor
    from model_discovery.evolution.store import Store
    from model_discovery.sandbox import limits

    monkeypatch.setattr(limits.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert [limits.thread_share(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert DiscoveryConfig(workers=4, run_dir=tmp_path).resolved().threads == 2
    assert DiscoveryConfig(workers=4, threads=1, run_dir=tmp_path).resolved().threads == 1  # a setting wins
    argv = LocalExecutor(Store(tmp_path, seed_references=True), tmp_path, None, workers=2)._argv()
    assert argv[argv.index("--threads") + 1] == "4"


def test_threads_come_from_modis_threads(monkeypatch):
    """Processes sharing a machine each take a share of its cores: MODIS_THREADS sets a sandboxed run's threads."""
    monkeypatch.setenv("MODIS_THREADS", "3")
    assert Limits().threads == 3
    assert ProcessSandbox().run(f"{T}:omp_threads", {}).value == "3"
    assert Limits(threads=1).threads == 1  # an explicit value wins
    monkeypatch.setenv("MODIS_THREADS", "0")
    with pytest.raises(ValueError, match="MODIS_THREADS must be a positive integer, not '0'"):
        Limits()
