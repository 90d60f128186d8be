"""PNG plots of routing curves (matplotlib's Agg canvas, no pyplot global state, no display)."""

from __future__ import annotations

from pathlib import Path

from modelfarm.routing.learned.metrics import Curve

_STYLE = {"router": "o-", "random": "--", "oracle": "x:"}


def plot_curves(
    path: Path,
    curves: dict[str, Curve],
    *,
    title: str,
    xlabel: str,
    references: dict[str, tuple[float, float]],
) -> None:
    """Draw each curve (quality against x) and each reference point (x, quality) as a labelled
    horizontal line across the plot (two models) or a marker (N models); write a PNG to `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(100 * curve.x, 100 * curve.quality, _STYLE.get(name, "-"), label=name, markersize=4)
    for name, (x, quality) in references.items():
        if len(references) <= 2:
            ax.axhline(100 * quality, color="grey", linewidth=0.8, linestyle="-.")
            ax.annotate(name, (100 * x, 100 * quality), fontsize=8, textcoords="offset points", xytext=(4, 4))
        else:
            ax.plot([100 * x], [100 * quality], "s", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("quality (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
