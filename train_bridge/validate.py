"""Does curation help? Train the same detector on the raw and the curated set, test both on one split.

:func:`validate` trains one configuration on the raw dataset and on the curated one,
evaluates both on the same test split (the curated set's ``test`` split unless another
test set is given) with COCO metrics, and writes a comparison table (``comparison.csv``,
``comparison.md``) and a bar plot (``comparison.png``). With ``ablation=True`` it also
trains the eight CBAM/MFF/CIoU combinations on the curated set (like Table 3 of Meng et
al.) and writes ``ablation.{csv,md,png}``.

Fairness rules: class names are matched across datasets case-insensitively (``Fire`` =
``fire``); a raw image byte-identical to a test image is left out of raw training (it
would leak the test set); the raw set trains on its ``train``/``val`` splits when it
has them, else on all its images without validation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.output import Manifest, write_json_atomic
from curate.core.progress import NullProgress, Progress
from curate.formats.base import ReadOptions
from train_bridge import checkpoint as ckpt
from train_bridge.config import TrainConfig
from train_bridge.data import load
from train_bridge.device import resolve_device, use_amp
from train_bridge.engine import finish_run_dir, prepare_run_dir, train
from train_bridge.evaluate import EvalResult, evaluate, fmt_metric
from train_bridge.plots import plot_comparison
from train_bridge.predict import Predictor

TABLE_METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100")
TABLE_FIELDS = (
    "run",
    "data",
    "cbam",
    "mff",
    "iou",
    "train_images",
    *TABLE_METRICS,
    "train_seconds",
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the comparison: which data, which switches."""

    name: str
    data: str  # "raw" or "curated"
    cbam: bool
    mff: bool
    iou: str


@dataclass
class ValidationReport:
    """Rows of the comparison (and ablation) tables and where they were written."""

    out_dir: Path
    comparison: list[dict[str, Any]]
    ablation: list[dict[str, Any]] = field(default_factory=list)
    test_images: int = 0
    leaked_raw_images: int = 0


def file_digest(path: Path) -> str:
    """SHA-1 of the file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def drop_leaks(
    images: Sequence[ImageItem], test: Sequence[ImageItem]
) -> tuple[list[ImageItem], int]:
    """``images`` without those byte-identical to a test image, and how many were dropped."""
    test_digests = {file_digest(t.path) for t in test}
    kept = [img for img in images if file_digest(img.path) not in test_digests]
    return kept, len(images) - len(kept)


def ablation_specs(base_iou: str = "iou") -> list[RunSpec]:
    """The eight CBAM × MFF × CIoU combinations on the curated set (baseline first)."""
    specs = []
    for cbam, mff, ciou in itertools.product((False, True), repeat=3):
        parts = [n for n, on in (("cbam", cbam), ("mff", mff), ("ciou", ciou)) if on]
        name = "curated-" + ("-".join(parts) if parts else "base")
        specs.append(RunSpec(name, "curated", cbam, mff, "ciou" if ciou else base_iou))
    specs.sort(key=lambda s: (s.cbam + s.mff + (s.iou == "ciou"), s.name))
    return specs


def _train_split(ds: Dataset, *, name: str) -> tuple[list[ImageItem], list[ImageItem] | None]:
    """``train`` and ``val`` of a split dataset, or all images (no val) for an unsplit one."""
    groups = ds.splits()
    if "train" in groups:
        return groups["train"], groups.get("val")
    if set(groups) == {"all"}:
        return groups["all"], None
    raise UsageError(
        f"the {name} dataset has splits {sorted(groups)} but no 'train' split; "
        "split it with 'curate split' or pass an unsplit dataset"
    )


def _test_images(ds: Dataset, *, name: str) -> list[ImageItem]:
    groups = ds.splits()
    if "test" in groups:
        return groups["test"]
    if set(groups) == {"all"}:
        return groups["all"]
    raise UsageError(
        f"the {name} dataset has no 'test' split (splits: {sorted(groups)}); "
        "pass --test with a labelled test set or split the curated set with a test ratio"
    )


def write_table(rows: Sequence[dict[str, Any]], stem: Path) -> list[Path]:
    """``stem.csv`` and ``stem.md`` of ``rows`` (TABLE_FIELDS columns), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    md = ["| " + " | ".join(TABLE_FIELDS) + " |", "|" + "---|" * len(TABLE_FIELDS)]
    for r in rows:
        cells = []
        for k in TABLE_FIELDS:
            v = r.get(k, "")
            if k in TABLE_METRICS:
                cells.append(fmt_metric(float(v)))
            elif k == "train_seconds":
                cells.append(f"{float(v):.0f}")
            else:
                cells.append(str(v))
        md.append("| " + " | ".join(cells) + " |")
    paths = []
    for suffix, text in ((".csv", buf.getvalue()), (".md", "\n".join(md) + "\n")):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return paths


RunLog = Callable[[str, dict[str, Any]], None]
#: What ``validate`` stores so an interrupted run can resume: settings, and a row per run.
SETTINGS_FILE = "validate.json"
RESULT_FILE = "result.json"


def validate(
    raw: str,
    curated: str,
    out: Path,
    config: TrainConfig,
    *,
    test: str | None = None,
    ablation: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    read_options: ReadOptions | None = None,
    progress: Progress | None = None,
    on_run: RunLog | None = None,
) -> ValidationReport:
    """Train ``config`` on ``raw`` and ``curated`` (specs as ``load_dataset`` takes them) and
    compare both on one test split; see the module docstring. ``on_run(name, row)`` is
    called after each run is evaluated.
    """
    progress = progress or NullProgress()
    if resume:
        config, ablation = _resume_settings(out, raw, curated, test)
    raw_ds = load(raw, read_options)
    cur_ds = load(curated, read_options)
    test_ds = load(test, read_options) if test is not None else cur_ds
    inputs = [Path(str(d.info.get("path", ""))) for d in (raw_ds, cur_ds, test_ds)]
    if not resume:
        out = prepare_run_dir(out, overwrite=overwrite, inputs=[p for p in inputs if str(p)])
        settings = {
            "raw": raw,
            "curated": curated,
            "test": test,
            "ablation": ablation,
            "config": config.to_dict(),
        }
        write_json_atomic(out / SETTINGS_FILE, settings)

    test_images = _test_images(test_ds, name="test" if test is not None else "curated")
    cur_train, cur_val = _train_split(cur_ds, name="curated")
    raw_train, raw_val = _train_split(raw_ds, name="raw")
    raw_train, leaked = drop_leaks(raw_train, test_images)
    if raw_val:
        raw_val, leaked_val = drop_leaks(raw_val, test_images)
        leaked += leaked_val
    data = {
        "raw": (raw_ds.categories, raw_train, raw_val),
        "curated": (cur_ds.categories, cur_train, cur_val),
    }

    specs = [
        RunSpec("raw", "raw", config.cbam, config.mff, config.iou),
        RunSpec("curated", "curated", config.cbam, config.mff, config.iou),
    ]
    abl = ablation_specs() if ablation else []
    device = resolve_device(config.device)
    results: dict[tuple[str, bool, bool, str], dict[str, Any]] = {}
    manifest = Manifest(
        "train_bridge validate",
        inputs=[raw, curated, *([test] if test else [])],
        options={**config.to_dict(), "ablation": ablation},
    )

    def run(spec: RunSpec) -> dict[str, Any]:
        key = (spec.data, spec.cbam, spec.mff, spec.iou)
        if key in results:
            return {**results[key], "run": spec.name}
        categories, train_images, val_images = data[spec.data]
        cfg = config.replace(cbam=spec.cbam, mff=spec.mff, iou=spec.iou)
        run_dir = out / "runs" / spec.name
        done = run_dir / RESULT_FILE
        if resume and done.is_file():
            # Finished and tested before the interruption: reuse its row.
            row = json.loads(done.read_text(encoding="utf-8"))
            results[key] = row
            if on_run is not None:
                on_run(spec.name, row)
            return row
        run_dir.mkdir(parents=True, exist_ok=True)
        trained = train(
            cfg,
            train_images,
            val_images,
            categories,
            run_dir,
            progress=progress,
            resume=resume and (run_dir / "last.pt").is_file(),
            manifest=Manifest(
                f"train_bridge train ({spec.name})", inputs=[raw if spec.data == "raw" else curated]
            ),
        )
        metrics, preds = _test(trained.best, test_images, test_ds.categories, device, cfg, progress)
        write_json_atomic(out / "test_predictions" / f"{spec.name}.json", preds, indent=None)
        row = {
            "run": spec.name,
            "data": spec.data,
            "cbam": spec.cbam,
            "mff": spec.mff,
            "iou": spec.iou,
            "train_images": len(train_images),
            **{k: metrics[k] for k in TABLE_METRICS},
            "train_seconds": trained.seconds,
            "per_class": metrics.per_class,
        }
        write_json_atomic(done, row)
        results[key] = row
        if on_run is not None:
            on_run(spec.name, row)
        return row

    comparison = [run(s) for s in specs]
    ablation_rows = [run(s) for s in abl]
    outputs = write_table(comparison, out / "comparison")
    outputs.append(plot_comparison(comparison, out / "comparison.png"))
    if ablation_rows:
        outputs += write_table(ablation_rows, out / "ablation")
        outputs.append(plot_comparison(ablation_rows, out / "ablation.png"))
    manifest.counts = {
        "raw_train_images": len(raw_train),
        "raw_val_images": len(raw_val or ()),
        "curated_train_images": len(cur_train),
        "curated_val_images": len(cur_val or ()),
        "test_images": len(test_images),
        "raw_images_dropped_as_test_duplicates": leaked,
        "runs": len(results),
    }
    if leaked:
        manifest.drop(
            "raw training images", "byte-identical to a test image (test leakage)", count=leaked
        )
    manifest.outputs = [str(p.relative_to(out)) for p in outputs] + ["runs/", "test_predictions/"]
    manifest.extra["comparison"] = comparison
    manifest.extra["ablation"] = ablation_rows
    manifest.write(out)
    finish_run_dir(out)
    return ValidationReport(out, comparison, ablation_rows, len(test_images), leaked)


def _resume_settings(
    out: Path, raw: str, curated: str, test: str | None
) -> tuple[TrainConfig, bool]:
    """The configuration and ablation switch stored by the interrupted run in ``out``.

    The data must be the same as then; finished runs are reused, unfinished ones resume
    from their ``last.pt``.
    """
    path = out / SETTINGS_FILE
    if not path.is_file():
        raise UsageError(
            f"cannot resume: '{path}' does not exist (--resume needs the folder of an "
            "interrupted `train_bridge validate` run)"
        )
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(stored["config"])
        ablation = bool(stored["ablation"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot resume: '{path}' is not readable ({exc})") from exc
    given = {"raw": raw, "curated": curated, "test": test}
    changed = [k for k, v in given.items() if stored.get(k) != v]
    if changed:
        was = ", ".join(f"{k}={stored.get(k)!r}" for k in changed)
        raise UsageError(
            f"cannot resume: the run in '{out}' used other data ({was}); pass the same "
            "RAW, CURATED and --test as the interrupted run"
        )
    return config, ablation


def _test(
    weights: Path,
    images: Sequence[ImageItem],
    categories: Sequence[Category],
    device: Any,
    cfg: TrainConfig,
    progress: Progress,
) -> tuple[EvalResult, list[dict[str, Any]]]:
    """Evaluate checkpoint ``weights`` on ``images``, classes matched to ``categories`` by name."""
    loaded = ckpt.load_model(weights, device)
    category_of = loaded.classes.map_to(categories)
    if not category_of:
        raise UsageError(
            f"none of the model's classes {list(loaded.classes.names)} is a class of the test set "
            f"{[c.name for c in categories]}; class names must match (case-insensitively)"
        )
    predictor = Predictor(
        loaded.model,
        loaded.imgsz,
        device,
        conf_thr=cfg.conf_thr,
        nms_thr=cfg.nms_thr,
        batch=cfg.batch,
        amp=use_amp(device, cfg.amp),
    )
    return evaluate(predictor, images, categories, category_of, progress)
