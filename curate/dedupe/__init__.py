"""Near-duplicate removal that scales: exact copies, SSIM and colour histograms.

Per-image signatures (reduced-size decode, cached by content hash) feed a candidate
index, so only likely pairs are scored; scores are exact SSIM (Wang et al.) at a
documented working resolution. See :mod:`curate.dedupe.pipeline` for the entry points.
"""

from curate.dedupe.pipeline import (
    DedupeOptions,
    DedupePlan,
    LeakResult,
    Runtime,
    SweepRow,
    find_duplicates,
    find_leaks,
    sweep,
    write_deduped,
)
from curate.dedupe.report import build_report, load_cluster_groups, write_report
from curate.dedupe.signatures import SignatureCache, default_cache_dir

__all__ = [
    "DedupeOptions",
    "DedupePlan",
    "LeakResult",
    "Runtime",
    "SignatureCache",
    "SweepRow",
    "build_report",
    "default_cache_dir",
    "find_duplicates",
    "find_leaks",
    "load_cluster_groups",
    "sweep",
    "write_deduped",
    "write_report",
]
