"""Signatures: what they hold, the byte format, the content-hash cache, failures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_helpers import make_scene, save

from curate.core.errors import CorruptImageError, MissingFileError
from curate.dedupe import signatures as G


def test_signature_contents(tmp_path: Path, rng: np.random.Generator) -> None:
    p = save(make_scene(rng, 300, 400), tmp_path / "a.jpg")
    sig = G.compute_signature(p, G.hash_file(p), G.SignatureParams())
    assert (sig.width, sig.height) == (400, 300)
    assert sig.thumb.shape == (96, 128) and sig.thumb.dtype == np.uint8
    assert sig.jpeg
    assert sig.hist.shape == (256,) and sig.feature.shape == (128,)


def test_small_images_are_not_upscaled(tmp_path: Path, rng: np.random.Generator) -> None:
    p = save(make_scene(rng, 40, 60), tmp_path / "small.png")
    sig = G.compute_signature(p, G.hash_file(p), G.SignatureParams())
    assert sig.thumb.shape == (40, 60) and not sig.jpeg


def test_bytes_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    p = save(make_scene(rng), tmp_path / "a.png")
    sig = G.compute_signature(p, "abc", G.SignatureParams())
    back = G.Signature.from_bytes("abc", sig.to_bytes())
    for name in ("thumb", "hist", "feature"):
        assert np.array_equal(getattr(sig, name), getattr(back, name))
    assert (back.width, back.height, back.jpeg) == (sig.width, sig.height, sig.jpeg)
    with pytest.raises(ValueError):
        G.Signature.from_bytes("abc", b"junk")


def test_cache_is_reused_and_keyed_by_content(tmp_path: Path, rng: np.random.Generator) -> None:
    img = make_scene(rng)
    paths = [save(img, tmp_path / "a.png"), save(make_scene(rng), tmp_path / "b.png")]
    copy = tmp_path / "renamed.png"
    copy.write_bytes(paths[0].read_bytes())
    cache = G.SignatureCache(tmp_path / "cache")
    first = G.extract_signatures(paths, G.SignatureParams(), cache=cache)
    assert first.cache_hits == 0
    again = G.extract_signatures([*paths, copy], G.SignatureParams(), cache=cache)
    # The renamed copy hits too: the cache is keyed by content, not by path.
    assert again.cache_hits == 3
    assert np.array_equal(again.signatures[2].thumb, first.signatures[0].thumb)  # type: ignore[union-attr]
    # Another working size is another cache entry.
    other = G.extract_signatures(paths, G.SignatureParams(size=64), cache=cache)
    assert other.cache_hits == 0 and other.signatures[0].thumb.shape[1] == 64  # type: ignore[union-attr]
    cache.close()


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "c"))
    assert G.default_cache_dir() == tmp_path / "c" / "signatures"
    monkeypatch.delenv("SODKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert G.default_cache_dir() == tmp_path / "x" / "sodkit" / "signatures"


def test_unusable_cache_is_reported_not_fatal(tmp_path: Path, rng: np.random.Generator) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = G.SignatureCache(blocker / "cache")
    p = save(make_scene(rng), tmp_path / "a.png")
    ext = G.extract_signatures([p], G.SignatureParams(), cache=cache)
    assert ext.signatures[0] is not None
    assert cache.problem and "not usable" in cache.problem


def test_failures_are_returned_per_image(tmp_path: Path, rng: np.random.Generator) -> None:
    good = save(make_scene(rng), tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    missing = tmp_path / "missing.jpg"
    ext = G.extract_signatures([good, bad, missing], G.SignatureParams())
    assert ext.signatures[0] is not None and ext.signatures[1] is None
    assert isinstance(ext.failures[1], CorruptImageError)
    assert isinstance(ext.failures[2], MissingFileError)


def test_pixel_hash_ignores_encoding(tmp_path: Path, rng: np.random.Generator) -> None:
    img = make_scene(rng)
    a = save(img, tmp_path / "a.png")
    b = save(img, tmp_path / "b.bmp")
    c = save(make_scene(rng), tmp_path / "c.png")
    assert G.hash_file(a) != G.hash_file(b)
    assert G.pixel_hash(a) == G.pixel_hash(b) != G.pixel_hash(c)


def test_reduced_decode_from_bytes_equals_decode_from_path(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from curate.core.imageio import read_reduced

    for name in ("a.jpg", "b.png"):
        p = save(make_scene(rng, 300, 400), tmp_path / name)
        assert np.array_equal(read_reduced(p, 128), read_reduced(p, 128, data=p.read_bytes()))
    with pytest.raises(CorruptImageError, match="empty"):
        read_reduced(tmp_path / "x.jpg", 128, data=b"")
    with pytest.raises(CorruptImageError):
        read_reduced(tmp_path / "x.jpg", 128, data=p.read_bytes()[:100])


def test_reduced_gray_decode_is_the_thumbnails_luma(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Sharpness and object crops decode gray: a PNG's luma is the thumbnails' (to_gray);
    a JPEG's is its Y channel, within a level or two of the luma of its decoded RGB."""
    from curate.core.imageio import read_reduced
    from curate.dedupe.ssim import to_gray

    scene = make_scene(rng, 300, 400)
    for name in ("a.jpg", "b.png", "c.jpg"):
        p = save(
            cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY) if name == "c.jpg" else scene, tmp_path / name
        )
        gray = read_reduced(p, 256, gray=True)
        assert gray.dtype == np.uint8 and gray.shape == (192, 256)
        diff = np.abs(gray.astype(int) - to_gray(read_reduced(p, 256)))
        assert diff.max() <= (0 if name == "b.png" else 2), name


@pytest.mark.parametrize(("h", "w"), [(480, 640), (375, 500), (1100, 1500), (130, 170)])
def test_one_picture_gets_one_thumbnail_whether_jpeg_or_png(
    tmp_path: Path, rng: np.random.Generator, h: int, w: int
) -> None:
    """A PNG holding a JPEG's decoded pixels is box-reduced by the JPEG's DCT scale first."""
    from PIL import Image

    from curate.core.imageio import draft_factor, read_image, read_reduced
    from curate.dedupe.ssim import ssim, to_gray

    scene = make_scene(rng, h, w)
    scene = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255).astype(np.uint8)  # fine grain
    jpg = tmp_path / "a.jpg"
    Image.fromarray(scene).save(jpg, quality=95)
    png = save(read_image(jpg), tmp_path / "a.png")
    a, b = read_reduced(jpg, 128), read_reduced(png, 128)
    assert a.shape == b.shape
    assert ssim(to_gray(a), to_gray(b)) > 0.99
    with Image.open(jpg) as im:
        target = (max(1, w * 128 // max(w, h)), max(1, h * 128 // max(w, h)))
        im.draft("RGB", target)
        f = draft_factor((w, h), target)
        assert im.size == (-(-w // f), -(-h // f))  # the scale Pillow's JPEG decoder picked


def test_pool_workers_read_the_cache_and_the_writes_land(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from curate.core.parallel import make_executor

    paths = [save(make_scene(rng), tmp_path / f"{k}.jpg") for k in range(6)]
    cache = G.SignatureCache(tmp_path / "cache")
    with make_executor(2) as ex:
        first = G.extract_signatures(paths, G.SignatureParams(), executor=ex, cache=cache)
        # The first run's signatures are written in the background; the next call waits.
        again = G.extract_signatures(paths, G.SignatureParams(), executor=ex, cache=cache)
    cache.close()
    assert first.cache_hits == 0 and again.cache_hits == len(paths)
    for a, b in zip(first.signatures, again.signatures, strict=True):
        assert a is not None and b is not None
        assert a.content_hash == b.content_hash and np.array_equal(a.thumb, b.thumb)
    # A fresh cache object on the same folder sees them too (they were committed).
    reopened = G.SignatureCache(tmp_path / "cache")
    assert (
        len(
            reopened.get_signatures(
                G.SignatureParams().tag, [s.content_hash for s in first.signatures if s]
            )
        )
        == 6
    )
    reopened.close()


def test_crop_records_round_trip_and_junk_is_a_miss(rng: np.random.Generator) -> None:
    crops = (rng.integers(0, 255, (12, 30), dtype=np.uint8), np.zeros((8, 8), np.uint8))
    back = G.crops_from_bytes(G.crops_to_bytes(crops))
    assert back is not None and all(np.array_equal(a, b) for a, b in zip(crops, back, strict=True))
    assert G.crops_from_bytes(G.crops_to_bytes(())) == ()
    for junk in (b"", b"SDKR", G.crops_to_bytes(crops)[:-1], b"x" * 40):
        assert G.crops_from_bytes(junk) is None
    boxes = np.array([[0.1, 0.2, 0.3, 0.4]])
    assert G.crops_key("h", boxes, 512) != G.crops_key("h", boxes + 0.01, 512)
    assert G.crops_key("h", boxes, 512) != G.crops_key("h", boxes, 256)


def test_worker_import_leaves_the_pipeline_unloaded() -> None:
    """A worker running the signature task imports only what that task needs."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, curate.dedupe.signatures; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('curate.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    assert "curate.dedupe.signatures" in loaded
    assert not loaded & {"curate.dedupe.pipeline", "curate.io", "curate.formats", "curate.sources"}


def test_package_names_load_on_use() -> None:
    import curate.dedupe as D

    for name in D.__all__:
        assert getattr(D, name).__name__ == name
    assert set(D.__all__) <= set(dir(D))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = D.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [(500, 375), (640, 385), (608, 608)])
def test_a_photo_and_its_half_size_copy_get_matching_thumbnails(
    tmp_path: Path, rng: np.random.Generator, size: tuple[int, int]
) -> None:
    """QA: sides that are no multiple of the DCT scale, and Pillow's box filter at factors
    that are no integer, made a COCO photo and its half-size copy score 0.92-0.94 at 128 px.
    The thumbnails now agree with a plain area resize of the full decode."""
    from curate.core.imageio import read_reduced
    from curate.dedupe.ssim import ssim

    w, h = size
    scene = cv2.resize(make_scene(rng, 120, 160), (w, h), interpolation=cv2.INTER_CUBIC)
    scene = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255).astype(np.uint8)  # grain
    full = save(scene, tmp_path / "full.jpg", quality=95)
    half = cv2.resize(scene, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    half_path = save(half, tmp_path / "half.jpg", quality=95)
    a, b = (read_reduced(p, 128, gray=True) for p in (full, half_path))
    assert a.shape == b.shape == (round(h * 128 / max(w, h)), round(w * 128 / max(w, h)))
    gray = cv2.cvtColor(cv2.imread(str(full)), cv2.COLOR_BGR2GRAY)
    plain = cv2.resize(gray, a.shape[::-1], interpolation=cv2.INTER_AREA)
    assert ssim(a, plain) > 0.97
    assert ssim(a, b) > 0.97


def test_reduced_decode_turns_exif_rotated_photos_upright(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Each EXIF orientation, on the reduced path (a side no multiple of the DCT scale)."""
    from PIL import Image, ImageOps

    from curate.core.imageio import read_reduced

    scene = cv2.resize(make_scene(rng, 120, 160), (500, 375), interpolation=cv2.INTER_CUBIC)
    for orientation in range(1, 9):
        im = Image.fromarray(scene)
        exif = im.getexif()
        exif[0x0112] = orientation
        p = tmp_path / f"o{orientation}.jpg"
        im.save(p, quality=95, exif=exif.tobytes())
        with Image.open(p) as src:
            upright = np.asarray(ImageOps.exif_transpose(src).convert("RGB"))
        got = read_reduced(p, 128)
        want = cv2.resize(upright, got.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert got.shape[:2] == ((128, 96) if orientation >= 5 else (96, 128)), orientation
        assert np.abs(got.astype(int) - want).mean() < 3, orientation
