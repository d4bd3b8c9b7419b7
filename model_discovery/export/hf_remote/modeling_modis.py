"""A Model Discovery design as a transformers causal LM: ``DiscoveryLM`` (``modis_lm.py``) around the block in
``design.py``.

Needs torch and transformers only, and ``trust_remote_code=True``: the design is generated code, so read
``design.py`` before you load it.
"""

from types import SimpleNamespace

import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_modis import ModisConfig
from .design import GAB
from .modis_base import Cache
from .modis_lm import DiscoveryLM

# the output's name for the cache: `cache` in recent transformers, `past_key_values` before
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class ModisForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = ModisConfig
    base_model_prefix = "model"
    _tied_weights_keys = {"model.lm_head.weight": "model.embedding.weight"}  # noqa: RUF012 (transformers API)
    _supports_cache_class = False

    def __init__(self, config: ModisConfig):
        super().__init__(config)
        self.model = DiscoveryLM(GAB, config.gab_config, SimpleNamespace(**config.scale), vocab_size=config.vocab_size,
                                 n_block=config.n_block)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:  # the units keep their own state: a modis Cache
        return False

    def get_input_embeddings(self):
        return self.model.embedding

    def set_input_embeddings(self, value):
        self.model.embedding = value

    def get_output_embeddings(self):
        return self.model.lm_head

    def _init_weights(self, module):  # weights come from the checkpoint; DiscoveryLM initialises new models itself
        pass

    def forward(self, input_ids: torch.LongTensor, attention_mask=None, labels=None, cache=None,
                past_key_values=None, use_cache=None, **kwargs) -> CausalLMOutputWithPast:
        """With a cache (``use_cache``, when every unit of the design is incremental), ``input_ids`` continue the
        sequences the cache holds; without, inputs longer than the rung's context keep their last ``context``
        tokens. Padding (``attention_mask``) is not supported: generate one sequence, or equal lengths."""
        context = self.config.scale["context"]
        state = next((c for c in (cache, past_key_values) if isinstance(c, Cache)), None)
        if state is None and labels is None and (self.config.use_cache if use_cache is None else use_cache):
            state = self.model.new_cache()  # None when a unit of the design is not incremental
            if state is not None:
                state = self.model.fit_cache(state, input_ids.shape[1])
                input_ids = input_ids[:, state.start:]
        if state is None:
            input_ids = input_ids[:, -context:]
            labels = labels[:, -input_ids.shape[1]:] if labels is not None else None
        out = self.model(input_ids, labels=labels, cache=state)
        return CausalLMOutputWithPast(loss=out.loss, logits=out.logits, **{_CACHE_FIELD: state})

    def prepare_inputs_for_generation(self, input_ids, cache=None, past_key_values=None, use_cache=None, **kwargs):
        """The tokens the cache has not seen; past the context, a new cache (``DiscoveryLM.fit_cache``)."""
        state = next((c for c in (cache, past_key_values) if isinstance(c, Cache)), None)
        if state is None:
            return {"input_ids": input_ids, "use_cache": use_cache}
        state = self.model.fit_cache(state, input_ids.shape[1])
        return {"input_ids": input_ids[:, state.start + state.seen:], "cache": state, "use_cache": True}
