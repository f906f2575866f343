#!/usr/bin/env bash
# The main job on a built-in example: generate messy fire/smoke sources in three real
# layouts, merge them through a class map, and write a leakage-free 8:1:1 split.
set -euo pipefail
OUT="${DEMO_OUT:-demo-out}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export SODKIT_CACHE_DIR="$OUT/cache"
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. synthetic sources (BoWFire masks, video clips with FURG XML, Roboflow YOLO export)"
python "$HERE/make_demo_data.py" "$OUT/sources"

echo "== 2. merge into one COCO dataset with one class map"
curate merge bowfire:"$OUT/sources/bowfire" video:"$OUT/sources/video" kaggle:"$OUT/sources/kaggle" \
  --class-map "$HERE/class_map.yaml" --every 2 --out "$OUT/merged" --format coco

echo "== 3. leakage-free, stratified 8:1:1 split, written as YOLO"
curate split "$OUT/merged" --out "$OUT/split" --ratios 8:1:1 --seed 0 --format yolo

echo
echo "demo done: sources in $OUT/sources, merged COCO in $OUT/merged, YOLO splits in $OUT/split"
