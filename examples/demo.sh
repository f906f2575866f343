#!/usr/bin/env bash
# The main job on a built-in example: generate messy fire/smoke sources in three real
# layouts, merge them through a class map, find leaks and near-duplicates, write a
# leakage-free 8:1:1 split, look at the small-object statistics, tile, and train raw vs
# curated to see which detector is better.
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

echo "== 3. the Roboflow-style export leaks: it was split frame by frame, so frames of one clip sit in two splits"
curate leaks yolo:"$OUT/sources/kaggle/data.yaml" --json "$OUT/leaks.json"

echo "== 4. near-duplicates (SSIM > 0.85). Whole-image SSIM joins every frame of a static camera,"
echo "   whatever the fire does; object-aware (--roi objects) keeps the frames where it changed"
curate dedupe "$OUT/merged" --ssim 0.85 --sweep --dry-run
curate dedupe "$OUT/merged" --ssim 0.85 --roi objects --sweep --dry-run
curate dedupe "$OUT/merged" --ssim 0.85 --roi objects --out "$OUT/deduped"

echo "== 5. leakage-free, stratified 8:1:1 split (frames of one clip never straddle splits), as YOLO"
# (After dedupe each cluster has one image left; on data kept whole, --groups REPORT keeps
# each cluster of near-duplicates in one split.)
curate split "$OUT/deduped" --out "$OUT/split" --ratios 8:1:1 --seed 0 --format yolo
echo "   check: no near-duplicates across the new splits"
curate leaks yolo:"$OUT/split/data.yaml" --fail-on-leak

echo "== 6. small-object statistics (tables, plots, one HTML report) and anchors"
curate stats "$OUT/merged" --imgsz 640 --out "$OUT/stats"
curate anchors "$OUT/merged" --n 9 --imgsz 640 --json "$OUT/anchors.json"

echo "== 7. tile the merged set (160 px tiles, 20% overlap) so small objects keep their pixels"
curate tile "$OUT/merged" --out "$OUT/tiles" --size 160 --overlap 0.2 --min-visibility 0.3 --min-area 16 --format coco

echo "== 8. does the curated set train a better detector? raw vs curated, same clean test split"
echo "   (a laptop-sized YOLOX-nano run; on a GPU drop --preset cpu-smoke and train for real)"
curate split "$OUT/merged" --out "$OUT/raw-split" --ratios 8:1:1 --seed 0 --format yolo --quiet > /dev/null
train_bridge validate --raw "$OUT/raw-split" --curated "$OUT/split" --preset cpu-smoke --out "$OUT/validate"
echo "   (a smoke run: with a few dozen images and a test split of about 7, these figures show that"
echo "   the pipeline works end to end, not which set is better; run it on your data for that)"

echo
echo "demo done:"
echo "  sources  $OUT/sources      merged COCO  $OUT/merged     deduplicated  $OUT/deduped"
echo "  YOLO splits  $OUT/split (data.yaml)       raw vs curated  $OUT/validate/comparison.md"
echo "  report   $OUT/stats/report.html                        tiles        $OUT/tiles"
