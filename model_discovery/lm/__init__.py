"""The LM around a block, scales and ladders, and fitting a design to a scale."""

from model_discovery.lm.fit import Fit, ScaleFitError, block_params, build_lm, fit_to_scale
from model_discovery.lm.model import DiscoveryLM, LMOutput
from model_discovery.lm.scale import Ladder, Scale, find_scale, ladder_names, load_ladder

__all__ = [
    "DiscoveryLM", "Fit", "LMOutput", "Ladder", "Scale", "ScaleFitError", "block_params", "build_lm",
    "find_scale", "fit_to_scale", "ladder_names", "load_ladder",
]
