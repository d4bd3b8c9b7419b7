"""The design-language contract: units (GAU) and blocks (GAB). It needs torch alone, so an exported model carries
it as remote code (``model_discovery.export.hf``); unit declarations are in :mod:`model_discovery.design.decl`.

``X`` is always ``(batch, seq_len, embed_dim)``; ``Z`` is a dict of intermediate variables threaded through units
and across blocks. ``forward`` is final on both bases: it checks shapes around the subclass's ``_forward``, so a
unit can never silently change the stream's shape. The reserved key ``Z["aux_loss"]`` holds a scalar a unit *adds
to* (e.g. MoE load balancing); the LM sums it into the training loss.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

AUX_LOSS = "aux_loss"


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

    def __init__(self, embed_dim: int, block_loc: tuple[int, int], kwarg_all: dict):
        super().__init__()
        self.embed_dim = embed_dim
        self.block_loc = tuple(block_loc)
        self.kwarg_all = kwarg_all

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

    ``_forward`` may return ``Y`` or ``(Y, Z)``; ``forward`` always returns ``(Y, Z)``.
    """

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


__all__ = ["AUX_LOSS", "GABBase", "GAUBase", "add_aux_loss"]
