"""The cluster report (JSON and CSV) and :func:`load_cluster_groups` for group-aware splits.

Schema ``sodkit.dedupe.report/1`` (JSON object)::

    {
      "schema": "sodkit.dedupe.report/1",
      "command": "dedupe" | "leaks",
      "options": {...}, "rule": {...}, "counts": {...}, "stats": {...},
      "notes": ["..."],                      # what to check (e.g. clusters of flat images)
      "clusters": [
        {
          "id": "dup-00001",                 # stable within one report
          "kept": "a.jpg",                   # the survivor ("reference:<name>" for --against)
          "kept_reason": "most annotations (3; others 0-2)",
          "size": 3,
          "flat_members": 0,                 # nearly flat members (see FLAT_SHARE)
          "splits": ["test", "train"],       # split of each member (null when none)
          "leak": true,                      # members in more than one split
          "members": [
            {"file_name": "a.jpg", "path": "/data/a.jpg", "split": "train",
             "reference": false, "role": "kept" | "dropped" | "reference",
             "annotations": 3, "width": 640, "height": 480,
             # dropped members only:
             "reason": "ssim" | "hist" | "ssim+hist" | "ssim+roi" | "exact-file" | "exact-pixels",
             "duplicate_of": "a.jpg", "linked_to": "b.jpg",
             "score": 0.93, "scores": {"ssim": 0.93, "hist": 0.97, ...},
             # dropped exact copies (same bytes or pixels) of another image only:
             "exact_copy_of": "c.jpg"}
          ],
          "pairs": [{"a": "a.jpg", "b": "b.jpg", "duplicate": true, "reason": "ssim",
                     "ssim": 0.93, ...}],    # every pair scored inside the cluster; with
                                             # a refinement band, pairs inside it carry
                                             # "refined" (and "full_ssim" when true);
                                             # "duplicate" is null where no decision
                                             # needed the full-resolution SSIM
          "label_conflicts": [{"dropped": "b.jpg", "kept": "a.jpg",
                               "bbox_format": "xyxy pixels of its own image",
                               "dropped_size": [w, h], "kept_size": [w, h],
                               "only_in_dropped": [{"category": "fire", "bbox": [x1, y1, x2, y2],
                                                    "bbox_in_kept": [x1, y1, x2, y2]}],
                               "only_in_kept": [{"category": ..., "bbox": [...]}]}]
        }
      ]
    }

Every report also has ``exact_leaks``: each group of exact copies that spans splits
(``{"kind": "file" | "pixels", "splits": [...], "images": [{"file_name", "path", "split"}]}``),
counted in ``counts.exact_leak_groups`` / ``exact_leak_images``.

Paths are absolute. Only clusters of two or more images are listed; an image in no cluster
is unique. The CSV
has one row per member: ``cluster, role, file_name, path, split, reason, duplicate_of,
linked_to, score, annotations, label_conflict, kept_reason, exact_copy_of``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from curate.core.errors import MalformedFileError, MissingFileError
from curate.core.output import side_name
from curate.dedupe.cluster import DROPPED, KEPT, exact_groups
from curate.dedupe.labels import label_conflict
from curate.dedupe.signatures import SHARPNESS_SIDE
from curate.dedupe.ssim import C2, PAD, local_stats

if TYPE_CHECKING:
    from curate.dedupe.pipeline import DedupePlan

SCHEMA = "sodkit.dedupe.report/1"
REPORT_JSON = "dedupe_report.json"
REPORT_CSV = "dedupe_report.csv"
CSV_FIELDS = (
    "cluster",
    "role",
    "file_name",
    "path",
    "split",
    "reason",
    "duplicate_of",
    "linked_to",
    "score",
    "annotations",
    "label_conflict",
    "kept_reason",
    "exact_copy_of",
)


def _split(plan: DedupePlan, i: int) -> str | None:
    from curate.dedupe.pipeline import split_of

    return split_of(plan.images[i])


# A thumbnail is nearly flat when FLAT_SHARE of its SSIM windows (11x11, sigma 1.5) vary by
# less than sqrt(C2) = 7.65 gray levels (local standard deviation). In such a window SSIM's
# contrast-structure term is near 1 whatever it shows, so two such images score about their
# brightness ratio: sky, water and fog "match" each other. Measured on 128 px thumbnails
# (share of such windows): the QA's terrain crops that formed clusters of 2,113 (sky, with one
# smoke photo as survivor) and 158 (water) images: 0.93-1.00 (5th percentile 1.00 and 0.98);
# ordinary photos: Roboflow fire/smoke (979) median 0.46, 95th percentile 0.85, 2.1 % at 0.90
# or more (fog, smoke); COCO/VOC samples (20) at most 0.86; FURG frames at most 0.24. Per
# cluster of that 10,079-image scale set (plain SSIM 0.85) the share of flat members is 0 in
# 1,615 clusters, at least 0.99 in 159 and between in 8: "mostly" (more than half) is not a
# close call. The note leaves out clusters of exact copies alone (113 of those 164 there): it
# names 51 clusters, 2,943 images. On the Roboflow export it names 4 small clusters (13
# images: smoke, dark frames); on the QA's COCO, near-duplicate and fire sets none.
FLAT_SHARE = 0.9


def flat_share(gray: NDArray[np.uint8]) -> float:
    """Share of the SSIM windows of a ``(H, W)`` grayscale thumbnail whose local variance
    is below ``C2`` (the windows SSIM averages over, inside the ``PAD`` border)."""
    if min(gray.shape) <= 2 * PAD:
        return 0.0
    return float((local_stats(gray)[1] < C2).mean())


def _ssim_decides_alone(plan: DedupePlan) -> bool:
    """SSIM alone can join two images: no histogram that must agree, no object regions."""
    r = plan.rule
    return (
        r.ssim is not None
        and not r.exact_only
        and not r.roi
        and (r.hist is None or r.combine == "any")
    )


def _flat_members(plan: DedupePlan, members: list[int]) -> int:
    sigs = (plan.signatures[m] for m in members)
    return sum(s is not None and flat_share(s.thumb) >= FLAT_SHARE for s in sigs)


def flat_note(clusters: list[dict[str, Any]]) -> str | None:
    """The note on clusters joined by SSIM whose members are mostly nearly flat, or None."""
    flat = [
        c
        for c in clusters
        if 2 * c["flat_members"] > c["size"]
        and any(str(m.get("reason", "")).startswith("ssim") for m in c["members"])
    ]
    if not flat:
        return None
    big = max(flat, key=lambda c: c["size"])
    return (
        f"{len(flat)} cluster(s) ({sum(c['size'] for c in flat)} images; largest {big['id']}, "
        f"{big['size']} images) are mostly nearly flat images (sky, water, fog: at least "
        f"{FLAT_SHARE:.0%} of their SSIM windows vary by less than 7.6 gray levels). SSIM of "
        "such images is near 1 whatever they show, so unrelated pictures can join. Check them, or "
        "add --hist 0.9 --combine all (colours must match too), or --roi objects on labelled data"
    )


def _notes(plan: DedupePlan, clusters: list[dict[str, Any]]) -> list[str]:
    """What the user should check in these clusters (printed, and kept in the report)."""
    note = flat_note(clusters) if _ssim_decides_alone(plan) else None
    return [note] if note else []


def _splits_of(plan: DedupePlan, members: list[int]) -> list[str | None]:
    """The members' splits, sorted; None (JSON null) for members in no split, last."""
    return sorted({_split(plan, m) for m in members}, key=lambda x: (x is None, str(x)))


def _main_score(scores: dict[str, Any]) -> float | None:
    for key in ("full_ssim", "ssim", "hist"):
        if key in scores:
            return float(scores[key])
    if scores.get("exact"):
        return 1.0
    return None


def _who(plan: DedupePlan, ms: list[int]) -> str:
    return plan.label(ms[0]) + (f" and {len(ms) - 1} more" if len(ms) > 1 else "")


def _nearness_parts(plan: DedupePlan, head: int, ms: list[int]) -> list[str]:
    """How ``head`` came before the members ``ms`` tied with it: nearness to the others
    (where it is nearer), dataset order (equally near), or the order the clustering runs
    left (nearer members, when the runs ran out)."""
    from curate.dedupe.pipeline import CENTRAL_PASSES

    near = plan.central.get(head, {})
    mine = near.get(head)
    if mine is None:
        return [f"dataset order ({_who(plan, ms)} equally near the others)"]
    mine_r = round(mine, 3)
    farther = [m for m in ms if round(near.get(m, -1.0), 3) > mine_r]
    nearer = [m for m in ms if round(near.get(m, 1e9), 3) < mine_r]
    equal = [m for m in ms if m not in farther and m not in nearer]
    parts = []
    if farther:
        parts.append(
            f"nearness to the others (its thumbnail differs from theirs by {mine:.2f} gray "
            f"levels on average; {_who(plan, farther)}: {min(near[m] for m in farther):.2f} "
            "or more)"
        )
    if equal:
        parts.append(f"dataset order ({_who(plan, equal)} equally near the others)")
    if nearer:
        parts.append(
            f"clustering order ({_who(plan, nearer)} nearer the others, but the clustering "
            f"stopped after {CENTRAL_PASSES} run(s))"
        )
    return parts


def _tie_break(plan: DedupePlan, head: int, others: list[int]) -> str:
    """``"; tie broken by ..."``: for the members tied with ``head`` on the policy, the key
    that ranked each below it, in key order (``""`` when none ties)."""
    if not plan.keys:
        return ""
    key = plan.keys[head]
    tied = [m for m in others if plan.keys[m][:2] == key[:2]]
    if not tied:
        return ""
    from curate.dedupe.pipeline import KEY_NAMES

    names = KEY_NAMES[plan.options.keep]
    by: dict[int, list[int]] = {}  # key position that decided -> members; len(key): none
    for m in tied:
        idx = next((i for i in range(2, len(key)) if plan.keys[m][i] != key[i]), len(key))
        by.setdefault(idx, []).append(m)

    parts = []
    for idx in sorted(by):
        ms = by[idx]
        if idx < len(key):
            parts.append(f"{names[idx]} ({_who(plan, ms)} ranks below)")
        else:  # tied on every key: nearness to the others decides, where it differs
            parts.extend(_nearness_parts(plan, head, ms))
    return "; tie broken by " + ", then ".join(parts)


def why_kept(plan: DedupePlan, head: int, members: list[int]) -> str:
    """One line on why ``head`` survived its cluster, in the terms of the keep policy."""
    if plan.is_reference[head]:
        return "reference image (never dropped)"
    others = [m for m in members if m != head and not plan.is_reference[m]]
    img = plan.images[head]
    sig = plan.signatures[head]
    policy = plan.options.keep
    tie = ""
    if policy == "most-annotations":
        n = len(img.annotations)
        rest = [len(plan.images[m].annotations) for m in others]
        if rest and max(rest) == n:
            tie = _tie_break(plan, head, others)
        span = (
            f"{min(rest)}-{max(rest)}"
            if rest and min(rest) != max(rest)
            else str(rest[0])
            if rest
            else "-"
        )
        return f"most annotations ({n}; others {span}){tie}"
    if policy == "largest":
        w, h = (sig.width, sig.height) if sig else (img.width, img.height)
        rest = []
        for m in others:
            s = plan.signatures[m]
            rest.append((s.width * s.height) if s else plan.images[m].width * plan.images[m].height)
        if rest and max(rest) == w * h:
            tie = _tie_break(plan, head, others)
        return f"largest ({w}x{h}){tie}"
    if policy == "sharpest":
        sharp = plan.sharpness or [None] * len(plan.images)
        v = sharp[head]
        rest_s = [x for m in others if (x := sharp[m]) is not None]
        if v is None:
            return (
                "sharpest (no image could be measured; kept by JPEG quality, then colour over "
                "gray, then size, then dataset order)"
            )
        others_s = f"others up to {max(rest_s):.3g}" if rest_s else "others not measured"
        from curate.dedupe.pipeline import SHARP_TIE

        near = [m for m in plan.central.get(head, {}) if m != head]
        if near:
            tie = (
                f"; copies within {SHARP_TIE:.0%} of the sharpest tie, broken by "
                + ", then ".join(_nearness_parts(plan, head, near))
            )
        elif rest_s and max(rest_s) == v:
            tie = "; tie broken by size, then dataset order"
        if not near and rest_s and max(rest_s) > v:
            tie = "; sharper copies are gray or compressed below JPEG quality 70, which ranks them below"
        return (
            f"sharpest (Laplacian variance over image variance at {SHARPNESS_SIDE} px {v:.3g}; "
            f"{others_s}){tie}"
        )
    return "first in dataset order"


def images_left_out(skipped: list[dict[str, Any]]) -> int:
    """How many images a reader left out of its dataset: the distinct ``left_out`` of the
    items it skipped (a bad image, or a bad label file that takes its image with it)."""
    return len({str(s["left_out"]) for s in skipped if s.get("left_out")})


def build_report(
    plan: DedupePlan, *, command: str = "dedupe", not_read: int = 0, reference_not_read: int = 0
) -> dict[str, Any]:
    """The report of a plan (see the module docstring for the schema). ``not_read``: images
    of the dataset its reader left out (:func:`images_left_out` of what reading it skipped);
    ``reference_not_read``: the same of the ``--against`` reference."""
    res = plan.resolution
    members_of = res.members()
    cluster_of: dict[int, int] = {}
    for head, members in members_of.items():
        for m in members:
            cluster_of[m] = head
    pairs_of: dict[int, list[tuple[int, int]]] = {}
    for a, b in plan.scorer.memo:
        ca, cb = cluster_of.get(a), cluster_of.get(b)
        if ca is not None and ca == cb:
            pairs_of.setdefault(ca, []).append((a, b))
    from curate.dedupe.pipeline import options_dict

    key = plan.class_key
    copy_of = exact_copy_of(plan)
    clusters: list[dict[str, Any]] = []
    n_conflicts = 0
    for n, (head, members) in enumerate(members_of.items(), start=1):
        cid = f"dup-{n:05d}"
        entries = []
        conflicts = []
        for m in members:
            entry = _member(plan, m, head)
            if m in copy_of:
                # Dropped at the kept image it is nearest to, which need not be its copy
                # (QA round 10: a byte copy read "ssim, duplicate of" another frame).
                entry["exact_copy_of"] = plan.label(copy_of[m])
            if res.status[m] == DROPPED:
                k = int(res.dup_of[m])
                conflict = label_conflict(
                    plan.images[m],
                    plan.class_names[m],
                    plan.images[k],
                    plan.class_names[k],
                    kept_label=plan.label(k),
                    key=key,
                    placed=plan.placement(m, k),
                )
                if conflict is not None:
                    conflicts.append(conflict.to_dict())
                    entry["label_conflict"] = True
            entries.append(entry)
        pairs = []
        for a, b in sorted(pairs_of.get(head, [])):
            s = plan.scorer.memo[(a, b)]
            # A pair whose full-resolution SSIM no decision needed has no verdict.
            open_ = plan.rule.needs_full(s)
            reason = None if open_ else plan.rule.decide(s)
            pairs.append(
                {
                    "a": plan.label(a),
                    "b": plan.label(b),
                    "duplicate": None if open_ else reason is not None,
                }
                | ({"reason": reason} if reason else {})
                | s.to_dict()
            )
        splits = _splits_of(plan, members)
        n_conflicts += len(conflicts)
        clusters.append(
            {
                "id": cid,
                "kept": plan.label(head),
                "kept_reason": why_kept(plan, head, members),
                "size": len(members),
                "flat_members": _flat_members(plan, members),
                "splits": splits,
                "leak": len(splits) > 1,
                "members": entries,
                "pairs": pairs,
                "label_conflicts": conflicts,
            }
        )
    new = ~plan.is_reference
    counts = {
        "images": int(new.sum()),
        "reference_images": int(plan.is_reference.sum()),
        # Reference images that could not be compared (unreadable at decode) or read: new
        # images that copy them are not found.
        "reference_not_compared": int((~plan.active & plan.is_reference).sum()),
        "reference_not_read": reference_not_read,
        "compared": int((plan.active & new).sum()),
        "kept": int((plan.active & new & (res.status == KEPT)).sum()),
        "dropped": len(plan.dropped()),
        # Annotations the dropped images hold (left out with them unless --merge-labels
        # carries them; label_conflicts lists the ones only they have).
        "dropped_image_annotations": sum(len(plan.images[i].annotations) for i in plan.dropped()),
        # Dropped images that are exact copies (same bytes or pixels) of another image.
        "dropped_exact_copies": len(copy_of),
        # Images read but not compared (unreadable at decode); kept + dropped + not_compared
        # = images. not_read: images of the input the reader left out, so the input held
        # images + not_read. skipped_items counts every bad item reported while reading and
        # decoding (listed under "skipped"; not all are images), both of these too.
        "not_compared": int((~plan.active & new).sum()),
        "not_read": not_read,
        "skipped_items": len(plan.skipped),
        "clusters": len(clusters),
        "leaking_clusters": sum(c["leak"] for c in clusters),
        "label_conflicts": n_conflicts,
        "candidate_pairs": int(plan.stats.get("candidates", 0)),
        "pairs_scored": len(plan.scorer.memo),
    }
    rule = plan.rule
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "sodkit",
        "command": command,
        "options": options_dict(plan.options),
        "rule": {
            "ssim": rule.ssim,
            "hist": rule.hist,
            "combine": rule.combine,
            "roi": rule.roi,
            "roi_ssim": rule.roi_ssim if rule.roi else None,
            "exact_only": rule.exact_only,
            "cluster": plan.options.cluster,
            "keep": plan.options.keep,
        },
        "counts": counts,
        "stats": {k: round(v, 4) if isinstance(v, float) else v for k, v in plan.stats.items()},
        "notes": _notes(plan, clusters),
        "clusters": clusters,
        "skipped": list(plan.skipped),
    }
    if command == "leaks":
        # leaks drops nothing and has no reference: counts of those would read as findings.
        for key in (
            "kept",
            "dropped",
            "dropped_image_annotations",
            "dropped_exact_copies",
            *(k for k in counts if k.startswith("reference_")),
        ):
            counts.pop(key)
    copies = exact_leaks(plan)
    report["exact_leaks"] = copies
    counts["exact_leak_groups"] = len(copies)
    counts["exact_leak_images"] = sum(len(g["images"]) for g in copies)
    return report


def _abs_path(plan: DedupePlan, m: int) -> str:
    """Image ``m``'s file as an absolute path (the report may be read from another folder)."""
    return os.path.abspath(plan.images[m].path)


def _member(plan: DedupePlan, m: int, head: int) -> dict[str, Any]:
    res = plan.resolution
    img = plan.images[m]
    sig = plan.signatures[m]
    ref = bool(plan.is_reference[m])
    role = "reference" if ref else ("kept" if res.status[m] == KEPT else "dropped")
    entry: dict[str, Any] = {
        "file_name": img.file_name,
        "path": _abs_path(plan, m),
        "split": _split(plan, m),
        "reference": ref,
        "role": role,
        "annotations": len(img.annotations),
        "width": sig.width if sig else img.width,
        "height": sig.height if sig else img.height,
    }
    if res.status[m] == DROPPED:
        link = int(res.link[m])
        s = plan.scorer.get(m, link) if link >= 0 else None
        scores = s.to_dict() if s is not None else {}
        entry |= {
            "reason": res.link_reason[m] or "connected",
            "duplicate_of": plan.label(int(res.dup_of[m]) if res.dup_of[m] >= 0 else head),
            "linked_to": plan.label(link) if link >= 0 else None,
            "score": _main_score(scores),
            "scores": scores,
        }
    return entry


def write_report(report: dict[str, Any], json_path: str | Path) -> tuple[Path, Path]:
    """Write the report as JSON at ``json_path`` and as CSV beside it (same stem, ``.csv``).

    Both are written to temporary files first and renamed together (on any failure,
    Ctrl+C included, the temporary files are removed and nothing is renamed).
    """
    json_path = Path(json_path)
    csv_path = json_path.with_suffix(".csv")
    tmp_json, tmp_csv = side_name(json_path, "tmp"), side_name(csv_path, "tmp")
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp_json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
        _write_csv(report, tmp_csv)
        os.replace(tmp_csv, csv_path)
        os.replace(tmp_json, json_path)
    finally:  # gone after the renames; left only by a failure, Ctrl+C included
        tmp_json.unlink(missing_ok=True)
        tmp_csv.unlink(missing_ok=True)
    return json_path, csv_path


def _write_csv(report: dict[str, Any], tmp: Path) -> None:
    """One row per cluster member (see the module docstring)."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for c in report["clusters"]:
            for m in c["members"]:
                writer.writerow(
                    {
                        "cluster": c["id"],
                        "role": m["role"],
                        "file_name": m["file_name"],
                        "path": m["path"],
                        "split": m.get("split") or "",
                        "reason": m.get("reason", ""),
                        "duplicate_of": m.get("duplicate_of", ""),
                        "linked_to": m.get("linked_to") or "",
                        "score": "" if m.get("score") is None else f"{m['score']:.4f}",
                        "annotations": m["annotations"],
                        "label_conflict": "yes" if m.get("label_conflict") else "",
                        "kept_reason": c["kept_reason"] if m["role"] != "dropped" else "",
                        "exact_copy_of": m.get("exact_copy_of", ""),
                    }
                )


def load_cluster_groups(report_path: str | Path) -> dict[str, str]:
    """Map each clustered image to its cluster id, from a dedupe or leaks report file
    (:func:`read_report`, then :func:`cluster_groups`)."""
    return cluster_groups(read_report(report_path))


def read_report(report_path: str | Path) -> dict[str, Any]:
    """A dedupe or leaks report, parsed. Raises :class:`MissingFileError` /
    :class:`MalformedFileError` for a missing or foreign file."""
    p = Path(report_path)
    if not p.is_file():
        raise MissingFileError(
            p,
            "dedupe report does not exist",
            hint="run curate dedupe or curate leaks with a report",
        )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedFileError(p, f"not a JSON report ({exc})") from exc
    schema = data.get("schema", "") if isinstance(data, dict) else ""
    if not str(schema).startswith("sodkit.dedupe.report/"):
        raise MalformedFileError(
            p,
            f"schema is {schema!r}, expected 'sodkit.dedupe.report/1'",
            hint="pass the dedupe_report.json written by curate dedupe or curate leaks --json",
        )
    clusters = data.get("clusters", [])
    members_ok = isinstance(clusters, list) and all(
        isinstance(c, dict)
        and "id" in c
        and isinstance(c.get("members", []), list)
        and all(isinstance(m, dict) and "file_name" in m for m in c.get("members", []))
        for c in clusters
    )
    if not members_ok:
        raise MalformedFileError(
            p,
            "its clusters are not as sodkit writes them (a list of {id, members: [{file_name, "
            "...}]})",
            hint="pass the report written by curate dedupe or curate leaks --json, unedited",
        )
    return data  # type: ignore[no-any-return]


def cluster_groups(report: dict[str, Any]) -> dict[str, str]:
    """Map each clustered image of a parsed report to its cluster id.

    Keys are both the image's ``file_name`` and its original ``path`` (as a string), so a
    caller can look up either; reference images (``--against``) are left out, they are
    not part of the dataset. Images not in the map are in no cluster.
    """
    groups: dict[str, str] = {}
    for c in report.get("clusters", []):
        cid = str(c["id"])
        for m in c.get("members", []):
            if m.get("reference"):
                continue
            groups[str(m["file_name"])] = cid
            if m.get("path"):
                groups[str(m["path"])] = cid
    return groups


def summary_rows(report: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """Cluster summaries for tables: id, size, kept, splits, reasons, best/worst score."""
    rows = []
    for c in report["clusters"][:limit]:
        scores = [m["score"] for m in c["members"] if m.get("score") is not None]
        reasons = sorted({m["reason"] for m in c["members"] if m.get("reason")})
        rows.append(
            {
                "id": c["id"],
                "size": c["size"],
                "kept": c["kept"],
                "splits": c["splits"],
                "reasons": reasons,
                "min_score": float(np.min(scores)) if scores else None,
                "conflicts": len(c["label_conflicts"]),
            }
        )
    return rows


def _exact_groups(plan: DedupePlan) -> list[list[int]]:
    """Groups of two or more exact copies (same bytes or pixels), each sorted, by first."""
    by_root: dict[int, list[int]] = {}
    for i, root in exact_groups(plan.exact_pairs).items():
        by_root.setdefault(root, []).append(i)
    return sorted((sorted(g) for g in by_root.values()), key=min)


def exact_copy_of(plan: DedupePlan) -> dict[int, int]:
    """Each dropped image that is an exact copy of another image: that image, the one of its
    group that survived (or the first of the group in keep order when none did)."""
    rank = {img: r for r, img in enumerate(plan.priority)}
    status = plan.resolution.status
    out: dict[int, int] = {}
    for group in _exact_groups(plan):
        kept = [m for m in group if status[m] == KEPT]
        first = min(kept or group, key=lambda m: rank.get(m, len(rank)))
        out |= {m: first for m in group if m != first and status[m] == DROPPED}
    return out


def exact_leaks(plan: DedupePlan) -> list[dict[str, Any]]:
    """Groups of exact copies (same bytes, or same pixels) that span more than one split.

    Connected clusters can join exact copies with near-duplicates, so a cluster's reasons
    do not say which of its images are copies of each other; these groups do. ``kind`` is
    ``file`` when every member has the same bytes, else ``pixels``.
    """
    out = []
    for members in _exact_groups(plan):
        splits = _splits_of(plan, members)
        if len(splits) < 2:
            continue
        hashes = {s.content_hash for m in members if (s := plan.signatures[m]) is not None}
        out.append(
            {
                "kind": "file" if len(hashes) == 1 else "pixels",
                "splits": splits,
                "images": [
                    {
                        "file_name": plan.label(m),
                        "path": _abs_path(plan, m),
                        "split": _split(plan, m),
                    }
                    for m in members
                ],
            }
        )
    return out
