"""A verification's data key: one typed value, written to the store as text and read back by every reader."""

import pytest

from model_discovery.evolution.key import DataKey


def test_a_key_reads_back_from_its_text_as_runs_have_always_written_it():
    run = DataKey.of("gutenberg", "blimp", 524288)
    assert run.text == "corpus=gutenberg;pairs=blimp;tokens=524288" and not run.noise_run
    noise = run.on_seed(2)
    assert noise.text == "corpus=gutenberg;pairs=blimp;tokens=524288;seed=2" and noise.noise_run
    assert DataKey.parse(noise.text) == noise and DataKey.parse(run.text) == run
    assert DataKey.of("mad", None, 122880).text == "corpus=mad;pairs=none;tokens=122880"
    assert noise.on_seed(None) == run


@pytest.mark.parametrize("text", ["", "corpus=x", "corpus=x;tokens=many", "tokens=5"])
def test_a_text_that_is_not_a_key_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="not a verification's data key"):
        DataKey.parse(text)
