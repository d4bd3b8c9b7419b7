"""What makes two verifications of a design at a rung comparable: the corpus, the minimal pairs, the token budget,
and the training seed when it is not the run's (a noise-floor or confirmation run, which never enters the rung's
fitness). A verification's identity is (design, rung, :class:`DataKey`); the store keeps the key as its text
(``corpus=…;pairs=…;tokens=…[;seed=N]``), and every reader parses it back with :meth:`DataKey.parse`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DataKey(BaseModel):
    """The data part of a verification's identity."""

    model_config = ConfigDict(frozen=True)

    corpus: str
    pairs: str = "none"  # the minimal pairs scored ("none": no pair evaluation)
    tokens: int
    seed: int | None = None  # None: the run's own seed

    @property
    def text(self) -> str:
        """The key as the store's ``data`` column holds it."""
        seed = "" if self.seed is None else f";seed={self.seed}"
        return f"corpus={self.corpus};pairs={self.pairs};tokens={self.tokens}{seed}"

    @property
    def noise_run(self) -> bool:
        """Whether it trains on another seed than the run's (a noise-floor or confirmation run)."""
        return self.seed is not None

    def on_seed(self, seed: int | None) -> DataKey:
        """The same data trained on ``seed`` (None: the run's)."""
        return self.model_copy(update={"seed": seed})

    @classmethod
    def of(cls, corpus: str, blimp: str | None, tokens: int, seed: int | None = None) -> DataKey:
        return cls(corpus=corpus, pairs=blimp or "none", tokens=tokens, seed=seed)

    @classmethod
    def parse(cls, text: str) -> DataKey:
        """The key of a store's ``data`` text; a text that is not one is an error naming it."""
        try:
            fields = dict(part.split("=", 1) for part in text.split(";"))
            return cls(corpus=fields["corpus"], pairs=fields.get("pairs", "none"), tokens=int(fields["tokens"]),
                       seed=int(fields["seed"]) if "seed" in fields else None)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"not a verification's data key: {text!r} (expected corpus=…;pairs=…;tokens=N"
                             f"[;seed=N])") from exc
