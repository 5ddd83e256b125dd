#!/usr/bin/env bash
# The GPU figures of issue 6 in one command, from the repository root, in at most 8 minutes on one
# H100 or H200 with PyTorch installed (no Ray, MLflow, network or datasets needed: synthetic
# CIFAR-shaped data):
#
#   bash bench/gpu_check.sh                      # results under bench/results/gpu_check-DATE/ ($OUT if set)
#   PCDARTS_WHEELS=DIR bash bench/gpu_check.sh   # install missing pure dependencies (pydantic ...) from wheels in DIR
#
# Parts, each under its own time limit: device facts; the speed grid at the full sizes (K 1/4,
# batch 256, C=16, 8 cells, 32x32: eager fp32 NCHW reference vs bf16 / channels-last); 4 packed
# K=4 searches vs one alone; host synchronisations per search step; then, with the time left,
# the same K=4 point compiled. Prints the tables and PASS/FAIL lines; the JSON and logs stay in
# the results folder. Exit 0 when every part ran (whatever the figures), 2 when something needed
# is missing, 1 when a part failed or ran out of time.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-460}   # all parts together; the 8-minute goal minus Python start-ups
START=$(date +%s)
OUT_DIR=${OUT:-bench/results/gpu_check-$(date -u +%Y%m%dT%H%M%SZ)}
failed=0

say() { echo "== $*"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# --- what this machine has ---------------------------------------------------------------
missing() {
    "$PY" - <<'EOF'
import importlib.util
need = {"torch": "torch", "numpy": "numpy", "pydantic": "pydantic>=2.5", "typing_extensions": "typing-extensions"}
print(" ".join(pip for module, pip in need.items() if importlib.util.find_spec(module) is None))
EOF
}
if ! command -v "$PY" >/dev/null; then
    echo "gpu_check: no '$PY' here; set PYTHON to the Python that has PyTorch" >&2
    exit 2
fi
absent=$(missing)
if [ -n "$absent" ] && [ -n "${PCDARTS_WHEELS:-}" ]; then
    site=$(mktemp -d /tmp/pcdarts-site-XXXXXX)
    trap 'rm -rf "$site"' EXIT
    say "installing $absent from the wheels in $PCDARTS_WHEELS (into $site, for this run only)"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet --no-index --find-links "$PCDARTS_WHEELS" --target "$site" $absent \
        && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    absent=$(missing)
fi
if [ -n "$absent" ]; then
    quoted=$(echo "$absent" | sed "s/\([^ ]*\)/'\1'/g")
    cat >&2 <<EOF
gpu_check: missing Python packages: $absent
  pcdarts_core needs them besides PyTorch. With a network: $PY -m pip install $quoted
  Without one: download their wheels elsewhere for this Python (e.g. pip download 'pydantic>=2.5'
  --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d wheels/), bring the
  folder, and run: PCDARTS_WHEELS=wheels/ bash bench/gpu_check.sh
EOF
    exit 2
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: PyTorch sees no CUDA device here; run it on a GPU machine" >&2
    exit 2
fi

mkdir -p "$OUT_DIR"
say "device facts"
{
    date -u +"date %Y-%m-%dT%H:%M:%SZ"
    git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
    "$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs')"
} 2>&1 | tee "$OUT_DIR/facts.txt"

run_part() {  # required|optional NAME SECONDS COMMAND...: one part under its own limit, logged
    local need=$1 name=$2 limit=$3
    shift 3
    if [ "$limit" -lt 30 ]; then
        say "$name: skipped, only ${limit} s of the budget left"
        [ "$need" = required ] && failed=1
        return
    fi
    say "$name (at most ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        say "$name: ended with exit $rc$([ "$rc" -eq 124 ] && echo " (did not finish within ${limit} s)")"
        [ "$need" = required ] && failed=1
    fi
}

FULL=(--device cuda --batch 256 --C 16 --layers 8 --image-size 32)
# K=4 first: if the grid runs out of time, the rows the goals are about are in.
run_part required speed_grid 230 "$PY" bench/search_speed.py "${FULL[@]}" --ks 4 1 --precision fp32 bf16 \
    --memory-format nchw channels_last --compile off --steps 10 --epochs 2 --json "$OUT_DIR/search_speed.json"
run_part required packing 110 "$PY" bench/pack_searches.py --device cuda --processes 4 --k 4 --batch 256 --C 16 --layers 8 \
    --image-size 32 --steps 8 --epochs 2 --timeout 100 --json "$OUT_DIR/pack_searches.json"
run_part required host_syncs 40 "$PY" bench/search_speed.py "${FULL[@]}" --ks 4 --precision bf16 --memory-format channels_last \
    --compile off --steps 3 --epochs 2 --sync-debug --json "$OUT_DIR/host_syncs.json"
# Optional: a compile that does not finish in the time left does not pay within this check either.
run_part optional compiled $(( $(left) - 5 )) "$PY" bench/search_speed.py "${FULL[@]}" --ks 4 --precision bf16 \
    --memory-format channels_last --compile on --steps 10 --epochs 2 --json "$OUT_DIR/search_speed_compiled.json"

say "summary ($(( $(date +%s) - START )) s; results in $OUT_DIR)"
for part in speed_grid packing host_syncs compiled; do
    pattern="^(PASS|FAIL|----) "
    [ "$part" = host_syncs ] && pattern="host synchronisations"
    [ -f "$OUT_DIR/$part.log" ] && grep -E "$pattern" "$OUT_DIR/$part.log" | sed "s/^/$part: /"
done
exit $failed
