from collections import Counter

import pytest

from model_discovery.verify.grammar import PHENOMENA, Grammar, minimal_pairs


def test_text_is_deterministic_for_a_seed():
    assert Grammar(3).text(50) == Grammar(3).text(50)
    assert Grammar(3).text(50) != Grammar(4).text(50)


def test_at_least_eight_phenomena_in_four_families():
    assert len(PHENOMENA) >= 8
    assert len({term for term, _ in PHENOMENA.values()}) >= 4


@pytest.mark.parametrize("phenomenon", sorted(PHENOMENA))
def test_pairs_differ_in_exactly_one_word(phenomenon):
    pairs = list(minimal_pairs(phenomenon, 50))
    assert len(pairs) == 50 and len({p["sentence_good"] for p in pairs}) == 50
    for pair in pairs:
        good, bad = pair["sentence_good"].split(), pair["sentence_bad"].split()
        assert len(good) == len(bad) and sum(a != b for a, b in zip(good, bad)) == 1, pair
        assert pair["UID"] == phenomenon


def test_good_sentences_use_the_corpus_grammar():
    """Every word of a good sentence occurs in the training text the grammar produces."""
    vocab = set(Grammar(0).text(20_000).replace(".", " ").lower().split())
    words = Counter(w for p in PHENOMENA for pair in minimal_pairs(p, 30)
                    for w in pair["sentence_good"].replace(".", " ").lower().split())
    assert set(words) <= vocab
