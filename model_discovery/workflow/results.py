"""A run's outcome as a page to publish (what ``modis results`` writes, and ``docs/results.md`` is): how to run it
again and what it cost; the best known designs it was measured against; its top designs at each rung, in words,
with their margins over the best known design and how far those margins clear the seed noise; the confirmation;
transfer to the other corpora; proxy fidelity between rungs; the best design found against compute; what the
inventions (synthesized, LLM and imported units) contributed; and the model card of the exported best design.

It reads the run with its planning policy alone (no executor), so it also describes a run that is still going."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from model_discovery.design.tree import UnitTree, describe
from model_discovery.files import atomic_write
from model_discovery.verify.noise import confirm, sign_flip_text
from model_discovery.workflow.build import noise_floors, read_run, run_fidelity, seed_losses
from model_discovery.workflow.units import unit_uses

Z95 = 1.96


def margin_interval(noise: float | None) -> float | None:
    """Half-width of the 95% interval of a margin between two single-seed losses: each carries the seed noise
    ``noise``, so their difference carries ``sqrt(2) * noise``."""
    return None if not noise else Z95 * math.sqrt(2) * noise


def wall_time(events) -> float:
    """Seconds the run ran, over all its sessions: each ``started``/``resumed`` event to the next ``finished`` one
    (or to the last event the session wrote, where it was stopped or killed)."""
    total, since, last = 0.0, None, None
    for e in events:
        if e.kind == "run" and e.message in ("started", "resumed"):
            if since is not None and last is not None:
                total += last - since
            since = e.created
        elif e.kind == "run" and e.message == "finished" and since is not None:
            total, since = total + e.created - since, None
        last = e.created
    if since is not None and last is not None:
        total += last - since
    return total


def best_found(policy, snap, db) -> list[tuple[float, float, str]]:
    """(verification CPU-minutes so far, best held-out loss so far, design) at each new best of the lowest corpus
    rung on the run's data: the designs' best against every verification's cost (references and seeds included)."""
    lowest = policy.ladder.rungs[0].name
    data = policy.data(lowest)
    index = snap.index
    spent, best, out = 0.0, math.inf, []
    for v in db.verifications(status=None):
        spent += v.wall_s / 60
        if v.scale != lowest or v.data != data or v.design_id in index.references or v.status != "done":
            continue
        loss = float(v.metrics["val_loss"])
        if loss < best:
            best = loss
            out.append((spent, loss, index.by_id[v.design_id].name))
    return out


def plot_best_found(points, known: tuple[str, float] | None, path: Path, rung: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.step(xs, ys, where="post", label="best design so far")
        ax.scatter(xs, ys, s=12)
    if known:
        ax.axhline(known[1], color="gray", linestyle="--", label=f"best known design ({known[0]})")
    ax.set(xlabel="verification minutes (cumulative)", ylabel=f"held-out loss at {rung}",
           title="best design found against compute")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(run_dir: str | Path, out: str | Path, store: str | None = None, top: int = 5,
                  command: str | None = None, card: Callable[[str], str] | None = None) -> Path:
    """Writes the page to ``out`` (its plots beside it, named after it) and returns its path. ``card``: the model
    card of a design of the run, by name (the exported best model's; none: the page has no card)."""
    run_dir, out = Path(run_dir), Path(out)
    db, policy, snap = read_run(run_dir, store)
    try:
        if policy is None:
            raise ValueError(f"{run_dir} holds no run config: nothing to report")
        page = _page(run_dir, out, db, policy, snap, store, top, command, card)
    finally:
        db.engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, page)
    return out


def _page(run_dir, out, db, policy, snap, store, top, command, card) -> str:
    cfg, index = policy.config, snap.index
    noise = noise_floors(policy, snap)
    known = policy.best_known()
    seeds = [cfg.seed, *policy.extra_seeds]
    units = unit_uses(run_dir, store)
    invented = {u["unit"]: u for u in units if u["origin"] != "library"}
    uses: dict[str, list[str]] = {}
    for u in invented.values():
        for d in u["designs"]:
            uses.setdefault(d, []).append(f"{u['unit']} ({u['origin']})")
    trees = {row[1]: UnitTree.model_validate(row[5]) for row in db.design_infos()}
    verifications = db.verifications(status=None)
    stopped = sum(v.status == "stopped" for v in verifications)
    cached = sum("cached_from" in (v.metrics or {}) for v in verifications)
    minutes = wall_time(db.events(kind="run")) / 60
    cpu = db.costs()["cpu_s"] / 60
    lines = [f"# Results: {cfg.prompt}", "",
             f"Run folder `{run_dir.name}`: corpus **{cfg.corpus}**, rungs {', '.join(cfg.rungs)}, references "
             f"{', '.join(cfg.references)}, selector {cfg.selector}, synthesis {'on' if cfg.synthesis else 'off'}, "
             f"seed {cfg.seed} (noise seeds {', '.join(map(str, policy.extra_seeds)) or 'none'}).", "",
             "## How to run it again", "", "```",
             command or f"modis discover --config {run_dir / 'config.json'}",
             f"modis evolve --run-dir {run_dir} --resume   # after a stop or a crash", "```", "",
             f"It ran **{minutes:.0f} min** of wall time over its sessions, **{cpu:.0f} min** of it in "
             f"verifications; {len(index.checked)} designs passed the checker of "
             f"{sum(not d.reference for d in index.designs)} made in {index.n_sessions} design sessions; "
             f"{len(verifications)} verifications ({stopped} stopped early; {cached} found in the verification cache, "
             "trained before on this machine, so not counted in the time above).", ""]
    budgets = policy.budgets()
    lines += ["| rung | verification budget | noise floor (std over seeds) |", "| --- | --- | --- |"]
    for rung, b in budgets.items():
        floor = noise.get(rung)
        std = "-" if floor is None or floor.std is None else f"{floor.std:.4f} (seeds {floor.seeds})"
        lines.append(f"| {rung} | {b} | {std} |")
    lines += ["", "## The best known designs", "",
              "The library's designs measured on this corpus and budget (`etc/baselines_<ladder>.yaml`): mean held-out "
              "loss over 3 seeds, best first.", ""]
    for rung, standing in known.items():
        lines.append(f"- **{rung}**: " + ", ".join(f"{n} {loss:.3f}" for n, loss in standing.ranked()))
    if not known:
        lines.append("- none measured for this corpus and budget: the margins below are over the references only")
    best_rung = policy.best(snap)
    for scale in policy.ladder.rungs:
        rung = scale.name
        report = policy.fitness(snap, rung)
        if report is None:
            continue
        losses = {index.by_id[v.design_id].name: float(v.metrics["val_loss"])
                  for v in snap.rows(rung, policy.data(rung))}
        refs = {n: losses[n] for n in losses if index.by_name[n].reference}
        bar_name = known[rung].best if rung in known and known[rung].best in refs else min(refs, key=refs.get)
        half = margin_interval(noise[rung].std if rung in noise else None)
        mine = sorted((s for s in report.scores if not index.by_name[s.name].reference), key=lambda s: -s.fitness)
        what = "the best known design" if rung in known and known[rung].best == bar_name else "the best reference"
        lines += ["", f"## Top designs at {rung}", "",
                  f"{len(mine)} designs trained to the end here on the run's seed (those stopped early are left "
                  "out), best fitness first. Margin: the held-out loss "
                  f"of **{bar_name}** ({what}, {refs[bar_name]:.4f}) minus the design's (positive: the design is "
                  "better); ± is the 95% interval "
                  "of a difference of two single-seed losses, 1.96 × √2 × the noise floor.", "",
                  "| # | design | made by | held-out loss | fitness | margin | beyond noise | invented units |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for i, s in enumerate(mine[:top], 1):
            info = index.by_name[s.name]
            margin = refs[bar_name] - losses[s.name]
            clear = "-" if half is None else ("yes" if margin > half else "no")
            pm = "" if half is None else f" ± {half:.3f}"
            made = f"{info.mode} of {', '.join(info.parents) or '-'}"
            lines.append(f"| {i} | {s.name} | {made} | {losses[s.name]:.4f} | {s.fitness:.3f} | {margin:+.3f}{pm} "
                         f"| {clear} | {'; '.join(uses.get(s.name, [])) or '-'} |")
        lines += [""] + [f"- `{s.name}`: `{describe(trees[s.name])}`" for s in mine[:top]]
        for s in mine[:top]:
            every = seed_losses(policy, snap, rung, index.by_name[s.name].id, seeds)
            floor = noise.get(rung)
            if len(seeds) > 1 and floor and None not in every:
                c = confirm(rung, seeds, every, {bar_name: floor.losses.get(bar_name, [])} if bar_name in floor.losses
                            else floor.losses, floor.std)
                if c is not None:
                    lines.append(f"- **confirmation of {s.name}** over seeds {', '.join(map(str, c.seeds))}: margin "
                                 f"{c.mean:+.3f} nats over {bar_name} (95% t-interval {c.low:+.3f}..{c.high:+.3f}; "
                                 f"{sign_flip_text(c.p_exact, len(c.seeds))}) — "
                                 f"{'CONFIRMED' if c.confirmed else 'not confirmed'}")
        transfer = [(s.name, v.metrics.get("transfer") or {}) for s in mine[:top]
                    for v in snap.rows(rung, policy.data(rung)) if v.design_id == index.by_name[s.name].id]
        bar_transfer = next((v.metrics.get("transfer") or {} for v in snap.rows(rung, policy.data(rung))
                             if v.design_id == index.by_name[bar_name].id), {})
        corpora = sorted({c for _, t in transfer for c in t})
        if corpora:
            lines += ["", f"Transfer: bits per byte on the other corpora (the design's minus {bar_name}'s; negative: "
                      "better there too).", "", "| design | " + " | ".join(corpora) + " |",
                      "| --- |" + " --- |" * len(corpora)]
            for name, t in transfer:
                cells = [f"{t[c]['bpb']:.4f} ({t[c]['bpb'] - bar_transfer[c]['bpb']:+.4f})"
                         if c in t and c in bar_transfer else "-" for c in corpora]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if best_rung:
        design_id, rung, beats = best_rung
        name = index.by_id[design_id].name
        lines += ["", "## The run's best design", "",
                  f"**{name}** at {rung}: {'beats' if beats else 'does not beat'} every reference on held-out loss "
                  f"with the run's seed."]
    fid, fid_plot = run_fidelity(policy, snap, out.with_name(f"{out.stem}-fidelity.png"))
    if fid is not None:
        lines += ["", "## Proxy fidelity", "", "Does a lower rung rank designs as a higher one does? (Spearman with an "
                  "exact or sampled permutation p-value; bootstrap intervals only from 10 designs.)", "", "```",
                  fid.table(), "```", "", f"![fidelity]({fid_plot.name})"]
    lowest = policy.ladder.rungs[0].name
    points = best_found(policy, snap, db)
    bar = known[lowest].ranked()[0] if lowest in known else None
    curve = plot_best_found(points, bar, out.with_name(f"{out.stem}-best-found.png"), lowest)
    lines += ["", "## Best design found against compute", "",
              f"At {lowest}, each new best design against the verification minutes spent until it finished "
              "(references and seeds included).", "", "| minutes | held-out loss | design |", "| --- | --- | --- |"]
    lines += [f"| {m:.1f} | {loss:.4f} | {n} |" for m, loss, n in points]
    lines += ["", f"![best found]({curve.name})", "", "## What the inventions contributed", ""]
    if invented:
        rungs = [r for r in cfg.rungs if any(f"best {r}" in u for u in invented.values())]
        lines += ["| unit | origin | introduced by | designs checked | verified | "
                  + " | ".join(f"best fitness {r}" for r in rungs) + " |",
                  "| --- | --- | --- | --- | --- |" + " --- |" * len(rungs)]
        for u in invented.values():
            cells = ["-" if u.get(f"best {r}") is None else f"{u[f'best {r}']:.3f}" for r in rungs]
            lines.append(f"| {u['unit']} | {u['origin']} | {u['introduced_by']} | {u['checked']} | {u['verified']} | "
                         + " | ".join(cells) + " |")
    else:
        lines.append("No unit was invented in this run.")
    lines += ["", _verdict(policy, snap, noise, known, uses)]
    if best_rung and card:
        lines += ["", "## The exported best model's card", "", "Written by `modis export hf` (the weights are not "
                  "kept here).", "", "````markdown", card(index.by_id[best_rung[0]].name).strip(), "````"]
    return "\n".join(lines) + "\n"


def _verdict(policy, snap, noise, known, uses) -> str:
    """Whether any design with an invented unit beats the best known design beyond the noise, at any rung."""
    index, hits = snap.index, []
    for rung, standing in known.items():
        losses = {index.by_id[v.design_id].name: float(v.metrics["val_loss"])
                  for v in snap.rows(rung, policy.data(rung))}
        half = margin_interval(noise[rung].std if rung in noise else None)
        if standing.best not in losses or half is None:
            continue
        hits += [f"{n} at {rung} ({losses[standing.best] - loss:+.3f} ± {half:.3f} over {standing.best})"
                 for n, loss in losses.items() if n in uses and losses[standing.best] - loss > half]
    if hits:
        return "**Designs with an invented unit that beat the best known design beyond noise (one seed):** " + \
            "; ".join(hits) + "."
    return ("**No design with an invented unit beat the best known design beyond noise** at a rung where the best "
            "known design was measured in this run.")

