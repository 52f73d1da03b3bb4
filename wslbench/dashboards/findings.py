"""Findings: the short list of what the explanation points at, one row per item.

Every dashboard lists its findings the same way (:class:`Finding`): lesion
candidates with a type guess (fundus), regions of the thresholded CAM with their
area (histology), cells with coordinates (microscopy), ROIs ranked by mask density
(MRI). Selecting one highlights it on the image; the report exports them as CSV
and JSON (:func:`findings_csv`, :func:`findings_records`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Finding", "findings_csv", "findings_records", "connected_regions"]


@dataclass(frozen=True)
class Finding:
    """One finding.

    Attributes:
        kind: ``"lesion"``, ``"region"``, ``"cell"``, ``"roi"``.
        label: type guess or name (``"hemorrhage"``, ``"region 2"``, ``"L_014"``).
        score: the explanation's value for it (heatmap peak, mean CAM, mask density).
        position: centre in array coordinates: ``(row, col)`` or ``(i, j, k)`` voxels.
        size: area in pixels / volume in voxels (``None`` for point findings).
        box: bounding box ``(row0, col0, row1, col1)`` (end exclusive), 2D only.
    """

    kind: str
    label: str
    score: float
    position: tuple[float, ...]
    size: float | None = None
    box: tuple[int, int, int, int] | None = None

    def describe(self) -> str:
        """One line for the findings list."""
        where = ", ".join(f"{p:.0f}" for p in self.position)
        size = f", {self.size:.0f} {'voxels' if len(self.position) == 3 else 'px'}" if self.size else ""
        return f"{self.label} — score {self.score:.3g} at ({where}){size}"

    def record(self) -> dict[str, object]:
        """The finding as a flat dict (CSV/JSON row)."""
        axes = ("row", "col") if len(self.position) == 2 else ("i", "j", "k")
        row: dict[str, object] = {"kind": self.kind, "label": self.label,
                                  "score": round(float(self.score), 6)}
        row.update({a: round(float(p), 2) for a, p in zip(axes, self.position)})
        row["size"] = None if self.size is None else round(float(self.size), 2)
        return row


def findings_records(findings: Sequence[Finding]) -> list[dict[str, object]]:
    """Every finding as a dict, numbered from 1 in list order."""
    return [{"rank": i + 1, **f.record()} for i, f in enumerate(findings)]


def findings_csv(findings: Sequence[Finding]) -> str:
    """The findings as CSV text (header row even when there are none)."""
    rows = findings_records(findings)
    columns = ["rank", "kind", "label", "score"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    if not rows:
        columns += ["row", "col", "size"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def connected_regions(
    heatmap: np.ndarray, level: float, *, min_area: int = 4, limit: int = 10, label: str = "region"
) -> list[Finding]:
    """Connected components (8-connectivity) of ``heatmap >= level``, largest mean first.

    Each region carries its mean map value as score, its area in pixels, its
    centroid and bounding box; regions under ``min_area`` pixels are dropped.
    """
    labels, _ = ndi.label(heatmap >= level, structure=np.ones((3, 3), bool))
    found = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == index
        area = int(inside.sum())
        if area < min_area:
            continue
        rows, cols = np.nonzero(inside)
        found.append(Finding(
            "region", "", float(heatmap[box][inside].mean()),
            (float(rows.mean() + box[0].start), float(cols.mean() + box[1].start)), float(area),
            (box[0].start, box[1].start, box[0].stop, box[1].stop),
        ))
    found.sort(key=lambda f: (-f.score, -(f.size or 0)))
    return [Finding(f.kind, f"{label} {i + 1}", f.score, f.position, f.size, f.box)
            for i, f in enumerate(found[:limit])]
