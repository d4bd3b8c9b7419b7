"""Built-in synthetic English: a small probabilistic grammar with agreement and long-range dependencies.

It gives a training corpus of any size and BLiMP-format minimal pairs (``sentence_good``/``sentence_bad``,
``UID``, ``linguistics_term``) for each phenomenon, from the same lexicon, deterministically for a seed. The pairs
differ in one word, and the good sentence follows the grammar the corpus was drawn from, so a model that learned
the corpus should prefer it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# (singular, plural); animate nouns can be subjects of every verb and antecedents of reflexives
NOUNS_M = [("man", "men"), ("boy", "boys"), ("king", "kings"), ("doctor", "doctors"), ("farmer", "farmers")]
NOUNS_F = [("woman", "women"), ("girl", "girls"), ("queen", "queens"), ("nurse", "nurses"), ("teacher", "teachers")]
ANIMALS = [("dog", "dogs"), ("cat", "cats"), ("mouse", "mice"), ("horse", "horses"), ("bird", "birds")]
THINGS = [("key", "keys"), ("book", "books"), ("box", "boxes"), ("door", "doors"), ("table", "tables"),
          ("letter", "letters"), ("cabinet", "cabinets"), ("garden", "gardens")]
# (3rd singular present, plural present, past)
TRANSITIVE = [("sees", "see", "saw"), ("finds", "find", "found"), ("likes", "like", "liked"),
              ("follows", "follow", "followed"), ("helps", "help", "helped"), ("chases", "chase", "chased")]
INTRANSITIVE = [("sleeps", "sleep", "slept"), ("arrives", "arrive", "arrived"), ("waits", "wait", "waited"),
                ("laughs", "laugh", "laughed"), ("falls", "fall", "fell")]
PARTICIPLE = {"slept": "slept", "arrived": "arrived", "waited": "waited", "laughed": "laughed", "fell": "fallen"}
REFLEXIVE_VERBS = [("hurts", "hurt", "hurt"), ("sees", "see", "saw"), ("praises", "praise", "praised")]
ADJECTIVES = ["old", "small", "happy", "quiet", "red", "tall", "clever", "tired"]
PREPOSITIONS = ["near", "behind", "beside", "under", "with"]
ADVERBS = ["quickly", "today", "again", "slowly"]


@dataclass(frozen=True)
class NP:
    text: str
    plural: bool
    gender: str  # "m", "f" or "n"


class Grammar:
    """Sentence and minimal-pair generator; every method draws from ``self.rng``."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def choice(self, items):
        return items[self.rng.randrange(len(items))]

    # noun phrases ----------------------------------------------------------------------------------------------
    def noun(self, plural: bool | None = None, kind: str | None = None) -> NP:
        kind = kind or self.choice(["m", "f", "a", "t", "t"])
        table = {"m": NOUNS_M, "f": NOUNS_F, "a": ANIMALS, "t": THINGS}[kind]
        plural = self.rng.random() < 0.5 if plural is None else plural
        word = self.choice(table)[plural]
        return NP(word, plural, kind if kind in "mf" else "n")

    def np(self, plural: bool | None = None, kind: str | None = None, modifiers: bool = True) -> NP:
        n = self.noun(plural, kind)
        det = self.determiner(n.plural)
        adj = f"{self.choice(ADJECTIVES)} " if modifiers and self.rng.random() < 0.3 else ""
        if det == "a" and (adj or n.text)[0] in "aeiou":
            det = "an"
        return NP(f"{det} {adj}{n.text}", n.plural, n.gender)

    def determiner(self, plural: bool) -> str:
        return self.choice(["the", "these", "some", "those"] if plural else ["the", "this", "a", "that"])

    def subject(self, plural: bool | None = None, animate: bool = True, depth: int = 0) -> NP:
        """An NP, sometimes modified by a PP or a relative clause (attractors for agreement)."""
        head = self.np(plural, self.choice("mfa") if animate else None)
        r = self.rng.random()
        if depth < 2 and r < 0.25:
            obj = self.np()
            return NP(f"{head.text} {self.choice(PREPOSITIONS)} {obj.text}", head.plural, head.gender)
        if depth < 2 and r < 0.4:
            inner = self.subject(depth=depth + 1)
            verb = self.verb(TRANSITIVE, inner.plural)
            return NP(f"{head.text} that {inner.text} {verb}", head.plural, head.gender)
        return head

    def verb(self, table, plural: bool, tense: str | None = None) -> str:
        forms = self.choice(table)
        tense = tense or ("past" if self.rng.random() < 0.3 else "present")
        return forms[2] if tense == "past" else forms[1] if plural else forms[0]

    # sentences ------------------------------------------------------------------------------------------------
    def sentence(self) -> str:
        r = self.rng.random()
        subj = self.subject()
        if r < 0.35:
            body = f"{subj.text} {self.verb(TRANSITIVE, subj.plural)} {self.np().text}"
        elif r < 0.6:
            body = f"{subj.text} {self.verb(INTRANSITIVE, subj.plural)}"
        elif r < 0.75:
            body = f"{subj.text} {self.verb(REFLEXIVE_VERBS, subj.plural)} {reflexive(subj)}"
        elif r < 0.87:
            n = self.noun(subj.plural, self.choice("mfa"))
            body = f"no {n.text} {'have' if n.plural else 'has'} ever {PARTICIPLE[self.choice(INTRANSITIVE)[2]]}"
        else:
            body = f"{subj.text} {self.verb(INTRANSITIVE, subj.plural)} {self.choice(ADVERBS)}"
        return body[0].upper() + body[1:] + "."

    def text(self, n_sentences: int, per_paragraph: int = 8) -> str:
        """``n_sentences`` sentences in paragraphs, one paragraph per line."""
        lines, sentences = [], []
        for _ in range(n_sentences):
            sentences.append(self.sentence())
            if len(sentences) == per_paragraph:
                lines.append(" ".join(sentences))
                sentences = []
        if sentences:
            lines.append(" ".join(sentences))
        return "\n".join(lines) + "\n"


def reflexive(np: NP) -> str:
    return "themselves" if np.plural else {"m": "himself", "f": "herself", "n": "itself"}[np.gender]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] + "."


# minimal pairs: each returns (good, bad) --------------------------------------------------------------------------
def _agreeing(g: Grammar, subject: str, plural: bool) -> tuple[str, str]:
    """``subject`` + an intransitive verb that agrees with it, and the same with the verb's other number."""
    singular_form, plural_form, _ = g.choice(INTRANSITIVE)
    good, bad = (plural_form, singular_form) if plural else (singular_form, plural_form)
    return _cap(f"{subject} {good}"), _cap(f"{subject} {bad}")


def _sv_simple(g: Grammar) -> tuple[str, str]:
    s = g.np(kind=g.choice("mfa"))
    return _agreeing(g, s.text, s.plural)


def _sv_across_pp(g: Grammar) -> tuple[str, str]:
    head = g.np(kind=g.choice("mfa"))
    attractor = g.np(plural=not head.plural)
    return _agreeing(g, f"{head.text} {g.choice(PREPOSITIONS)} {attractor.text}", head.plural)


def _sv_across_relative(g: Grammar) -> tuple[str, str]:
    head = g.np(kind=g.choice("mfa"))
    inner = g.np(plural=not head.plural, kind=g.choice("mfa"))
    return _agreeing(g, f"{head.text} that {inner.text} {g.verb(TRANSITIVE, inner.plural, 'past')}", head.plural)


def _long_range(g: Grammar) -> tuple[str, str]:
    head = g.np(kind=g.choice("mfa"))
    inner = g.np(plural=not head.plural, kind=g.choice("mfa"))
    pp = g.np(plural=not head.plural)
    inner_verb = g.verb(TRANSITIVE, inner.plural, "past")
    return _agreeing(g, f"{head.text} that {inner.text} {g.choice(PREPOSITIONS)} {pp.text} {inner_verb}", head.plural)


def _det_noun(g: Grammar) -> tuple[str, str]:
    n = g.noun()
    good_det = g.choice(["these", "those"] if n.plural else ["this", "that"])
    bad_det = {"these": "this", "those": "that", "this": "these", "that": "those"}[good_det]
    rest = f"{g.verb(INTRANSITIVE, n.plural, 'past')}"
    return _cap(f"{good_det} {n.text} {rest}"), _cap(f"{bad_det} {n.text} {rest}")


def _anaphor_number(g: Grammar) -> tuple[str, str]:
    s = g.np(kind=g.choice("mf"))
    verb = g.verb(REFLEXIVE_VERBS, s.plural)
    wrong = reflexive(NP("", not s.plural, s.gender))
    return _cap(f"{s.text} {verb} {reflexive(s)}"), _cap(f"{s.text} {verb} {wrong}")


def _anaphor_gender(g: Grammar) -> tuple[str, str]:
    gender = g.choice("mf")
    s = g.np(plural=False, kind=gender)
    verb = g.verb(REFLEXIVE_VERBS, False)
    wrong = "herself" if gender == "m" else "himself"
    return _cap(f"{s.text} {verb} {reflexive(s)}"), _cap(f"{s.text} {verb} {wrong}")


def _npi(g: Grammar) -> tuple[str, str]:
    n = g.noun(kind=g.choice("mfa"))
    aux = "have" if n.plural else "has"
    verb = PARTICIPLE[g.choice(INTRANSITIVE)[2]]
    return _cap(f"no {n.text} {aux} ever {verb}"), _cap(f"the {n.text} {aux} ever {verb}")


def _transitivity(g: Grammar) -> tuple[str, str]:
    s, o = g.np(kind=g.choice("mfa")), g.np()
    good = g.verb(TRANSITIVE, s.plural, "past")
    bad = g.verb(INTRANSITIVE, s.plural, "past")
    return _cap(f"{s.text} {good} {o.text}"), _cap(f"{s.text} {bad} {o.text}")


def _irregular_plural(g: Grammar) -> tuple[str, str]:
    return _agreeing(g, f"{g.determiner(True)} {g.choice(['men', 'women', 'mice'])}", True)


PHENOMENA: dict[str, tuple[str, Callable[[Grammar], tuple[str, str]]]] = {
    "sv_agreement_simple": ("subject_verb_agreement", _sv_simple),
    "sv_agreement_across_pp": ("subject_verb_agreement", _sv_across_pp),
    "sv_agreement_across_relative": ("subject_verb_agreement", _sv_across_relative),
    "sv_agreement_long_range": ("subject_verb_agreement", _long_range),
    "determiner_noun_agreement": ("determiner_noun_agreement", _det_noun),
    "anaphor_number_agreement": ("anaphor_agreement", _anaphor_number),
    "anaphor_gender_agreement": ("anaphor_agreement", _anaphor_gender),
    "npi_licensing": ("npi_licensing", _npi),
    "transitivity": ("argument_structure", _transitivity),
    "irregular_plural_agreement": ("subject_verb_agreement", _irregular_plural),
}


def minimal_pairs(phenomenon: str, n: int, seed: int = 0) -> Iterator[dict]:
    """Up to ``n`` distinct BLiMP-format pairs for ``phenomenon`` (its UID); fewer when the grammar has fewer."""
    term, make = PHENOMENA[phenomenon]
    g = Grammar(seed * 7919 + sum(map(ord, phenomenon)))
    seen: set[tuple[str, str]] = set()
    for _ in range(50 * n):
        pair = make(g)
        if pair not in seen:
            seen.add(pair)
            yield {"sentence_good": pair[0], "sentence_bad": pair[1], "UID": phenomenon, "linguistics_term": term,
                   "field": "syntax", "pair_id": len(seen) - 1}
            if len(seen) == n:
                return
