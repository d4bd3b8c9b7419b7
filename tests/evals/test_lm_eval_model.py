"""The `modis` lm-eval model: each request type against a direct computation, in and out of the sandbox."""

import math

import pytest
import torch
from lm_eval.api.instance import Instance

from model_discovery.evals.lm_eval_model import ModisLM
from model_discovery.verify.artifacts import load_verified
from model_discovery.verify.data import EOS

TEXT = ("The keys to the cabinet are on the table. The dog that the girls like barks at the cat. "
        "No student has ever seen the mountain, and the teachers who know her praise themselves. ") * 8


def _instances(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


@pytest.fixture(scope="module")
def direct(verified_llama):
    return load_verified(verified_llama)


@pytest.fixture(scope="module")
def lm(verified_llama):
    return ModisLM(path=str(verified_llama), sandbox=False, batch_size=3)


def _logprob(model, ids, last=None):
    """log-probability of the ``last`` tokens of ``ids`` (default: all after the first), in one forward pass."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].float(), -1)
    picked = logp.gather(-1, torch.tensor(ids[1:])[:, None])
    return picked[-(last or len(ids) - 1):].sum().item()


def test_loglikelihood_matches_a_direct_forward_pass(lm, direct):
    model, tok, _ = direct
    eos = tok.token_to_id(EOS)
    ctx, cont = "The dog that the girls like", " barks at the cat."
    (lp, _), (lp_empty, _) = lm.loglikelihood(_instances("loglikelihood", [(ctx, cont), ("", ctx + cont)]))
    whole = tok.encode(ctx + cont).ids
    n_ctx = len(tok.encode(ctx).ids)
    full = _logprob(model, [eos, *whole])
    assert lp_empty == pytest.approx(full, abs=1e-4)  # empty context: scored after end-of-text
    # a given context is used as is (no end-of-text before it)
    assert lp == pytest.approx(_logprob(model, whole) - _logprob(model, whole[:n_ctx]), abs=1e-4)


def test_greedy_flag_and_batching_do_not_change_scores(lm, verified_llama):
    requests = _instances("loglikelihood", [("The keys to the cabinet", s) for s in
                                            (" are on the table.", " is on the table.", " the", " sings")])
    batched = lm.loglikelihood(requests)
    single = ModisLM(path=str(verified_llama), sandbox=False, batch_size=1).loglikelihood(requests)
    assert [lp for lp, _ in batched] == pytest.approx([lp for lp, _ in single], abs=1e-5)
    assert all(isinstance(g, bool) for _, g in batched)


def test_rolling_loglikelihood_covers_every_token_once(lm, direct):
    model, tok, config = direct
    ids = tok.encode(TEXT).ids
    assert len(ids) > 2 * config["scale"]["context"]  # several windows
    (total,) = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(TEXT,)]))
    ctx = config["scale"]["context"]
    eos = tok.token_to_id(EOS)
    expected, seq = 0.0, [eos, *ids]
    for start in range(0, len(ids), ctx):  # predicts ids[start:end] from a full window ending just before `end`
        end = min(start + ctx, len(ids))
        expected += _logprob(model, seq[max(0, end - ctx):end + 1], last=end - start)
    assert total == pytest.approx(expected, rel=1e-5) and math.isfinite(total)


def test_generate_until_stops_and_respects_the_budget(lm, direct):
    """Generation goes through the design's cache: the text equals recomputing the window at each step."""
    from model_discovery.verify.evaluate import greedy_generate

    model, tok, _ = direct
    (free,) = lm.generate_until(_instances("generate_until", [("The dog", {"max_gen_toks": 12, "until": []})]))
    assert 0 < len(tok.encode(free).ids) <= 12
    assert free == greedy_generate(model, tok, lm.tok_encode("The dog"), 12, use_cache=False)
    stop = free.strip().split()[0]
    (cut,) = lm.generate_until(_instances("generate_until", [("The dog", {"max_gen_toks": 12, "until": [stop]})]))
    assert stop not in cut and free.startswith(cut)


def test_sandboxed_scores_equal_in_process_scores(lm, verified_llama):
    requests = _instances("loglikelihood", [("", "The dog barks."), ("The cat", " sleeps.")])
    boxed = ModisLM(path=str(verified_llama), batch_size=3)
    assert boxed.sandbox is not None
    assert [lp for lp, _ in boxed.loglikelihood(requests)] == pytest.approx(
        [lp for lp, _ in lm.loglikelihood(requests)], abs=1e-5)


def test_bad_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing design\.py"):
        ModisLM(path=str(tmp_path))
    with pytest.raises(ValueError, match="path=DIR"):
        ModisLM()
