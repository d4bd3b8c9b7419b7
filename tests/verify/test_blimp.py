import json
import os
from pathlib import Path

import pytest

from model_discovery.verify.blimp import load_pairs
from model_discovery.verify.grammar import PHENOMENA

DATA = os.environ.get("MODIS_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MODIS_DATA_DIR is not set (BLiMP lives in ../shared/data)")


def test_synthetic_pairs():
    pairs = load_pairs("synthetic", limit=20)
    assert {p["UID"] for p in pairs} == set(PHENOMENA) and len(pairs) >= 20 * (len(PHENOMENA) - 1)


def test_folder_and_uid_from_file_name(tmp_path):
    rows = [{"sentence_good": "A b.", "sentence_bad": "B a."}, {"sentence_good": "C d.", "sentence_bad": "D c."}]
    (tmp_path / "my_paradigm.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = load_pairs(tmp_path)
    assert [p["UID"] for p in pairs] == ["my_paradigm"] * 2
    assert load_pairs(tmp_path, limit=1) == pairs[:1]


def test_missing_folder_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="blimp_filtered"):
        load_pairs(tmp_path / "absent")


@needs_data
@pytest.mark.parametrize("name, paradigms, at_least", [("blimp", 67, 67_000), ("blimp_filtered", 67, 59_000),
                                                       ("blimp_supplement", 5, 1_000)])
def test_shared_blimp_sets(name, paradigms, at_least):
    pairs = load_pairs(name)
    assert len({p["UID"] for p in pairs}) == paradigms and len(pairs) >= at_least
    assert Path(DATA, name).is_dir()
