"""The EFS report as a picture (``?format=png`` / ``?format=svg``).

Drawn from the same dictionary the JSON answer carries, so the picture and the numbers
cannot disagree. Matplotlib without pyplot (``Figure`` on an Agg canvas): pyplot keeps
global figure state, which leaks and is not thread-safe in a web server.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from config.renderers import FileRenderer

COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _at_risk(curve: list[Mapping[str, Any]], n: int, years: float) -> int:
    """Numbers still followed just before ``years``: at risk at the first curve point at
    or after it (0 past the last one)."""
    if years <= 0:
        return n
    for point in curve:
        if point["time_years"] >= years:
            return point["at_risk"]
    return 0


def render_outcomes(report: Mapping[str, Any], fmt: str) -> bytes:
    """Step curves per risk group, censoring ticks, the reference 10-year EFS (± SE)
    as points, and numbers at risk per year under the axis."""
    # Imported here: only this endpoint needs matplotlib (about half a second to load).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = list(report["groups"])
    reference = report.get("reference") or {}
    ref_by_group = {r["group"]: r for r in reference.get("groups", [])}
    follow_up = max((g["follow_up_max_days"] or 0) / 365.25 for g in groups) if groups else 0
    x_max = max(float(reference.get("efs_years", 0)) + 0.5, follow_up, 1.0)
    ticks = list(range(0, int(x_max) + 1))

    figure = Figure(figsize=(9, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colour = {g["group"]: COLOURS[i % len(COLOURS)] for i, g in enumerate(groups)}
    for group in groups:
        name, curve = group["group"], group["curve"]
        label = f"{name} (n={group['n']}, events={group['events']})"
        if curve:
            xs = [p["time_years"] for p in curve]
            ys = [p["survival"] for p in curve]
            # Extend the last step to the longest follow-up.
            axes.step(xs, ys, where="post", color=colour[name], label=label, linewidth=1.8)
            censored = [(p["time_years"], p["survival"]) for p in curve if p["censored"]]
            if censored:
                axes.plot(
                    [c[0] for c in censored],
                    [c[1] for c in censored],
                    linestyle="none",
                    marker="|",
                    markersize=8,
                    color=colour[name],
                )
        elif name in ref_by_group:
            axes.plot([], [], color=colour[name], label=f"{name} (no courses)")
        ref = ref_by_group.get(name)
        if ref and ref.get("efs") is not None:
            # Side by side, so close figures (A 17 %, PPG 15 %) stay readable.
            offset = 0.08 * (list(ref_by_group).index(name) - (len(ref_by_group) - 1) / 2)
            axes.errorbar(
                [reference["efs_years"] + offset],
                [ref["efs"]],
                yerr=[[ref.get("efs_se") or 0]],
                fmt="D",
                color=colour[name],
                markerfacecolor="white",
                capsize=4,
            )
    if ref_by_group:
        axes.plot(
            [],
            [],
            "D",
            color="grey",
            markerfacecolor="white",
            label=f"reference {reference['efs_years']}-year EFS ± SE (seed, unverified)",
        )
    axes.set_xlim(0, x_max)
    axes.set_ylim(0, 1.05)
    axes.set_xticks(ticks)
    axes.set_xlabel("Years from course start")
    axes.set_ylabel("Event-free survival")
    scope = f"team {report['team']}" if report.get("team") is not None else "your teams"
    axes.set_title(f"EFS by risk group — {report['protocol']} ({scope})")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")

    # Numbers at risk, one row per group, under the x axis.
    rows = [g for g in groups if g["n"]]
    if rows:
        transform = axes.get_xaxis_transform()  # x in data, y in axes fraction
        axes.text(
            0,
            -0.14,
            "At risk",
            transform=transform,
            fontsize="small",
            ha="right",
            fontweight="bold",
        )
        for i, group in enumerate(rows):
            y = -0.20 - 0.05 * i
            axes.text(
                -0.02 * x_max,
                y,
                group["group"],
                transform=transform,
                fontsize="small",
                ha="right",
                color=colour[group["group"]],
            )
            for year in ticks:
                axes.text(
                    year,
                    y,
                    str(_at_risk(group["curve"], group["n"], year)),
                    transform=transform,
                    fontsize="small",
                    ha="center",
                )
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


class _PlotRenderer(FileRenderer):
    charset = None

    def render_file(self, data: Any, renderer_context: Mapping[str, Any]) -> bytes:
        return render_outcomes(data, self.format)


class PngRenderer(_PlotRenderer):
    media_type = "image/png"
    format = "png"


class SvgRenderer(_PlotRenderer):
    media_type = "image/svg+xml"
    format = "svg"
