"""Evaluation with lm-eval: the ``modis`` model class (:mod:`.lm_eval_model`), the sandboxed scoring it calls
(:mod:`.score`), the hook that registers it with lm-eval's CLI (:mod:`.plugin`) and the datasets behind the task
configs in ``evals/`` (:mod:`.tasks`). Nothing here imports lm-eval or torch at package import."""
