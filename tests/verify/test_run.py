"""`modis verify` end to end: data prepared on the host, training and evaluation in the sandbox."""

import json
import os
from pathlib import Path

import pytest

from model_discovery.cli import main
from model_discovery.sandbox import ProcessSandbox
from model_discovery.verify.grammar import PHENOMENA
from model_discovery.verify.run import VERIFY_LIMITS, VerifyError, _last_step, verify
from tests.checker.corpus import CASES


def test_library_design_end_to_end(tmp_path, monkeypatch):
    """Metrics, artifacts, a resume from the checkpoint, and the metrics logged to Weights & Biases offline."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for key in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb-home"))
    out = tmp_path / "out"
    metrics = verify("llama", "cpu-1m", corpus="synthetic", blimp="synthetic", out=out, max_steps=10)
    for key in ("val_loss", "perplexity", "params", "train_tokens", "tokens_per_s", "wall_s", "train_s", "eval_s",
                "corpus_hash", "tokenizer_hash", "design_hash"):
        assert key in metrics, key
    assert metrics["train_tokens"] == 10 * 4096 and metrics["corpus"] == "synthetic:0"
    assert set(metrics["blimp"]["by_phenomenon"]) == set(PHENOMENA)
    assert "rlimits" in metrics["isolation"]
    for name in ("model.safetensors", "tokenizer.json", "config.json", "metrics.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["val_loss"] == metrics["val_loss"]
    again = verify("llama", "cpu-1m", out=out, max_steps=20)  # same folder: resumes at step 10
    assert again["resumed_from_step"] == 10
    run_dir = Path(again["wandb_dir"])
    assert run_dir.name.startswith("offline-run-") and run_dir.is_relative_to(out)
    records = b"".join(path.read_bytes() for path in run_dir.glob("*.wandb"))  # keys and JSON values as text
    assert json.dumps(again["val_loss"]).encode() in records and b"blimp/acc" in records
    assert records.count(b"train/loss") >= 2  # the replayed history: steps 10 and 20


def test_hostile_design_fails_cleanly(tmp_path):
    case = next(c for c in CASES if c.name == "write_outside")
    design = tmp_path / "hostile.py"
    design.write_text(case.render(marker=str(tmp_path / "pwned")))
    with pytest.raises(VerifyError, match="sandbox refused open"):
        verify(design, "cpu-1m", out=tmp_path / "out", max_steps=2, blimp=None)
    assert not (tmp_path / "pwned").exists()


def test_a_verification_out_of_time_names_its_stage_and_step(tmp_path):
    """Killed (with its process group) when its CPU budget is spent; the error says where it was."""
    sandbox = ProcessSandbox(VERIFY_LIMITS.model_copy(update={"cpu_s": 10, "threads": 1}))
    with pytest.raises(VerifyError, match=r"used up its 10 CPU-seconds \(during 'train'(, at step \d+0)?\)"):
        verify("llama", "cpu-1m", out=tmp_path / "out", max_steps=100_000, blimp=None, sandbox=sandbox)
    log = tmp_path / "out" / "train_log.jsonl"
    log.write_text('{"step": 10, "loss": 5.0}\n{"step": 20, "loss": 4.0}\n')  # as if it had got that far
    assert _last_step(tmp_path / "out") == ", at step 20"


def test_cli_json(tmp_path, capsys):
    other = tmp_path / "other.txt"  # another domain, scored through the run's tokenizer in bits per byte
    other.write_text("".join(f"Line {i}: the quick brown fox {i * 7 % 13} jumps over {i} lazy dogs.\n"
                             for i in range(400)))
    assert main(["verify", "gpt2", "--max-steps", "3", "--blimp", "none", "--out", str(tmp_path / "v"), "--json",
                 "--eval-corpus", str(other)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["blimp"] is None and metrics["train_tokens"] == 3 * 4096
    transfer = metrics["transfer"][str(other)]
    assert 0 < metrics["val_bpb"] < 20 and 0 < transfer["bpb"] < 20 and transfer["val_loss"] > 0
    assert main(["verify", "no_such_design", "--out", str(tmp_path)]) == 2




class _NoTraining:
    def run(self, *args, **kwargs):
        raise AssertionError("a cached verification trained again")


def test_code_version_ignores_comments_and_docstrings(tmp_path):
    """The cache's code hash: an edit of a docstring, a comment or layout keeps it; an edit of code changes it."""
    from model_discovery.verify.run import code_version

    code_version = code_version.__wrapped__  # not the process's cached value
    for folder in ("design", "lm", "verify", "sandbox"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text('"""Docs."""\n\ndef f(x):\n    return x + 1\n')
    before = code_version(tmp_path)
    (tmp_path / "lm" / "m.py").write_text('"""Other docs."""\n\n\ndef f(x):  # a comment\n    """More."""\n'
                                          '    return (x + 1)\n')
    assert code_version(tmp_path) == before
    (tmp_path / "lm" / "m.py").write_text("def f(x):\n    return x + 2\n")
    assert code_version(tmp_path) != before


def test_cache_copies_a_finished_verification(tmp_path):
    """The second verification with the same fingerprint is copied from the cache; another seed trains."""
    cache = tmp_path / "cache"
    first = verify("llama", "cpu-1m", blimp=None, out=tmp_path / "a", max_steps=3, cache=cache)
    assert "cached_from" not in first and len(list(cache.iterdir())) == 1
    again = verify("llama", "cpu-1m", blimp=None, out=tmp_path / "b", max_steps=3, cache=cache,
                   sandbox=_NoTraining())
    assert again["val_loss"] == first["val_loss"] and again["out"] == str((tmp_path / "b").resolve())
    assert Path(again["cached_from"]).parent == cache.resolve()
    for name in ("model.safetensors", "config.json", "metrics.json", "fingerprint.json"):
        assert (tmp_path / "b" / name).is_file(), name
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another verification
        verify("llama", "cpu-1m", blimp=None, out=tmp_path / "c", max_steps=3, cache=cache, seed=1,
               sandbox=_NoTraining())
    with pytest.raises(AssertionError, match="trained again"):  # so is another budget
        verify("llama", "cpu-1m", blimp=None, out=tmp_path / "d", max_steps=4, cache=cache, sandbox=_NoTraining())


def test_a_corrupt_cache_entry_is_set_aside_not_trusted(tmp_path, caplog):
    cache = tmp_path / "cache"
    verify("llama", "cpu-1m", blimp=None, out=tmp_path / "a", max_steps=3, cache=cache)
    (entry,) = cache.iterdir()
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # a torn or edited copy
    with pytest.raises(AssertionError, match="trained again"):
        verify("llama", "cpu-1m", blimp=None, out=tmp_path / "b", max_steps=3, cache=cache, sandbox=_NoTraining())
    assert "model.safetensors does not match its checksum" in caplog.text
    assert [p.name.startswith(".corrupt-") for p in cache.iterdir()] == [True]


def _publish_at_once(args):
    cache, out, barrier = args
    from model_discovery.verify.run import _publish

    barrier.wait()
    _publish(Path(cache), "k" * 24, Path(out))


def test_runs_publishing_the_same_verification_at_once_leave_one_whole_entry(tmp_path):
    """Two runs that finish the same verification together: one entry, whole, and no staging folder left."""
    import multiprocessing

    from model_discovery.verify.run import _from_cache

    out = tmp_path / "out"
    out.mkdir()
    fields = {"design_hash": "x", "seed": 0}
    (out / "fingerprint.json").write_text(json.dumps(fields))
    (out / "metrics.json").write_text(json.dumps({"val_loss": 1.5}))
    (out / "model.safetensors").write_bytes(os.urandom(1 << 20))
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        cache = tmp_path / f"cache{attempt}"
        barrier = ctx.Manager().Barrier(4)
        with ctx.Pool(4) as pool:
            pool.map(_publish_at_once, [(str(cache), str(out), barrier)] * 4)
        assert [p.name for p in cache.iterdir()] == ["k" * 24]
        got = _from_cache(cache, "k" * 24, fields, tmp_path / f"copy{attempt}")
        assert got["val_loss"] == 1.5
        assert (tmp_path / f"copy{attempt}" / "model.safetensors").read_bytes() == (
            out / "model.safetensors").read_bytes()


def test_the_cache_is_on_by_default_in_the_users_cache_folder(monkeypatch, tmp_path):
    from model_discovery.verify.run import cache_folder

    monkeypatch.setenv("MODIS_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("MODIS_VERIFY_CACHE")
    assert cache_folder() == tmp_path / "user-cache" / "verifications"
    assert cache_folder("none") is None and cache_folder(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("MODIS_VERIFY_CACHE", "none")
    assert cache_folder() is None
    monkeypatch.setenv("MODIS_VERIFY_CACHE", str(tmp_path / "shared"))
    assert cache_folder() == tmp_path / "shared"


def test_a_folder_of_other_settings_is_refused(tmp_path):
    """Resuming a checkpoint trained on another corpus would load the wrong vocabulary: the error names what
    differs instead."""
    other = tmp_path / "other.txt"
    other.write_text("".join(f"line {i}: a b c {i % 7}\n" for i in range(300)))
    verify("llama", "cpu-1m", blimp=None, out=tmp_path / "v", max_steps=2)
    with pytest.raises(VerifyError, match=r"other settings \(corpus_hash, tokenizer_hash differ\)"):
        verify("llama", "cpu-1m", corpus=str(other), blimp=None, out=tmp_path / "v", max_steps=2)


def test_the_cache_keeps_stopped_and_partly_scored_verifications_and_uses_them_only_where_they_serve(tmp_path):
    cache = tmp_path / "cache"

    def stop_at_4(point):
        return {"rule": "test"} if point["step"] == 4 else None

    stopped = verify("llama", "cpu-1m", out=tmp_path / "a", max_steps=8, cache=cache, decide=stop_at_4)
    again = verify("llama", "cpu-1m", out=tmp_path / "b", max_steps=8, cache=cache, decide=stop_at_4,
                   sandbox=_NoTraining())  # the same rule stops it at the same probe: from the cache
    assert again["stopped"]["step"] == stopped["stopped"]["step"] == 4 and "cached_from" in again
    some = verify("llama", "cpu-1m", out=tmp_path / "c", max_steps=8, cache=cache, decide=lambda p: None,
                  phenomena=lambda wait=True: ["transitivity"])  # trains on, scores one phenomenon, replaces it
    assert some["pairs_skipped"] == 9 and "cached_from" not in some
    served = verify("llama", "cpu-1m", out=tmp_path / "d", max_steps=8, cache=cache, decide=lambda p: None,
                    phenomena=lambda wait=True: ["transitivity"], sandbox=_NoTraining())
    assert served["val_loss"] == some["val_loss"] and (tmp_path / "d" / "model.safetensors").is_file()
    with pytest.raises(AssertionError, match="trained again"):  # all of them are asked for: not enough
        verify("llama", "cpu-1m", out=tmp_path / "e", max_steps=8, cache=cache, sandbox=_NoTraining())
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
