"""The phylogenetic tree as a plotly figure: generations left to right, parents → children edges, colour by
fitness, marker by status. Plain functions of the designs table, so they are tested and timed without a browser."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

SYMBOLS = {"reference": "star", "checked": "circle", "check_failed": "x"}
LABELS_UP_TO = 80  # names beside the nodes for small trees; larger ones show them on hover


def layout(designs: pd.DataFrame) -> pd.DataFrame:
    """x: generation (references 0, a child one past its deepest parent); y: order within the generation."""
    gen: dict[str, int] = {}
    for name, parents in zip(designs["name"], designs["parents"]):  # ids grow with time: parents come first
        gen[name] = 1 + max((gen.get(p, 0) for p in parents), default=-1)
    out = designs.assign(x=designs["name"].map(gen))
    out["y"] = out.groupby("x").cumcount()
    out["y"] = out["y"] - out.groupby("x")["y"].transform("max") / 2  # centre each generation
    return out


def figure(designs: pd.DataFrame, highlight: str | None = None) -> go.Figure:
    placed = layout(designs)
    where = dict(zip(placed["name"], zip(placed["x"], placed["y"])))
    ex, ey = [], []
    for name, parents in zip(placed["name"], placed["parents"]):
        for parent in parents:
            if parent in where:
                ex += [where[parent][0], where[name][0], None]
                ey += [where[parent][1], where[name][1], None]
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=ex, y=ey, mode="lines", line={"width": 0.6, "color": "#b0b0b0"},
                               hoverinfo="skip", showlegend=False))
    fitness = placed["fitness"].astype(float)
    hover = [f"{n} ({s}, {m})<br>fitness {'-' if pd.isna(f) else f'{f:.3f}'}<br>parents {', '.join(p) or '-'}"
             for n, s, m, f, p in zip(placed["name"], placed["status"], placed["mode"], fitness, placed["parents"])]
    labelled = len(placed) <= LABELS_UP_TO
    fig.add_trace(go.Scattergl(
        x=placed["x"], y=placed["y"], mode="markers+text" if labelled else "markers", customdata=placed["name"],
        text=placed["name"] if labelled else None, textposition="middle right", textfont={"size": 10},
        hovertext=hover, hoverinfo="text", showlegend=False,
        marker={"size": [16 if n == highlight else 10 for n in placed["name"]],
                "symbol": [SYMBOLS.get(s, "circle") for s in placed["status"]],
                "color": fitness.fillna(-1).where(fitness.notna(), None), "colorscale": "Viridis",
                "cmin": float(fitness.min()) if fitness.notna().any() else 0,
                "cmax": float(fitness.max()) if fitness.notna().any() else 1,
                "showscale": True, "colorbar": {"title": "fitness"},
                "line": {"width": 1, "color": "#333"}}))
    for status, symbol in SYMBOLS.items():  # legend for the shapes
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=status,
                                 marker={"symbol": symbol, "size": 10, "color": "#777"}))
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="pan",
                      xaxis={"title": "generation", "dtick": 1}, yaxis={"visible": False},
                      legend={"orientation": "h", "y": 1.02})
    return fig
