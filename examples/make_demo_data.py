"""Write the synthetic fire/smoke demo sources (BoWFire, video clips, Roboflow export)."""

import sys
from pathlib import Path

from curate.synthetic import make_demo_sources

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out/sources")
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if out.exists() and any(out.iterdir()):
        # Another seed's files would stay beside these and mix two sets.
        sys.exit(f"error: '{out}' is not empty; remove it or give another folder")
    for layout, path in make_demo_sources(out, seed).items():
        print(f"{layout:8s} {path}")
