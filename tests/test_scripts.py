"""Shipped scripts run as a user would run them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run scripts/gpu_check.sh itself")
def test_gpu_check_says_there_is_no_gpu_and_succeeds():
    out = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "PY": sys.executable})
    assert out.returncode == 0, out.stderr
    assert "no CUDA GPU" in out.stdout


def test_bench_discovery_runs_each_variant_and_resumes(tmp_path):
    """Two variants (a selector; another with synthesis off), one seed, one-step trainings, two runs at once: the
    table, the curves and the machine-readable lines; the runs' verifications in the shared cache (each once, none
    half-written); a second call finds the runs done and only reports."""
    args = [sys.executable, str(ROOT / "scripts" / "bench_discovery.py"), "--out", str(tmp_path), "--variants",
            "default,random,random/off", "--seeds", "0", "--corpus", "synthetic", "--rungs", "cpu-1m",
            "--design-budget", "1", "--verify-budget", "cpu-1m=1", "--train-fraction", "0.004", "--no-check"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mean_best_lowest_default=" in out.stdout and "mean_best_lowest_random/off=" in out.stdout
    assert (tmp_path / "curves.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["selector"], r["seed"]) for r in results] == [("default", 0), ("random", 0), ("random/off", 0)]
    assert json.loads((tmp_path / "default-seed0" / "config.json").read_text())["selector"] == "quadrant"
    assert all(len(r["time_curve"]) == 1 and r["best_lowest_loss"] == r["time_curve"][0][1] for r in results)
    # no noise seeds and no table row for this budget: the spread is unknown, and no claim is made
    assert "default_vs_random_margin=" in out.stdout and "beats_random=0" in out.stdout
    assert json.loads((tmp_path / "random-off-seed0" / "config.json").read_text())["synthesis"] is False
    assert all(len(r["curve"]) == 1 and r["top_rung"] == "cpu-1m" for r in results)
    cached = list((tmp_path / "verify-cache").iterdir())
    assert cached and all((entry / "metrics.json").is_file() for entry in cached)  # whole entries, no staging left
    assert len(cached) == len({(entry / "fingerprint.json").read_text() for entry in cached})
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    resumed = json.loads((tmp_path / "results.json").read_text())  # the time a run took is kept, not reset
    assert all(0 <= b["wall_s"] - a["wall_s"] < 30 for a, b in zip(results, resumed))


def test_bench_synthesis_reports_inventions(tmp_path):
    """Six unchecked sessions: the summary and the machine-readable lines; a second call resumes (no new sessions)."""
    args = [sys.executable, str(ROOT / "scripts" / "bench_synthesis.py"), "--out", str(tmp_path), "--sessions", "6",
            "--no-check"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 sessions" in out.stdout and "pass_share=1.0000" in out.stdout
    assert int(out.stdout.split("distinct_operators=")[1].split()[0]) >= 1
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "6 sessions" in again.stdout


def test_bench_generate_times_both_ways_and_checks_their_tokens(tmp_path):
    args = ["--designs", "llama", "--new", "6", "--rung", "cpu-1m", "--context", "32", "--rounds", "1",
            "--keep", str(tmp_path)]
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_generate.py"), *args], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "speedup_llama=" in out.stdout and "yes" in out.stdout
    assert (tmp_path / "llama" / "hf" / "modeling_modis.py").is_file()


def test_bench_kernels_prints_each_case_against_attention():
    args = [sys.executable, str(ROOT / "scripts" / "bench_kernels.py"), "--rounds", "1", "--threads", "1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["rwkv6", "rwkv6", "gla", "mamba2", "retnet", "world_model"]
    assert all(float(r[-1]) > 0 for r in rows)  # the ratio against attention


def test_bench_verdicts_checks_each_design_and_reports_agreement():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_verdicts.py"), "--loads", "0", "--designs",
                          "gpt2", "--corpus", "none"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "gpt2" in out.stdout and "external_fixture" in out.stdout
    assert out.stdout.strip().endswith("verdict_agreement=2/2")


def test_compare_runs_says_whether_two_runs_decided_the_same(tmp_path):
    from model_discovery.evolution.store import Store

    for run, parent in (("a", "llama"), ("b", "llama"), ("c", "gpt2")):
        store = Store(tmp_path / run, seed_references=True)
        store.record_session(design=dict(name="d0001", tree=store.design(parent).tree, source="# d0001",
                                         content_hash="h1", parents=[parent], mode="mutation", status="checked"),
                             operator="mutation", outcome="registered")

    def compare(*runs):
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"),
                              *(str(tmp_path / r) for r in runs)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    assert "designs   same (1 entries)" in compare("a", "b")
    assert "designs   DIFFERENT" in compare("a", "c")


def test_bench_throughput_fidelity_table_counts_rank_agreement_and_false_stops():
    """The early-stop fidelity of a run whose designs all trained to the end: Spearman of each probe's loss with
    the final one, and for each rule the designs it would have stopped and how many of them were in the top k."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench_throughput import fidelity
    finally:
        sys.path.pop(0)
    # five designs: d0 and d1 best at 100%; d4 is far behind at 25% and d1 only looks bad there (a late bloomer)
    curves = {"d0": {0.25: 5.0, 0.5: 4.5, 1.0: 4.0}, "d1": {0.25: 5.9, 0.5: 4.6, 1.0: 4.1},
              "d2": {0.25: 5.2, 0.5: 4.8, 1.0: 4.5}, "d3": {0.25: 5.3, 0.5: 4.9, 1.0: 4.6},
              "d4": {0.25: 7.0, 0.5: 6.5, 1.0: 6.0}}
    refs = {f"{name}@data{'' if s == 0 else f';seed={s}'}": {0.25: base + 0.1 * s, 0.5: base - 0.5 + 0.1 * s}
            for name, base in (("llama", 5.5), ("rwkv6", 5.4)) for s in (0, 1, 2)}
    # as the variant's process hands them over: through JSON, whose object keys are strings
    table = fidelity(json.loads(json.dumps({"curves": curves, "reference_curves": refs, "seed_data": "data"})),
                     top_k=2)
    assert table["n"] == 5 and table["spearman"][0.5][0] == pytest.approx(1.0) and table["spearman"][0.25][0] < 0.95
    worst3 = table["rules"]["worst + 3 x noise"]  # bar at 25%: 5.5 + 3 x 0.1
    assert worst3 == {"stopped": 2, "false_stops": 1, "false_stop_rate": 0.5}  # d4, and d1 wrongly
    assert table["rules"]["worst + 5 x noise"]["stopped"] == 1  # d4 alone
    # by rank in queue order: only d4 has four designs before it, and it is above their median (and 75th percentile)
    assert table["rules"]["rank 0.5 at 25%"] == {"stopped": 1, "false_stops": 0, "false_stop_rate": 0.0}
    assert table["rules"]["rank 0.75 at 50%"]["stopped"] == 1


def test_measure_baselines_writes_a_table_a_run_then_reads(tmp_path):
    """Two library designs verified for real at cpu-1m (2 steps): the table holds their losses and how they were
    obtained, and a run with the same budget takes the better one as its reference ``best``."""
    from model_discovery.lm.baselines import load_baselines
    from model_discovery.workflow.config import DiscoveryConfig

    table = tmp_path / "baselines_cpu.yaml"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "measure_baselines.py"), "--rungs", "cpu-1m",
                          "--designs", "llama,gpt2", "--seeds", "0", "--train-fraction", "cpu-1m=0.008",
                          "--blimp", "none", "--verify-cache", "none", "--out", str(tmp_path / "out"),
                          "--table", str(table)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = load_baselines("cpu", table).standings
    assert (row.corpus, row.rung, row.tokens) == ("synthetic", "cpu-1m", 2 * 4096) and set(row.losses) == {"llama",
                                                                                                          "gpt2"}
    assert f"cpu-1m: best known {row.best}" in out.stdout and "--designs llama,gpt2" in load_baselines("cpu",
                                                                                                    table).how
    ladder = tmp_path / "ladder_cpu.yaml"
    ladder.write_text((ROOT / "etc" / "ladder_cpu.yaml").read_text())
    cfg = DiscoveryConfig(ladder=str(ladder), rungs=["cpu-1m"], train_fraction={"cpu-1m": 0.008}).resolved()
    assert cfg.references == list(dict.fromkeys(["llama", row.best]))


def test_bench_discovery_bands_and_verdict():
    """The band over seeds of best-found curves against CPU time, and the verdict against random: a margin beyond
    twice the references' seed spread beats random; within it, it does not."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench_discovery import time_band, verdict
    finally:
        sys.path.pop(0)
    grid, mean, std = time_band([[(1.0, 5.0), (3.0, 4.0)], [(2.0, 4.6), (4.0, 4.2)]], points=5)
    assert grid.tolist() == [2.0, 2.5, 3.0, 3.5, 4.0]
    assert mean.tolist() == pytest.approx([4.8, 4.8, 4.3, 4.3, 4.1]) and std[0] == pytest.approx(0.2)
    runs = [{"selector": s, "best_lowest_loss": loss, "reference_spread": 0.02}
            for s, loss in (("default", 5.0), ("default", 5.1), ("random", 5.2), ("random", 5.1))]
    v = verdict(runs)
    assert v["margin"] == pytest.approx(0.1) and v["beats"] and v["seeds"] == 2
    assert not verdict([{**r, "reference_spread": 0.06} for r in runs])["beats"]  # 0.1 < 2 x 0.06
    assert verdict([r for r in runs if r["selector"] == "default"]) is None
