"""A Model Discovery design as a transformers causal LM: ``DiscoveryLM`` (``modis_lm.py``) around the block in
``design.py``.

Needs torch and transformers only, and ``trust_remote_code=True``: the design is generated code, so read
``design.py`` before you load it.
"""

from types import SimpleNamespace

import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_modis import ModisConfig
from .design import GAB
from .modis_lm import DiscoveryLM


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

    def get_input_embeddings(self):
        return self.model.embedding

    def set_input_embeddings(self, value):
        self.model.embedding = value

    def get_output_embeddings(self):
        return self.model.lm_head

    def _init_weights(self, module):  # weights come from the checkpoint; DiscoveryLM initialises new models itself
        pass

    def forward(self, input_ids: torch.LongTensor, attention_mask=None, labels=None, **kwargs) -> CausalLMOutput:
        """No cache: each step recomputes the window (designs declare no cache interface); inputs longer than the
        rung's context keep their last ``context`` tokens."""
        input_ids = input_ids[:, -self.config.scale["context"]:]
        labels = labels[:, -input_ids.shape[1]:] if labels is not None else None
        out = self.model(input_ids, labels=labels)
        return CausalLMOutput(loss=out.loss, logits=out.logits)

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}
