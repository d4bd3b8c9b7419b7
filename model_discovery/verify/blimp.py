"""Minimal pairs in the BLiMP layout (``sentence_good``, ``sentence_bad``, ``UID``): local BLiMP folders
(``$MODIS_DATA_DIR/blimp``, ``blimp_filtered``, ``blimp_supplement``: one ``PARADIGM.jsonl`` each) or the built-in
grammar's pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from model_discovery.verify.grammar import PHENOMENA, minimal_pairs

SYNTHETIC_PAIRS_PER_PHENOMENON = 200


def blimp_dir(spec: str | Path) -> Path:
    """A BLiMP folder: a path, or a name under ``$MODIS_DATA_DIR`` (``blimp``, ``blimp_filtered``, ...)."""
    path = Path(spec).expanduser()
    if not path.is_dir() and os.environ.get("MODIS_DATA_DIR"):
        path = Path(os.environ["MODIS_DATA_DIR"]) / str(spec)
    if not path.is_dir() or not any(path.glob("*.jsonl")):
        raise FileNotFoundError(f"no BLiMP data at {spec!r}: give a folder of PARADIGM.jsonl files, or a name under "
                                "$MODIS_DATA_DIR (blimp, blimp_filtered, blimp_supplement), or 'synthetic'.")
    return path


def load_pairs(spec: str | Path = "synthetic", seed: int = 0, limit: int | None = None) -> list[dict]:
    """Every pair of a BLiMP folder (UID from the file name where a row has none), or the synthetic pairs.
    ``limit`` keeps the first pairs of each paradigm."""
    if str(spec) == "synthetic":
        n = limit or SYNTHETIC_PAIRS_PER_PHENOMENON
        return [p for ph in PHENOMENA for p in minimal_pairs(ph, n, seed)]
    return [p for path in sorted(blimp_dir(spec).glob("*.jsonl")) for p in read_paradigm(path, limit)]


def read_paradigm(path: str | Path, limit: int | None = None) -> list[dict]:
    """The pairs of one ``PARADIGM.jsonl`` file (UID from the file name where a row has none)."""
    path = Path(path)
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{"sentence_good": row["sentence_good"], "sentence_bad": row["sentence_bad"],
             "UID": row.get("UID") or path.stem} for row in rows[:limit]]
