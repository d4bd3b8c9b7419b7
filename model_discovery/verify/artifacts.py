"""Loading what a verification job wrote (``design.py``, ``config.json``, ``model.safetensors``,
``tokenizer.json``) back into a model. This imports the design's code: call it in a sandbox child, or only for
designs you trust (the library's, or your own)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load, save_file
from tokenizers import Tokenizer

from model_discovery.design import load_design
from model_discovery.files import atomic_path, atomic_write
from model_discovery.lm import DiscoveryLM, Scale

ARTIFACTS = ("design.py", "config.json", "model.safetensors", "tokenizer.json")


def save_model(path: str | Path, model: DiscoveryLM, name: str) -> None:
    """Writes what :func:`load_verified` reads back besides the design and the tokenizer: ``model.safetensors``
    (the head is tied to the embedding: not stored) and ``config.json``."""
    path = Path(path)
    with atomic_path(path / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},
                  str(tmp))
    atomic_write(path / "config.json", json.dumps({"name": name, "scale": model.scale.model_dump(),
                                                  "n_block": model.n_block, "gab_config": model.gab_config,
                                                  "vocab_size": model.vocab_size}, indent=2))


def check_verified(path: str | Path) -> Path:
    """``path`` resolved, or a FileNotFoundError naming what a finished verification would have left there."""
    path = Path(path).expanduser().resolve()
    missing = [name for name in ARTIFACTS if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a finished `modis verify` output folder: missing {', '.join(missing)}")
    return path


def read_config(path: str | Path) -> dict:
    return json.loads((check_verified(path) / "config.json").read_text())


def load_verified(path: str | Path, device: str | torch.device = "cpu") -> tuple[DiscoveryLM, Tokenizer, dict]:
    """(model in eval mode, tokenizer, config) of a verification output folder. Weights are read as bytes (the
    sandbox guard refuses torch's native file readers)."""
    path = check_verified(path)
    config = read_config(path)
    design = load_design(path / "design.py", name=config.get("name", "design"))
    model = DiscoveryLM(design.gab_cls, config["gab_config"], Scale(**config["scale"]),
                        vocab_size=config["vocab_size"], n_block=config["n_block"])
    missing, unexpected = model.load_state_dict(load((path / "model.safetensors").read_bytes()), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"weights in {path} do not fit the design: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), Tokenizer.from_file(str(path / "tokenizer.json")), config
