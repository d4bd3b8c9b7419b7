"""Configuration of a Model Discovery design exported for Hugging Face transformers."""

from transformers import PretrainedConfig


class ModisConfig(PretrainedConfig):
    """``scale`` (the rung, as in ``etc/ladder_*.yaml``), ``gab_config`` (the block's hyperparameters), ``n_block``
    (the fitted depth), ``design_name`` and ``use_cache`` (generate with a cache when every unit of the design is
    incremental); the block's code is ``design.py`` beside this file."""

    model_type = "modis"

    def __init__(self, scale: dict | None = None, gab_config: dict | None = None, n_block: int = 1,
                 vocab_size: int = 4096, design_name: str = "design", use_cache: bool = True, **kwargs):
        self.scale = scale or {}
        self.gab_config = gab_config or {}
        self.n_block = n_block
        self.vocab_size = vocab_size
        self.design_name = design_name
        self.use_cache = use_cache
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(**kwargs)
