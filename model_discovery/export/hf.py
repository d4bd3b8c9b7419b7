"""``modis export hf``: a verified model as a self-contained Hugging Face model folder.

The folder loads with ``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)`` and
``AutoTokenizer.from_pretrained(DIR)`` where only torch and transformers are installed: it carries the design
(``design.py``), the design language's base classes and vetted kernels, and the LM around the block as plain remote
code. Those are the project's own modules, copied with their imports of each other made relative
(:data:`REMOTE_MODULES`), so the exported model runs the very code that was verified. Nothing here runs the design:
the weights are renamed as data and the design's source is rewritten as text.

The source is a ``modis verify`` folder or a run folder (its best design, or ``--design NAME``, at the highest rung it
was verified at); from a run, the model card (``README.md``) states the design's lineage and the references it was
compared with.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

from safetensors.torch import load, save_file

from model_discovery.design.hashing import content_hash
from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.key import DataKey
from model_discovery.evolution.store import Store
from model_discovery.verify.artifacts import ARTIFACTS, check_verified, read_config
from model_discovery.verify.data import EOS

REMOTE = Path(__file__).with_name("hf_remote")
# file in the exported folder <- the project's module it is a copy of
REMOTE_MODULES = {"modis_base.py": "model_discovery.design.base", "modis_ops.py": "model_discovery.design.ops",
                  "modis_loss.py": "model_discovery.lm.loss", "modis_lm.py": "model_discovery.lm.model"}
# what an import of a project module becomes in the exported folder (modis_design: the names designs import)
RELATIVE = {module: "." + name.removesuffix(".py") for name, module in REMOTE_MODULES.items()} | {
    "model_discovery.design": ".modis_design"}
STATIC = ("configuration_modis.py", "modeling_modis.py", "modis_design.py")


class ExportError(ValueError):
    """The source cannot be exported; the message says why."""


def remote_source(source: str, label: str) -> str:
    """``source`` with its imports of the project made relative to the exported folder (``if TYPE_CHECKING:``
    blocks dropped); an import of anything the folder does not carry is an :class:`ExportError`."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    edits: list[tuple[int, int, str]] = [  # (first line, last line, replacement), 1-based
        (node.lineno, node.end_lineno, "") for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    dropped = [(first, last) for first, last, _ in edits]
    for node in ast.walk(tree):
        pad = " " * getattr(node, "col_offset", 0)
        if any(first <= getattr(node, "lineno", 0) <= last for first, last in dropped):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("model_discovery"):
            if node.module not in RELATIVE:
                raise ExportError(f"{label} imports {node.module}, which an exported model does not carry")
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
            edits.append((node.lineno, node.end_lineno, f"{pad}from {RELATIVE[node.module]} import {names}\n"))
        elif isinstance(node, ast.Import) and any(a.name.startswith("model_discovery") for a in node.names):
            if len(node.names) > 1 or node.names[0].name != "model_discovery.design.ops" or not node.names[0].asname:
                raise ExportError(f"{label}: write `from model_discovery.design import ops` (line {node.lineno}), "
                                  "an exported model has no package `model_discovery`")
            alias = node.names[0].asname
            edits.append((node.lineno, node.end_lineno, f"{pad}from .modis_design import ops as {alias}\n"))
    for first, last, text in sorted(edits, reverse=True):
        lines[first - 1:last] = [text]
    return "".join(lines)


def write_remote_code(out: Path, design_source: str) -> None:
    """The remote code: the design, the project modules it runs on, the transformers wrapper."""
    for name, module in REMOTE_MODULES.items():
        (out / name).write_text(remote_source(Path(find_spec(module).origin).read_text(), module))
    for name in STATIC:
        shutil.copyfile(REMOTE / name, out / name)
    (out / "design.py").write_text(remote_source(design_source, "design.py"))
    # transformers keys the classes it registers by the config class, whose module it caches by its file's hash: a
    # config file of the design's own keeps two exported designs loaded in one process apart
    with open(out / "configuration_modis.py", "a") as config:
        config.write(f'\nDESIGN = "{content_hash(design_source)}"  # the design this folder carries\n')


# -- where the model comes from ---------------------------------------------------------------------------------

def _fetch(url: str, into: Path) -> Path:
    """A verification's files from its artifacts (a folder or an fsspec URL) into ``into``."""
    store = Artifacts(url)
    for name in (*ARTIFACTS, "metrics.json"):
        if store.exists(name):
            (into / name).write_bytes(store.get_bytes(name))
    return check_verified(into)


def _from_run(run_dir: Path, name: str | None, scratch: Path) -> tuple[Path, dict]:
    """(verification folder, what the model card says of the run) for design ``name`` (default: the run's best) at
    the highest rung it was verified at with the run's seed."""
    config = json.loads((run_dir / "config.json").read_text())
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else {}
    name = name or (report.get("best") or {}).get("name")
    if not name:
        raise ExportError(f"{run_dir} has no best design yet: name one with --design")
    store = Store(config.get("store") or run_dir)
    by_name = {d.name: d for d in store.designs()}
    if name not in by_name:
        raise ExportError(f"{run_dir} has no design {name!r}")
    design = by_name[name]
    rungs = config.get("rungs") or []
    mine = [v for v in store.verifications() if v.design_id == design.id and not DataKey.parse(v.data).noise_run]
    if not mine:
        raise ExportError(f"{name} was not verified in {run_dir}")
    top = max(mine, key=lambda v: rungs.index(v.scale) if v.scale in rungs else -1)
    folder = Path(top.metrics.get("out", ""))
    if not all((folder / f).is_file() for f in ARTIFACTS):
        if not top.artifacts:
            raise ExportError(f"the files of {name}'s verification at {top.scale} are gone ({folder})")
        folder = _fetch(top.artifacts, scratch)
    by_id = {d.id: d for d in by_name.values()}
    references = [{"name": by_id[v.design_id].name, "val_loss": v.metrics.get("val_loss"),
                   "val_bpb": v.metrics.get("val_bpb")}
                  for v in store.verifications(scale=top.scale, data=top.data)
                  if by_id[v.design_id].mode == "reference" and v.metrics]
    lineage, seen, todo = [], set(), [design.name]
    while todo:  # the design, its parents, theirs…
        row = by_name[todo.pop(0)]
        if row.name in seen:
            continue
        seen.add(row.name)
        lineage.append({"name": row.name, "mode": row.mode, "parents": list(row.parents)})
        todo.extend(row.parents)
    best = report.get("best") or {}
    return folder, {"run": str(run_dir), "prompt": config.get("prompt"), "rung": top.scale, "data": top.data,
                    "lineage": lineage, "references": references,
                    "confirmation": best.get("confirmation") if best.get("name") == name else None}


# -- the folder --------------------------------------------------------------------------------------------------

def model_card(name: str, config: dict, metrics: dict, run: dict | None) -> str:
    scale = config["scale"]
    lines = ["---", "library_name: transformers", "tags: [model-discovery, custom-code]", "---", "",
             f"# {name}", "",
             f"A language-model block found by Model Discovery, trained at the `{scale['name']}` rung: "
             f"{config['n_block']} blocks of width {scale['d_model']}, context {scale['context']}, "
             f"{metrics.get('params', 0):,} block parameters, {metrics.get('train_tokens', 0):,} training tokens "
             f"(seed {metrics.get('seed', '?')}).", "",
             "The block is `design.py`; the rest of the remote code is the design language "
             "(`modis_base.py`, `modis_design.py`), the vetted kernels (`modis_ops.py`) and the LM around the "
             "block (`modis_lm.py`, `modis_loss.py`). **`trust_remote_code=True` runs `design.py`: read it first.**",
             "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
             'model = AutoModelForCausalLM.from_pretrained("PATH", trust_remote_code=True)',
             'tokenizer = AutoTokenizer.from_pretrained("PATH", trust_remote_code=True)', "```", "", "## Data", "",
             f"- corpus: `{metrics.get('corpus', '?')}` (hash `{metrics.get('corpus_hash', '?')}`); tokenizer: a "
             f"{config['vocab_size']}-token BPE trained on it (hash `{metrics.get('tokenizer_hash', '?')}`)",
             f"- minimal pairs: `{metrics.get('blimp_source') or 'none'}`", "", "## Metrics", "",
             "| metric | value |", "| --- | --- |"]
    for key in ("val_loss", "perplexity", "val_bpb", "final_train_loss", "tokens_per_s"):
        if isinstance(metrics.get(key), (int, float)):
            lines.append(f"| {key} | {metrics[key]:.4g} |")
    if isinstance(metrics.get("blimp"), dict) and "acc" in metrics["blimp"]:
        lines.append(f"| minimal-pair accuracy | {metrics['blimp']['acc']:.4f} |")
    if run:
        lines += ["", "## Lineage", "", f"From the run `{run['run']}` (prompt: {run['prompt']!r}); data key "
                  f"`{run['data']}`.", ""]
        lines += [f"- `{step['name']}` ({step['mode']})" + (f" ← {', '.join(f'`{p}`' for p in step['parents'])}"
                                                           if step["parents"] else "") for step in run["lineage"]]
        if run["references"]:
            lines += ["", f"## Against the references at `{run['rung']}` (same data, budget and seed)", "",
                      "| design | held-out loss | bits per byte |", "| --- | --- | --- |",
                      f"| **{name}** | {metrics.get('val_loss', float('nan')):.4f} | "
                      f"{metrics.get('val_bpb', float('nan')):.4f} |"]
            lines += [f"| {r['name']} | {r['val_loss']:.4f} | {r['val_bpb'] or float('nan'):.4f} |"
                      for r in run["references"]]
        if run.get("confirmation"):
            c = run["confirmation"]
            lines += ["", f"Confirmation over extra seeds: {json.dumps(c)}"]
    else:
        lines += ["", "Verified alone (`modis verify`): no lineage or references recorded."]
    return "\n".join(lines) + "\n"


def export_hf(source: str | Path, out: str | Path, design: str | None = None) -> Path:
    """Writes the folder for a verification folder or a run folder (``design``: which of the run's designs,
    default its best) and returns its path."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    source = Path(source).expanduser().resolve()
    with tempfile.TemporaryDirectory() as scratch:
        if (source / "config.json").is_file() and not (source / "design.py").is_file():
            src, run = _from_run(source, design, Path(scratch))
        else:
            if design:
                raise ExportError("--design picks a design of a run folder; this is a verification folder")
            src, run = check_verified(source), None
        config = read_config(src)
        metrics = json.loads((src / "metrics.json").read_text()) if (src / "metrics.json").is_file() else {}
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_remote_code(out, (src / "design.py").read_text())
        weights = load((src / "model.safetensors").read_bytes())
        save_file({f"model.{k}": v for k, v in weights.items()}, out / "model.safetensors", metadata={"format": "pt"})
        name = run["lineage"][0]["name"] if run else config.get("name", "design")
        hf_config = {
            "model_type": "modis", "architectures": ["ModisForCausalLM"],
            "auto_map": {"AutoConfig": "configuration_modis.ModisConfig",
                         "AutoModelForCausalLM": "modeling_modis.ModisForCausalLM"},
            "scale": config["scale"], "gab_config": config["gab_config"], "n_block": config["n_block"],
            "vocab_size": config["vocab_size"], "design_name": name,
            "tie_word_embeddings": True, "max_position_embeddings": config["scale"]["context"],
            "num_hidden_layers": config["n_block"], "hidden_size": config["scale"]["d_model"], "use_cache": True,
        }
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(src / "tokenizer.json")),
                                            eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                            model_max_length=config["scale"]["context"])
        tokenizer.save_pretrained(out)
        eos = tokenizer.convert_tokens_to_ids(EOS)
        hf_config.update(eos_token_id=eos, bos_token_id=eos, pad_token_id=eos)
        (out / "config.json").write_text(json.dumps(hf_config, indent=2))
        (out / "generation_config.json").write_text(json.dumps(
            {"eos_token_id": eos, "bos_token_id": eos, "pad_token_id": eos, "use_cache": True}))
        if metrics:
            (out / "modis_metrics.json").write_text(json.dumps({**metrics, **({"run": run} if run else {})},
                                                               indent=2))
        (out / "README.md").write_text(model_card(name, config, metrics, run))
    return out


def card_of_run(run_dir: str | Path, design: str) -> str:
    """The model card a run's design exports with (written to a scratch folder, weights and all, then dropped), or
    why it has none: what a results page shows of its best model."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return (export_hf(run_dir, Path(tmp) / "model", design=design) / "README.md").read_text()
        except (ExportError, OSError) as exc:
            return f"(no model card: {exc})"


def push_to_hub(folder: str | Path, repo: str, private: bool = False, token: str | None = None) -> str:
    """Uploads an exported folder to the Hugging Face Hub (creating the repository if needed); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="Model Discovery export")
    return str(url)
