#!/usr/bin/env bash
# Train the bundled model's networks from a pack (no GDAL needed: a GPU node will do).
#
#   bash scripts/train_from_pack.sh PACK OUTDIR [DEVICE] [EXTRA OPTIONS...]
#
# PACK is written by `bash scripts/train_bundled_model.sh pack` (the four places of
# sample_data/ on the model's grid, their eastern 20 % held out). Into OUTDIR it trains
#   member1..3.safetensors   the bundled ensemble's networks, on all four places;
#   lopo_<place>.safetensors one network per place, trained on the other three (the
#                            leave-one-place-out figures of the model card).
# With PARALLEL=1 all seven run at once (a GPU has room for them); otherwise one by one
# (on a 2-core CPU about 1.5 h each; each run resumes with RESUME=1); ONLY="lopo_banepa"
# trains the named runs only. Logs go to
# OUTDIR/<name>.log. The thresholds are chosen afterwards where the scenes are
# (`bash scripts/train_bundled_model.sh finish`).
set -euo pipefail
PACK=$1
OUTDIR=$2
DEVICE=${3:-auto}
shift $(( $# < 3 ? $# : 3 ))
PYTHON=${PYTHON:-python3}
mkdir -p "$OUTDIR"

# The recipe: a classic U-Net (depth 4, width 16) with building, body (each roof's depth)
# and contact outputs, chips drawn from the four places equally often.
RECIPE=(--arch unet --depth 4 --width 16 --chip-size 256 --batch-size 16
  --epochs 20 --steps-per-epoch 150 --patience 0 --lr 2e-3
  --w0 10 --sigma 5 --body-target depth --contact-radius 3 --threshold 0.5
  --device "$DEVICE" --no-progress)
PLACES=(kampala banepa catanduanes zanzibar)

runs=()
runs+=("member1|--seed 0 --colour mild")
runs+=("member2|--seed 1 --colour mild")
runs+=("member3|--seed 0 --colour strong")
for p in "${PLACES[@]}"; do
  others=$(printf '%s\n' "${PLACES[@]}" | grep -vx "$p" | paste -sd, -)
  runs+=("lopo_$p|--seed 0 --colour mild --places $others")
done

train_run() {
  local name=${1%%|*} options=${1#*|}
  local resume=()
  [ "${RESUME:-0}" = 1 ] && [ -f "$OUTDIR/$name.safetensors" ] && resume=(--resume)
  [ ${#resume[@]} = 0 ] && : >"$OUTDIR/$name.log"  # a fresh run starts a fresh log; a resumed one appends
  # shellcheck disable=SC2086  # the options are words
  "$PYTHON" -m geounet.train.pack "$PACK" --out "$OUTDIR/$name.safetensors" --overwrite \
    "${RECIPE[@]}" $options "${resume[@]}" "${EXTRA[@]}" >>"$OUTDIR/$name.log" 2>&1
  echo "$name: $(tail -n 1 "$OUTDIR/$name.log")"
}

EXTRA=("$@")
if [ -n "${ONLY:-}" ]; then  # ONLY="lopo_banepa member1": just these runs
  kept=()
  for run in "${runs[@]}"; do
    case " $ONLY " in *" ${run%%|*} "*) kept+=("$run") ;; esac
  done
  runs=("${kept[@]}")
fi
if [ "${PARALLEL:-0}" = 1 ]; then
  for run in "${runs[@]}"; do train_run "$run" & done
  wait
else
  for run in "${runs[@]}"; do train_run "$run"; done
fi
