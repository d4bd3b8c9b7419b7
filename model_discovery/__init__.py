"""Model Discovery: agents that discover language-model block architectures.

``BuildSystem`` is the discovery job (``BuildSystem()("discover me a new model")``). Packages: ``design`` (the
design language), ``lm`` (the LM around a block, scales, ladders), ``checker`` and ``sandbox`` (checking untrusted
design code), ``verify`` (data, training, evaluation), ``agents`` (designers), ``evolution`` (the tree store,
selectors, workers) and ``workflow`` (the LangGraph graphs and ``BuildSystem``).
"""

__version__ = "0.1.0"
__all__ = ["BuildSystem", "DiscoveryConfig", "DiscoveryReport"]


def __getattr__(name: str):
    if name in __all__:  # lazy: `import model_discovery` stays cheap (no torch, no LangGraph)
        from model_discovery.workflow import build

        return getattr(build, name)
    raise AttributeError(f"module 'model_discovery' has no attribute {name!r}")
