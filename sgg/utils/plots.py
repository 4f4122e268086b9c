"""Small PNG charts drawn with OpenCV, so that no plotting library is needed."""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np


def save_bar_chart(path: str, labels: Sequence[str], values: Sequence[float], title: str = "",
                   bar_height: int = 16, width: int = 900) -> str:
    """Horizontal bar chart, one row per label, longest bar = the largest value; returns ``path``."""
    if len(labels) != len(values):
        raise ValueError(f"save_bar_chart: {len(labels)} labels for {len(values)} values")
    label_width, margin, top = 170, 10, 34 if title else 10
    height = top + bar_height * len(labels) + margin
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    if title:
        cv2.putText(canvas, title, (margin, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    largest = max(max(values), 1e-12) if len(values) else 1.0
    span = width - label_width - 2 * margin - 80
    for row, (label, value) in enumerate(zip(labels, values)):
        y = top + row * bar_height
        cv2.putText(canvas, str(label)[:22], (margin, y + bar_height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
        length = int(round(span * float(value) / largest))
        x0 = label_width
        cv2.rectangle(canvas, (x0, y + 2), (x0 + max(length, 1), y + bar_height - 2), (180, 110, 40), -1)
        text = f"{value:g}" if isinstance(value, float) else str(value)
        cv2.putText(canvas, text, (x0 + length + 4, y + bar_height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (60, 60, 60), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, canvas):
        raise OSError(f"could not write the chart to {path}")
    return path
