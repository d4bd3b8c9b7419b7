"""Every hostile or broken design is rejected by the right check, and the host is untouched."""

import json
import os
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import pytest

from model_discovery.checker import check_design
from model_discovery.checker.api import CHECK_LIMITS
from model_discovery.sandbox import ProcessSandbox
from model_discovery.sandbox.zygote import CHILD_NAME
from tests.checker.corpus import CASES, CLEAN, Case
from tests.conftest import WITH_AND_WITHOUT_BWRAP

SECRET = "sk-test-" + uuid.uuid4().hex
# tight, so endless loops and bombs cost little: CPU seconds, which load beside the test does not use up
LIMITS = CHECK_LIMITS.model_copy(update={"cpu_s": 20, "memory_mb": 4096})
ACCEPT_LIMITS = LIMITS.model_copy(update={"cpu_s": CHECK_LIMITS.cpu_s})  # a design that must pass: the checker's own


@pytest.fixture
def host(monkeypatch):
    """A secret in the environment, a listener on 127.0.0.1 and a marker path: none may be touched."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    marker = Path("/tmp") / f"modis-hostile-{uuid.uuid4().hex}"
    yield {"marker": str(marker), "port": srv.getsockname()[1]}
    assert not marker.exists(), "a design wrote outside the sandbox"
    with pytest.raises(TimeoutError):
        srv.accept()  # nobody connected
    srv.close()
    assert not _sandbox_children(), "a sandbox process outlived its check"


def _sandbox_children() -> list[str]:
    """Sandbox processes whose work directory is (or was) under this test process's temp dir: tests running side
    by side (pytest -n) each have their own."""
    cold = subprocess.run(["pgrep", "-af", "model_discovery.sandbox.child"], capture_output=True, text=True).stdout
    # a warm child has the zygote's command line and the name CHILD_NAME
    warm = subprocess.run(["pgrep", "-ax", CHILD_NAME.decode()], capture_output=True, text=True).stdout
    ours = []
    for line in (cold + warm).splitlines():
        try:
            cwd = os.readlink(f"/proc/{line.split()[0]}/cwd")
        except OSError:  # gone meanwhile
            continue
        if cwd.startswith(tempfile.gettempdir() + os.sep):
            ours.append(line)
    return ours


def _assert_clean_report(report) -> None:
    assert SECRET not in json.dumps(report.model_dump()), "a secret reached the report"


def test_corpus_covers_every_category():
    counts = Counter(case.category for case in CASES)
    assert len(CASES) >= 30
    assert set(counts) >= {"structure", "escape", "secrets", "files", "network", "processes", "pickle", "resources",
                           "monkeypatch", "causality", "batch", "numerics", "shapes", "gradients", "params",
                           "slowness", "determinism", "context", "incremental"}


@pytest.mark.slow  # covered by test_next_check_starts_clean_after_a_hang, which checks it after a hang
def test_clean_template_is_accepted(host):
    report = check_design(CLEAN.render(**host), limits=ACCEPT_LIMITS)
    assert report.accepted, report.summary()


def test_a_zero_initialised_output_projection_is_accepted(host):
    """Silent at initialisation (the block is the identity, the output sees no earlier token), not after training:
    the context check must not reject it."""
    case = Case("zero_init", "none", "none",
                init="nn.init.zeros_(self.fc2.weight)\nnn.init.zeros_(self.fc2.bias)")
    report = check_design(case.render(**host), limits=ACCEPT_LIMITS)
    assert report.accepted, report.summary()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejected_for_the_right_reason(case, host):
    limits = LIMITS.model_copy(update={"cpu_s": case.cpu_s})
    report = check_design(case.render(**host), limits=limits)
    assert not report.accepted
    assert case.expect in {f.check for f in report.errors()}, report.summary()
    assert report.timings.get("sandbox_s", 0.0) < limits.wall_s, "a hostile design cost more than its time limit"
    _assert_clean_report(report)


@pytest.mark.parametrize("use_bwrap", WITH_AND_WITHOUT_BWRAP)
@pytest.mark.parametrize("case", [c for c in CASES if c.fooled], ids=lambda c: c.name)
def test_sandbox_holds_when_the_static_filter_is_fooled(case, use_bwrap, host):
    sandbox = ProcessSandbox(LIMITS, use_bwrap=use_bwrap)
    report = check_design(case.render(**host), sandbox=sandbox, static=False)
    assert not report.accepted
    assert "sandbox" in {f.check for f in report.errors()}, report.summary()
    _assert_clean_report(report)


def test_next_check_starts_clean_after_a_hang(host):
    hang = next(c for c in CASES if c.name == "loop_in_forward")
    report = check_design(hang.render(**host), limits=LIMITS.model_copy(update={"cpu_s": 8}))
    (timeout,) = [f for f in report.errors() if f.check == "timeout"]
    assert "8 CPU-seconds (in 'forward')" in timeout.message
    assert check_design(CLEAN.render(**host), limits=ACCEPT_LIMITS).accepted
