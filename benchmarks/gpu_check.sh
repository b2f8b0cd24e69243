#!/usr/bin/env bash
# GPU readiness check, one table (benchmarks/gpu_check.py says what it runs).
#
#   bash benchmarks/gpu_check.sh          one CUDA GPU: the GPU-marked tests, then the check;
#                                         under 8 minutes once a corpus exists
#   bash benchmarks/gpu_check.sh --cpu    the same check on CPU at tiny sizes (no GPU needed)
#
# Needs the project installed (pip install -e '.[all,test]') and a corpus: MANIFEST, by
# default data/synth/manifest.jsonl, synthesized there first (200 utterances) if missing.
# Offline: whisper-large-v3 is used only if it is already in the Hugging Face cache.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MANIFEST=${MANIFEST:-data/synth/manifest.jsonl}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if [[ ! -f $MANIFEST ]]; then
  echo "gpu_check: no $MANIFEST; synthesizing 200 utterances there first (not timed)"
  $PYTHON -m audiodistill.cli synth --config configs/synth/default.yaml \
    n=200 out="$(dirname "$MANIFEST")" || exit 1
fi

if [[ ${1:-} == --cpu ]]; then
  # every stage at a size 2 busy cores finish in a few minutes; results kept out of the repo
  exec timeout 900 $PYTHON benchmarks/gpu_check.py --device cpu --manifest "$MANIFEST" \
    --n 8 --batches 1,4 --label-n 48 --steps 4 --cpus 1 --budget-s 800 \
    --out "${TMPDIR:-/tmp}/gpu_check_cpu.json"
fi

# the device tests first (seconds): dev evaluation of a whisper-distil student on CUDA
timeout 90 $PYTHON -m pytest -q -m gpu tests/test_whisper_distil.py
tests=$?
# 90 s of tests + 390 s hard cap = 8 minutes; no stage starts after 330 s
timeout 390 $PYTHON benchmarks/gpu_check.py --device cuda --manifest "$MANIFEST" --budget-s 330
check=$?
[[ $tests == 0 ]] || echo "gpu_check: the GPU-marked tests FAILED (exit $tests)"
[[ $check == 0 ]] || echo "gpu_check: the check FAILED or ran out of time (exit $check)"
exit $((tests || check))
