"""The EFS report as a picture (``?format=png`` / ``?format=svg``).

Drawn from the same dictionary the JSON answer carries, so the picture and the numbers
cannot disagree. Matplotlib without pyplot (``Figure`` on an Agg canvas): pyplot keeps
global figure state, which leaks and is not thread-safe in a web server.

What the picture must not do (issue 11): stretch the axis beyond the data (six months
of follow-up drawn on ten years looks like a flat, reassuring line), present the
published figures as if they were values of a curve at a year the source never gives,
or let one curve hide another. So the x axis ends just past the longest follow-up (in
months up to two years, in years after); the reference figures stand in a table beside
the plot, with their source, verification and (absent) time horizon; each group has its
own line style and width, the wider drawn first, so curves that coincide stay visible;
and the numbers at risk stand under the axis.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from config.renderers import FileRenderer

COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
# Wide solid first, then narrower broken lines on top: where two curves run together
# the lower one still shows at the upper one's edges and gaps.
LINE_STYLES = (("-", 4.0), ((0, (5, 4)), 2.4), ((0, (6, 2, 1.5, 2)), 1.9), ((0, (1.5, 1.5)), 1.6))
CENSOR_MARKERS = ("|", "x", "+", "1")
DAYS_PER_MONTH = 365.25 / 12


def _at_risk(curve: list[Mapping[str, Any]], n: int, days: float) -> int:
    """Numbers still followed just before ``days``: at risk at the first curve point at
    or after it (0 past the last one)."""
    if days <= 0:
        return n
    for point in curve:
        if point["time_days"] >= days:
            return point["at_risk"]
    return 0


def axis_scale(follow_up_days: float) -> tuple[str, float, float, float]:
    """(unit, days per unit, axis end in units, tick step in units): months up to two
    years of follow-up, years after; the axis ends at the first tick at or past the
    longest follow-up (at least 3 months: an empty or day-old cohort still draws)."""
    if follow_up_days <= 2 * 365.25:
        unit, per = "months", DAYS_PER_MONTH
        span = max(follow_up_days / per, 3.0)
        step = 1.0 if span <= 6 else 2.0 if span <= 12 else 3.0
    else:
        unit, per = "years", 365.25
        span = follow_up_days / per
        step = 1.0 if span <= 10 else 2.0
    end = step * math.ceil(span / step - 1e-9)
    return unit, per, max(end, step), step


def _reference_rows(reference: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for r in reference.get("groups", []):
        efs = f"{r['efs']:.0%} ± {r['efs_se']:.0%}" if r.get("efs") is not None else "—"
        cr2 = f"{r['cr2_rate']:.0%}" if r.get("cr2_rate") is not None else "—"
        rows.append([r["group"], efs, cr2])
    return rows


def render_outcomes(report: Mapping[str, Any], fmt: str) -> bytes:
    """Step curves per risk group with censoring marks, the numbers at risk under the
    axis, and the reference figures in a table beside the plot."""
    # Imported here: only this endpoint needs matplotlib (about half a second to load).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = list(report["groups"])
    reference = report.get("reference") or {}
    follow_up = max((g["follow_up_max_days"] or 0 for g in groups), default=0)
    unit, per, x_max, step = axis_scale(follow_up)
    ticks = [i * step for i in range(int(round(x_max / step)) + 1)]

    rows = [g for g in groups if g["n"]]
    figure = Figure(figsize=(11, 6.2 + 0.22 * len(rows)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    # The curves, the numbers at risk under them (their own axes, so the layout makes
    # room for every row) and, beside them, the reference table.
    grid = figure.add_gridspec(
        2,
        2 if reference else 1,
        width_ratios=(3.2, 1.25) if reference else None,
        height_ratios=(5.4, 0.35 + 0.24 * max(len(rows), 1)),
    )
    axes = figure.add_subplot(grid[0, 0])
    drawn = [g for g in groups if g["curve"]]
    style = {g["group"]: i for i, g in enumerate(drawn)}
    colour = {g["group"]: COLOURS[i % len(COLOURS)] for i, g in enumerate(groups)}
    for group in drawn:
        name, curve, i = group["group"], group["curve"], style[group["group"]]
        line, width = LINE_STYLES[i % len(LINE_STYLES)]
        label = f"{group['name']} (n={group['n']}, events={group['events']})"
        xs = [p["time_days"] / per for p in curve]
        ys = [p["survival"] for p in curve]
        if ys[0] < 1:
            # Events at time zero (non-response): the drop from 1 is drawn, not hidden.
            xs.insert(0, 0.0)
            ys.insert(0, 1.0)
        # The last step runs on to the longest follow-up of the group.
        if group["follow_up_max_days"] and group["follow_up_max_days"] / per > xs[-1]:
            xs.append(group["follow_up_max_days"] / per)
            ys.append(ys[-1])
        axes.step(
            xs,
            ys,
            where="post",
            color=colour[name],
            linestyle=line,
            linewidth=width,
            label=label,
            zorder=2 + i,
            solid_capstyle="butt",
        )
        censored = [(p["time_days"] / per, p["survival"]) for p in curve if p["censored"]]
        if censored:
            axes.plot(
                [c[0] for c in censored],
                [c[1] for c in censored],
                linestyle="none",
                marker=CENSOR_MARKERS[i % len(CENSOR_MARKERS)],
                markersize=9,
                markeredgewidth=1.6,
                color=colour[name],
                zorder=10 + i,
            )
    for group in groups:
        if not group["curve"]:
            axes.plot([], [], color=colour[group["group"]], label=f"{group['name']} (no courses)")
    # A little room left of zero, so a drop at time zero is not hidden in the axis.
    axes.set_xlim(-0.015 * x_max, x_max)
    axes.set_ylim(0, 1.05)
    axes.set_xticks(ticks)
    axes.set_xticklabels([f"{t:g}" for t in ticks])
    axes.set_xlabel(f"{unit.capitalize()} from relapse")
    axes.set_ylabel("Event-free survival")
    scope = f"team {report['team']}" if report.get("team") is not None else "your teams"
    axes.set_title(f"EFS from relapse by risk group — {report['protocol']} ({scope})")
    axes.grid(alpha=0.3)
    axes.legend(
        loc="lower left",
        fontsize="small",
        title="ticks on a curve: censored",
        title_fontsize="x-small",
    )

    # Numbers at risk, one row per group, at the ticks of the axis above.
    at_risk = figure.add_subplot(grid[1, 0], sharex=axes)
    at_risk.set_ylim(len(rows) + 0.2, -1.2)
    at_risk.axis("off")
    at_risk.text(
        -0.045,
        -0.6,
        "At risk",
        transform=at_risk.get_yaxis_transform(),
        fontsize="small",
        ha="right",
        fontweight="bold",
    )
    for i, group in enumerate(rows):
        at_risk.text(
            -0.045,
            i + 0.4,
            group["group"] or "—",
            transform=at_risk.get_yaxis_transform(),
            fontsize="small",
            ha="right",
            color=colour[group["group"]],
        )
        for tick in ticks:
            at_risk.text(
                tick,
                i + 0.4,
                str(_at_risk(group["curve"], group["n"], tick * per)),
                fontsize="small",
                ha="center",
            )

    if reference:
        side = figure.add_subplot(grid[:, 1])
        side.axis("off")
        side.set_title("Published reference", fontsize="medium", loc="left")
        table = side.table(
            cellText=_reference_rows(reference) or [["—", "—", "—"]],
            colLabels=["Group", "EFS ± SE", "CR2"],
            loc="upper left",
            cellLoc="center",
            colWidths=[0.28, 0.42, 0.3],
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 1.4)
        words = [
            f"Time horizon: {reference.get('horizon', 'not stated')}.",
            f"Source: {reference.get('source', '')}.",
            f"Verification: {reference.get('verification', '')}.",
            reference.get("note", ""),
            "Not points of the curves: no year is given for them.",
        ]
        side.text(
            0,
            0.62,
            "\n\n".join(w for w in words if w),
            transform=side.transAxes,
            fontsize="x-small",
            va="top",
            wrap=True,
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
