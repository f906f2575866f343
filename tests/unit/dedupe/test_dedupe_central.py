"""Among copies that tie on the keep policy, the survivor is the one most alike to the
others (the original among its edits), not whichever file name sorts first (QA F7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_scene, save

from curate.dedupe import DedupeOptions, find_duplicates, sweep
from curate.dedupe.report import build_report


def _edits(tmp_path: Path, rng: np.random.Generator, n: int = 4, shift: int = 20) -> list[Path]:
    """Per scene its original and three edits whose names sort before it (brightness
    +-``shift``: at 40 the two brightness edits are no duplicates of each other)."""
    paths = []
    for k in range(n):
        orig = make_scene(rng, 180, 240).astype(np.int16)
        versions = {
            "bright": orig + shift,
            "dark": orig - shift,
            "gain": (orig - 128) * 1.15 + 128,
            "orig": orig,
        }
        for name, arr in versions.items():
            pixels = np.clip(arr, 0, 255).astype(np.uint8)
            paths.append(save(pixels, tmp_path / f"s{k}_{name}.jpg", quality=90))
    return paths


def test_the_original_survives_its_edits(tmp_path: Path, rng: np.random.Generator) -> None:
    ds = dataset([item(p) for p in _edits(tmp_path, rng)])
    for mode in ("greedy", "connected"):
        plan = find_duplicates(ds, DedupeOptions(cluster=mode))
        kept = sorted(ds.images[i].file_name for i in plan.kept_new())
        assert kept == [f"s{k}_orig.jpg" for k in range(4)], mode
        report = build_report(plan)
        assert len(report["clusters"]) == 4
        for c in report["clusters"]:
            assert c["size"] == 4 and "tie broken by nearness to the others" in c["kept_reason"]


def test_policy_and_dataset_order_still_decide_first(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    paths = _edits(tmp_path, rng, n=1)
    # An annotation on an edit outranks centrality; "first" is dataset order alone.
    items = [item(p, [(10, 10, 60, 50)] if "dark" in p.name else []) for p in paths]
    plan = find_duplicates(dataset(items), DedupeOptions())
    assert [dataset(items).images[i].file_name for i in plan.kept_new()] == ["s0_dark.jpg"]
    assert not plan.central
    plan = find_duplicates(dataset([item(p) for p in paths]), DedupeOptions(keep="first"))
    assert [plan.images[i].file_name for i in plan.kept_new()] == ["s0_bright.jpg"]
    # Two copies: neither is more central, dataset order decides.
    plan = find_duplicates(dataset([item(p) for p in paths[2:]]), DedupeOptions())
    assert [plan.images[i].file_name for i in plan.kept_new()] == ["s0_gain.jpg"]


def test_sweep_counts_what_a_run_keeps(tmp_path: Path, rng: np.random.Generator) -> None:
    """The sweep starts each threshold from the same order as a run (survivors nearest the
    others), so its counts are what a run at that threshold keeps."""
    ds = dataset([item(p) for p in _edits(tmp_path, rng, n=6, shift=40)])
    # Kept first, a brighter edit leaves the darker one (no duplicate of it) to be kept
    # too; the original, kept first, takes both.
    central = find_duplicates(ds, DedupeOptions()).kept_new()
    in_order = find_duplicates(ds, DedupeOptions(keep="first")).kept_new()
    assert len(central) < len(in_order)
    assert sum(ds.images[i].file_name.endswith("_orig.jpg") for i in central) >= 4
    rows = sweep(ds, DedupeOptions(), [0.8, 0.85, 0.9, 0.95])
    for row in rows:
        for mode, count in (("greedy", row.kept_greedy), ("connected", row.kept_connected)):
            plan = find_duplicates(ds, DedupeOptions(ssim=row.threshold, cluster=mode))
            assert count == len(plan.kept_new()), (row.threshold, mode)


class Recording:
    """A progress that records the description of each loop it tracks."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def track(self, items, *, total=None, description=""):  # type: ignore[no-untyped-def]
        self.seen.append(description)
        yield from items


def test_the_second_clustering_has_its_own_progress_label(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from curate.dedupe import Runtime

    prog = Recording()
    ds = dataset([item(p) for p in _edits(tmp_path, rng)])
    find_duplicates(ds, DedupeOptions(), runtime=Runtime(progress=prog))
    assert prog.seen.count("clustering (greedy)") == 1
    assert "tied copies: clustering (greedy)" in prog.seen


def test_kept_reason_names_the_key_that_decided(tmp_path: Path, rng: np.random.Generator) -> None:
    """QA round 4: kept_reason listed the whole chain of keys whichever decided."""
    base = make_scene(rng, 180, 240)
    paths = [
        save(base, tmp_path / "a_q40.jpg", quality=40),  # more compressed, sorts first
        save(base, tmp_path / "b_q90.jpg", quality=90),
    ]
    gray = np.repeat(base.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    paths.append(save(gray, tmp_path / "c_gray.jpg", quality=95))
    plan = find_duplicates(dataset([item(p) for p in paths]), DedupeOptions())
    (cluster,) = build_report(plan)["clusters"]
    assert cluster["kept"] == "b_q90.jpg"
    assert cluster["kept_reason"].endswith(
        "; tie broken by colour over gray (c_gray.jpg ranks below), "
        "then JPEG quality (a_q40.jpg ranks below)"
    )
    # Two byte copies: nothing tells them apart.
    copies = [save(base, tmp_path / f"copy{k}.jpg", quality=90) for k in range(3)]
    plan = find_duplicates(dataset([item(p) for p in copies]), DedupeOptions())
    (cluster,) = build_report(plan)["clusters"]
    assert cluster["kept_reason"].endswith(
        "; tie broken by dataset order (copy1.jpg and 1 more equally near the others)"
    )


def test_a_survivor_not_nearest_says_the_clustering_stopped(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the runs run out before the nearest member leads (chains of video frames need
    many), the reason says so instead of claiming the members equally near."""
    import curate.dedupe.pipeline as P

    ds = dataset([item(p) for p in _edits(tmp_path, rng, n=1)])
    monkeypatch.setattr(P, "CENTRAL_PASSES", 1)
    plan = find_duplicates(ds, DedupeOptions())
    assert [ds.images[i].file_name for i in plan.kept_new()] == ["s0_bright.jpg"]
    (cluster,) = build_report(plan)["clusters"]
    assert cluster["kept_reason"].endswith(
        "clustering order (s0_gain.jpg and 1 more nearer the others, but the clustering "
        "stopped after 1 run(s))"
    ), cluster["kept_reason"]
    monkeypatch.setattr(P, "CENTRAL_PASSES", 3)
    plan = find_duplicates(ds, DedupeOptions())
    assert [ds.images[i].file_name for i in plan.kept_new()] == ["s0_orig.jpg"]


def test_clustering_shows_one_bar_not_one_a_scoring_round(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA round 8: bars restarted for each round ("scoring pairs 0/8 ... 0/16 ... 0/25")."""
    from curate.dedupe import Runtime
    from curate.dedupe.verify import Scorer

    bars: list[bool] = []
    score = Scorer.score

    def recorded(self, pairs, *, description="", bar=True):  # type: ignore[no-untyped-def]
        bars.append(bar)
        return score(self, pairs, description=description, bar=bar)

    monkeypatch.setattr(Scorer, "score", recorded)
    ds = dataset([item(p) for p in _edits(tmp_path, rng, n=3)])
    for mode in ("greedy", "connected"):
        prog = Recording()
        find_duplicates(ds, DedupeOptions(cluster=mode), runtime=Runtime(progress=prog))
        assert f"clustering ({mode})" in " ".join(prog.seen)
    assert bars and not any(bars)
    # A batch scored outside the clustering still gets its bar.
    plan = find_duplicates(ds, DedupeOptions())
    prog = Recording()
    plan.scorer.progress, plan.scorer.parallel_min = prog, 1
    plan.scorer.memo.clear()
    plan.scorer.score([(0, 1), (0, 2)])
    assert prog.seen == ["scoring pairs"]
