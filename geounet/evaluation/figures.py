"""The figures of an evaluation report, rendered by matplotlib (Agg) to PNG bytes.

Each function takes plain arrays and geometries (no file I/O) and returns the PNG as
``bytes``, so the report can both write it and embed it in the HTML.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import shapely  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from shapely.geometry.base import BaseGeometry  # noqa: E402

# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
TP_COLOUR = "#009E73"  # bluish green
FP_COLOUR = "#D55E00"  # vermillion
FN_COLOUR = "#0072B2"  # blue
IGNORED_COLOUR = "#BBBBBB"

#: Colours of the error-map categories (invalid, TN, TP, FP, FN); see the evaluation module.
ERROR_COLOURS = ("#FFFFFF", "#E8E8E8", TP_COLOUR, FP_COLOUR, FN_COLOUR)

DPI = 100

#: Footprints as a sequence or an object array of shapely geometries.
Geoms = Sequence[BaseGeometry] | npt.NDArray[np.object_]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _outline_segments(geoms: Iterable[BaseGeometry]) -> list[npt.NDArray[np.float64]]:
    """The rings of polygons as (n, 2) coordinate arrays (exteriors and holes)."""
    segs: list[npt.NDArray[np.float64]] = []
    for g in geoms:
        for poly in shapely.get_parts(g):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            segs.append(np.asarray(poly.exterior.coords, dtype=np.float64))
            segs.extend(np.asarray(r.coords, dtype=np.float64) for r in poly.interiors)
    return segs


def scene_outlines(
    rgb: npt.NDArray[np.uint8] | None,
    extent: tuple[float, float, float, float],
    tp: Geoms,
    fp: Geoms,
    fn: Geoms,
    ignored: Geoms = (),
    title: str = "",
) -> bytes:
    """The scene with true-positive, false-positive and false-negative footprints outlined.

    Args:
        rgb: Picture of the scene, (rows, cols, 3) uint8, or ``None`` for a blank background.
        extent: (left, right, bottom, top) of the picture in CRS units.
        tp: Predicted footprints that matched a true one.
        fp: Predicted footprints without a match.
        fn: True footprints without a match.
        ignored: Footprints ignored as too small (drawn thin grey, dashed).
        title: Figure title.

    Returns:
        PNG bytes.
    """
    fig, ax = plt.subplots(figsize=(8, 8))
    if rgb is not None and rgb.size:
        ax.imshow(rgb, extent=extent, interpolation="nearest")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    layers = [
        (ignored, IGNORED_COLOUR, 0.8, "--", f"ignored, too small ({len(ignored)})"),
        (fn, FN_COLOUR, 1.8, "-", f"FN: missed truth ({len(fn)})"),
        (fp, FP_COLOUR, 1.8, "-", f"FP: false prediction ({len(fp)})"),
        (tp, TP_COLOUR, 1.8, "-", f"TP: matched prediction ({len(tp)})"),
    ]
    handles = []
    for geoms, colour, width, style, label in layers:
        segs = _outline_segments(geoms)
        if segs:
            ax.add_collection(
                LineCollection(segs, colors=colour, linewidths=width, linestyles=style)
            )
        if len(geoms) or colour != IGNORED_COLOUR:
            handles.append(Patch(facecolor="none", edgecolor=colour, linewidth=2, label=label))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "Footprints: TP / FP / FN")
    return _png(fig)


def error_map(
    categories: npt.NDArray[np.uint8],
    extent: tuple[float, float, float, float],
    title: str = "",
) -> bytes:
    """The pixel error map: TP, FP, FN, TN and invalid pixels in five colours.

    Args:
        categories: (rows, cols) of 0 invalid, 1 TN, 2 TP, 3 FP, 4 FN.
        extent: (left, right, bottom, top) in CRS units.
        title: Figure title.

    Returns:
        PNG bytes.
    """
    fig, ax = plt.subplots(figsize=(8, 8))
    cmap = ListedColormap(list(ERROR_COLOURS))
    if categories.size:
        ax.imshow(
            categories, cmap=cmap, vmin=-0.5, vmax=4.5, extent=extent, interpolation="nearest"
        )
    labels = ("no data", "TN", "TP", "FP", "FN")
    handles = [
        Patch(facecolor=c, edgecolor="#666666", label=lab)
        for c, lab in zip(ERROR_COLOURS, labels, strict=True)
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "Pixel errors")
    return _png(fig)


def pr_curve(
    pixel_rows: Sequence[dict[str, Any]] | None,
    object_rows: Sequence[dict[str, Any]] | None = None,
    threshold: float | None = None,
    object_headline: dict[str, Any] | None = None,
) -> bytes:
    """Precision against recall over the threshold sweep, pixel and object level.

    The best-F1 threshold of each curve is ringed; the working ``threshold`` is marked.
    The object sweep polygonises the raster at each threshold (touching roofs are not
    split); when the report's object headline comes from a footprint file made another
    way, the figure says so and marks the headline as a point of its own.

    Args:
        pixel_rows: Sweep rows with ``threshold``, ``precision``, ``recall``, ``f1``.
        object_rows: Same, object level.
        threshold: The working threshold.
        object_headline: The report's object figures (``source``, ``precision``,
            ``recall``, ``f1``), drawn when their source is a footprint file.

    Returns:
        PNG bytes.
    """
    fig, ax = plt.subplots(figsize=(6.4, 5))
    from_file = object_headline is not None and object_headline.get("source") == "footprints"
    for rows, colour, name in (
        (pixel_rows, "#0072B2", "pixel"),
        (object_rows, "#D55E00", "object"),
    ):
        if not rows:
            continue
        r = np.array([row["recall"] for row in rows])
        p = np.array([row["precision"] for row in rows])
        label = f"{name} level"
        if name == "object" and from_file:
            label = "object level, raster polygons (touching roofs not split)"
        ax.plot(r, p, "o-", color=colour, markersize=3, label=label)
        best = max(rows, key=lambda row: (row["f1"], -row["threshold"]))
        if best["f1"] > 0:  # F1 0 everywhere: no threshold is best
            ax.plot(
                best["recall"],
                best["precision"],
                "o",
                ms=11,
                mfc="none",
                mec=colour,
                mew=2,
                label=f"{name} best F1 {best['f1']:.3f} at {best['threshold']:g}",
            )
        if threshold is not None:
            here = [row for row in rows if abs(row["threshold"] - threshold) < 1e-9]
            if here:
                ax.plot(here[0]["recall"], here[0]["precision"], "s", color=colour, ms=7)
    if threshold is not None and (pixel_rows or object_rows):
        ax.plot([], [], "s", color="#444444", label=f"working threshold {threshold:g}")
    if from_file and object_headline is not None:
        ax.plot(
            object_headline["recall"],
            object_headline["precision"],
            "*",
            color="#D55E00",
            ms=13,
            label=f"footprint file (the headline): object F1 {object_headline['f1']:.3f}",
        )
    if not pixel_rows and not object_rows:
        ax.text(0.5, 0.5, "no probability raster: no sweep", ha="center", va="center")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title("Precision-recall over thresholds 0.05..0.95")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def iou_histogram(best_iou: npt.ArrayLike, iou_threshold: float = 0.5) -> bytes:
    """Histogram of each true footprint's best IoU with any prediction.

    Args:
        best_iou: One value per evaluated true footprint (0 when nothing overlaps it).
        iou_threshold: The match threshold, drawn as a vertical line.

    Returns:
        PNG bytes.
    """
    v = np.asarray(best_iou, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 5))
    bins = [k / 20 for k in range(21)]
    if v.size:
        ax.hist(v[v >= iou_threshold], bins=bins, color=TP_COLOUR, label="best IoU >= threshold")
        ax.hist(v[v < iou_threshold], bins=bins, color=FN_COLOUR, label="below threshold")
    else:
        ax.text(0.5, 0.5, "no true footprints", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(iou_threshold, color="#333333", linestyle="--", label=f"IoU {iou_threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("best IoU of each true footprint with any prediction")
    ax.set_ylabel("true footprints")
    ax.set_title(f"Per-object IoU (n = {v.size})")
    ax.legend(loc="best", fontsize=8)  # where it hides the fewest bars
    return _png(fig)
