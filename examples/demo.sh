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

echo "== 4. small-object statistics (tables, plots, one HTML report) and anchors"
curate stats "$OUT/merged" --imgsz 640 --out "$OUT/stats"
curate anchors "$OUT/merged" --n 9 --imgsz 640 --json "$OUT/anchors.json"

echo "== 5. tile the merged set (160 px tiles, 20% overlap) so small objects keep their pixels"
curate tile "$OUT/merged" --out "$OUT/tiles" --size 160 --overlap 0.2 --min-visibility 0.3 --min-area 16 --format coco

echo
echo "demo done:"
echo "  sources  $OUT/sources      merged COCO  $OUT/merged     YOLO splits  $OUT/split"
echo "  report   $OUT/stats/report.html                        tiles        $OUT/tiles"
