"""Datasets and choices for the task configs in ``evals/`` (minimal pairs scored by lm-eval's ``multiple_choice``).

Each paradigm's YAML names its ``collection`` and ``paradigm``; :func:`pairs_dataset` finds the rows in a folder
given by ``--metadata '{"data_dir": DIR}'``, else ``$MODIS_DATA_DIR/<collection>``; the ``synthetic`` collection
comes from the built-in grammar; with neither, the original BLiMP is fetched from the Hugging Face hub (the data of
lm-eval's own ``blimp`` tasks). Choices come from a Python function, not a per-document Jinja template.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_BLIMP = "nyu-mll/blimp"


def _local_dir(collection: str, data_dir: str | None) -> Path | None:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("MODIS_DATA_DIR"):
        return Path(os.environ["MODIS_DATA_DIR"]) / collection
    return None


def pair_rows(collection: str, paradigm: str, data_dir: str | None = None, seed: int = 0) -> list[dict]:
    """The ``sentence_good``/``sentence_bad`` rows of one paradigm."""
    from model_discovery.verify.blimp import SYNTHETIC_PAIRS_PER_PHENOMENON, read_paradigm
    from model_discovery.verify.grammar import minimal_pairs

    if collection == "synthetic":
        return minimal_pairs(paradigm, SYNTHETIC_PAIRS_PER_PHENOMENON, seed)
    folder = _local_dir(collection, data_dir)
    if folder is not None:
        if not (folder / f"{paradigm}.jsonl").is_file():
            raise FileNotFoundError(f"{folder / paradigm}.jsonl not found: set MODIS_DATA_DIR to the folder that "
                                    f"holds {collection}/, or pass --metadata '{{\"data_dir\": DIR}}'")
        return read_paradigm(folder / f"{paradigm}.jsonl")
    if collection != "blimp":
        raise FileNotFoundError(f"no local data for {collection}: set MODIS_DATA_DIR or pass --metadata "
                                "'{\"data_dir\": DIR}' (only the original BLiMP can come from the hub)")
    import datasets

    try:
        return list(datasets.load_dataset(HUB_BLIMP, paradigm, split="train"))
    except Exception as exc:  # offline: say what to do instead
        raise RuntimeError(f"BLiMP {paradigm} is not local and the hub is unreachable ({exc}); set "
                           "MODIS_DATA_DIR to a folder holding blimp/PARADIGM.jsonl") from exc


def pairs_dataset(collection: str, paradigm: str, data_dir: str | None = None, seed: int = 0, **_):
    """lm-eval ``custom_dataset``: a DatasetDict with one ``train`` split (BLiMP has only that split)."""
    import datasets

    rows = [{"sentence_good": r["sentence_good"], "sentence_bad": r["sentence_bad"]}
            for r in pair_rows(collection, paradigm, data_dir, seed)]
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)})


def doc_to_choice(doc: dict) -> list[str]:
    """The good sentence first: the target is choice 0."""
    return [doc["sentence_good"], doc["sentence_bad"]]
