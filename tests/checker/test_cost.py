"""The checker's timing against the reference: a burst of load on one step does not condemn a design."""

import itertools
import time
import types

import torch

from model_discovery.checker import dynamic
from model_discovery.lm import find_scale


def test_one_slow_step_is_not_decisive(library_design, monkeypatch):
    # the design's first step is hit by a burst of other work (a verification beside the checker); after it the
    # design runs at 1.2x the reference. Timing must go on past the first pair and find 1.2x.
    clock = itertools.chain([10.0, 1.0], itertools.cycle([1.2, 1.0]))
    monkeypatch.setattr(dynamic, "_train_step_time", lambda model, opt, ids: next(clock))
    scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
    cost = dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale)
    assert cost["time_per_token_ratio"] == 1.2


def test_a_design_slow_on_every_step_stops_the_timing_early(library_design, monkeypatch):
    steps = []

    def step(model, opt, ids):
        steps.append(1)
        return 10.0 if len(steps) % 2 else 1.0  # the design 10x the reference, every time

    monkeypatch.setattr(dynamic, "_train_step_time", step)
    scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
    cost = dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale)
    assert cost["time_per_token_ratio"] == 10.0 and len(steps) == 4  # two pairs, not five


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
    monkeypatch.setattr(dynamic, "_train_step_time", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scale = find_scale("cpu-1m").model_copy(update={"batch_tokens": 256})
        dynamic.measure_cost(library_design("gpt2"), library_design("llama"), scale, repeats=2)
        assert seen == [1] * 4 and torch.get_num_threads() == 2  # the caller's threads come back
    finally:
        torch.set_num_threads(before)
