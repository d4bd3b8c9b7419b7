"""Functions the task configs here name with ``!function utils.…`` (lm-eval loads this file by path)."""

from model_discovery.evals.tasks import doc_to_choice, pairs_dataset

__all__ = ["doc_to_choice", "pairs_dataset"]
