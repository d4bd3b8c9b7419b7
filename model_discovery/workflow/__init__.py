"""The LangGraph workflows: one design session (:mod:`.design`) and the evolution loop (:mod:`.evolve`), put
together by :class:`~model_discovery.workflow.build.BuildSystem`."""

from __future__ import annotations

__all__ = ["BuildSystem", "DiscoveryConfig", "DiscoveryReport"]


def __getattr__(name: str):
    if name == "DiscoveryConfig":
        from model_discovery.workflow.config import DiscoveryConfig

        return DiscoveryConfig
    if name in __all__:
        from model_discovery.workflow import build

        return getattr(build, name)
    raise AttributeError(name)
