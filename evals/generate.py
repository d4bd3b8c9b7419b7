"""Writes the task configs in this folder: one YAML per paradigm and one group per collection.

    MODIS_DATA_DIR=../shared/data python evals/generate.py

Paradigm names come from the local data (``blimp``, ``blimp_filtered``, ``blimp_supplement``) and the built-in
grammar (``synthetic``). Rerun after adding a collection; the output is deterministic.
"""

from __future__ import annotations

import os
from pathlib import Path

from model_discovery.verify.grammar import PHENOMENA

HERE = Path(__file__).resolve().parent
COLLECTIONS = ("blimp", "blimp_filtered", "blimp_supplement", "synthetic")


def paradigms(collection: str) -> list[str]:
    if collection == "synthetic":
        return sorted(PHENOMENA)
    return sorted(p.stem for p in (Path(os.environ["MODIS_DATA_DIR"]) / collection).glob("*.jsonl"))


def main() -> None:
    for collection in COLLECTIONS:
        folder = HERE / collection
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        names = paradigms(collection)
        for name in names:
            (folder / f"{name}.yaml").write_text(
                f"include: ../_pairs_template.yaml\ntask: modis_{collection}_{name}\n"
                f"dataset_kwargs:\n  collection: {collection}\n  paradigm: {name}\n")
        tasks = "".join(f"  - modis_{collection}_{name}\n" for name in names)
        (folder / f"_modis_{collection}.yaml").write_text(
            f"group: modis_{collection}\ntask:\n{tasks}aggregate_metric_list:\n  - metric: acc\n"
            "    aggregation: mean\n    weight_by_size: false\nmetadata:\n  version: 1.0\n")
        print(f"{collection}: {len(names)} paradigms")


if __name__ == "__main__":
    main()
