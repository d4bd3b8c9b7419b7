"""``modis export hf``: a ``modis verify`` folder as a Hugging Face model folder.

The result loads with ``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)`` and
``AutoTokenizer.from_pretrained(DIR)``. Nothing here runs the design: the weights are renamed as data and the design
source is copied beside the remote code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load, save_file

from model_discovery.verify.artifacts import check_verified, read_config
from model_discovery.verify.data import EOS

REMOTE = Path(__file__).with_name("hf_remote")


def export_hf(verify_dir: str | Path, out: str | Path) -> Path:
    """Writes the folder and returns its path."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    src = check_verified(verify_dir)
    config = read_config(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("configuration_modis.py", "modeling_modis.py"):
        shutil.copyfile(REMOTE / name, out / name)
    shutil.copyfile(src / "design.py", out / "design.py")
    weights = load((src / "model.safetensors").read_bytes())
    save_file({f"model.{k}": v for k, v in weights.items()}, out / "model.safetensors", metadata={"format": "pt"})
    hf_config = {
        "model_type": "modis", "architectures": ["ModisForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_modis.ModisConfig",
                     "AutoModelForCausalLM": "modeling_modis.ModisForCausalLM"},
        "scale": config["scale"], "gab_config": config["gab_config"], "n_block": config["n_block"],
        "vocab_size": config["vocab_size"], "design_name": config.get("name", "design"),
        "tie_word_embeddings": True, "max_position_embeddings": config["scale"]["context"],
        "num_hidden_layers": config["n_block"], "hidden_size": config["scale"]["d_model"], "use_cache": False,
    }
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(src / "tokenizer.json")),
                                        eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                        model_max_length=config["scale"]["context"])
    tokenizer.save_pretrained(out)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    hf_config.update(eos_token_id=eos, bos_token_id=eos, pad_token_id=eos)
    (out / "config.json").write_text(json.dumps(hf_config, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": eos, "bos_token_id": eos, "pad_token_id": eos, "use_cache": False}))
    if (src / "metrics.json").is_file():
        shutil.copyfile(src / "metrics.json", out / "modis_metrics.json")
    return out
