"""Synthetic fire/smoke data in the real source layouts, for the demo and for tests.

Nothing here is used by the curation code itself. Images are textured landscapes with
drawn flames (orange-yellow blobs with a hot core) and smoke (soft grey plumes), many
of them small, written in the three layouts sodkit reads:

- ``bowfire/dataset/img/fire###.png`` + ``gt/fire###_gt.png`` masks, ``not_fire###.png``;
- ``video/<clip>.avi`` + a FURG-style OpenCV FileStorage XML per annotated clip, and one
  clip without annotations (VisiFire-style);
- ``kaggle/`` a Roboflow-style YOLO export (``train/valid/test``, ``data.yaml`` with
  ``Fire``, ``default``, ``smoke``) of video frames named ``<clip>_mp4-<n>_jpg.rf.<hash>.jpg``,
  split at random so frames of one clip sit in two splits, and an exact duplicate that
  leaks from train into test, as real exports do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Box = tuple[float, float, float, float]


def _noise(h: int, w: int, sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Gaussian noise blurred at ``sigma`` px, scaled to unit standard deviation."""
    n = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


def background(h: int, w: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """A sky-over-ground landscape: ``(h, w, 3)`` RGB uint8.

    It has structure at every scale a detector or a deduplicator looks at: clouds, a ridge
    line, fields with mid-scale texture and scattered bushes. (Smooth gradients would make
    unrelated pictures look alike to SSIM, which the real photos these stand for do not.)
    """
    scale = min(h, w) / 240
    horizon = h * rng.uniform(0.3, 0.55)
    # Ridge: a smoothed random walk around the horizon.
    walk = np.cumsum(rng.normal(0, 2.5 * scale, w))
    ridge = horizon + cv2.GaussianBlur((walk - walk.mean())[None, :], (0, 0), 6 * scale)[0]
    rows = np.arange(h, dtype=np.float32)[:, None]
    ground_mask = rows >= ridge[None, :]
    t = np.clip(rows / max(float(ridge.max()), 1.0), 0, 1)[..., None]
    sky_top = np.array([90, 140, 200]) * rng.uniform(0.7, 1.1)
    sky_bot = np.array([170, 195, 220]) * rng.uniform(0.8, 1.1)
    img = (sky_top * (1 - t) + sky_bot * t).astype(np.float32) * np.ones((1, w, 1), np.float32)
    clouds = np.clip(_noise(h, w, 10 * scale, rng) + 0.5 * _noise(h, w, 3 * scale, rng), 0, None)
    img += clouds[..., None] * np.float32(rng.uniform(25, 45))
    ground = np.array([70, 95, 50]) * rng.uniform(0.6, 1.3, size=3)
    fields = _noise(h, w, 12 * scale, rng) * 15 + _noise(h, w, 2.5 * scale, rng) * 9
    soil = ground[None, None, :] * (1 + 0.004 * fields[..., None]) + fields[..., None]
    img = np.where(ground_mask[..., None], soil.astype(np.float32), img)
    # Scattered bushes and rocks: dark blobs on the ground.
    for _ in range(int(rng.integers(6, 16))):
        x = int(rng.integers(0, w))
        y = int(rng.uniform(max(float(ridge[min(x, w - 1)]), 0), h))
        r = max(2, int(rng.uniform(2, 9) * scale))
        cv2.circle(img, (x, y), r, tuple(float(v) for v in ground * rng.uniform(0.3, 0.6)), -1)
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_flame(
    img: NDArray[np.uint8], cx: float, cy: float, size: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Draw a flame centred at ``(cx, cy)`` about ``size`` px tall; return its mask."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    n = int(rng.integers(2, 5))
    for _ in range(n):
        ox = rng.normal(0, size * 0.15)
        oy = rng.normal(0, size * 0.1)
        ax = max(1, int(size * rng.uniform(0.2, 0.35)))
        ay = max(1, int(size * rng.uniform(0.35, 0.55)))
        cv2.ellipse(
            mask,
            (int(cx + ox), int(cy + oy)),
            (ax, ay),
            float(rng.uniform(-20, 20)),
            0,
            360,
            255,
            -1,
        )
    m = mask > 0
    if not m.any():
        return m
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    heat = dist / max(dist.max(), 1e-6)
    color = np.stack([np.full_like(heat, 255), 120 + 135 * heat, 30 + 150 * heat**2], axis=-1)
    img[m] = np.clip(color[m] + rng.normal(0, 8, (int(m.sum()), 3)), 0, 255).astype(np.uint8)
    return m


def draw_smoke(
    img: NDArray[np.uint8], cx: float, cy: float, size: float, rng: np.random.Generator
) -> Box:
    """Blend a soft grey plume into ``img``; return its visible box (alpha > 0.25)."""
    h, w = img.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 6))):
        ox, oy = rng.normal(0, size * 0.2), rng.normal(-size * 0.2, size * 0.15)
        r = max(2, int(size * rng.uniform(0.2, 0.4)))
        cv2.circle(alpha, (int(cx + ox), int(cy + oy)), r, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, size * 0.08)) * rng.uniform(0.6, 0.85)
    grey = rng.uniform(150, 210)
    img[:] = np.clip(img * (1 - alpha[:, :, None]) + grey * alpha[:, :, None], 0, 255).astype(
        np.uint8
    )
    ys, xs = np.nonzero(alpha > 0.25)
    if len(xs) == 0:
        return (cx, cy, cx + 1, cy + 1)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def mask_box(m: NDArray[np.bool_]) -> Box:
    ys, xs = np.nonzero(m)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


@dataclass
class Scene:
    """One generated image with its objects: ``(class name, box, mask or None)``."""

    image: NDArray[np.uint8]
    objects: list[tuple[str, Box, NDArray[np.bool_] | None]]


def make_scene(
    h: int,
    w: int,
    rng: np.random.Generator,
    *,
    fires: int = 2,
    smokes: int = 1,
    min_size: float = 8,
    max_size: float = 48,
) -> Scene:
    """A landscape with ``fires`` flames and ``smokes`` plumes (most small: log-uniform sizes)."""
    img = background(h, w, rng)
    objects: list[tuple[str, Box, NDArray[np.bool_] | None]] = []
    for _ in range(smokes):
        size = float(np.exp(rng.uniform(np.log(min_size * 1.5), np.log(max_size * 1.5))))
        cx, cy = rng.uniform(size, w - size), rng.uniform(size, h * 0.7)
        objects.append(("smoke", draw_smoke(img, cx, cy, size, rng), None))
    for _ in range(fires):
        size = float(np.exp(rng.uniform(np.log(min_size), np.log(max_size))))
        cx, cy = rng.uniform(size, w - size), rng.uniform(h * 0.4, h - size)
        m = draw_flame(img, cx, cy, size, rng)
        if m.any():
            objects.append(("fire", mask_box(m), m))
    return Scene(img, objects)


def _write_rgb(path: Path, img: NDArray[np.uint8], quality: int = 92) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"cannot write {path}")


def make_bowfire(
    root: Path, rng: np.random.Generator, *, fire: int = 12, not_fire: int = 6
) -> Path:
    """BoWFire layout under ``root``: fire images with ``_gt`` masks, negatives, patches."""
    ds = root / "dataset"
    lines = []
    for i in range(fire):
        h, w = int(rng.integers(200, 320)), int(rng.integers(280, 420))
        scene = make_scene(h, w, rng, fires=int(rng.integers(1, 4)), smokes=0)
        mask = np.zeros((h, w), np.uint8)
        for _, _, m in scene.objects:
            if m is not None:
                mask[m] = 255
        _write_rgb(ds / "img" / f"fire{i:03d}.png", scene.image)
        (ds / "gt").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(ds / "gt" / f"fire{i:03d}_gt.png"), mask)
        lines.append(f"img/fire{i:03d}.png,gt/fire{i:03d}_gt.png")
    for i in range(not_fire):
        _write_rgb(ds / "img" / f"not_fire{i:03d}.png", background(240, 320, rng))
    (ds / "dataset.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for i in range(4):
        _write_rgb(
            root / "train" / f"fire{i:03d}.png",
            make_scene(50, 50, rng, fires=1, smokes=0, min_size=10, max_size=20).image,
        )
    return root


def make_video(root: Path, rng: np.random.Generator, *, frames: int = 24, clips: int = 2) -> Path:
    """Clips with a flickering flame and FURG-style XML; plus one unannotated smoke clip."""
    root.mkdir(parents=True, exist_ok=True)
    w, h = 320, 240
    for c in range(clips):
        base = background(h, w, rng)
        fourcc = cv2.VideoWriter_fourcc(*"MJPG")
        name = f"fire_clip{c + 1}"
        writer = cv2.VideoWriter(str(root / f"{name}.avi"), fourcc, 10.0, (w, h))
        if not writer.isOpened():
            raise OSError("OpenCV cannot write MJPG .avi here")
        cx, cy, size = rng.uniform(60, 260), rng.uniform(120, 200), rng.uniform(14, 30)
        entries = []
        for f in range(frames):
            frame = base.copy()
            m = draw_flame(
                frame,
                cx + rng.normal(0, 1.5),
                cy + rng.normal(0, 1.0),
                size * rng.uniform(0.85, 1.15),
                rng,
            )
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            x1, y1, x2, y2 = mask_box(m)
            rect = f"{int(x1)} {int(y1)} {int(x2 - x1)} {int(y2 - y1)}"
            entries.append(
                f"  <_><frameNumber>{f}</frameNumber>\n    <annotations>\n      <_>\n        {rect}</_></annotations></_>"
            )
        writer.release()
        xml = (
            '<?xml version="1.0"?>\n<opencv_storage>\n'
            f"<fileName>{name}.avi</fileName>\n<frameRate>10</frameRate>\n<shapeType>r</shapeType>\n"
            f"<frameWidth>{w}</frameWidth>\n<frameHeight>{h}</frameHeight>\n<frames>\n"
            + "\n".join(entries)
            + "</frames>\n</opencv_storage>\n"
        )
        (root / f"{name}.xml").write_text(xml, encoding="utf-8")
    base = background(h, w, rng)
    writer = cv2.VideoWriter(
        str(root / "forest_smoke1.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h)
    )
    for _ in range(frames // 2):
        frame = base.copy()
        draw_smoke(frame, 160 + rng.normal(0, 2), 90, 40, rng)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return root


def make_kaggle(
    root: Path, rng: np.random.Generator, *, per_split: tuple[int, int, int] = (24, 4, 4)
) -> Path:
    """A Roboflow-style YOLO export of video frames, a junk class and a leaked duplicate.

    As in real exports, the frames are consecutive frames of a few clips (4 each: one
    background, the fire flickering and the smoke drifting) and were split at random, so
    most clips have frames in two splits: near-duplicates that leak (``curate leaks``).
    """
    cls = {"fire": 0, "smoke": 2}
    total = sum(per_split)
    splits = np.repeat(np.array(["train", "valid", "test"]), per_split)
    rng.shuffle(splits)
    first_train: tuple[Path, str] | None = None
    clip: tuple[NDArray[np.uint8], list[tuple[str, float, float, float]]] | None = None
    for i in range(total):
        if i % 4 == 0:
            base = background(320, 320, rng)
            smokes = int(rng.integers(0, 2))
            fires = int(rng.integers(0 if smokes else 1, 3))
            objs = [
                ("smoke", rng.uniform(40, 280), rng.uniform(40, 200), rng.uniform(24, 60))
                for _ in range(smokes)
            ] + [
                ("fire", rng.uniform(30, 290), rng.uniform(140, 290), rng.uniform(8, 40))
                for _ in range(fires)
            ]
            clip = (base, objs)
        assert clip is not None
        # Sensor noise: no two frames of a clip are the same file.
        noise = rng.normal(0, 2, clip[0].shape)
        image = np.clip(clip[0] + noise, 0, 255).astype(np.uint8)
        objects: list[tuple[str, Box]] = []
        for name, cx, cy, size in clip[1]:
            jx, jy, js = rng.normal(0, 1.5), rng.normal(0, 1.0), size * rng.uniform(0.85, 1.15)
            if name == "smoke":
                objects.append((name, draw_smoke(image, cx + 2 * (i % 4) + jx, cy + jy, js, rng)))
            else:
                m = draw_flame(image, cx + jx, cy + jy, js, rng)
                if m.any():
                    objects.append((name, mask_box(m)))
        split = str(splits[i])
        digest = hashlib.sha1(image.tobytes()[:4096] + bytes([i])).hexdigest()
        stem = f"clip{i // 4}_mp4-{i % 4}_jpg.rf.{digest}"
        _write_rgb(root / split / "images" / f"{stem}.jpg", image)
        lines = []
        for name, (x1, y1, x2, y2) in objects:
            lines.append(
                f"{cls[name]} {(x1 + x2) / 640:.6f} {(y1 + y2) / 640:.6f} {(x2 - x1) / 320:.6f} {(y2 - y1) / 320:.6f}"
            )
        if rng.uniform() < 0.15:
            lines.append("1 0.5 0.5 0.9 0.9")  # Roboflow's junk 'default' class
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        (root / split / "labels" / f"{stem}.txt").write_text(
            "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8"
        )
        if first_train is None and split == "train":
            first_train = (root / split / "images" / f"{stem}.jpg", "\n".join(lines))
    if first_train is not None:  # the same frame exported again into test: a leak
        img_path, labels = first_train
        # A re-export names a frame as before, with another hash.
        dup = img_path.stem.split(".rf.")[0] + ".rf." + "0" * 40
        (root / "test" / "images" / f"{dup}.jpg").write_bytes(img_path.read_bytes())
        (root / "test" / "labels" / f"{dup}.txt").write_text(labels + "\n", encoding="utf-8")
    (root / "data.yaml").write_text(
        "names:\n- Fire\n- default\n- smoke\nnc: 3\n"
        "roboflow:\n  license: CC BY 4.0\n  project: synthetic-fire\n"
        "test: ../test/images\ntrain: synthetic-1/train/images\nval: synthetic-1/valid/images\n",
        encoding="utf-8",
    )
    (root / "README.roboflow.txt").write_text(
        "synthetic export made by sodkit's demo\n", encoding="utf-8"
    )
    return root


def make_demo_sources(root: Path, seed: int = 0) -> dict[str, Path]:
    """All three layouts under ``root``; returns ``{layout: path}``."""
    rng = np.random.default_rng(seed)
    return {
        "bowfire": make_bowfire(root / "bowfire", rng),
        "video": make_video(root / "video", rng),
        "kaggle": make_kaggle(root / "kaggle", rng),
    }
