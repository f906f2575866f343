"""``curate dedupe`` and ``curate leaks``: near-duplicates by exact copies, SSIM, histograms."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from curate.commands.common import (
    WRITTEN,
    DataArg,
    DryRunOpt,
    Link,
    LinkOpt,
    MaxPixelsOpt,
    OnErrorOpt,
    OutFormat,
    OverwriteOpt,
    QuietOpt,
    SchedulerOpt,
    WorkersOpt,
    cli_errors,
    console,
    err_console,
    interrupted_message,
    print_note,
    print_skipped,
    read_options,
    report_skipped,
    wrote,
)
from curate.core.dataset import Dataset
from curate.core.errors import ItemError, OnError, SodkitError, UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import check_file_output, check_output
from curate.core.parallel import make_executor
from curate.dedupe import (
    DedupeOptions,
    Runtime,
    SignatureCache,
    build_report,
    default_cache_dir,
    find_duplicates,
    find_leaks,
    sweep,
    write_deduped,
    write_report,
)
from curate.dedupe.pipeline import (
    SWEEP_THRESHOLDS,
    DedupePlan,
    against_counts,
    class_differences,
    merge_counts,
    same_files,
)
from curate.dedupe.report import REPORT_JSON, images_left_out
from curate.io import load_dataset, parse_spec

#: How the summary names the candidate search (``stats["index_method"]``).
_SEARCH_NAMES = {"exact": "complete radius search", "lsh": "LSH radius search"}


class Keep(str, Enum):
    most_annotations = "most-annotations"
    largest = "largest"
    sharpest = "sharpest"
    first = "first"


class ClusterMode(str, Enum):
    greedy = "greedy"
    connected = "connected"


class Combine(str, Enum):
    all = "all"
    any = "any"


class Roi(str, Enum):
    none = "none"
    objects = "objects"


class Refine(str, Enum):
    none = "none"
    auto = "auto"


class IndexChoice(str, Enum):
    auto = "auto"
    exact = "exact"
    lsh = "lsh"


SsimOpt = Annotated[
    float | None,
    typer.Option(
        "--ssim",
        help="Duplicates: SSIM above this (Wang et al., 11x11 Gaussian, at the working size). Default 0.85 when no method is given.",
    ),
]
HistOpt = Annotated[
    float | None,
    typer.Option("--hist", help="Duplicates: HSV 16x4x4 histogram intersection above this."),
]
ExactOpt = Annotated[
    bool, typer.Option("--exact", help="Only exact copies: same bytes or same decoded pixels.")
]
CombineOpt = Annotated[
    Combine, typer.Option("--combine", help="With --ssim and --hist: both must pass, or either.")
]
SizeOpt = Annotated[int, typer.Option("--size", help="SSIM working resolution: longer side in px.")]
IndexOpt = Annotated[
    IndexChoice,
    typer.Option("--index", help="Candidate search: exact tiles, LSH, or auto (by size)."),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Signature cache folder (default $SODKIT_CACHE_DIR/signatures or ~/.cache/sodkit/signatures).",
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the cache.")]
RoiOpt = Annotated[
    Roi, typer.Option("--roi", help="objects: labelled boxes and their regions must match too.")
]
RoiIouOpt = Annotated[
    float, typer.Option("--roi-iou", help="--roi objects: IoU for boxes to match one-to-one.")
]
RoiSsimOpt = Annotated[
    float | None,
    typer.Option("--roi-ssim", help="--roi objects: region SSIM threshold (default: --ssim)."),
]


#: The static-camera warning (5 % or fewer survive) needs this many images to mean anything
#: (QA round 8: it warned about 2 still photos of which 1 survived).
_FEW_SURVIVE_MIN = 20


def register(app: typer.Typer) -> None:
    app.command("dedupe")(dedupe_cmd)
    app.command("leaks")(leaks_cmd)


def _options(**kw: Any) -> DedupeOptions:
    return DedupeOptions(**kw).resolved()


def _runtime(
    workers: int | None,
    scheduler: str | None,
    on_error: OnError,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
    max_pixels: int,
) -> tuple[Runtime, Any]:
    opts = read_options(on_error, max_pixels=max_pixels, quiet=quiet)
    cache = None if no_cache else SignatureCache(cache_dir or default_cache_dir())
    executor = make_executor(workers, scheduler)
    return Runtime(executor=executor, progress=opts.progress, policy=opts.policy, cache=cache), opts


@cli_errors
def dedupe_cmd(
    data: DataArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (not needed with --dry-run or --sweep)."),
    ] = None,
    ssim: SsimOpt = None,
    hist: HistOpt = None,
    exact: ExactOpt = False,
    combine: CombineOpt = Combine.all,
    cluster: Annotated[
        ClusterMode,
        typer.Option(
            "--cluster",
            help="greedy: drop only images similar to a kept one; connected: union-find components.",
        ),
    ] = ClusterMode.greedy,
    keep: Annotated[
        Keep,
        typer.Option(
            "--keep",
            help="Which image of a cluster survives: most annotations, largest (pixels), "
            "sharpest (Laplacian variance over image variance at 512 px, within 10 % a tie; "
            "decodes once more), or first.",
        ),
    ] = Keep.most_annotations,
    merge_labels: Annotated[
        bool,
        typer.Option(
            "--merge-labels",
            help="Carry boxes only a dropped duplicate has to its survivor (scaled).",
        ),
    ] = False,
    roi: RoiOpt = Roi.none,
    roi_iou: RoiIouOpt = 0.5,
    roi_ssim: RoiSsimOpt = None,
    frame_window: Annotated[
        int | None,
        typer.Option(
            "--frame-window",
            min=1,
            help="Compare two frames of one clip (video sources, Roboflow frame exports) only "
            "when at most N frames apart; other pairs as usual. Bounds long static-camera "
            "clips, where every frame resembles every other.",
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="A clean reference dataset: drop new images that duplicate it (it is never changed).",
        ),
    ] = None,
    class_map: Annotated[
        Path | None,
        typer.Option(
            "--class-map",
            help="YAML/JSON with classes and synonyms (as for merge): class names to compare as "
            "one (--roi objects, label conflicts, --merge-labels); the output keeps its own classes.",
        ),
    ] = None,
    do_sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Print images kept per threshold (0.80-0.98) and cluster mode; write nothing.",
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the cluster report (JSON, plus CSV beside it) here; allowed with --dry-run.",
        ),
    ] = None,
    fmt: Annotated[
        OutFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format (default: the input's if coco/yolo/images, else coco).",
        ),
    ] = None,
    link: LinkOpt = Link.hardlink,
    size: SizeOpt = 128,
    refine: Annotated[
        Refine,
        typer.Option(
            "--refine",
            help="auto: re-score pairs whose working-resolution SSIM is in [T-0.15, T+0.07] at "
            "full resolution, so decisions agree with full-resolution SSIM (slower).",
        ),
    ] = Refine.none,
    refine_band: Annotated[
        float,
        typer.Option(
            "--refine-band",
            help="Re-score pairs within this SSIM band of the threshold at full resolution (0 = off).",
        ),
    ] = 0.0,
    index: IndexOpt = IndexChoice.auto,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Drop near-duplicate images; write the rest, a manifest and a cluster report."""
    o = _options(
        ssim=ssim,
        hist=hist,
        exact_only=exact,
        combine=combine.value,
        cluster=cluster.value,
        keep=keep.value,
        roi=roi.value,
        roi_iou=roi_iou,
        roi_ssim=roi_ssim,
        frame_window=frame_window,
        merge_labels=merge_labels,
        size=size,
        refine=refine.value,
        refine_band=refine_band,
        index=index.value,
        max_pixels=max_pixels,
        class_map=_class_pairs(class_map) if class_map else (),
    )
    writes = not (dry_run or do_sweep)
    if writes and out is None:
        raise UsageError("--out DIR is required (or pass --dry-run / --sweep to write nothing)")
    _note_inert_options(o, against is not None, sweep=do_sweep, report=report is not None)
    inputs = [parse_spec(data)[1]] + ([parse_spec(against)[1]] if against else [])
    if against and inputs[0].resolve() == inputs[1].resolve():
        raise UsageError(
            f"--against '{against}' is the dataset itself: every image would be dropped as a "
            "copy of itself; give the clean reference set"
        )
    # What would stop the real run: said at once and again in a dry run's last line (QA
    # round 11: the first note sat above a long table).
    stops: list[str] = []
    if writes:
        check_output(out, overwrite=overwrite, inputs=inputs)  # type: ignore[arg-type]
    elif out is not None:
        try:
            check_output(out, overwrite=overwrite, inputs=inputs)
        except SodkitError as exc:
            stops.append(_would_stop(str(exc)))
    if report is not None:
        # The output folder gets its own report; one inside it would make it non-empty.
        _check_report_path(report, overwrite, inputs, out=out if writes else None)
    runtime, opts = _runtime(workers, scheduler, on_error, quiet, cache_dir, no_cache, max_pixels)
    # The cache's last writes end with the pass, not at interpreter exit.
    with runtime.executor, runtime.cache or nullcontext():  # type: ignore[union-attr]
        ds = load_dataset(data, opts)
        not_read = images_left_out(opts.policy.skipped)  # before the reference adds its own
        read_before = len(opts.policy.skipped)
        # The reference's notes say whose they are (the same policy collects its bad items).
        ref_opts = replace(opts, notify=lambda note: print_note(f"--against: {note}"))
        try:
            ref = load_dataset(against, ref_opts) if against else None
        except ItemError as err:  # --on-error fail: say the bad item is the reference's
            raise err.of_reference() from None
        for rec in opts.policy.skipped[read_before:]:
            rec["against"] = True  # the reference's own bad items
        ref_not_read = images_left_out(opts.policy.skipped[read_before:])
        if ref is not None:
            _check_against(ds, ref, against, o)  # type: ignore[arg-type]
        if o.roi == "objects":
            _check_roi(ds, ref)
        if fmt is not None and not do_sweep:
            stops += _check_format(ds, fmt.value, writes)
        if do_sweep:
            rows = sweep(ds, o, SWEEP_THRESHOLDS, reference=ref, runtime=runtime)
            _print_sweep(rows, o, len(ds))
            if o.refines:
                err_console.print(
                    f"[yellow]note:[/] --sweep counts decisions at {o.size} px; "
                    "--refine/--refine-band are not applied to it"
                )
            print_skipped(opts.policy, listed_in=None)
            if ref is not None and not len(ref):
                err_console.print(
                    f"[yellow]warning:[/] none of the reference's {ref_not_read} images could be "
                    "read: nothing was compared against the reference"
                )
            return
        plan = find_duplicates(ds, o, reference=ref, runtime=runtime)
    # Once: the table, the output's, --report.
    built = build_report(plan, not_read=not_read, reference_not_read=ref_not_read)
    _print_plan(plan, built, scheduler)
    if o.merge_labels and not writes:
        console.print(_merge_line(merge_counts(plan.output_dataset()[1]), written=False))
    # Every image skipped: nothing to write, as convert, merge and split say (QA round 10:
    # dedupe wrote an empty dataset and exited 0). A dry run's --report lists them.
    report_skipped(
        opts.policy,
        built["counts"]["compared"],
        dry_run=False,
        listed_in="manifest.json" if writes else (str(report) if report is not None else None),
        what="write" if writes else "compare",
    )
    if report is not None and not writes:
        _save_report(built, report)
    if not writes:
        console.print(
            f"[yellow]dry run:[/] would keep {len(plan.kept_new())} and drop {len(plan.dropped())} images; nothing written"
            + "".join(f"; [bold]{escape(why)}[/]" for why in stops)
        )
        return
    # A dataset is written back in its own form: COCO, YOLO (a Kaggle/Roboflow YOLO export
    # too), an image tree as an image tree. The rest (VOC, video...) as COCO, which keeps
    # what VOC cannot hold (original_split, sources, groups).
    layout = ds.info.get("export_form") or ds.info.get("layout")
    out_fmt = (
        fmt.value
        if fmt is not None
        else (layout if layout in ("coco", "yolo", "images") else "coco")
    )
    counts = write_deduped(
        plan,
        out,
        fmt=out_fmt,
        overwrite=overwrite,
        link=link.value,  # type: ignore[arg-type]
        inputs=inputs,
        progress=runtime.progress,
        notify=print_note,
        report=built,
    )
    wrote(out)  # type: ignore[arg-type]
    try:
        _print_written(counts, out, out_fmt, ds.info)  # type: ignore[arg-type]
        if report is not None:  # after the output: an interrupt never leaves a report alone
            _save_report(built, report)
    except KeyboardInterrupt:
        if report is not None and _report_complete(report) and str(report) not in WRITTEN:
            wrote(report)  # the interrupt came after the report's last file was in place
        copy = ""
        if report is not None and str(report) not in WRITTEN:
            copy = f"; the --report copy was not (the same report is {Path(out) / REPORT_JSON})"  # type: ignore[arg-type]
        err_console.print(f"[yellow]{escape(interrupted_message() + copy)}[/]")
        raise typer.Exit(130) from None


def _report_complete(report: Path) -> bool:
    """Both files of a --report are in place (each is renamed into place whole)."""
    return Path(report).is_file() and Path(report).with_suffix(".csv").is_file()


def _few_survive_by_similarity(rep: dict[str, Any]) -> bool:
    """Whether 5 % or fewer of the images survive once exact copies are set aside (the
    static-camera warning: QA round 9 had it fire on 20 byte copies, where SSIM played no
    part), among at least :data:`_FEW_SURVIVE_MIN`."""
    c = rep["counts"]
    copies = sum(
        str(m.get("reason", "")).startswith("exact")
        for cl in rep["clusters"]
        for m in cl["members"]
        if m.get("role") == "dropped"
    )
    images = c["images"] - copies
    return images >= _FEW_SURVIVE_MIN and c["kept"] <= images // 20 and c["dropped"] > copies


def _check_roi(ds: Dataset, ref: Dataset | None) -> None:
    """``--roi objects`` compares labelled boxes: refuse it where no image has any (QA
    round 14: a clip without annotations kept 1 of 899 frames, each drop reasoned
    'ssim+roi', and the warning advised --roi objects), and note how many have none."""
    images = [*ds.images, *(ref.images if ref is not None else [])]
    bare = sum(1 for img in images if not img.annotations)
    if images and bare == len(images):
        raise UsageError(
            f"--roi objects compares labelled boxes, and none of the {len(images)} images has "
            "any: it would decide by whole-image similarity alone. Read the labels with the "
            "images (e.g. a FURG-style XML beside a clip), or leave --roi out and choose a "
            "threshold with --sweep"
        )
    if bare:
        print_note(
            f"{bare} of {len(images)} images have no boxes: two of them are compared as "
            "whole images only (--roi objects needs boxes to tell them apart)"
        )


def _merge_line(m: dict[str, int], *, written: bool) -> str:
    """What ``--merge-labels`` did (or would do) with the boxes of dropped duplicates."""
    if not any(m.get(k) for k in ("carried", "left", "left_outside", "left_class")):
        return (
            "--merge-labels: no box to carry (every box of a dropped duplicate is on its survivor)"
        )
    carry = "carried" if written else "would carry"
    text = f"--merge-labels {carry} {m['carried']} box(es) to {m['survivors']} survivor(s)"
    left = []
    if m["left"]:
        left.append(f"{m['left']} that overlap a box of their class there")
    if m.get("left_outside"):
        left.append(f"{m['left_outside']} outside the survivor's view")
    if m.get("left_class"):
        left.append(f"{m['left_class']} the survivor labels with another class (resolve them)")
    if left:
        text += f", {'leaving' if written else 'and would leave'} " + " and ".join(left)
    return text + ("; see manifest.json" if written else "")


def _would_stop(problem: str) -> str:
    """Note now that the real run would stop on ``problem``; the dry run's last line repeats
    the returned text."""
    print_note(f"the run without --dry-run would stop here: {problem}")
    return f"the run without --dry-run would stop: {problem}"


def _check_format(ds: Dataset, out_fmt: str, writes: bool) -> list[str]:
    """Refuse, before any work, a ``--format`` that cannot hold the dataset (the writer
    would say so only once everything is computed; QA round 10); a dry run notes it and
    gets the note back for its last line."""
    labelled = sum(1 for img in ds.images if img.annotations)
    if out_fmt != "images" or not labelled:
        return []
    problem = UsageError(
        f"--format images holds no labels, and {labelled} image(s) have annotations; "
        "write --format coco or yolo instead"
    )
    if writes:
        raise problem
    return [_would_stop(str(problem))]


def _print_written(counts: dict[str, Any], out: Path, out_fmt: str, info: dict[str, Any]) -> None:
    if "merge_labels" in counts:
        console.print(_merge_line(counts["merge_labels"], written=True))
    unwritten = counts["kept"] - counts["written_images"]  # YOLO: images tagged unlabeled
    if unwritten:
        console.print(
            f"[yellow]left out {unwritten} kept image(s) {out_fmt.upper()} cannot hold "
            "(see manifest.json)[/]"
        )
    if counts["dropped_annotations"]:
        console.print(
            f"[yellow]left out {counts['dropped_annotations']} annotation(s) "
            '(manifest.json lists them under dropped, level "annotation")[/]'
        )
    console.print(
        f"wrote {out_fmt.upper()} dataset ({counts['written_images']} images) to [bold]{escape(str(out))}[/]; "
        "dropped images are in manifest.json, clusters in dedupe_report.json/.csv"
    )
    if info.get("export_form"):  # a Kaggle/Roboflow export read as it is
        console.print(
            "[yellow]note:[/] the output is not split: the export's train/valid/test is kept "
            "as each image's original_split; run `curate split` for a leakage-free split"
        )


def _class_pairs(path: Path) -> tuple[tuple[str, str], ...]:
    """``--class-map FILE`` as (name, class) pairs for :class:`DedupeOptions`."""
    from curate.merge import ClassMap

    cmap = ClassMap.from_file(path)
    if cmap.drop:
        raise UsageError(
            f"--class-map {path}: dedupe compares classes and never drops labels; remove "
            f"'drop' ({', '.join(sorted(cmap.drop))}) or use it with `curate merge`"
        )
    return tuple((c, c) for c in cmap.classes) + tuple(sorted(cmap.synonyms.items()))


def _check_against(ds: Any, ref: Any, against: str, o: DedupeOptions) -> None:
    """The reference is not the dataset itself (however spelled); say where classes differ."""
    same = same_files(ds, ref)
    if same and same == len(ds.images):
        raise UsageError(
            f"--against '{against}' holds the very files of the dataset: every image would be "
            "dropped as a copy of itself; give the clean reference set"
        )
    if same:
        print_note(
            f"{same} of the {len(ds.images)} images are the very files of --against images: "
            "they will be dropped as copies of themselves"
        )
    only_ref, only_new = class_differences(ds, ref, o)
    if only_ref and only_new:
        print_note(
            f"the classes differ: only --against has {', '.join(only_ref)}; only the dataset "
            f"has {', '.join(only_new)}. Classes are compared by name (case and spaces "
            "ignored), so such boxes never match"
            + (
                " (--roi objects keeps such near-duplicates; exact copies are dropped whatever "
                "their boxes)"
                if o.roi == "objects"
                else ""
            )
            + " and show as label conflicts; pass --class-map to name the same classes"
        )


def _save_report(rep: dict[str, Any], path: Path) -> None:
    paths = write_report(rep, path)
    wrote(path)
    console.print(f"report: {escape(str(paths[0]))} and {escape(str(paths[1]))}")


def _print_plan(plan: DedupePlan, rep: dict[str, Any], scheduler: str | None = None) -> None:
    c = rep["counts"]
    table = Table(title="duplicate clusters (largest first)")
    for col in (
        "cluster",
        "size",
        "kept",
        "why kept",
        "reasons",
        "lowest score",
        "label conflicts",
    ):
        table.add_column(
            col, justify="right" if col in ("size", "lowest score", "label conflicts") else "left"
        )
    clusters = sorted(rep["clusters"], key=lambda x: -x["size"])
    for cl in clusters[:15]:
        scores = [m["score"] for m in cl["members"] if m.get("score") is not None]
        reasons = sorted({m["reason"] for m in cl["members"] if m.get("reason")})
        table.add_row(
            cl["id"],
            str(cl["size"]),
            escape(cl["kept"]),  # file names are not markup ('[bold]a.jpg')
            escape(cl["kept_reason"]),
            ", ".join(reasons),
            f"{min(scores):.3f}" if scores else "-",
            str(len(cl["label_conflicts"])),
        )
    if clusters:
        console.print(table)
        if len(clusters) > 15:
            console.print(f"... and {len(clusters) - 15} more clusters (see the report)")
    # Every image of the input, so keep + drop + skip add up to it (bad items that are not
    # images, such as a label file without its image, are counted by print_skipped).
    skip = c["not_compared"] + c["not_read"]
    console.print(
        f"{c['images'] + c['not_read']} images: keep {c['kept']}, drop {c['dropped']} in "
        f"{c['clusters']} clusters"
        + (f", skip {skip}" if skip else "")
        + (f", {c['label_conflicts']} label conflicts" if c["label_conflicts"] else "")
    )
    if c.get("dropped_exact_copies"):
        console.print(
            f"{c['dropped_exact_copies']} of the dropped images are exact copies (same bytes "
            "or pixels) of another image: exact_copy_of in the report"
            + (
                f"; {c['exact_leak_groups']} group(s) of exact copies span splits "
                f"({c['exact_leak_images']} images, exact_leaks in the report)"
                if c.get("exact_leak_groups")
                else ""
            )
        )
    if c["dropped_image_annotations"]:
        # QA round 10: the manifest's dropped_annotations (what the writer left out) was 0
        # while hundreds of boxes went with the dropped images.
        if not c["label_conflicts"]:
            fate = "; their survivors hold the same boxes (no label conflicts)"
        elif plan.options.merge_labels:
            fate = "; boxes only they hold go to their survivors (--merge-labels)"
        else:
            fate = (
                "; boxes only they hold are listed as label conflicts and are lost without "
                "--merge-labels"
            )
        console.print(
            f"the dropped images hold {c['dropped_image_annotations']} annotation(s){fate}"
        )
    stats = plan.stats
    o = plan.options
    if o.ssim is None:
        scale = ""
    elif o.refines:
        changed = ""
        if stats.get("pairs_refined"):
            # What refinement changed, or a user must compare reports (QA round 14).
            changed = (
                f" ({stats.get('refined_passed', 0)} now above the threshold, "
                f"{stats.get('refined_failed', 0)} now below)"
            )
        scale = (
            f"SSIM at {o.size} px, {stats['pairs_refined']} pairs re-scored at full "
            f"resolution{changed}; "
        )
    else:
        scale = f"SSIM at {o.size} px (add --refine auto to decide near the threshold at full resolution); "
    # "(exact)" read as "exact copies" (QA round 10): name the search. Exact copies are
    # also checked against the copy their group kept, which need not be a candidate pair.
    search = _SEARCH_NAMES.get(str(stats.get("index_method")), str(stats.get("index_method")))
    scored, candidates = stats.get("pairs_scored", 0), stats.get("candidates", 0)
    also = " (with checks between exact copies)" if scored > candidates else ""
    console.print(
        f"[dim]{scale}{candidates} candidate pairs ({search}), "
        f"{scored} pairs scored{also}, {stats.get('cache_hits', 0)} signatures from cache, "
        f"{stats.get('total_s', 0):.1f} s"
        + (f" on Dask at {scheduler}" if scheduler else "")
        + "[/]"
    )
    ref_total = c["reference_images"] + c["reference_not_read"]
    if ref_total:  # --against (even when none of its images could be used)
        a = against_counts(plan)
        unused = c["reference_not_read"] + c["reference_not_compared"]
        console.print(
            f"against the reference ({ref_total} images"
            + (f", {unused} skipped: copies of them are not found" if unused else "")
            + f"): {a['of_reference']} new images are copies of reference "
            f"images ({a['of_reference_exact']} exact), {a['of_new']} duplicate other new images"
        )
        if unused == ref_total:
            err_console.print(
                f"[yellow]warning:[/] none of the {ref_total} reference images could be read: "
                "nothing was compared against the reference"
            )
        if c["dropped"] and not c["kept"]:
            err_console.print(
                f"[yellow]warning:[/] none of the {c['images']} new images survives: each "
                "duplicates the reference or another new image; nothing new to add"
            )
    elif _few_survive_by_similarity(rep):
        advice = (
            "Try --sweep or a higher --ssim (--roi objects is on already)."
            if plan.options.roi == "objects"
            else "Try --sweep, a higher --ssim, or --roi objects (the labelled regions must "
            "match too)."
        )
        err_console.print(
            f"[yellow]warning:[/] only {c['kept']} of {c['images']} images survive: on a static "
            f"camera every frame can pass the threshold. {advice}"
        )
    if stats.get("cache_problem"):
        err_console.print(f"[yellow]warning:[/] {stats['cache_problem']}")
    for note in rep["notes"]:
        print_note(note)


def _print_sweep(rows: Any, o: DedupeOptions, n: int) -> None:
    method = "SSIM" if o.ssim is not None else "histogram"
    extra = " + objects" if o.roi == "objects" else ""
    if o.ssim is not None and o.hist is not None:
        how = "and" if o.combine == "all" else "or"
        extra += f" ({how} histogram above {o.hist:.2f}, fixed)"
    table = Table(title=f"images kept of {n} by {method}{extra} threshold")
    table.add_column("threshold", justify="right")
    table.add_column("greedy", justify="right")
    table.add_column("connected", justify="right")
    for r in rows:
        table.add_row(f"{r.threshold:.2f}", str(r.kept_greedy), str(r.kept_connected))
    console.print(table)


def _note_inert_options(
    o: DedupeOptions, against: bool, *, sweep: bool = False, report: bool = False
) -> None:
    """Say so when an option given has nothing to act on (rather than ignore it silently)."""
    notes = []
    if o.combine == "any" and (o.ssim is None or o.hist is None or o.exact_only):
        notes.append("--combine decides between --ssim and --hist; with one test it does nothing")
    if o.refines and o.ssim is None:
        notes.append("--refine and --refine-band re-score SSIM; without --ssim they do nothing")
    if sweep and report:
        notes.append("--sweep prints counts only; it writes no --report (run --dry-run for one)")
    if o.merge_labels and against:
        notes.append(
            "--merge-labels carries labels only between new images: a new image dropped as a "
            "copy of a reference image leaves its labels in the report's label conflicts "
            "(--against images are never rewritten)"
        )
    for n in notes:
        print_note(n)


def _check_report_path(
    path: Path,
    overwrite: bool,
    inputs: Sequence[Path],
    *,
    out: Path | None = None,
    option: str = "--report",
) -> None:
    """The report's JSON and its CSV sibling: outside the inputs and --out, new unless
    --overwrite."""
    if out is not None and Path(path).resolve().is_relative_to(Path(out).resolve()):
        raise UsageError(
            f"{option} '{path}' lies in --out '{out}', which gets {REPORT_JSON} anyway; "
            f"leave out {option} or write it elsewhere"
        )
    for p in (path, Path(path).with_suffix(".csv")):
        check_file_output(p, overwrite=overwrite, inputs=inputs, option=option)


@cli_errors
def leaks_cmd(
    data: DataArg,
    ssim: SsimOpt = None,
    hist: HistOpt = None,
    exact: ExactOpt = False,
    combine: CombineOpt = Combine.all,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the cluster report (all clusters, leaks marked) here."),
    ] = None,
    fail_on_leak: Annotated[
        bool, typer.Option("--fail-on-leak", help="Exit with code 1 when any leak is found.")
    ] = False,
    size: SizeOpt = 128,
    index: IndexOpt = IndexChoice.auto,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Let --json replace an existing file.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Find near-duplicates that sit in different splits (train/val/test)."""
    if json_path is not None:
        _check_report_path(json_path, overwrite, [parse_spec(data)[1]], option="--json")
    o = _options(
        ssim=ssim,
        hist=hist,
        exact_only=exact,
        combine=combine.value,
        cluster="connected",
        size=size,
        index=index.value,
        max_pixels=max_pixels,
    )
    runtime, opts = _runtime(workers, scheduler, on_error, quiet, cache_dir, no_cache, max_pixels)
    # The cache's last writes end with the pass, not at interpreter exit.
    with runtime.executor, runtime.cache or nullcontext():  # type: ignore[union-attr]
        ds = load_dataset(data, opts)
        not_read = images_left_out(opts.policy.skipped)
        result = find_leaks(ds, o, runtime=runtime)
    print_skipped(opts.policy, listed_in=str(json_path) if json_path is not None else None)
    plan = result.plan
    splits = {s for s in (_split(plan, i) for i in range(len(plan.images))) if s}
    if len(splits) < 2:
        console.print(
            f"[yellow]note:[/] the dataset has {len(splits)} split(s); leaks need two or more"
        )
    rep = build_report(plan, command="leaks", not_read=not_read)
    for note in rep["notes"]:
        print_note(note)
    copies = rep["exact_leaks"]
    if result.leaks:
        table = Table(title="near-duplicates across splits")
        for col in ("cluster", "splits", "images", "example", "reasons"):
            table.add_column(col)
        leaking = [c for c in rep["clusters"] if c["leak"]]
        root = parse_spec(data)[1]
        for cl in leaking[:20]:
            reasons = sorted({m["reason"] for m in cl["members"] if m.get("reason")})
            table.add_row(
                cl["id"],
                ", ".join(str(x or "-") for x in cl["splits"]),
                str(cl["size"]),
                _leak_example(cl["members"], root),
                ", ".join(reasons),
            )
        console.print(table)
        if len(leaking) > 20:
            more = "see the report" if json_path is not None else "--json FILE lists them all"
            console.print(f"... and {len(leaking) - 20} more leaking clusters ({more})")
    if json_path is not None:
        write_report(rep, json_path)
        console.print(f"report: {escape(str(json_path))}")
    n = len(result.leaks)
    colour = "red" if n else "green"
    if n:  # the splits the leaking clusters span, not every split of the dataset
        spanned = sorted({str(x) for c in rep["clusters"] if c["leak"] for x in c["splits"] if x})
        line = f"({result.images} images) across splits {', '.join(spanned)}"
    else:
        line = f"among splits {', '.join(sorted(splits)) or '-'}"
    console.print(f"[{colour}]{n} leaking cluster(s)[/] {line}")
    if copies:
        console.print(
            f"[red]{len(copies)} group(s) of exact copies[/] "
            f"({rep['counts']['exact_leak_images']} images, same bytes or same pixels) "
            "sit in more than one split"
            + (f"; listed under exact_leaks in {json_path}" if json_path is not None else "")
        )
    if n and fail_on_leak:
        raise typer.Exit(1)


def _leak_example(members: list[dict[str, Any]], root: Path) -> str:
    """One linked pair of a leaking cluster, each image with its split and its file as
    found under ``root`` (``test: test/images/a.jpg ~ train: train/images/a.jpg``; leaks
    writes nothing, so the names an output would give, ``train__a.jpg``, would name no
    file): a pair across two splits where the cluster's links give one."""
    by_name = {m["file_name"]: m for m in members}
    tops = (root.absolute(), root.resolve())

    def shown(m: dict[str, Any]) -> str:
        path = Path(m.get("path") or "")
        top = next((t for t in tops if path.is_relative_to(t)), None)
        where = path.relative_to(top).as_posix() if top is not None else m["file_name"]
        return f"{m.get('split') or '-'}: {where}"

    linked = [m for m in members if m.get("linked_to") in by_name]
    across = [m for m in linked if by_name[m["linked_to"]].get("split") != m.get("split")]
    if not (across or linked):
        return shown(members[0])
    ex = (across or linked)[0]
    return f"{shown(ex)} ~ {shown(by_name[ex['linked_to']])}"


def _split(plan: DedupePlan, i: int) -> str | None:
    from curate.dedupe.pipeline import split_of

    return split_of(plan.images[i])
