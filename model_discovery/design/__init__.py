"""The design language (contract): units, blocks, unit trees, the composer and content hashing."""

from model_discovery.design.base import AUX_LOSS, CACHE, Cache, GABBase, GAUBase, add_aux_loss
from model_discovery.design.composer import compose
from model_discovery.design.decl import UnitDecl
from model_discovery.design.hashing import content_hash, normalise_source
from model_discovery.design.loader import Design, load_design
from model_discovery.design.tree import UnitSpec, UnitTree, rename_identifier

__all__ = [
    "AUX_LOSS", "CACHE", "Cache", "Design", "GABBase", "GAUBase", "UnitDecl", "UnitSpec", "UnitTree", "add_aux_loss",
    "compose", "content_hash", "load_design", "normalise_source", "rename_identifier",
]
