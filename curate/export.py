"""Write a dataset and its manifest atomically: the last step of every writing command."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from curate.core.dataset import Dataset
from curate.core.output import Manifest, atomic_output
from curate.formats.base import WriteOptions, WriteResult
from curate.io import get_format, write_dataset


def export_dataset(
    ds: Dataset,
    out: Path,
    fmt: str,
    manifest: Manifest,
    *,
    overwrite: bool = False,
    inputs: Iterable[Path] = (),
    options: WriteOptions | None = None,
    extra: Callable[[Path], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> WriteResult:
    """Write ``ds`` as ``fmt`` into ``out`` (temp folder, then rename) with ``manifest.json``.

    ``extra(tmp_dir)`` may add files (reports, tables) before the folder is moved into place;
    ``notify`` hears what :func:`curate.core.output.atomic_output` has to say (leftovers of
    interrupted runs removed, a Ctrl+C after the output was in place).
    The writer's own drops and changes (what the format cannot hold) join the manifest; each
    drop says whether it left out an image, an annotation or a mask (its ``level``).
    """
    get_format(fmt)  # fail on an unknown format before creating anything
    with atomic_output(out, overwrite=overwrite, inputs=list(inputs), notify=notify) as tmp:
        result = write_dataset(ds, tmp, fmt, options or WriteOptions())
        manifest.dropped += result.dropped
        manifest.changed += result.changed
        manifest.outputs += result.files
        manifest.counts.update(
            {"images_written": result.images, "annotations_written": result.annotations}
        )
        manifest.options.setdefault("format", fmt)
        if extra is not None:
            extra(tmp)
        manifest.write(tmp)
    return result
