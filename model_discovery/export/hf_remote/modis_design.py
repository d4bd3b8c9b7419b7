"""What ``from model_discovery.design import ...`` gives a design, in an exported model (remote code)."""

from . import modis_ops as ops  # noqa: F401
from .modis_base import AUX_LOSS, CACHE, Cache, GABBase, GAUBase, add_aux_loss  # noqa: F401
from .modis_ops import causal_conv  # noqa: F401  (transformers copies a file only for a `from .name import` line)


def UnitDecl(**fields):  # the project's declaration: no effect at run time
    return fields
