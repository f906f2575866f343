"""``curate split``: leakage-free, stratified, training-ready splits."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from curate.commands.common import (
    DataArg,
    DryRunOpt,
    FormatOpt,
    Link,
    LinkOpt,
    MaxPixelsOpt,
    OnErrorOpt,
    OutFormat,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    VerifyOpt,
    cli_errors,
    console,
    err_console,
    print_left_out,
    print_note,
    print_skipped,
    read_options,
    report_skipped,
)
from curate.core.dataset import Dataset
from curate.core.errors import OnError, SodkitError
from curate.core.files import make_unique_names, safe_token
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import Manifest, check_output
from curate.export import export_dataset
from curate.formats.base import WriteOptions
from curate.io import load_dataset, parse_spec
from curate.split import GroupsMatch, check_no_leaks, parse_ratios, split_dataset


def register(app: typer.Typer) -> None:
    app.command("split")(split_cmd)


@cli_errors
def split_cmd(
    data: DataArg,
    out: OutOpt,
    ratios: Annotated[str, typer.Option("--ratios", help="train:val:test shares.")] = "8:1:1",
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutFormat.yolo,
    groups: Annotated[
        Path | None,
        typer.Option(
            "--groups", help="A dedupe report (report.json): its clusters never straddle splits."
        ),
    ] = None,
    link: LinkOpt = Link.hardlink,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    verify: VerifyOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Split into train/val/test: groups (clips, tiles of one image, duplicate clusters) never straddle splits; classes, small objects and negatives are stratified."""
    shares = parse_ratios(ratios)
    path = parse_spec(data)[1]
    if not dry_run:
        check_output(out, overwrite=overwrite, inputs=[path])
    opts = read_options(on_error, verify=verify, max_pixels=max_pixels, quiet=quiet)
    ds = load_dataset(data, opts)
    if not len(ds):  # every image skipped: list them and stop, as convert and merge do
        report_skipped(opts.policy, 0, dry_run=dry_run)
    report: dict[str, Any] | None = None
    extra: dict[str, str] | None = None
    if groups:
        from curate.dedupe.report import cluster_groups, read_report  # only with --groups

        report = read_report(groups)
        extra = cluster_groups(report)
    was = {id(img): img.split or img.attributes.get("original_split") for img in ds.images}
    result = split_dataset(
        ds, shares, seed=seed, extra_groups=extra, keep_unlabeled=fmt is OutFormat.images
    )
    renamed = _unique_names(result.dataset, was)
    leaks = check_no_leaks(result.dataset)
    if leaks:  # cannot happen by construction; refuse to write a leaking split all the same
        raise SodkitError(f"internal error: groups in two splits: {leaks[:5]}")
    manifest = Manifest(
        "split",
        inputs=[data],
        options={
            "ratios": ratios,
            "seed": seed,
            "format": fmt.value,
            "groups": str(groups) if groups else None,
            "verify": verify,
        },
    )
    manifest.skipped = opts.policy.skipped
    manifest.record_read(ds.info)
    unlabeled = [{**d, "level": "image"} for d in result.dropped]
    manifest.dropped += unlabeled
    manifest.changed += renamed
    manifest.counts = {
        "images_read": len(ds),
        "images_split": len(result.dataset),
        "units": result.units,
    }
    messages = [("warning", result.ratio_warning)] if result.ratio_warning else []
    if groups and report is not None and result.groups_match:
        messages += _groups_notes(groups, report, result.groups_match)
    manifest.extra = {
        "summary": result.summary,
        "ratios": result.ratios,
        "warnings": [f"{kind}: {text}" for kind, text in messages],
    }
    if result.groups_match:
        manifest.extra["groups_report"] = asdict(result.groups_match)
    _print_table(result.summary, written=not dry_run)
    print_skipped(opts.policy, listed_in=None if dry_run else "manifest.json")
    for kind, text in messages:
        colour = "yellow" if kind == "warning" else "cyan"
        err_console.print(f"[{colour}]{kind}:[/] {escape(text)}", highlight=False, soft_wrap=True)
    print_left_out(unlabeled)
    if dry_run:
        console.print("[yellow]dry run:[/] nothing written")
        return
    written = export_dataset(
        result.dataset,
        out,
        fmt.value,
        manifest,
        overwrite=overwrite,
        inputs=[path],
        options=WriteOptions(link=link.value, progress=opts.progress),
        extra=lambda tmp: _save_summary(tmp, result.summary),
        notify=print_note,
    )
    print_left_out(written.dropped)  # what the format cannot hold (YOLO: crowd regions)
    console.print(
        f"wrote {fmt.value.upper()} splits to [bold]{escape(str(out))}[/] (split_summary.csv, manifest.json)"
    )


def _groups_notes(path: Path, report: dict[str, Any], m: GroupsMatch) -> list[tuple[str, str]]:
    """("warning" | "note", text) about how a --groups report matches the dataset."""
    if m.clusters == 0:
        return [("note", f"{path} lists no clusters: --groups changes nothing")]
    if m.images_matched == 0:
        return [
            (
                "warning",
                f"none of the images in the {m.clusters} clusters of {path} is in this dataset "
                "(0 matched by file name or path): is it the report of another dataset? "
                "--groups changes nothing",
            )
        ]
    out = []
    if m.clusters_present < m.clusters / 2:
        out.append(
            (
                "warning",
                f"only {m.clusters_present} of the {m.clusters} clusters of {path} have an image "
                f"in this dataset ({m.images_matched} images matched by file name or path): "
                "is it the report of this dataset?",
            )
        )
    where = _report_folder(report) if m.clusters_joining and m.matched_by_name_only else None
    if where is not None:  # a report without paths can only match by name
        out.append(
            (
                "warning",
                f"{m.matched_by_name_only} of the {m.images_matched} images found in {path} "
                f"match by file name only: the report names other paths (under {where}). "
                "Right for a copy of that data; a report of another dataset with the same "
                "file names would join unrelated images",
            )
        )
    # Exact copies are copies of one another: greedy clusters of them are connected ones.
    if m.clusters_joining and _cluster_mode(report) == "greedy" and not _exact_only(report):
        out.append(
            (
                "warning",
                f"the clusters of {path} are greedy ones (dedupe's default): an image is in the "
                "cluster of the kept image it matched, so two near-duplicates can sit in two "
                "clusters and land in two splits; for leak-free groups pass a report of "
                "`curate leaks --json` or `curate dedupe --cluster connected`",
            )
        )
    if m.clusters_joining == 0:
        out.append(
            (
                "note",
                f"no cluster of {path} has two or more images in this dataset (as after dedupe, "
                "which keeps one image per cluster), so --groups changes nothing; it keeps "
                "clusters together when splitting the data the report was made from",
            )
        )
    return out


def _unique_names(ds: Dataset, was: dict[int, str | None]) -> list[dict[str, str]]:
    """Give images that share a name and landed in one split (a copy kept under its name in
    train and test of a COCO set) distinct names, prefixed with the split they came from
    (``was``: by ``id(img)``); the changes, for the manifest."""
    prefix = {id(img): safe_token(str(was.get(id(img)) or "dup")) for img in ds.images}
    before = {id(img): img.file_name for img in ds.images}
    for split in {img.split for img in ds.images}:  # names only clash inside one split
        make_unique_names([img for img in ds.images if img.split == split], prefix)
    return [
        {
            "item": before[id(img)],
            "change": f"renamed to {img.file_name}: another image has the same name",
        }
        for img in ds.images
        if img.file_name != before[id(img)]
    ]


def _report_folder(report: dict[str, Any]) -> str | None:
    """The folder the images of a report lie under (their common parent), if it says."""
    try:
        paths = [
            str(m["path"])
            for c in report.get("clusters", [])
            for m in c.get("members", [])
            if m.get("path") and not m.get("reference")
        ]
        return os.path.commonpath(paths) if paths else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def _rule(report: dict[str, Any]) -> dict[str, Any]:
    """The rule a report was made with (empty when it says none)."""
    rule = report.get("rule")
    return rule if isinstance(rule, dict) else {}


def _cluster_mode(report: dict[str, Any]) -> str | None:
    """The cluster mode a report was made with (``rule.cluster``), if it says."""
    return _rule(report).get("cluster")


def _exact_only(report: dict[str, Any]) -> bool:
    """Whether a report clusters exact copies only (``dedupe --exact``)."""
    return _rule(report).get("exact_only") is True


# Columns of a summary row before the per-class counts; with many classes only these fit.
_FIXED_COLUMNS = ("split", "images", "share", "groups", "negatives", "boxes", "small")
_MAX_COLUMNS = 14


def _print_table(rows: list[dict[str, Any]], *, written: bool = True) -> None:
    if not rows:
        return
    keys = list(rows[0])
    title = "splits"
    if len(keys) > _MAX_COLUMNS:
        # (QA round 8: "boxes per class left out" read as if boxes had been dropped)
        where = (
            "split_summary.csv has them"
            if written
            else "a run without --dry-run writes them to split_summary.csv"
        )
        title = (
            f"splits (boxes of {len(keys) - len(_FIXED_COLUMNS)} classes, too many columns "
            f"to show here: {where})"
        )
        keys = [k for k in keys if k in _FIXED_COLUMNS]
    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left" if key == "split" else "right")
    for r in rows:
        table.add_row(*(f"{r[k]:.1%}" if k == "share" else str(r[k]) for k in keys))
    console.print(table)


def _save_summary(folder: Path, rows: list[dict[str, Any]]) -> None:
    with open(folder / "split_summary.csv", "w", newline="", encoding="utf-8") as fh:
        if rows:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (folder / "split_summary.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
