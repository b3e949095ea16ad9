#!/usr/bin/env bash
# Train the model bundled with geounet (geounet/data/kampala_unet.safetensors).
#
# Input: sample_data/kampala_a_z20.tif (area a at 0.149 m) and sample_data/buildings.gpkg.
# The eastern 20 % of area a is held out for validation and for choosing the threshold;
# area b is never read. Output: the checkpoint below, copied into the package data.
# Run from anywhere: bash scripts/train_bundled_model.sh  (about 25 minutes of quiet CPU).
#
# Candidates: extra `geounet train` options replace the defaults below (the last value of
# an option wins), and the candidate is not copied into the package, e.g.
#   OUT=build/trial_colour_strong.safetensors bash scripts/train_bundled_model.sh --colour strong
# IMAGES picks another scene of area a to train and calibrate on (default: the z20 one), e.g.
#   IMAGES=sample_data/kampala_a_z21.tif OUT=build/trial_z21.safetensors \
#     bash scripts/train_bundled_model.sh --sigma 10 --body-erosion 6 --contact-radius 6
set -euo pipefail
cd "$(dirname "$0")/.."
GEOUNET=${GEOUNET:-$( [ -x .venv/bin/geounet ] && echo .venv/bin/geounet || echo geounet )}
OUT=${OUT:-build/kampala_unet.safetensors}
mkdir -p "$(dirname "$OUT")"
"$GEOUNET" train \
  --images "${IMAGES:-sample_data/kampala_a_z20.tif}" \
  --labels sample_data/buildings.gpkg \
  --out "$OUT" \
  --arch unet --depth 4 --width 16 \
  --chip-size 256 --batch-size 8 \
  --epochs 36 --steps-per-epoch 40 --patience 0 \
  --w0 10 --sigma 5 --body-erosion 3 --contact-radius 3 --seed 0 --overwrite --no-progress "$@"
# Choose the building and body thresholds on the validation strip (train does it at the end
# of a run too; this step records the choice in the card's provenance).
"$GEOUNET" calibrate "$OUT" \
  --images "${IMAGES:-sample_data/kampala_a_z20.tif}" --labels sample_data/buildings.gpkg \
  --out "$OUT" --overwrite
if [ $# -eq 0 ]; then
  cp "$OUT" geounet/data/kampala_unet.safetensors
  ls -l geounet/data/kampala_unet.safetensors
fi
