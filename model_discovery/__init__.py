"""Model Discovery: agents that discover language-model block architectures.

Packages: ``design`` (the design language), ``lm`` (the LM around a block, scales, ladders), ``checker`` and
``sandbox`` (checking untrusted design code), ``verify`` (data, training, evaluation).
"""

__version__ = "0.1.0"
