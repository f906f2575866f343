"""Connected components: the same as scoring every candidate pair, with far fewer scored."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_scene, save

from curate.dedupe import DedupeOptions, find_duplicates
from curate.dedupe import cluster as C
from curate.dedupe import ssim as S
from curate.dedupe.index import Candidates
from curate.dedupe.verify import Scorer, VerifyItem, VerifySpec


def _images(rng: np.random.Generator) -> list[np.ndarray]:
    """Grayscale 64x64 images: a drifting chain (neighbours alike, ends not), three flat
    clusters (low texture, two alike in structure but far apart in brightness), distinct
    scenes, and an exact copy."""
    out: list[np.ndarray] = []
    base = cv2.cvtColor(make_scene(rng, 64, 64), cv2.COLOR_RGB2GRAY).astype(np.float32)
    pattern = cv2.GaussianBlur(rng.standard_normal((64, 64)).astype(np.float32), (0, 0), 1.5)
    pattern = pattern / np.float32(pattern.std())
    out += [np.clip(base + 7.0 * k * pattern, 0, 255).astype(np.uint8) for k in range(8)]
    for level, members in ((60.0, 14), (180.0, 14), (120.0, 10)):
        sky = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), 8.0)
        sky *= 6.0 / sky.std()
        for _ in range(members):
            noise = rng.normal(0, rng.uniform(0.5, 3.5), (64, 64))
            img = level + rng.uniform(-4, 4) + sky + noise
            out.append(np.clip(img, 0, 255).astype(np.uint8))
    for _ in range(8):
        out.append(cv2.cvtColor(make_scene(rng, 64, 64), cv2.COLOR_RGB2GRAY))
    out.append(out[-1].copy())
    return out


def _items(images: list[np.ndarray], tmp_path: Path, rng: np.random.Generator) -> list[VerifyItem]:
    """Items whose full-resolution file is the image twice as large with fine grain added."""
    items = []
    for k, img in enumerate(images):
        big = cv2.resize(img, (128, 128), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        big += rng.normal(0, 4.0, big.shape)
        path = save(np.clip(big, 0, 255).astype(np.uint8), tmp_path / f"i{k:03d}.png")
        twin = k == len(images) - 1  # the exact copy
        key = f"h{k - 1 if twin else k}"
        items.append(VerifyItem(img, np.zeros(4, np.float32), key, path=str(path)))
    return items


def _all_pairs(n: int, rng: np.random.Generator) -> Candidates:
    i, j = np.triu_indices(n, 1)
    return Candidates(
        i.astype(np.int32), j.astype(np.int32), rng.uniform(0, 1, len(i)).astype(np.float32)
    )


def _brute_force(
    scorer: Scorer,
    rule: C.DuplicateRule,
    cands: Candidates,
    ref: np.ndarray,
    act: np.ndarray,
) -> np.ndarray:
    """Component root of every image from scoring (and refining) every live pair."""
    n = len(act)
    live = act[cands.i] & act[cands.j] & ~(ref[cands.i] & ref[cands.j])
    pairs = list(zip(cands.i[live].tolist(), cands.j[live].tolist(), strict=True))
    scorer.score(pairs)
    scorer.refine([p for p in pairs if rule.needs_full(scorer.memo_get(*p))])
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in pairs:
        if rule.decide(scorer.memo_get(a, b)) is not None:
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(a) for a in range(n)])


def _same_partition(res: C.Resolution, roots: np.ndarray, act: np.ndarray) -> bool:
    idx = np.flatnonzero(act)
    ours: dict[int, set[int]] = {int(r): set() for r in res.cluster[idx]}
    for k in idx:
        ours[int(res.cluster[k])].add(int(k))
    theirs: dict[int, set[int]] = {int(r): set() for r in roots[idx]}
    for k in idx:
        theirs[int(roots[k])].add(int(k))
    return sorted(map(sorted, ours.values())) == sorted(map(sorted, theirs.values()))


@pytest.mark.parametrize(
    ("band", "against", "inactive"),
    [(0.0, False, False), (0.15, False, False), (0.0, True, True), (0.15, True, True)],
)
def test_connected_gives_the_components_of_scoring_every_pair(
    tmp_path: Path, rng: np.random.Generator, band: float, against: bool, inactive: bool
) -> None:
    images = _images(rng)
    n = len(images)
    items = _items(images, tmp_path, rng)
    spec = VerifySpec(
        ssim_floor=0.85 - band, refine_below=band, refine_above=band / 2, refine_threshold=0.85
    )
    rule = C.DuplicateRule(ssim=0.85)
    ref = np.zeros(n, bool)
    if against:
        ref[[8, 9, 22, 50]] = True  # in a flat cluster, the other, a scene
    act = np.ones(n, bool)
    if inactive:
        act[[3, 30]] = False  # one breaks the chain in two
    cands = _all_pairs(n, rng)
    every = Scorer(items, spec)
    roots = _brute_force(every, rule, cands, ref, act)
    if band:
        assert any(s.full_ssim is not None for s in every.memo.values())
    assert (np.bincount(roots[act]) >= 4).sum() >= 3  # chains and flat clusters

    priority = list(rng.permutation(n))
    if against:
        priority = [int(k) for k in np.flatnonzero(ref)] + [k for k in priority if not ref[k]]
    scorer = Scorer(items, spec)
    res = C.connected(priority, [cands], scorer, rule, reference=ref, active=act)

    assert _same_partition(res, roots, act)
    assert (res.status[~act] == C.UNDECIDED).all()
    assert (res.status[ref & act] == C.KEPT).all()
    live = act[cands.i] & act[cands.j] & ~(ref[cands.i] & ref[cands.j])
    assert len(scorer) < live.sum() * 2 // 3


def test_ceiling_is_an_upper_bound_and_rules_out_flat_pairs(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    images = _images(rng)
    items = _items(images, tmp_path, rng)
    ceiling = C.SsimCeiling(items, 0.85)
    a, b = np.triu_indices(len(items), 1)
    got = ceiling.ceiling(a, b)
    exact = np.array(
        [S.ssim_terms(S.terms(images[p]), S.terms(images[q])) for p, q in zip(a, b, strict=True)]
    )
    assert (got >= exact).all()
    out = ceiling.rules_out(a, b)
    assert not (out & (exact > 0.85)).any()
    assert out.mean() > 0.5
    # Exact copies are never ruled out; nor are pairs of thumbnails of other shapes.
    assert not out[(a == len(items) - 2) & (b == len(items) - 1)].any()
    small = [*items[:2], VerifyItem(images[2][:40], np.zeros(4, np.float32), "x")]
    assert not C.SsimCeiling(small, 0.99).rules_out(np.array([0, 1]), np.array([2, 2])).any()


def test_ceiling_follows_the_rule() -> None:
    items = [VerifyItem(np.zeros((32, 32), np.uint8), np.zeros(4, np.float32), "a")]

    class Held:
        def __init__(self, spec: VerifySpec) -> None:
            self.items, self.spec = items, spec

    plain = VerifySpec()
    band = VerifySpec(refine_below=0.15, refine_above=0.07, refine_threshold=0.85)
    assert C.SsimCeiling.for_rule(Held(plain), C.DuplicateRule(ssim=0.85)).limit == 0.85  # type: ignore[arg-type, union-attr]
    got = C.SsimCeiling.for_rule(Held(band), C.DuplicateRule(ssim=0.85))  # type: ignore[arg-type]
    assert got is not None and got.limit == pytest.approx(0.70)
    any_hist = C.DuplicateRule(ssim=0.85, hist=0.9, combine="any")
    assert C.SsimCeiling.for_rule(Held(plain), any_hist) is None  # type: ignore[arg-type]
    assert C.SsimCeiling.for_rule(Held(plain), C.DuplicateRule(ssim=None, hist=0.9)) is None  # type: ignore[arg-type]


def test_a_flat_cluster_costs_about_one_score_per_member() -> None:
    """After the first round, rounds take spanning forests: no duplicate joins images
    already joined in its round."""

    class AllAlike:
        refines = False
        spec = VerifySpec(ssim=False)
        items = ()

        def __init__(self) -> None:
            self.memo: dict[tuple[int, int], object] = {}

        def __len__(self) -> int:
            return len(self.memo)

        def get(self, a: int, b: int) -> object:
            return self.memo.get((min(a, b), max(a, b)))

        def score(self, pairs: list[tuple[int, int]], **kw: object) -> None:
            from curate.dedupe.verify import PairScore

            for a, b in pairs:
                self.memo[(min(a, b), max(a, b))] = PairScore(ssim=0.95)

    n = 400
    i, j = np.triu_indices(n, 1)
    d = np.linspace(0, 1, len(i), dtype=np.float32)
    cands = Candidates(i.astype(np.int32), j.astype(np.int32), d)
    scorer = AllAlike()
    res = C.connected(list(range(n)), [cands], scorer, C.DuplicateRule())  # type: ignore[arg-type]
    assert res.kept.sum() == 1
    assert len(scorer) <= 256 + n - 1


def test_exact_copies_of_a_reference_image_are_its_copies(tmp_path: Path) -> None:
    """QA round 8: with several reference images in one component, the breadth-first walk
    from the first (a brightness edit, by name) reached the new exact copies of the
    reference original first, and reported them as SSIM duplicates of the edit."""
    import shutil

    from PIL import Image

    from curate.dedupe.pipeline import against_counts

    rng = np.random.default_rng(4)
    scene = make_scene(rng, 240, 320)
    ref_dir, new_dir = tmp_path / "ref", tmp_path / "new"
    ref_paths = [
        save(
            np.clip(scene.astype(np.int16) + 30, 0, 255).astype(np.uint8),
            ref_dir / "a_bright.jpg",
            95,
        ),
        save(scene, ref_dir / "b_orig.jpg", 90),
        save(scene, ref_dir / "c_q30.jpg", 30),
    ]
    new_dir.mkdir()
    shutil.copy(ref_dir / "b_orig.jpg", new_dir / "copy.jpg")
    Image.open(ref_dir / "b_orig.jpg").save(new_dir / "copy.png")
    reference = dataset([item(p) for p in ref_paths])
    data = dataset([item(new_dir / "copy.jpg"), item(new_dir / "copy.png")])
    for mode in ("greedy", "connected"):
        plan = find_duplicates(data, DedupeOptions(cluster=mode), reference=reference)
        assert against_counts(plan) == {"of_reference": 2, "of_reference_exact": 2, "of_new": 0}, (
            mode
        )
        for d in plan.dropped():
            assert plan.images[int(plan.resolution.dup_of[d])].file_name == "b_orig.jpg", mode
            assert plan.resolution.link_reason[d] in ("exact-file", "exact-pixels"), mode
