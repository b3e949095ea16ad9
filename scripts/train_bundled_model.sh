#!/usr/bin/env bash
# Train the model bundled with geounet (geounet/data/kampala_unet.safetensors).
#
# Input: sample_data/kampala_a_z20.tif (area a at 0.149 m) and sample_data/buildings.gpkg.
# The eastern 20 % of area a is held out for validation and for choosing the thresholds;
# area b is never read.
#
# The bundled model is an ensemble of three U-Nets whose body channel learns each roof's
# depth (--body-target depth): seed 0, seed 1, and seed 0 with --colour strong. Their logs
# are kept beside this script (train_bundled_model.member{1,2,3}.log). The ensemble's
# building threshold is chosen on the strip; its body threshold is fixed at 0.5 (half
# depth), as the strip's 30 detached houses say little about touching roofs.
# Run from anywhere: bash scripts/train_bundled_model.sh  (about 75 minutes of quiet CPU);
# REUSE=1 keeps members already in build/.
#
# Candidates: extra `geounet train` options replace the defaults below (the last value of
# an option wins); one network is trained and it is not copied into the package, e.g.
#   OUT=build/trial_colour_strong.safetensors bash scripts/train_bundled_model.sh --colour strong
# IMAGES picks another scene of area a to train and calibrate on (default: the z20 one), e.g.
#   IMAGES=sample_data/kampala_a_z21.tif OUT=build/trial_z21.safetensors \
#     bash scripts/train_bundled_model.sh --sigma 10 --body-erosion 6 --contact-radius 6
# Ensembles of candidates: geounet ensemble A B --out E, then geounet calibrate E.
set -euo pipefail
cd "$(dirname "$0")/.."
GEOUNET=${GEOUNET:-$( [ -x .venv/bin/geounet ] && echo .venv/bin/geounet || echo geounet )}
IMAGES=${IMAGES:-sample_data/kampala_a_z20.tif}
LABELS=sample_data/buildings.gpkg

# train_one OUT [OPTIONS...]: train one network, then choose its thresholds on the strip
# (train does it at the end of a run too; calibrate records the choice in the provenance).
train_one() {
  local out=$1
  shift
  mkdir -p "$(dirname "$out")"
  "$GEOUNET" train \
    --images "$IMAGES" \
    --labels "$LABELS" \
    --out "$out" \
    --arch unet --depth 4 --width 16 \
    --chip-size 256 --batch-size 8 \
    --epochs 36 --steps-per-epoch 40 --patience 0 \
    --w0 10 --sigma 5 --body-erosion 3 --contact-radius 3 --seed 0 --overwrite --no-progress "$@"
  "$GEOUNET" calibrate "$out" --images "$IMAGES" --labels "$LABELS" --out "$out" --overwrite
}

if [ $# -gt 0 ]; then
  train_one "${OUT:-build/candidate.safetensors}" "$@"
  exit 0
fi

members=(build/depth_member1.safetensors build/depth_member2.safetensors build/depth_member3.safetensors)
options=("--body-target depth" "--body-target depth --seed 1" "--body-target depth --colour strong")
for i in "${!members[@]}"; do
  if [ "${REUSE:-0}" = 1 ] && [ -f "${members[$i]}" ]; then
    echo "reusing ${members[$i]}"
    continue
  fi
  # shellcheck disable=SC2086  # the options are words
  train_one "${members[$i]}" ${options[$i]} 2>&1 | tee "scripts/train_bundled_model.member$((i + 1)).log"
done
OUT=${OUT:-build/kampala_unet.safetensors}
"$GEOUNET" ensemble "${members[@]}" --out "$OUT" --overwrite
"$GEOUNET" calibrate "$OUT" --images "$IMAGES" --labels "$LABELS" --out "$OUT" --overwrite \
  --body-threshold 0.5
cp "$OUT" geounet/data/kampala_unet.safetensors
ls -l geounet/data/kampala_unet.safetensors
