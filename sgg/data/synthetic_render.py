"""Drawing of synthetic VG images (cv2): low-saturation textured backgrounds and saturated outlined shapes.

A shape fills its box exactly: its leftmost, topmost, rightmost and bottommost pixels lie on the box's edges
(x1, y1, x2, y2 inclusive), so the GT boxes are tight and flip exactly with ``x1' = W - x2 - 1``. Every image is
drawn from its own random stream (seed, image id), so the pixels do not depend on how images are split over workers.
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Dict, Sequence

import cv2
import numpy as np

SHAPES = ("circle", "diamond", "hexagon", "square", "star", "triangle")
COLOURS = ("blue", "green", "purple", "red", "yellow")
COLOUR_RGB = {"blue": (50, 90, 215), "green": (45, 170, 70), "purple": (150, 70, 195), "red": (215, 45, 45),
              "yellow": (235, 205, 40)}
STYLES = ("solid", "striped", "dotted")
JPEG_QUALITY = 90
_SUBPIXEL = 4  # cv2 fixed-point shift for polygon and ellipse coordinates


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    xy = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    return (xy - xy.min(axis=0)) / (xy.max(axis=0) - xy.min(axis=0))


# Vertices in the unit square; each touches all four sides so the drawn shape spans its whole box.
POLYGONS: Dict[str, np.ndarray] = {
    "diamond": np.array([[0.5, 0], [1, 0.5], [0.5, 1], [0, 0.5]]),
    "hexagon": np.array([[0.25, 0], [0.75, 0], [1, 0.5], [0.75, 1], [0.25, 1], [0, 0.5]]),
    "square": np.array([[0, 0], [1, 0], [1, 1], [0, 1]]),
    "star": _star(),
    "triangle": np.array([[0.5, 0], [1, 1], [0, 1]]),
}


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """uint8 mask (height, width) of the filled shape, touching all four borders."""
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = 1 << _SUBPIXEL
    if shape == "circle":
        centre = (int(round((width - 1) / 2 * scale)), int(round((height - 1) / 2 * scale)))
        axes = (int(round((width - 1) / 2 * scale)), int(round((height - 1) / 2 * scale)))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, _SUBPIXEL)
        # the fixed-point ellipse can stop a pixel short of a border: close the four extreme points
        mask[(height - 1) // 2:height // 2 + 1, [0, width - 1]] = 1
        mask[[0, height - 1], (width - 1) // 2:width // 2 + 1] = 1
    else:
        points = POLYGONS[shape] * np.array([width - 1, height - 1])
        cv2.fillPoly(mask, [np.round(points * scale).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL)
    return mask


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), dtype=np.uint8)
    inner = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (mask > 0) & (inner == 0)


def draw_object(canvas: np.ndarray, box: Sequence[int], shape: str, rgb: np.ndarray, style: str,
                rng: np.random.Generator) -> None:
    """Draw one object into ``canvas`` (H, W, 3 RGB uint8) inside the inclusive integer box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    width, height = x2 - x1 + 1, y2 - y1 + 1
    mask = shape_mask(shape, width, height) > 0
    patch = np.empty((height, width, 3), dtype=np.float32)
    patch[:] = rgb
    yy, xx = np.mgrid[0:height, 0:width]
    if style == "striped":
        angle = rng.uniform(0, np.pi)
        period = rng.integers(5, 9)
        stripes = ((xx * np.cos(angle) + yy * np.sin(angle)) // (period / 2)) % 2 == 0
        patch[stripes] *= 0.6
    elif style == "dotted":
        period = int(rng.integers(6, 10))
        radius = period * 0.28
        dots = ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < radius ** 2
        patch[dots] = 255 - (255 - patch[dots]) * 0.25  # light dots
    edge = _outline(mask.astype(np.uint8), 1 if min(width, height) < 32 else 2)
    patch[edge] = np.asarray(rgb, dtype=np.float32) * 0.45
    region = canvas[y1:y2 + 1, x1:x2 + 1]
    region[mask] = np.clip(patch[mask], 0, 255).astype(np.uint8)


def draw_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A low-saturation gradient with noise and, sometimes, faint blobs or bands (never object-like colours)."""
    base = rng.uniform(70, 200, size=2)[:, None] + rng.uniform(-22, 22, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xx * np.cos(angle) + yy * np.sin(angle))
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    image = base[0] * (1 - t[..., None]) + base[1] * t[..., None]
    kind = rng.integers(0, 3)
    if kind == 1:  # soft blobs
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(0.1, 0.4) * max(width, height)
            weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
            image += weight * rng.uniform(-35, 35)
    elif kind == 2:  # faint bands
        period = rng.uniform(12, 40)
        band_angle = rng.uniform(0, np.pi)
        image += 10 * np.sin((xx * np.cos(band_angle) + yy * np.sin(band_angle)) * 2 * np.pi / period)[..., None]
    image += rng.normal(0, rng.uniform(3, 10), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_image(width: int, height: int, boxes: np.ndarray, shapes: Sequence[str], colours: Sequence[str],
                 styles: Sequence[str], draw_order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image with the objects drawn in ``draw_order`` (later ones occlude earlier ones)."""
    canvas = draw_background(width, height, rng)
    for k in draw_order:
        rgb = np.clip(np.asarray(COLOUR_RGB[colours[k]], np.float32) + rng.uniform(-12, 12, size=3), 0, 255)
        draw_object(canvas, boxes[k], shapes[k], rgb, styles[k], rng)
    return canvas


def write_jpeg(path: str, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"cv2 could not encode {path}")
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data.tobytes())
    os.replace(tmp, path)


def render_chunk(task: dict) -> int:
    """Render and write the images of one work chunk (runs in a worker process)."""
    cv2.setNumThreads(1)
    for i in range(len(task["image_ids"])):
        lo, hi = task["box_slices"][i]
        image_id = int(task["image_ids"][i])
        rng = np.random.default_rng([task["seed"], image_id])
        boxes = task["boxes"][lo:hi]
        image = render_image(int(task["widths"][i]), int(task["heights"][i]), boxes,
                             [SHAPES[s] for s in task["shapes"][lo:hi]], [COLOURS[c] for c in task["colours"][lo:hi]],
                             [STYLES[s] for s in task["styles"][lo:hi]], task["draw_order"][lo:hi] - lo, rng)
        write_jpeg(os.path.join(task["img_dir"], f"{image_id}.jpg"), image)
    return len(task["image_ids"])


def render_images(scenes, img_dir: str, seed: int, workers: int = 2) -> None:
    """Write ``img_dir/{image_id}.jpg`` for every image of ``scenes`` (:class:`sgg.data.synthetic.SyntheticScenes`),
    split over ``workers`` processes."""
    ann = scenes.annotations
    os.makedirs(img_dir, exist_ok=True)
    starts = np.cumsum(ann.box_counts) - ann.box_counts
    slices = np.stack([starts, starts + ann.box_counts], axis=1)
    chunks = np.array_split(np.arange(ann.num_images), max(1, workers) * 8)
    tasks = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        lo, hi = int(slices[chunk[0], 0]), int(slices[chunk[-1], 1])
        tasks.append({"seed": seed, "img_dir": img_dir, "image_ids": ann.image_ids[chunk],
                      "widths": ann.widths[chunk], "heights": ann.heights[chunk], "box_slices": slices[chunk] - lo,
                      "boxes": ann.boxes[lo:hi].astype(np.int64), "shapes": scenes.shapes[lo:hi],
                      "colours": scenes.colours[lo:hi], "styles": scenes.styles[lo:hi],
                      "draw_order": scenes.draw_order[lo:hi] - lo})
    if workers <= 1:
        for task in tasks:
            render_chunk(task)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for _ in pool.imap_unordered(render_chunk, tasks):
            pass
