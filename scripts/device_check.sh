#!/usr/bin/env bash
# Prove tensorlite's CUDA path on a GPU machine in one command, offline, in under 8 minutes on an H200:
#
#     bash scripts/device_check.sh [OUT_DIR]        (default OUT_DIR: ./device-check-out)
#
#  1. this script's syntax; whether CuPy sees a GPU (asked of CuPy alone).
#  2. with a GPU: install: pip install --no-deps --no-build-isolation -e .   (the machine has the dependencies)
#  3. preflight: CuPy importable, CUDA usable or why not, the fused kernels' math on NumPy (needs tensorlite: on a
#     machine without a GPU, the installed one if any). Without a GPU it stops here: one line says so; exit 0.
#  4. tests on cuda (TENSORLITE_TEST_DEVICES=cuda), the subset named in scripts/device_check.py (TEST_SUBSET):
#     every op's forward and backward, every layer, one training step of each model, devices, mixed precision,
#     tl.cuda, the fused kernels; at most 210 s.
#  5. bench.py gpu: the `gpu` preset's GPT ms/iteration, MNISTCNN ms/step, sampling chars/s with the cache and
#     peak GPU memory, beside PyTorch CUDA eager with identical models; at most 120 s.
#  6. 300 iterations of the `gpu` preset with its loss; at most 75 s (with the install's 60 s: 465 s at worst).
#
# Everything goes to OUT_DIR as text (*.txt, *.log) and JSON (*.json), summed up in summary.json and summary.txt.
# A phase that fails or runs out of time is recorded and the next one runs; the exit status is that of the worst.
set -uo pipefail

OUT="${1:-./device-check-out}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$ROOT" || exit 1
: > "$OUT/phases.txt"
status=0

# run NAME SECONDS COMMAND...: run a phase with a time limit, its output in OUT/NAME.log, its outcome in phases.txt
run() {
    local name="$1" limit="$2"
    shift 2
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local outcome="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then outcome="timed out after ${limit}s"; elif [ "$rc" -ne 0 ]; then outcome="failed (exit $rc)"; fi
    echo "$name: $outcome in $((SECONDS - started))s" | tee -a "$OUT/phases.txt"
    [ "$rc" -ne 0 ] && status=1
    return 0
}

bash -n "$0" || { echo "device_check: this script has a syntax error"; exit 1; }
if ! "$PYTHON" -c "import cupy, sys; sys.exit(cupy.cuda.runtime.getDeviceCount() == 0)" > "$OUT/cuda-probe.log" 2>&1; then
    if "$PYTHON" -c "import tensorlite.backends" > /dev/null 2>&1; then
        "$PYTHON" scripts/device_check.py preflight "$OUT" > "$OUT/preflight.log" 2>&1
        [ $? -eq 1 ] && { echo "device_check: no GPU here, and the preflight failed: see $OUT/preflight.log"; exit 1; }
        checked="$(tail -n 1 "$OUT/preflight.log")"
    else
        checked="tensorlite is not installed, so the fused kernels' math was not checked"
    fi
    echo "device_check: no usable CUDA device here, skipped the GPU part; checked this script's syntax and: $checked"
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1 || true
run install 60 "$PYTHON" -m pip install --no-deps --no-build-isolation -e .
run preflight 60 "$PYTHON" scripts/device_check.py preflight "$OUT"
mapfile -t TESTS < <("$PYTHON" scripts/device_check.py tests "$OUT")
TENSORLITE_TEST_DEVICES=cuda run tests 210 "$PYTHON" -m pytest -q -p no:cacheprovider -rfEs \
    --junitxml="$OUT/tests.xml" "${TESTS[@]}"
tail -n 3 "$OUT/tests.log" | sed 's/^/    /'
run bench 120 "$PYTHON" scripts/bench.py gpu --device cuda --rounds 3 --steps 20 --json "$OUT/bench.json"
run train 75 "$PYTHON" scripts/device_check.py train "$OUT" --device cuda --iters 300
"$PYTHON" scripts/device_check.py summary "$OUT" > /dev/null 2>&1 || status=1
cp "$OUT/bench.log" "$OUT/bench.txt" 2>/dev/null || true
echo "device_check: done (exit $status); figures in $OUT/summary.txt and $OUT/summary.json"
exit $status
