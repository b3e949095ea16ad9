#!/usr/bin/env bash
# Write the bundled model's int8 version (geounet/data/buildings_unet.int8.xml and .bin),
# calibrated on the validation strips of the scenes it was trained on (sample_data/places.csv),
# for `geounet predict --precision int8`, and score it against bfloat16 on every place's
# strip (buildings_unet.int8.json: --precision auto runs int8 only where all are within
# tolerance). Needs `pip install -e ".[int8]"`; about two minutes.
# The repository keeps what it writes; run it again whenever the bundled model changes
# (the int8 model and its check are bound to the checkpoint's SHA-256).
# The check is against the precision --precision auto runs on the CPU it runs on (bfloat16
# with bfloat16 units, float32 without); `bash scripts/quantize_bundled_model.sh --check-only`
# on a CPU of the other kind adds that check without quantising again (extra arguments are
# passed to geounet quantize).
set -euo pipefail
cd "$(dirname "$0")/.."
GEOUNET=${GEOUNET:-$( [ -x .venv/bin/geounet ] && echo .venv/bin/geounet || echo geounet )}
images=()
while IFS=, read -r place image labels; do
  [ "$place" = place ] && continue
  images+=(--images "sample_data/$image" --labels "sample_data/$labels")
done <sample_data/places.csv
"$GEOUNET" quantize geounet/data/buildings_unet.safetensors "${images[@]}" "$@"
