"""dedupe leaves out a PNG with a damaged chunk (OpenCV refuses it) as it does a truncated one;
convert, merge and split do with --verify, wherever the damage lies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import manifest


def _flip_crc(path: Path, kind: bytes) -> None:
    """Flip one bit of the CRC of the first ``kind`` chunk of the PNG at ``path``."""
    data = bytearray(path.read_bytes())
    pos = 8
    while data[pos + 4 : pos + 8] != kind:
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    data[pos + 8 + int.from_bytes(data[pos : pos + 4], "big")] ^= 0x01
    path.write_bytes(bytes(data))


def _tree(root: Path, rng: np.random.Generator) -> Path:
    (root / "train").mkdir(parents=True)
    for name in ("a", "b", "idatcrc", "ihdrcrc", "trunc"):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train" / f"{name}.png")
    _flip_crc(root / "train/idatcrc.png", b"IDAT")
    _flip_crc(root / "train/ihdrcrc.png", b"IHDR")
    trunc = root / "train/trunc.png"
    trunc.write_bytes(trunc.read_bytes()[:-12])
    return root


def test_damaged_pngs_are_skipped_and_left_out(
    tmp_path: Path, rng: np.random.Generator, run
) -> None:
    src = _tree(tmp_path / "bad", rng)
    out = tmp_path / "out"
    res = run("dedupe", src, "--out", out, "--on-error", "skip", "-j", "1")
    assert sorted(p.name for p in (out / "train").iterdir()) == ["a.png", "b.png"]
    skipped = {Path(s["file"]).name: s for s in manifest(out)["skipped"]}
    assert sorted(skipped) == ["idatcrc.png", "ihdrcrc.png", "trunc.png"]
    for name, s in skipped.items():
        assert s["kind"] == "corrupt-image" and Path(s["left_out"]).name == name
    assert "CRC of its IDAT chunk" in skipped["idatcrc.png"]["error"]
    assert "CRC of its IHDR chunk" in skipped["ihdrcrc.png"]["error"]
    assert "truncated" in skipped["trunc.png"]["error"]
    assert "BytesIO" not in res.output and "(image left out:" in res.output


def test_damaged_png_fails_with_one_line(tmp_path: Path, rng: np.random.Generator, run) -> None:
    src = _tree(tmp_path / "bad", rng)
    res = run("dedupe", src, "--out", tmp_path / "out", "--on-error", "fail", code=1)
    assert "idatcrc.png': PNG is damaged: the CRC of its IDAT chunk" in res.output
    assert not (tmp_path / "out").exists()


def _late_damage(root: Path, rng: np.random.Generator) -> Path:
    """``root/train``: two good 400x400 PNGs and ``late.png``, whose last pixel-data chunk
    (past the 64 KiB a reader probes) has a bad CRC."""
    src = root / "train"
    src.mkdir(parents=True)
    for name in ("a", "b", "late"):
        pixels = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"{name}.png")
    late = src / "late.png"
    data = bytearray(late.read_bytes())
    assert len(data) > 3 * 65536
    pos, idat = 8, []
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat.append(pos + 8 + size)
        pos += 12 + size
    data[idat[-1]] ^= 0x01  # the CRC of the last pixel-data chunk
    late.write_bytes(bytes(data))
    return root


def test_damage_found_only_when_decoding_is_left_out_too(
    tmp_path: Path, rng: np.random.Generator, run
) -> None:
    """A large PNG damaged past the 64 KiB the reader probes is caught by the signature
    step; its manifest entry names the image it left out, as the reader's do."""
    _late_damage(tmp_path / "big", rng)
    out = tmp_path / "out"
    run("dedupe", tmp_path / "big", "--out", out, "--on-error", "skip", "-j", "1")
    assert sorted(p.name for p in (out / "train").iterdir()) == ["a.png", "b.png"]
    (entry,) = manifest(out)["skipped"]
    assert Path(entry["file"]).name == "late.png" and Path(entry["left_out"]).name == "late.png"


def test_verify_finds_damage_the_readers_do_not_read(
    tmp_path: Path, rng: np.random.Generator, run
) -> None:
    """convert, merge and split link files without decoding them: a PNG damaged past the
    probe's 64 KiB passes (QA round 4), unless --verify decodes every image in full."""
    src = _late_damage(tmp_path / "big", rng)
    plain = tmp_path / "plain"
    run("convert", f"images:{src}", "--to", "coco", "--out", plain)
    assert (plain / "images" / "train" / "late.png").exists()  # the limit --verify lifts
    for cmd, args in (
        ("convert", ("--to", "coco")),
        ("merge", ("--format", "coco")),
        ("split", ("--format", "images", "--ratios", "2:1:0")),
    ):
        out = tmp_path / cmd
        res = run(cmd, f"images:{src}", *args, "--out", out, "--verify", "--on-error", "skip")
        assert sorted(p.name for p in out.rglob("*.png")) == ["a.png", "b.png"], cmd
        m = manifest(out)
        (entry,) = m["skipped"]
        assert Path(entry["left_out"]).name == "late.png", cmd
        assert "CRC of its IDAT chunk" in entry["error"] and m["options"]["verify"] is True
        assert "late.png" in " ".join(res.output.split())
        res = run(cmd, f"images:{src}", *args, "--out", tmp_path / "f", "--verify", code=1)
        assert "late.png': PNG is damaged: the CRC of its IDAT chunk" in " ".join(
            res.output.split()
        )
        assert not (tmp_path / "f").exists()
