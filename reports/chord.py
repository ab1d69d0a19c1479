"""The chord diagram of a cross-domain accuracy matrix (SpyncoGan, Fig. 7).

Arcs are image sets; a chord joins a training set (the end attached to its arc) to a test set (the end kept a
small gap away from its arc), with a width proportional to the accuracy of that pair. Only the top quarter of
accuracies are coloured (in the training set's colour); the others are drawn light grey. Counting coloured
chords that start from an arc shows which training set generalizes best to the other colour spaces.

Drawn with pyCirclize (``Circos.chord_diagram``: sectors and Bezier ribbons from a from-to matrix) on a
matplotlib Agg figure, never through pyplot's global state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

#: Share of the accuracies drawn as coloured chords (the paper's "first quarter").
TOP_FRACTION = 0.25
_GREY = "#c8c8c8"
# Outer track radius (0-100): the training end of a chord touches it, the test end stops _GAP below it.
_TRACK = (92, 99)
_GAP = 4


def top_quarter_mask(acc: pd.DataFrame, fraction: float = TOP_FRACTION) -> pd.DataFrame:
    """Boolean frame: True for the ``ceil(fraction * n_cells)`` highest accuracies (ties at the cut included)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    values = acc.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return acc.astype(bool) & False
    k = max(1, math.ceil(fraction * finite.size))
    cut = np.sort(finite)[::-1][k - 1]
    return pd.DataFrame(np.isfinite(values) & (values >= cut), index=acc.index, columns=acc.columns)


def plot_chord(acc: pd.DataFrame, path: str | Path, labels: Mapping[str, str] | None = None,
               title: str | None = None, fraction: float = TOP_FRACTION) -> Path:
    """Draw the chord diagram of a square accuracy matrix (rows: training sets, columns: test sets) to ``path``.

    Args:
        acc: top-1 accuracies in [0, 100]; row and column names must be the same image sets in the same order.
        path: the PNG to write (its folder is created).
        labels: display label of each image set (default: its name).
        title: figure title.
        fraction: share of the accuracies drawn in colour.

    Raises:
        ValueError: a non-square matrix, rows and columns that differ, duplicate labels, or values outside
            [0, 100].
    """
    from pycirclize import Circos  # imported here: only this figure needs it

    if acc.shape[0] != acc.shape[1] or list(acc.index) != list(acc.columns):
        raise ValueError(f"accuracy matrix must be square with the same sets as rows and columns, got rows "
                         f"{list(acc.index)} and columns {list(acc.columns)}")
    values = acc.to_numpy(dtype=float)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 100:
        raise ValueError("accuracy matrix must hold finite percentages in [0, 100]")
    labels = {name: (labels or {}).get(name, name) for name in acc.index}
    if len(set(labels.values())) != len(labels):
        raise ValueError(f"image set labels must be unique, got {list(labels.values())}")
    coloured = top_quarter_mask(acc, fraction)
    matrix = pd.DataFrame(values, index=[labels[n] for n in acc.index], columns=[labels[n] for n in acc.columns])
    by_label = dict(zip(matrix.index, acc.index))
    colours = _colours(list(matrix.index))

    def link_style(train: str, test: str) -> dict:
        if coloured.loc[by_label[train], by_label[test]]:
            return {"fc": colours[train], "alpha": 0.75, "zorder": 2}
        return {"fc": _GREY, "alpha": 0.35, "zorder": 1}

    n = len(matrix)
    circos = Circos.chord_diagram(
        matrix, space=max(1.0, min(4.0, 60.0 / n)), r_lim=_TRACK, cmap=colours,
        label_kws={"size": 9 if n <= 12 else 7, "orientation": "vertical" if n > 8 else "horizontal", "r": 104},
        link_kws={"r2": _TRACK[0] - _GAP, "ec": "none", "lw": 0},  # r1 (training end) touches the arc
        link_kws_handler=link_style,
    )
    fig = Figure(figsize=(8.5, 8.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="polar")
    circos.plotfig(ax=ax)
    fig.legend(
        handles=[Patch(color=_GREY, alpha=0.6, label="other accuracies"),
                 Patch(color="black", alpha=0.6, label=f"top {fraction:.0%} of accuracies (training set's colour)")],
        loc="lower center", ncol=2, frameon=False, fontsize=9,
    )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.text(0.5, 0.055, "A chord starts at its training set (attached) and ends at its test set (gap); width ∝ "
             "top-1 accuracy.", ha="center", fontsize=8, color="#444444")
    from colorbench.core.fsio import atomic_savefig

    return atomic_savefig(fig, path)


def _colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per image set: tab10, then tab20's other shades, then hsv."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for c in colormaps["tab10"].colors]
    palette += [to_hex(c) for c in colormaps["tab20"].colors[1::2]]
    if len(names) > len(palette):
        palette += [to_hex(colormaps["hsv"](i / len(names))) for i in range(len(names) - len(palette))]
    return dict(zip(names, palette))
