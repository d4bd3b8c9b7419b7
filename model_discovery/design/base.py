"""The design-language contract: units (GAU) and blocks (GAB). It needs torch alone, so an exported model carries
it as remote code (``model_discovery.export.hf``); unit declarations are in :mod:`model_discovery.design.decl`.

``X`` is always ``(batch, seq_len, embed_dim)``; ``Z`` is a dict of intermediate variables threaded through units
and across blocks. ``forward`` is final on both bases: it checks shapes around the subclass's ``_forward``, so a
unit can never silently change the stream's shape. The reserved key ``Z["aux_loss"]`` holds a scalar a unit *adds
to* (e.g. MoE load balancing); the LM sums it into the training loss.

Generation with a cache: the reserved key ``Z["cache"]`` holds a :class:`Cache` when the LM feeds a sequence in
consecutive pieces (a prompt, then one token at a time). A unit that sets ``incremental = True`` promises that,
given a piece, it returns the outputs of that piece's positions as if the whole sequence so far had been given:
it keeps what it needs of the earlier pieces in ``self.state(Z)`` (attention: keys and values; recurrences: their
state; convolutions and shifts: their last inputs) and reads the piece's first position from ``self.position(Z)``.
Units that only act position by position (norms, MLPs) and units that only pass Z to their children are
incremental as they are. The LM uses the cache only when every unit of the design is incremental.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

AUX_LOSS = "aux_loss"
CACHE = "cache"


class Cache:
    """What the units carry from one piece of a batch of sequences to the next, while generating.

    ``seen`` is how many tokens of each sequence came before the current piece (the LM advances it after each
    piece); ``start`` is where in the whole sequence the cache's first token was (0 unless generation outgrew the
    context and started a new cache on its last tokens). A unit's state is a dict of tensors with the batch first,
    so :meth:`reorder_cache` can follow beams.
    """

    def __init__(self, start: int = 0) -> None:
        self.seen = 0
        self.start = start
        self._states: dict[int, dict[str, Any]] = {}

    def state(self, unit: nn.Module) -> dict[str, Any]:
        """``unit``'s state: empty at the first piece; the unit updates it in place."""
        return self._states.setdefault(id(unit), {})

    def reorder_cache(self, index: Tensor) -> None:
        """Keeps the sequences ``index`` (beam search's reordering), in that order."""
        for state in self._states.values():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    state[key] = value.index_select(0, index.to(value.device))


def _check_input(module: nn.Module, X: Tensor) -> None:
    if X.dim() != 3 or X.shape[-1] != module.embed_dim:
        raise ValueError(
            f"{type(module).__name__} expects X of shape (batch, seq_len, {module.embed_dim}), "
            f"got {tuple(X.shape)}.")


def _check_output(module: nn.Module, X: Tensor, Y: Any) -> None:
    if not isinstance(Y, Tensor) or Y.shape != X.shape:
        got = tuple(Y.shape) if isinstance(Y, Tensor) else type(Y).__name__
        raise ValueError(
            f"{type(module).__name__}._forward must return Y with the shape of X {tuple(X.shape)}, got {got}.")


class _FinalForward:
    """Refuses subclasses that override ``forward``; they implement ``_forward``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and cls.__name__ not in ("GAUBase", "GABBase"):
            raise TypeError(f"{cls.__name__} overrides forward(); implement _forward(X, **Z) instead.")


class GAUBase(_FinalForward, nn.Module):
    """A Generalized Autoregressive Unit: maps ``(X, Z)`` to ``(Y, Z')`` with ``Y.shape == X.shape``.

    Args:
        embed_dim: width of the residual stream.
        block_loc: ``(layer_idx, n_block)`` so a unit may vary with depth.
        kwarg_all: every hyperparameter of the design, so a unit can pass them on to its children.
    """

    incremental: ClassVar[bool] = False
    """True when the unit handles a piece of a sequence given its state from the earlier pieces (module doc)."""

    def __init__(self, embed_dim: int, block_loc: tuple[int, int], kwarg_all: dict):
        super().__init__()
        self.embed_dim = embed_dim
        self.block_loc = tuple(block_loc)
        self.kwarg_all = kwarg_all

    def state(self, Z: dict) -> dict | None:
        """This unit's state from the earlier pieces of the sequence (empty at the first piece; update it in place),
        or None when ``X`` is the whole sequence (training, scoring)."""
        cache = Z.get(CACHE)
        return None if cache is None else cache.state(self)

    @staticmethod
    def position(Z: dict) -> int:
        """The position of ``X``'s first token in its sequence: 0 unless a cache fed earlier pieces."""
        cache = Z.get(CACHE)
        return 0 if cache is None else cache.seen

    def _forward(self, X: Tensor, **Z) -> tuple[Tensor, dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement _forward(X, **Z).")

    def forward(self, X: Tensor, **Z) -> tuple[Tensor, dict]:
        _check_input(self, X)
        out = self._forward(X, **Z)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise TypeError(f"{type(self).__name__}._forward must return (Y, dict_of_Z_updates).")
        Y, updates = out
        _check_output(self, X, Y)
        return Y, {**Z, **updates}


class GABBase(_FinalForward, nn.Module):
    """A Generalized Autoregressive Block: what the LM stacks ``n_block`` times.

    ``_forward`` may return ``Y`` or ``(Y, Z)``; ``forward`` always returns ``(Y, Z)``. ``incremental``: as for
    units (a block that only passes Z to its units is).
    """

    incremental: ClassVar[bool] = False

    def __init__(self, embed_dim: int, block_loc: tuple[int, int]):
        super().__init__()
        self.embed_dim = embed_dim
        self.block_loc = tuple(block_loc)

    def _forward(self, X: Tensor, **Z):
        raise NotImplementedError(f"{type(self).__name__} must implement _forward(X, **Z).")

    def forward(self, X: Tensor, **Z) -> tuple[Tensor, dict]:
        _check_input(self, X)
        out = self._forward(X, **Z)
        Y, updates = out if isinstance(out, tuple) else (out, {})
        _check_output(self, X, Y)
        return Y, {**Z, **(updates or {})}


def add_aux_loss(Z: dict, loss: Tensor) -> dict:
    """Returns the Z update that adds ``loss`` to the reserved auxiliary loss."""
    prev = Z.get(AUX_LOSS)
    return {AUX_LOSS: loss if prev is None else prev + loss}


__all__ = ["AUX_LOSS", "CACHE", "Cache", "GABBase", "GAUBase", "add_aux_loss"]
