"""A scene graph picture: the image with labelled boxes beside the graph drawn as nodes and labelled arrows (OpenCV).

The picture is ``(round(W * s) + H', H')`` pixels for an image of ``W x H``, with the display height
``H' = min(max(H, 480), 800)`` and ``s = H' / H``: the graph panel is a square of side ``H'``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import cv2
import numpy as np

MIN_HEIGHT, MAX_HEIGHT = 480, 800
FONT = cv2.FONT_HERSHEY_SIMPLEX
NODE_RADIUS = 7


def _colour(index: int) -> Tuple[int, int, int]:
    """Distinct, deterministic RGB colours (golden-angle hues)."""
    hue = int((index * 137.508) % 180)
    hsv = np.uint8([[[hue, 200, 230]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def display_height(height: int) -> int:
    return int(min(max(height, MIN_HEIGHT), MAX_HEIGHT))


def picture_size(width: int, height: int) -> Tuple[int, int]:
    """(width, height) of the picture ``draw_scene_graph`` makes for a ``width x height`` image."""
    shown = display_height(height)
    return int(round(width * shown / height)) + shown, shown


def _label(canvas, text: str, origin: Tuple[int, int], colour, scale: float = 0.5) -> None:
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    x = max(0, min(x, canvas.shape[1] - w - 3))  # keep the label inside the picture
    y = max(y, h + 2)
    cv2.rectangle(canvas, (x, y - h - 3), (x + w + 2, y + base - 1), colour, -1)
    cv2.putText(canvas, text, (x + 1, y - 1), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _between_nodes(start: Tuple[int, int], end: Tuple[int, int], gap: float) -> Tuple[Tuple[int, int], ...]:
    """The segment from ``start`` to ``end`` shortened by ``gap`` pixels at both ends (so arrows meet the rims)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length <= 2 * gap:
        return start, end
    ux, uy = dx / length, dy / length
    return ((int(round(start[0] + ux * gap)), int(round(start[1] + uy * gap))),
            (int(round(end[0] - ux * gap)), int(round(end[1] - uy * gap))))


def draw_scene_graph(image: np.ndarray, graph: Dict) -> np.ndarray:
    """(H', W') RGB picture of ``graph`` (``sgg.predict`` output) over ``image`` (H, W, 3 RGB). Only the objects
    that take part in the listed relations are drawn (all listed objects when there are no relations)."""
    height, width = image.shape[:2]
    shown = display_height(height)
    scale = shown / height
    left = cv2.resize(np.ascontiguousarray(image), (int(round(width * scale)), shown),
                      interpolation=cv2.INTER_LINEAR if scale < 1 else cv2.INTER_NEAREST)
    relations: List[Dict] = list(graph.get("relations", []))
    used = sorted({r["subject"] for r in relations} | {r["object"] for r in relations}) if relations \
        else [o["id"] for o in graph.get("objects", [])]
    objects = {o["id"]: o for o in graph.get("objects", [])}
    for rank, index in enumerate(used):
        x1, y1, x2, y2 = (int(round(v * scale)) for v in objects[index]["box"])
        colour = _colour(rank)
        cv2.rectangle(left, (x1, y1), (x2, y2), colour, 2)
        _label(left, f"{index}: {objects[index]['label']}", (x1, y1), colour, 0.45)

    panel = np.full((shown, shown, 3), 255, dtype=np.uint8)
    centre, radius = shown / 2.0, shown * 0.33
    position = {}
    for rank, index in enumerate(used):
        angle = 2 * math.pi * rank / max(len(used), 1) - math.pi / 2
        position[index] = (int(centre + radius * math.cos(angle)), int(centre + radius * math.sin(angle)))
    for relation in relations:
        start, end = _between_nodes(position[relation["subject"]], position[relation["object"]], NODE_RADIUS + 2)
        length = max(math.hypot(end[0] - start[0], end[1] - start[1]), 1.0)
        # a head of about 10 pixels whatever the arrow's length, ending at the object node's rim
        cv2.arrowedLine(panel, start, end, (90, 90, 90), 1, cv2.LINE_AA, tipLength=min(0.5, 10.0 / length))
        middle = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
        text = f"{relation['predicate']} {relation['score']:.2f}"
        (w, h), _ = cv2.getTextSize(text, FONT, 0.4, 1)
        x, y = middle[0] - w // 2, middle[1] + h // 2
        cv2.rectangle(panel, (x - 1, y - h - 2), (x + w + 1, y + 3), (255, 255, 255), -1)  # keep it readable
        cv2.putText(panel, text, (x, y), FONT, 0.4, (40, 40, 160), 1, cv2.LINE_AA)
    for rank, index in enumerate(used):
        x, y = position[index]
        cv2.circle(panel, (x, y), NODE_RADIUS, _colour(rank), -1, cv2.LINE_AA)
        _label(panel, f"{index}: {objects[index]['label']}", (x + NODE_RADIUS + 2, y + 5), _colour(rank), 0.45)
    title = f"top {len(relations)} relations" if relations else "no relations"
    cv2.putText(panel, title, (8, 18), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([left, panel], axis=1)


def save_picture(path: str, picture: np.ndarray) -> str:
    """Write an RGB picture; PNGs with the strongest (lossless) compression, about half the size of the default."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if path.lower().endswith(".png") else []
    if not cv2.imwrite(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"could not write the picture {path}")
    return path


__all__ = ["draw_scene_graph", "save_picture", "picture_size", "display_height"]
