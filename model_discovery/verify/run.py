"""``verify``: one design at one rung on one corpus — prepare the data here, train and evaluate in the sandbox.

Everything the job reads is put in its output folder first (design, tokenizer, token ids, minimal pairs), so the
sandboxed child reads nothing else; the folder is also where a killed job resumes from.

A verification's numbers are fixed by its *fingerprint* — the design's hash, the rung, the data and tokenizer, the
seed, the budget and the code that trains (:func:`fingerprint`). It is written beside the job
(``fingerprint.json``): a folder that holds a verification of another fingerprint is refused rather than resumed.
With a ``cache`` folder (shared between runs: a benchmark's runs verify the same references and often the same first
design) a finished verification is published under its fingerprint and copied, not retrained, when asked again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from model_discovery.design import content_hash, normalise_source
from model_discovery.design.library import cache_dir, design_names, library_design_path
from model_discovery.files import atomic_path, atomic_write
from model_discovery.lm import Scale, find_scale
from model_discovery.sandbox import Limits, ProcessSandbox, Sandbox
from model_discovery.verify.blimp import load_pairs
from model_discovery.verify.data import Corpus, encode, load_corpus, token_bytes, train_tokenizer
from model_discovery.verify.job import read_curve
from model_discovery.verify.kinds import rung_kind
from model_discovery.verify.tracking import log_to_wandb

log = logging.getLogger(__name__)

VERIFY_LIMITS = Limits(wall_s=24 * 3600, cpu_s=10**7, memory_mb=16384, file_mb=4096)


class VerifyError(RuntimeError):
    """The job did not produce metrics; the message says why (timeout, crash, exception)."""


def design_source(design: str | Path) -> tuple[str, str]:
    """(source, name) of a design file or a library design name."""
    path = Path(design)
    if path.is_file():
        return path.read_text(), path.parent.name if path.name == "design.py" else path.stem
    if str(design) in design_names():
        return library_design_path(str(design)).read_text(), str(design)
    raise FileNotFoundError(f"{design!r} is neither a design file nor a library design (`modis library list`).")


def _cached_tokens(corpus: Corpus, tokenizer, vocab: int, tokenizer_corpus: str | None = None,
                   splits: tuple[str, ...] = ("train", "valid")) -> dict[str, Path]:
    """Token ids of the splits as int32 files, cached by corpus hash, vocabulary size and (when the tokenizer was
    trained on another corpus) that corpus's hash."""
    by = f"{corpus.hash}-{vocab}" + (f"-tok{tokenizer_corpus}" if tokenizer_corpus else "")
    paths = {split: cache_dir() / "tokens" / f"{by}-{split}.bin" for split in splits}
    for split, path in paths.items():
        if not path.is_file():
            with atomic_path(path) as tmp:
                encode(tokenizer, getattr(corpus, split)).numpy().astype(np.int32).tofile(tmp)
    return paths


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def prepare(out: Path, source: str, scale: Scale, corpus_spec: str, blimp: str | None, seed: int,
            eval_corpora: list[str] = ()) -> dict:
    """Writes the job's inputs into ``out`` and returns their provenance."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(corpus_spec, seed)
    tokenizer = train_tokenizer(corpus, scale.vocab)
    with atomic_path(out / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    for split, path in _cached_tokens(corpus, tokenizer, scale.vocab).items():
        _copy(path, out / f"{split}.bin")
    with atomic_path(out / "token_bytes.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, token_bytes(tokenizer))
    for i, spec in enumerate(eval_corpora):  # other domains, through this run's tokenizer: held-out split only
        other = load_corpus(spec, seed)
        path = _cached_tokens(other, tokenizer, scale.vocab, corpus.hash, splits=("valid",))["valid"]
        _copy(path, out / f"eval-{i}.bin")
    pairs = load_pairs(blimp, seed) if blimp else []
    atomic_write(out / "pairs.json", json.dumps(pairs))
    atomic_write(out / "design.py", source)
    return {"corpus": corpus.source, "corpus_hash": corpus.hash,
            "tokenizer_hash": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest()[:16],
            "blimp_source": str(blimp) if blimp else None, "design_hash": content_hash(source), "seed": seed}


MODEL_FILES = ("config.json", "model.safetensors")
RESULT_FILES = ("metrics.json", *MODEL_FILES)  # what a cached verification keeps


PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def code_version(root: Path = PACKAGE) -> str:
    """Hash of the code a verification's numbers depend on (design language, LM, trainer, evaluation, sandbox under
    the package's ``root``) and of torch's version. The code as the AST sees it: an edit of comments, docstrings
    or layout keeps the cached verifications."""
    digest = hashlib.sha256(version("torch").encode())
    for folder in ("design", "lm", "verify", "sandbox"):
        for path in sorted((root / folder).rglob("*.py")):
            code = normalise_source(path.read_text())
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + code.encode())
    return digest.hexdigest()[:16]


def fingerprint(provenance: dict, scale: Scale, max_steps: int | None, eval_corpora: list[str],
                threads: int) -> dict:
    """What fixes a verification's numbers; two jobs with equal fingerprints train the same model (the thread count
    too: a training's sums depend on how many threads share them)."""
    where = {k: v for k, v in provenance.items() if not (k == "corpus" and "corpus_hash" in provenance)}
    return {**where, "scale": scale.model_dump(), "max_steps": max_steps, "eval_corpora": list(eval_corpora),
            "threads": threads, "code": code_version()}


def fingerprint_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _claim(out: Path, fields: dict) -> None:
    """Writes ``out/fingerprint.json``; refuses a folder that holds a verification of other settings."""
    path = out / "fingerprint.json"
    if path.is_file() and any((out / f).exists() for f in ("checkpoint.pt", "metrics.json")):
        held = json.loads(path.read_text())
        # a new budget extends the training, new code (the kind's too) or another thread count resumes it (as after
        # an upgrade)
        if changed := sorted(k for k in fields.keys() | held.keys()
                             if k not in ("code", "max_steps", "threads", "probes", "kind")
                             and held.get(k) != fields.get(k)):
            raise VerifyError(f"{out} holds a verification with other settings ({', '.join(changed)} differ); "
                              "delete the folder or choose another output folder")
    atomic_write(path, json.dumps(fields, indent=2, default=str))


def cache_folder(setting: str | Path | None = None) -> Path | None:
    """The verification cache runs share, resolved from a setting: a folder, ``none`` (off), or None for the
    default: ``$MODIS_VERIFY_CACHE`` (which may say ``none``), else ``verifications`` in the user's cache folder
    (:func:`cache_dir`)."""
    if setting is None:
        setting = os.environ.get("MODIS_VERIFY_CACHE") or cache_dir() / "verifications"
    if str(setting).strip().lower() in ("none", "off"):
        return None
    return Path(setting).expanduser().resolve()


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _from_cache(cache_dir: Path, key: str, fields: dict, out: Path) -> dict | None:
    """The cached verification's metrics, its files copied into ``out``; None if the cache does not hold it. An
    entry whose files do not match its manifest, or whose fingerprint is not ``fields``, is set aside with a
    warning, not trusted."""
    entry = cache_dir / key
    if not entry.is_dir():
        return None
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        held = json.loads((entry / "fingerprint.json").read_text())
        if json.loads(json.dumps(fields, default=str)) != held:
            raise ValueError("its fingerprint is another verification's")
        for name, digest in manifest.items():
            if _digest(entry / name) != digest:
                raise ValueError(f"{name} does not match its checksum")
        if "metrics.json" not in manifest:
            raise ValueError("it has no metrics")
        metrics = json.loads((entry / "metrics.json").read_text())
    except (OSError, ValueError) as exc:  # a torn copy, a disk error, an edit: train again
        aside = cache_dir / f".corrupt-{key}-{time.time_ns()}"
        log.warning("the verification cache's entry %s is corrupt (%s); it is set aside as %s and the "
                    "verification is trained again", entry, exc, aside.name)
        try:
            entry.rename(aside)
        except OSError:
            pass
        return None
    for name in MODEL_FILES:  # the metrics are returned, and written by the caller
        if name in manifest:
            _copy(entry / name, out / name)
    metrics.pop("wandb_dir", None)
    return {**metrics, "cached_from": str(entry.resolve())}


def _completeness(metrics: dict) -> tuple[bool, int, bool]:
    """How much of a verification an entry holds: trained to the end, how many minimal-pair phenomena it scored,
    and whether they were all of them (an entry is replaced only by a more complete one)."""
    final = "val_loss" in metrics
    scored = len((metrics.get("blimp") or {}).get("by_phenomenon") or {})
    return final, scored, final and not metrics.get("pairs_skipped")


def _publish(cache_dir: Path, key: str, out: Path) -> None:
    """Puts ``out``'s results into the cache under ``key``, whole or not at all, with a manifest of their
    checksums. A verification stopped early (its curve) or scored on some minimal pairs is kept too, and replaced
    when a more complete one comes (two runs publishing the same key at once leave one whole entry: each rename is
    atomic, and the entries are the same or one holds more)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    entry = cache_dir / key
    if (entry / "metrics.json").is_file():
        try:
            held = json.loads((entry / "metrics.json").read_text())
            if _completeness(held) >= _completeness(json.loads((out / "metrics.json").read_text())):
                return
        except (OSError, ValueError):
            pass  # unreadable: replaced
    staging = cache_dir / f".{key}.{os.getpid()}.{time.monotonic_ns()}"
    staging.mkdir()
    manifest = {}
    for name in (*RESULT_FILES, "fingerprint.json"):
        if (out / name).is_file():
            shutil.copyfile(out / name, staging / name)
            manifest[name] = _digest(staging / name)
    atomic_write(staging / "manifest.json", json.dumps(manifest, indent=2))
    old = cache_dir / f".replaced-{key}.{os.getpid()}.{time.monotonic_ns()}"
    try:
        entry.rename(old)  # a less complete entry makes way (a reader meanwhile finds none, and trains)
    except OSError:
        pass
    try:
        staging.rename(entry)
    except OSError:  # another run published it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _usable(metrics: dict, phenomena: Callable[..., list[str] | None] | None) -> bool:
    """Whether a cached verification that was not stopped here serves as this one: trained to the end, and scored
    on every minimal pair this one would score."""
    if "val_loss" not in metrics:
        return False
    if not metrics.get("pairs_skipped"):
        return True
    needed = phenomena() if phenomena else None
    return needed is not None and set(needed) <= set((metrics.get("blimp") or {}).get("by_phenomenon") or {})


def verify(design: str | Path, scale: str | Scale = "cpu-1m", corpus: str = "synthetic",
           blimp: str | None = "synthetic", out: str | Path | None = None, seed: int = 0,
           max_steps: int | None = None, sandbox: Sandbox | None = None, progress: bool = False,
           threads: int | None = None, eval_corpora: list[str] | None = None,
           cache: str | Path | None = None, decide: Callable[[dict], dict | None] | None = None,
           phenomena: Callable[..., list[str] | None] | None = None) -> dict:
    """Trains ``design`` at ``scale`` on ``corpus`` and evaluates it; returns the metrics (also in
    ``out/metrics.json``, and to Weights & Biases, offline unless ``WANDB_MODE`` says otherwise). ``max_steps``
    caps training (smoke tests); a rerun on the same ``out`` resumes. ``threads``: torch threads (several jobs
    sharing a machine each take a share of its cores). ``eval_corpora``: other corpora whose held-out split is
    scored too (``metrics["transfer"][spec]``: loss and bits per byte), to check a win elsewhere. The rung's
    kind (:mod:`model_discovery.verify.kinds`) prepares the job and runs it: a kind that does not train on the corpus
    ignores ``corpus`` and ``blimp``.
    ``cache``: a folder of finished verifications shared between runs; one with the same fingerprint is copied from
    there (``metrics["cached_from"]``) instead of trained.

    ``decide``: early stopping. The training pauses at each of the kind's probe steps
    (:data:`~model_discovery.verify.kinds.PROBES`) with the held-out loss there
    (``{"step", "fraction", "tokens", "val_loss"}``); ``decide`` returns None to go on, or why it stops (a dict),
    and then the verification ends there: its metrics hold ``stopped`` and the curve so far, and no final numbers.
    Every verification records its curve (``metrics["curve"]``), with or without ``decide``.

    ``phenomena``: names the minimal-pair phenomena worth scoring (None: all of them);
    ``metrics["pairs_skipped"]`` counts the others. It is asked ``phenomena(wait=False)`` before the evaluation and
    answers :data:`PENDING` while the answer depends on verifications still running; then the training pauses
    at its end and ``phenomena()`` waits for them."""
    source, name = design_source(design)
    scale = find_scale(scale) if isinstance(scale, str) else scale
    out = Path(out) if out else Path("runs") / "verify" / f"{name}-{scale.name}-{content_hash(source)[:8]}"
    kind = rung_kind(scale)
    t0 = time.perf_counter()
    provenance = kind.prepare(out, source, scale, seed, corpus=corpus, blimp=blimp, eval_corpora=eval_corpora or [])
    prepare_s = time.perf_counter() - t0
    limits = VERIFY_LIMITS.model_copy(update={"threads": threads}) if threads else VERIFY_LIMITS
    probes = kind.probes(max_steps or scale.steps)
    fields = {**fingerprint(provenance, scale, max_steps, eval_corpora or [], limits.threads), "probes": probes,
              "kind": kind.identity()}
    _claim(out, fields)
    key = fingerprint_key(fields)
    timing = {"kind": kind.name, "prepare_s": prepare_s, "out": str(out.resolve())}

    def done(metrics: dict, publish: bool = True) -> dict:
        metrics = _finish(out, {**metrics, **timing, "wall_s": time.perf_counter() - t0}, name, scale, provenance)
        if cache and publish:
            _publish(Path(cache), key, out)
        return metrics

    if cache and (metrics := _from_cache(Path(cache), key, fields, out)):
        # a cached verification meets the same stopping rule as a trained one: the tree does not depend on the cache
        points = metrics.get("curve", [])
        stop = next(((p, why) for p in points if p["step"] in probes and (why := decide and decide(p))), None)
        if stop or _usable(metrics, phenomena):
            return done(_stopped(metrics, points, *stop) if stop else metrics, publish=False)
        for file in MODEL_FILES:  # not usable here (stopped, or scored on other pairs): trained afresh
            (out / file).unlink(missing_ok=True)
    payload = {"scale": scale.model_dump(), "name": name, "seed": seed, "provenance": provenance,
               "train": {"steps": max_steps} if max_steps else {}, "progress": progress,
               "eval_corpora": list(eval_corpora or []), "threads": limits.threads, "probes": probes,
               **kind.payload()}
    sandbox = sandbox or ProcessSandbox(limits)

    def child(**extra) -> dict:
        result = sandbox.run(kind.job, {**payload, **extra}, workdir=out)
        if not result.ok:
            detail = (result.traceback or result.stderr or "")[-2000:]
            where = f" (during '{result.progress}'{_last_step(out)})" if result.progress else ""
            raise VerifyError(f"verifying {name} at {scale.name} failed: {result.error}{where}\n{detail}")
        return {**result.value, "isolation": result.isolation}

    steps = max_steps or scale.steps
    for step in probes if decide else ():  # a pause at each probe, for the caller's verdict
        points = read_curve(out, steps)
        if not any(p["step"] == step for p in points):
            points = child(until=step)["curve"]
        point = next((p for p in points if p["step"] == step), None)  # none: resumed past it
        if point and (why := decide(point)):
            return done({"scale": scale.name, "params": None, **provenance, **_stopped({}, points, point, why)})
    scored = {}
    if phenomena:  # asked before the evaluation: known already, or trained first and then waited for
        chosen = phenomena(wait=False)
        if chosen is PENDING:
            child(until=steps)
            chosen = phenomena()
        scored = {"phenomena": chosen}
    return done(child(**scored))


PENDING = object()  # a ``phenomena`` callable's answer when it would have to wait


def _stopped(metrics: dict, curve: list[dict], point: dict, why: dict) -> dict:
    """The metrics of a verification stopped at ``point``: its curve so far and why; no final numbers."""
    kept = {k: v for k, v in metrics.items()
            if k in ("scale", "params", "n_block", "device", "isolation", "cached_from")}
    return {**kept, "stopped": {**point, **why}, "curve": [p for p in curve if p["step"] <= point["step"]],
            "train_tokens": point["tokens"]}


def _last_step(out: Path) -> str:
    """``, at step N`` from the training log, or nothing."""
    log = out / "train_log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    try:
        return f", at step {json.loads(lines[-1])['step']}" if lines else ""
    except (ValueError, KeyError):
        return ""


def _finish(out: Path, metrics: dict, name: str, scale: Scale, provenance: dict) -> dict:
    """Writes the metrics (and logs them to Weights & Biases)."""
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2))
    wandb_dir = log_to_wandb(out, metrics, f"{name}-{scale.name}", {"scale": scale.model_dump(), **provenance})
    if wandb_dir:
        metrics["wandb_dir"] = wandb_dir
        atomic_write(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
