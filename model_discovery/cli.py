"""``modis``: a table of subcommands, each calling a plain function."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from model_discovery.checker import DEFAULT_SCALE, check_design
from model_discovery.design import compose
from model_discovery.design.library import design_meta, design_names, library_design_path, library_tree
from model_discovery.design.tree import UnitTree


def _tree_lines(tree: UnitTree, name: str, depth: int = 0) -> list[str]:
    spec = tree.units.get(name)
    slot = spec.decl.slot if spec and spec.decl else "unimplemented"
    lines = [f"{'  ' * depth}{name} [{slot}]"]
    for child in dict.fromkeys(spec.children if spec else []):
        lines += _tree_lines(tree, child, depth + 1)
    return lines


def library_list(args: argparse.Namespace) -> int:
    rows = []
    for name in design_names():
        meta = design_meta(name)
        rows.append({"name": name, "title": meta.title, "origin": meta.origin, "tags": meta.tags,
                     "units": library_tree(name).walk()})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for row in rows:
            print(f"{row['name']:<{width}}  {row['title']}")
    return 0


def library_show(args: argparse.Namespace) -> int:
    meta, tree = design_meta(args.name), library_tree(args.name)
    if args.source:
        print(compose(tree), end="")
        return 0
    print(f"{meta.name}: {meta.title}\norigin: {meta.origin}\n\n{meta.summary.strip()}\n\nunits:")
    print("\n".join("  " + line for line in _tree_lines(tree, tree.root)))
    print(f"\ngab_config: {json.dumps(tree.config())}")
    return 0


def library_path(args: argparse.Namespace) -> int:
    print(library_design_path(args.name))
    return 0


def check(args: argparse.Namespace) -> int:
    report = check_design(Path(args.file), scale=args.scale)
    if args.json:
        print(report.model_dump_json(indent=2, include={"accepted", "findings", "params", "isolation", "timings",
                                                         "metrics"}))
    else:
        print(report.summary())
        if report.params:
            total = report.timings.get("total_s", 0.0)
            print(f"params: {report.params:,} (blocks, at {args.scale}); checked in {total:.1f} s")
    return 0 if report.accepted else 1


def verify_cmd(args: argparse.Namespace) -> int:
    job = dict(design=args.design, scale=args.scale, corpus=args.corpus,
               blimp=None if args.blimp == "none" else args.blimp, out=args.out, seed=args.seed,
               max_steps=args.max_steps, eval_corpora=args.eval_corpus)
    from model_discovery.verify.run import cache_folder

    job["cache"] = cache_folder(args.cache)
    from model_discovery.evolution.executors import EXECUTORS

    EXECUTORS.check(args.executor)  # an unknown name: an error with the close ones, before any work
    if args.executor == "inline":
        from model_discovery.verify.run import verify

        metrics = verify(**job, progress=not args.json)
    else:
        from model_discovery.evolution.executors import verify_through_queue

        options = EXECUTORS.get(args.executor).options(threads=None, address=args.ray_address, gpus=0)
        metrics = verify_through_queue(**job, executor=args.executor, **options)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        from model_discovery.verify.kinds import kind_of

        print(f"{args.design} at {metrics['scale']}: {kind_of(metrics).summary(metrics)}; {metrics['wall_s']:.1f} s; "
              f"metrics in {metrics['out']}/metrics.json")
    return 0


def export_hf_cmd(args: argparse.Namespace) -> int:
    source = _one_folder(args, "a `modis verify` folder as SOURCE, or --run-dir RUN")  # before the slow imports
    from model_discovery.export.hf import export_hf, push_to_hub

    out = export_hf(source, args.out, design=args.design)
    print(f"wrote {out}: AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)")
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(out, args.push_to_hub, private=args.private)}")
    return 0


def _export_hf_args(p: argparse.ArgumentParser) -> None:
    _run_dir_arg(p, "a run folder: its best design (or --design) is exported", positional="source",
                 positional_help="a `modis verify` output folder (a run folder here still works too)")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--design", default=None, help="which design of a run (default: its best)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO", help="upload the folder to this Hub repository "
                   "(created if missing; the token from `huggingface-cli login` or $HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="create the Hub repository private")


def _batch_job(args: argparse.Namespace):
    from pydantic import ValidationError

    from model_discovery.export.batch import BatchJob

    fields = {name: getattr(args, name) for name in ("store", "store_env", "artifacts", "work_dir", "follow",
                                                    "workers", "ladder", "gpus", "cpus", "memory")}
    secrets = {name: secret or name for name, secret in args.secret}
    try:
        job = BatchJob(**fields, env=dict(args.env), secrets=secrets)
    except ValidationError as exc:  # one sentence per problem, named by its option
        problems = [f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" if e["loc"]
                    else e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        raise ValueError("; ".join(problems)) from exc
    if job.artifacts is None:
        print("note: no --artifacts: the kept outputs (weights, logs) stay in each job's work folder and go with it; "
              "only the metrics reach the store", file=sys.stderr)
    return job


def export_beaker_cmd(args: argparse.Namespace) -> int:
    from model_discovery.export.batch import write_beaker_spec

    job = _batch_job(args)
    path = write_beaker_spec(job, args.out, image=args.image, cluster=args.cluster,
                             budget=args.budget, priority=args.priority, beaker_image=args.beaker_image)
    secrets = sorted(set(job.cluster_env().values()))
    print(f"wrote {path}: beaker experiment create {path}"
          + (f" (the workspace needs the secrets {', '.join(secrets)})" if secrets else ""))
    return 0


def export_slurm_cmd(args: argparse.Namespace) -> int:
    from model_discovery.export.batch import slurm_script

    job = _batch_job(args)
    Path(args.out).write_text(slurm_script(job, partition=args.partition, time=args.time,
                                           account=args.account, setup=args.setup))
    needed = list(job.cluster_env())
    print(f"wrote {args.out}: sbatch {args.out}" + (f" (with {', '.join(needed)} exported)" if needed else ""))
    return 0


def _literal(text: str | None) -> str | None:
    """``text`` (written elsewhere, e.g. a field's description) as argparse help: argparse formats help with
    ``%``, so a bare one ("95% intervals") would crash ``--help``."""
    return text and text.replace("%", "%%")


def _run_dir_arg(p: argparse.ArgumentParser, help_text: str, positional: str | None = None,
                 positional_help: str = "") -> None:
    """``--run-dir RUN``: the one spelling of the run folder for every command that reads or grows a run.
    ``positional``: the dest of the positional form the command took before, still accepted (``modis fidelity
    RUN``); the command then reads the one given with :func:`_one_folder`."""
    p.add_argument("--run-dir", metavar="RUN", required=positional is None, default=None, help=_literal(help_text))
    if positional:
        p.add_argument(positional, nargs="?", default=None, metavar=positional.upper(),
                       help=_literal(positional_help or f"{help_text}, the older spelling of --run-dir RUN (still "
                                                           "accepted)"))
        p.set_defaults(run_dir_positional=positional)


def _one_folder(args: argparse.Namespace, wanted: str) -> str:
    """The folder given to a command that also keeps its older positional spelling: ``--run-dir`` or the
    positional, exactly one (``wanted`` says what to give when neither is)."""
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    name, positional = args.run_dir_positional.upper(), getattr(args, args.run_dir_positional)
    if positional is not None and args.run_dir is not None:
        raise ValueError(f"{command} got two folders, {name} {positional} and --run-dir {args.run_dir}; "
                         "give only one")
    if positional is None and args.run_dir is None:
        raise ValueError(f"{command} needs a folder: give {wanted}")
    return positional if positional is not None else args.run_dir


def _assignment(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name, value


def _batch_args(p: argparse.ArgumentParser, out: str) -> None:
    from model_discovery.export.batch import BatchJob

    field = BatchJob.model_fields

    def described(name: str, extra: str = "") -> str:  # the field's description as help, `%` escaped
        return _literal(field[name].description + extra)

    store = p.add_mutually_exclusive_group(required=True)
    store.add_argument("--store", metavar="URL", help=described("store"))
    store.add_argument("--store-env", metavar="VAR", help=described("store_env"))
    p.add_argument("--artifacts", metavar="URL", help=described("artifacts"))
    p.add_argument("--work-dir", default=field["work_dir"].default,
                   help=described("work_dir", f" (default {field['work_dir'].default})"))
    p.add_argument("--follow", action="store_true", help=described("follow"))
    for name in ("workers", "gpus", "cpus"):
        p.add_argument(f"--{name}", type=int, default=field[name].default, help=described(name))
    p.add_argument("--ladder", default=field["ladder"].default, help=described("ladder"))
    p.add_argument("--memory", default=field["memory"].default, help=described("memory"))
    p.add_argument("--env", metavar="NAME=VALUE", type=_assignment, action="append", default=[],
                   help=described("env"))
    p.add_argument("--secret", metavar="NAME[=BEAKER_SECRET]", type=_assignment, action="append", default=[],
                   help=described("secrets", "; default: a secret named NAME"))
    p.add_argument("--out", default=out, help=f"file to write (default {out})")


def _export_beaker_args(p: argparse.ArgumentParser) -> None:
    _batch_args(p, "beaker-worker.yaml")
    p.add_argument("--image", required=True, help="Docker image with model-discovery installed")
    p.add_argument("--beaker-image", action="store_true", help="--image names a Beaker image, not a Docker one")
    p.add_argument("--cluster", default=None)
    p.add_argument("--budget", default=None)
    p.add_argument("--priority", default=None)


def _export_slurm_args(p: argparse.ArgumentParser) -> None:
    _batch_args(p, "worker.sbatch")
    p.add_argument("--partition", default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--time", default="24:00:00")
    p.add_argument("--setup", default="", help="shell run first, e.g. 'source .venv/bin/activate'")


EXPORT_COMMANDS: list[Command] = [
    ("hf", "a verified model as a self-contained Hugging Face folder (torch and transformers load it)",
     export_hf_cmd, _export_hf_args),
    ("beaker", "a Beaker experiment spec of `modis worker`s serving a shared store", export_beaker_cmd,
     _export_beaker_args),
    ("slurm", "an sbatch script (a job array) of `modis worker`s serving a shared store", export_slurm_cmd,
     _export_slurm_args),
]


def eval_cmd(args: argparse.Namespace) -> int:
    from model_discovery.evals.evaluate import evaluate

    metadata = json.loads(args.metadata) if args.metadata else None
    results = evaluate(args.dir, [t for t in args.tasks.split(",") if t], include_paths=args.include_path,
                       batch_size=args.batch_size, limit=args.limit, device=args.device,
                       sandbox=not args.no_sandbox, metadata=metadata)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, default=str))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for task, metrics in results.items():
            shown = ", ".join(f"{k.split(',')[0]} {v:.4f}" for k, v in metrics.items()
                              if isinstance(v, float) and "stderr" not in k)
            print(f"{task}: {shown}")
    return 0


def design_cmd(args: argparse.Namespace) -> int:
    from model_discovery.workflow.design import design_sessions

    settings = args.settings.settings_cls(**_given(args)).model_dump()
    summary = design_sessions(settings.pop("prompt"), args.n, args.run_dir, scale=args.scale, parent=args.parent,
                              progress=not args.json, **settings)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['sessions']} sessions: {summary['accepted']} designs registered, {summary['check_passed']} "
              f"passed the checker, {summary['unique']} unique; operators {summary['operators']}, designers "
              f"{summary['designers']}; "
              f"{summary['mean_session_s']:.1f} s per session; store {summary['store']}")
    return 0


def fidelity_cmd(args: argparse.Namespace) -> int:
    run_dir = _one_folder(args, "the run as --run-dir RUN")  # before the slow imports
    from model_discovery.workflow.build import FIDELITY_PLOT, open_run, read_run, run_fidelity

    open_run(run_dir)  # a clear error where the folder holds no run
    db, policy, snap = read_run(run_dir, args.store)
    report, path = run_fidelity(policy, snap, args.plot or Path(run_dir) / FIDELITY_PLOT)
    db.engine.dispose()
    if report is None:
        print("fewer than two rungs have verifications: nothing to compare yet", file=sys.stderr)
        return 1
    print(report.model_dump_json(indent=2) if args.json else f"{report.table()}\nplot: {path}")
    return 0


def import_cmd(args: argparse.Namespace) -> int:
    from model_discovery.evolution.store import Store
    from model_discovery.workflow.design import import_design

    row = import_design(Store(args.run_dir, seed_references=True), args.file, args.name, args.scale)
    units = ", ".join(row.unit_tree().preorder())
    print(f"imported {row.name} ({row.status}): units {units}")
    return 0 if row.status == "checked" else 1


def _run_report(report, as_json: bool) -> int:
    print(report.model_dump_json(indent=2) if as_json else report.summary())
    return 0


def _interrupted(run_dir) -> int:
    print(f"\nstopped; resume with: modis evolve --run-dir {run_dir} --resume", file=sys.stderr)
    return 130


def _given(args: argparse.Namespace) -> dict:
    """The settings flags given on the command line (parsed by the command's :func:`_settings_args`)."""
    from model_discovery.workflow.config import per_rung

    for name, kind in (("verify_budget", int), ("train_fraction", float)):  # a malformed RUNG=N list is an error,
        for text in getattr(args, name, None) or []:                        # not a shorter list
            if not text.lstrip().startswith("{"):
                per_rung(text, kind)
    return args.settings(parsed_args=args)()


def discover(args: argparse.Namespace) -> int:
    from model_discovery.workflow.build import BuildSystem
    from model_discovery.workflow.config import DiscoveryConfig

    given = _given(args)
    config = DiscoveryConfig.from_file(args.config, **given) if args.config else DiscoveryConfig(**given)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    system = BuildSystem(config=config, progress=not args.json)
    try:
        report = system(resume=False)
    except KeyboardInterrupt:
        return _interrupted(system.config.run_dir)
    return _run_report(report, args.json)


def evolve(args: argparse.Namespace) -> int:
    from model_discovery.workflow.build import CHECKPOINT_FILE, CONFIG_FILE, BuildSystem, open_run

    changes = args.settings.settings_cls(**_given(args)).model_dump(exclude_none=True)
    cfg = open_run(args.run_dir, **changes)
    has_checkpoint = (Path(args.run_dir) / CHECKPOINT_FILE).is_file()
    if has_checkpoint and not args.resume and (Path(args.run_dir) / CONFIG_FILE).is_file():
        raise ValueError(f"{args.run_dir} has started already; pass --resume to continue it (a finished run "
                         "continues only if its budgets grew)")
    system = BuildSystem(config=cfg.model_copy(update={"run_dir": Path(args.run_dir)}), progress=not args.json)
    try:
        report = system()
    except KeyboardInterrupt:
        return _interrupted(args.run_dir)
    return _run_report(report, args.json)


def show(args: argparse.Namespace) -> int:
    if args.units:
        return show_units(args)
    from model_discovery.workflow.build import show_run

    data = show_run(args.run_dir, args.store)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"{data['run_dir']}: {data['prompt']!r}; {data['sessions']} sessions; jobs {data['jobs']}; "
          f"costs {data['costs']}")
    names = {d["id"]: d["name"] for d in data["designs"]}
    for d in data["designs"]:
        fit = f"{d['fitness']:.3f} at {d['fitness_rung']}" if d["fitness"] is not None else "-"
        standing = "".join(f"; library rank {rank}/{len(data['best_known'][rung]['ranked'])} at {rung}"
                           + (" (best known)" if rank == 1 else "") for rung, rank in d["standing"].items())
        print(f"  {d['id']:>4} {d['name']:<18} {d['status']:<13} {d['mode']:<10} fitness {fit:<18} "
              f"parents {', '.join(d['parents']) or '-'}{standing}")
    for v in data["verifications"]:
        loss = f"val loss {v['metrics']['val_loss']:.3f}" if v["metrics"] else v["error"][-80:]
        print(f"  verified {names[v['design_id']]} at {v['scale']}: {v['status']} {loss}")
    return 0


def results_cmd(args: argparse.Namespace) -> int:
    from model_discovery.export.hf import card_of_run
    from model_discovery.workflow.build import open_run
    from model_discovery.workflow.results import write_results

    open_run(args.run_dir)  # a clear error where the folder holds no run
    card = None if args.store else (lambda name: card_of_run(args.run_dir, name))  # export reads RUN/store.db
    path = write_results(args.run_dir, args.out or Path(args.run_dir) / "results.md", args.store, top=args.top,
                         command=args.command_text, card=card)
    print(f"results: {path}")
    return 0


def show_units(args: argparse.Namespace) -> int:
    from model_discovery.workflow.units import unit_uses

    rows = unit_uses(args.run_dir, args.store)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    rungs = [key.removeprefix("best ") for key in (rows[0] if rows else {}) if key.startswith("best ")]
    header = ["unit", "slot", "origin", "introduced by", "checked", "verified", *(f"{r} best/mean" for r in rungs),
              "source"]
    table = [header]
    for row in rows:
        fitness = [f"{row['best ' + r]:.3f}/{row['mean ' + r]:.3f}" if row["best " + r] is not None else "-"
                   for r in rungs]
        table.append([row["unit"], row["slot"], row["origin"], row["introduced_by"] or "-", str(row["checked"]),
                      str(row["verified"]), *fitness, _shown_path(row["source"]) if row["source"] else "-"])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) if i < 4 or i == len(header) - 1 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
    return 0


def _shown_path(path: str) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def worker(args: argparse.Namespace) -> int:
    from model_discovery.evolution.artifacts import Artifacts
    from model_discovery.evolution.store import Store
    from model_discovery.evolution.worker import Worker

    store = Store(args.store)
    work = Worker(store, args.work_dir, Artifacts(args.artifacts) if args.artifacts else None, lease_s=args.lease,
                  threads=args.threads)
    try:
        done = work.run(follow=args.follow, poll_s=args.poll, progress=True)
    except KeyboardInterrupt:
        print("\nworker stopped; its job went back to the queue", file=sys.stderr)
        return 130
    print(f"worker {work.name}: {done} jobs")
    return 0


def _settings_args(p: argparse.ArgumentParser, model) -> None:
    """``model``'s fields as flags of ``p`` (pydantic-settings: their descriptions are the help); the command reads
    the ones given with :func:`_given`."""
    from pydantic_settings import CliSettingsSource

    p.set_defaults(settings=CliSettingsSource(model, root_parser=p, cli_kebab_case=True, cli_hide_none_type=True,
                                              cli_avoid_json=True, cli_exit_on_error=False))


def _discover_args(p: argparse.ArgumentParser) -> None:
    from model_discovery.workflow.config import DiscoveryConfig

    p.add_argument("--config", default=None, metavar="FILE", help="a YAML file of settings (`--print-config` writes "
                   "one); flags given beside it override it")
    p.add_argument("--print-config", action="store_true", help="print the settings as YAML and exit")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _settings_args(p, DiscoveryConfig)
    p._option_string_actions["--run-dir"].metavar = "RUN"  # pydantic-settings names it by its type, Path


# what `modis evolve` may change in a run, and what `modis design` takes
EVOLVE_SETTINGS = ("design_budget", "verify_budget", "seed", "workers", "executor", "ray_address")
DESIGN_SETTINGS = ("prompt", "backend", "model", "base_url", "cost_cap", "offline_share", "synthesis", "seed",
                   "check")


# what `modis check` and `modis import` read
DESIGN_FILE_HELP = ("a design file: Python with a GAB block and its GAUBase units, and a gab_config, as `modis "
                    "library show NAME --source` prints")

Command = tuple[str, str, Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]

LIBRARY_COMMANDS: list[Command] = [
    ("list", "list the reference designs", library_list,
     lambda p: p.add_argument("--json", action="store_true", help="print a JSON list")),
    ("show", "describe a reference design and its unit tree", library_show,
     lambda p: (p.add_argument("name"), p.add_argument("--source", action="store_true",
                                                        help="print the composed design file instead"))),
    ("path", "print the path of a reference design's composed file", library_path,
     lambda p: p.add_argument("name")),
]


def build_parser() -> argparse.ArgumentParser:
    from model_discovery.workflow.config import settings_model

    parser = argparse.ArgumentParser(prog="modis", description="Discover language-model block architectures.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group, help_text, table in (("library", "browse the reference designs and their units", LIBRARY_COMMANDS),
                                    ("export", "a model to Hugging Face; verification workers to Beaker or Slurm",
                                     EXPORT_COMMANDS)):
        actions = commands.add_parser(group, help=help_text).add_subparsers(dest="action", required=True,
                                                                             metavar="ACTION")
        for name, sub_help, func, add_args in table:
            sub = actions.add_parser(name, help=sub_help)
            add_args(sub)
            sub.set_defaults(func=func)
    chk = commands.add_parser("check", help="check a design file: static filter, then dynamic checks in the sandbox")
    chk.add_argument("file", help=DESIGN_FILE_HELP)
    chk.add_argument("--scale", default=DEFAULT_SCALE, help=f"rung to check at (default {DEFAULT_SCALE})")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.set_defaults(func=check)
    ver = commands.add_parser("verify", help="pre-train a design at a rung and evaluate it (in the sandbox)")
    ver.add_argument("design", help="a design file or a library design name")
    ver.add_argument("--scale", default=DEFAULT_SCALE, help=f"rung (default {DEFAULT_SCALE})")
    ver.add_argument("--corpus", default="synthetic", help="'synthetic', a file or folder, a name under "
                     "$MODIS_DATA_DIR/corpus, or hf:NAME[:CONFIG]")
    ver.add_argument("--blimp", default="synthetic", help="BLiMP folder or name under $MODIS_DATA_DIR "
                     "(blimp, blimp_filtered, blimp_supplement), 'synthetic', or 'none'")
    ver.add_argument("--out", default=None, help="output folder (default runs/verify/NAME-SCALE-HASH); reruns resume")
    ver.add_argument("--seed", type=int, default=0)
    ver.add_argument("--max-steps", type=int, default=None, help="cap the training steps (smoke tests)")
    ver.add_argument("--eval-corpus", action="append", default=None, metavar="CORPUS", help="another corpus whose "
                     "held-out split is also scored, in bits per byte (repeatable)")
    ver.add_argument("--cache", default=None, metavar="DIR", help="a folder of finished verifications: one with "
                     "the same design, rung, data, seed, budget and code is copied from it, not trained again; "
                     "this one is added. 'none': off. Default: $MODIS_VERIFY_CACHE, else the user's cache folder")
    ver.add_argument("--executor", default="inline",
                     help="inline: a sandboxed subprocess of this command (default); local, ray or an executor "
                     "plugin: a job in a store in the output folder, run by a worker process or a Ray actor (pip "
                     "install '.[ray]')")
    ver.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    ver.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ver.set_defaults(func=verify_cmd)
    evl = commands.add_parser("eval", help="score a verified model on lm-eval tasks (the project's and lm-eval's)")
    evl.add_argument("dir", help="a `modis verify` output folder")
    evl.add_argument("--tasks", required=True, help="comma-separated lm-eval tasks or groups, e.g. modis_synthetic, "
                     "modis_blimp")
    evl.add_argument("--include-path", action="append", default=None, metavar="DIR",
                     help="another folder of task configs (repeatable); evals/ is always included")
    evl.add_argument("--batch-size", type=int, default=64)
    evl.add_argument("--limit", type=float, default=None, help="documents per task (or a fraction of them)")
    evl.add_argument("--device", default=None, help="cpu (default) or cuda")
    evl.add_argument("--metadata", default=None, help="JSON for the task configs, e.g. '{\"data_dir\": DIR}'")
    evl.add_argument("--no-sandbox", action="store_true", help="score in this process (trusted models only)")
    evl.add_argument("--output", default=None, help="write the results as JSON to this file")
    evl.add_argument("--json", action="store_true", help="print the results as JSON")
    evl.set_defaults(func=eval_cmd)
    des = commands.add_parser("design", help="run design sessions (no training) into a run's store")
    des.add_argument("--n", type=int, default=1, help="number of sessions")
    _run_dir_arg(des, "the run folder (its store.db is created if missing)")
    des.add_argument("--parent", default=None, help="design to start from (default: drawn from the store)")
    des.add_argument("--scale", default=DEFAULT_SCALE, help="rung the checker builds designs at")
    des.add_argument("--json", action="store_true")
    _settings_args(des, settings_model("DesignSettings", DESIGN_SETTINGS))
    des.set_defaults(func=design_cmd)
    fid = commands.add_parser("fidelity", help="proxy fidelity of a run: rank correlations of fitness and held-out "
                              "loss between every pair of rungs, with bootstrap 95%% intervals, and a plot")
    _run_dir_arg(fid, "the run folder", positional="run")
    fid.add_argument("--store", default=None, help="SQLAlchemy URL when the store is not in the run folder")
    fid.add_argument("--plot", default=None, help="PNG path (default RUN/fidelity.png)")
    fid.add_argument("--json", action="store_true")
    fid.set_defaults(func=fidelity_cmd)
    imp = commands.add_parser("import", help="add a design file to a run's tree: parsed into units, checked in the "
                              "sandbox; it can then be a parent and its units join the catalogue")
    imp.add_argument("file", help=DESIGN_FILE_HELP)
    _run_dir_arg(imp, "the run folder (its store.db is created if missing)")
    imp.add_argument("--name", default=None, help="design name (default: the file's stem)")
    imp.add_argument("--scale", default=DEFAULT_SCALE, help="rung the checker builds the design at")
    imp.set_defaults(func=import_cmd)
    _discover_args(disc := commands.add_parser("discover", help="run a discovery job: design, verify, evolve"))
    disc.set_defaults(func=discover)
    evo = commands.add_parser("evolve", help="continue a run: resume after a stop, or grow its budgets")
    _run_dir_arg(evo, "the run folder")
    evo.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    evo.add_argument("--json", action="store_true", help="print the report as JSON")
    _settings_args(evo, settings_model("EvolveSettings", EVOLVE_SETTINGS, changes=True))
    evo.set_defaults(func=evolve)
    sho = commands.add_parser("show", help="a run's designs, fitness and verifications")
    _run_dir_arg(sho, "the run folder")
    sho.add_argument("--store", default=None, help="the run's store URL when it is not RUN/store.db")
    sho.add_argument("--units", action="store_true", help="every unit of the run's catalogue instead: its origin, "
                     "the design that introduced it, how many checked and verified designs use it, their best and "
                     "mean fitness per rung, its source file")
    sho.add_argument("--json", action="store_true")
    sho.set_defaults(func=show)
    res = commands.add_parser("results", help="a run's outcome as a Markdown page to publish: its top designs in "
                              "words with their margins over the best known design, confirmation, transfer, proxy "
                              "fidelity, the best found against compute, the inventions' share and the best "
                              "model's card")
    _run_dir_arg(res, "the run folder")
    res.add_argument("--store", default=None, help="the run's store URL when it is not RUN/store.db")
    res.add_argument("--out", default=None, help="the page (default RUN/results.md); its plots are written beside it")
    res.add_argument("--top", type=int, default=5, help="designs listed at each rung (default 5)")
    res.add_argument("--command", dest="command_text", default=None, help="the command that reproduces the run, as "
                     "the page should print it (default: modis discover --config RUN/config.json)")
    res.set_defaults(func=results_cmd)
    wrk = commands.add_parser("worker", help="run verification jobs from a store until none are left")
    wrk.add_argument("--store", required=True, help="SQLAlchemy URL or run folder")
    wrk.add_argument("--work-dir", default=".", help="folder for the jobs' work files (default .)")
    wrk.add_argument("--artifacts", default=None, help="where kept outputs go: folder or s3://bucket/prefix")
    wrk.add_argument("--follow", action="store_true", help="keep polling for new jobs")
    wrk.add_argument("--poll", type=float, default=5.0, help="seconds between polls with --follow")
    wrk.add_argument("--lease", type=float, default=120.0, help="lease seconds (kept alive by a heartbeat)")
    wrk.add_argument("--threads", type=int, default=None,
                     help="torch threads per training (default: $MODIS_THREADS, else 2)")
    wrk.set_defaults(func=worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"modis: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
