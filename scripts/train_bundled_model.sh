#!/usr/bin/env bash
# Train the model bundled with geounet (geounet/data/buildings_unet.safetensors) on four places.
#
#   bash scripts/train_bundled_model.sh            # all steps below, on this machine
#   bash scripts/train_bundled_model.sh pack       # step 1 only
#   bash scripts/train_bundled_model.sh finish     # steps 3-5, after step 2 ran elsewhere
#
# 1. pack: the scenes of sample_data/places.csv (Kampala area a, Banepa, Catanduanes,
#    Zanzibar; never Kampala area b) are read onto the model's grid with their footprints,
#    the eastern 20 % of each scene held out as its place's validation strip, into
#    build/places/places.npz (`geounet train --pack`).
# 2. train: scripts/train_from_pack.sh trains the ensemble's three networks and one
#    leave-one-place-out network per place from the pack (no GDAL needed: the bundled
#    model's networks were trained on a GPU node, all seven at once, with PARALLEL=1 and
#    DEVICE=cuda; on a 2-core CPU each takes about 1.5 h and can be resumed with RESUME=1).
# 3. ensemble: the three networks' probabilities are averaged (`geounet ensemble`).
# 4. calibrate: the ensemble's building and body thresholds are chosen on the union of the
#    four places' strips as `geounet predict` predicts them; each leave-one-place-out
#    network's on the strips of its three training places only.
# 5. install: the ensemble is copied into the package, and its int8 version written and
#    checked beside it (scripts/quantize_bundled_model.sh).
# The model card's tables then come from scripts/evaluate_places.py (see the card).
set -euo pipefail
cd "$(dirname "$0")/.."
GEOUNET=${GEOUNET:-$( [ -x .venv/bin/geounet ] && echo .venv/bin/geounet || echo geounet )}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DIR=${DIR:-build/places}
PLACES=(kampala banepa catanduanes zanzibar)
step=${1:-all}

# places_args PLACE...: the --images/--place/--labels options of these places.
places_args() {
  local want=" $* " seen=" "
  while IFS=, read -r place image labels; do
    [ "$place" = place ] && continue
    case "$want" in *" $place "*) ;; *) continue ;; esac
    echo "--images sample_data/$image"; echo "--place $place"
    case "$seen" in *" $labels "*) ;; *) echo "--labels sample_data/$labels"; seen="$seen$labels " ;; esac
  done <sample_data/places.csv
}

if [ "$step" = all ] || [ "$step" = pack ]; then
  # shellcheck disable=SC2046  # the options are words
  "$GEOUNET" train $(places_args "${PLACES[@]}") --out "$DIR/unused.safetensors" \
    --pack "$DIR/places.npz" --overwrite
fi
if [ "$step" = all ]; then
  PYTHON=$PYTHON bash scripts/train_from_pack.sh "$DIR/places.npz" "$DIR" "${DEVICE:-auto}"
fi
if [ "$step" = all ] || [ "$step" = finish ]; then
  "$GEOUNET" ensemble "$DIR"/member{1,2,3}.safetensors --out "$DIR/ensemble.safetensors" --overwrite
  # shellcheck disable=SC2046
  "$GEOUNET" calibrate "$DIR/ensemble.safetensors" $(places_args "${PLACES[@]}" | grep -v -- '--place') \
    --out "$DIR/ensemble.safetensors" --overwrite --show-sweep >"$DIR/ensemble.sweep.md"
  for p in "${PLACES[@]}"; do
    mapfile -t others < <(printf '%s\n' "${PLACES[@]}" | grep -vx "$p")
    # shellcheck disable=SC2046
    "$GEOUNET" calibrate "$DIR/lopo_$p.safetensors" $(places_args "${others[@]}" | grep -v -- '--place') \
      --out "$DIR/lopo_$p.safetensors" --overwrite
  done
  cp "$DIR/ensemble.safetensors" geounet/data/buildings_unet.safetensors
  ls -l geounet/data/buildings_unet.safetensors
  # its int8 version and check, bound to the new checkpoint (the old ones no longer run)
  GEOUNET=$GEOUNET bash scripts/quantize_bundled_model.sh
fi
