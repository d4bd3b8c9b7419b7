"""The evolution tree: the store every part of a run shares (:mod:`.store`)."""

from model_discovery.evolution.store import DesignRow, SessionRow, Store

__all__ = ["DesignRow", "SessionRow", "Store"]
