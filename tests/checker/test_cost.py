"""The checker's timing against the reference: a burst of load on one step does not condemn a design."""

import itertools
import time
import types

import torch

from model_discovery.checker import dynamic
from model_discovery.lm import find_scale


def _pairs(reference, design):
    """A stand-in for the step timer: the reference's and the design's step times (iterables), in turn."""
    clocks, calls = (iter(reference), iter(design)), []

    def step(model, opt, ids, limit_s=None):
        calls.append(limit_s)
        took = next(clocks[len(calls) % 2 == 0])
        return None if limit_s and took > limit_s else took

    return step, calls


def test_one_slow_step_is_not_decisive(library_design, monkeypatch):
    # the design's first step is hit by a burst of other work (a verification beside the checker); after it the
    # design runs at 1.2x the reference. Timing must go on past the first pair and find 1.2x.
    step, _ = _pairs(itertools.repeat(1.0), itertools.chain([10.0], itertools.repeat(1.2)))
    monkeypatch.setattr(dynamic, "_train_step_time", step)
    scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
    cost = dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale)
    assert cost["time_per_token_ratio"] == 1.2 and "time_per_token_ratio_at_least" not in cost


def test_a_design_slow_on_every_step_stops_the_timing_early(library_design, monkeypatch):
    step, calls = _pairs(itertools.repeat(1.0), itertools.repeat(5.0))
    monkeypatch.setattr(dynamic, "_train_step_time", step)
    scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
    cost = dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale, confirm_above=3.0)
    assert cost["time_per_token_ratio"] == 5.0 and len(calls) == 20  # five pairs, then five to confirm it
    step, calls = _pairs(itertools.repeat(1.0), itertools.repeat(1.1))
    monkeypatch.setattr(dynamic, "_train_step_time", step)
    assert dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale)["time_per_token_ratio"] == 1.1
    assert len(calls) == 6  # three pairs far under the warning are enough


def test_a_design_step_past_the_decisive_slowdown_is_cut_short(library_design, monkeypatch):
    """A design a thousand times slower is rejected for cost in two cut-short steps, with a lower bound."""
    step, calls = _pairs(itertools.repeat(1.0), itertools.repeat(1000.0))
    monkeypatch.setattr(dynamic, "_train_step_time", step)
    scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
    cost = dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale, confirm_above=3.0)
    assert cost["time_per_token_ratio"] == dynamic.DECISIVE_SLOWDOWN and cost["time_per_token_ratio_at_least"]
    assert calls == [None, 6.0, None, 6.0]  # the design's steps under an alarm at 6x the reference's fastest
    from model_discovery.checker.api import _cost_findings

    (finding,) = _cost_findings(cost)
    assert finding.severity == "error" and "at least 6.0x" in finding.message


def test_the_cpu_alarm_cuts_a_step_short():
    class Spinner:  # a "model" whose forward computes for seconds in Python
        def __call__(self, ids, labels):
            end = time.process_time() + 5
            while time.process_time() < end:
                pass
            return types.SimpleNamespace(loss=torch.zeros((), requires_grad=True))

    opt = types.SimpleNamespace(zero_grad=lambda set_to_none: None, step=lambda: None)
    start = time.monotonic()
    assert dynamic._train_step_time(Spinner(), opt, torch.zeros(1), limit_s=0.2) is None
    assert time.monotonic() - start < 3


def test_a_step_is_timed_in_cpu_time_on_one_thread(library_design, monkeypatch):
    """Load on the machine slices the wall clock, not the CPU time a step needs; and one thread cannot be
    oversubscribed by a training beside the checker."""

    class Sleeper:  # a "model" whose step waits without working, as a step does while other work holds the cores
        def __call__(self, ids, labels):
            time.sleep(0.3)
            return types.SimpleNamespace(loss=torch.zeros((), requires_grad=True))

    opt = types.SimpleNamespace(zero_grad=lambda set_to_none: None, step=lambda: None)
    assert dynamic._train_step_time(Sleeper(), opt, torch.zeros(1)) < 0.1

    seen, real = [], dynamic._train_step_time
    monkeypatch.setattr(dynamic, "_train_step_time",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
        dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale, repeats=2)
        assert seen == [1] * 4 and torch.get_num_threads() == 2  # the caller's threads come back
    finally:
        torch.set_num_threads(before)
