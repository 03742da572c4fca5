#!/bin/sh
# The README's labelling walk-through, run as a new user would on a folder of plain images: 40 CamVid
# train images without labels, CamVid's val split as the labelled validation folder, default settings.
# The "annotator" is `activeseg project answer` (ground truth written as a Label Studio export); a person
# would label exports/round_NNN/labelstudio_tasks.json in Label Studio instead and export JSON.
#   sh benchmarks/project_walkthrough.sh   (writes docs/project/walkthrough.log and the round pictures)
set -eu
DATA=${ACTIVESEG_DATA:-../shared/data}/camvid
W=runs/walkthrough
A=.venv/bin/activeseg
rm -rf "$W" && mkdir -p "$W/my_images" docs/project
ls "$DATA/train/images" | sort | awk 'NR % 9 == 1' | head -40 | while read f; do cp "$DATA/train/images/$f" "$W/my_images/"; done
{
  echo "\$ activeseg project init $W/project --images $W/my_images --classes $DATA/classes.json --val $DATA/val"
  $A project init "$W/project" --images "$W/my_images" --classes "$DATA/classes.json" --val "$DATA/val"
  echo "\$ activeseg project query $W/project --strategy random --regions 24"
  /usr/bin/time -f "(%e s)" $A project query "$W/project" --strategy random --regions 24 --quiet
  ls "$W/project/exports/round_001" | sed 's/^/    /'
  echo "\$ activeseg project answer $W/project --truth $DATA/train/labels --out $W/round1_export.json   # the annotator"
  $A project answer "$W/project" --truth "$DATA/train/labels" --out "$W/round1_export.json"
  echo "\$ activeseg project import $W/project $W/round1_export.json"
  $A project import "$W/project" "$W/round1_export.json" | tail -3
  echo "\$ activeseg project train $W/project"
  /usr/bin/time -f "(%e s)" $A project train "$W/project" --quiet
  echo "\$ activeseg project query $W/project --strategy bald --regions 24"
  /usr/bin/time -f "(%e s)" $A project query "$W/project" --strategy bald --regions 24 --quiet
  $A project show "$W/project" --round 2 --out docs/project/round_002.png --limit 4
  $A project answer "$W/project" --truth "$DATA/train/labels" --out "$W/round2_export.json" >/dev/null
  $A project import "$W/project" "$W/round2_export.json" | tail -1
  $A project show "$W/project" --round 2 --out docs/project/round_002_labelled.png --limit 4
  /usr/bin/time -f "(%e s)" $A project train "$W/project" --quiet
  echo "\$ activeseg project status $W/project"
  $A project status "$W/project"
} 2>&1 | grep -v "^INFO" | tee docs/project/walkthrough.log
