#!/usr/bin/env bash
# The GPU figures of issue 6 in one command, from the repository root, in at most 8 minutes on one
# H100 or H200 with PyTorch installed (no Ray, MLflow, network or datasets needed: synthetic
# CIFAR-shaped data):
#
#   bash bench/gpu_check.sh                      # results under bench/results/gpu_check-DATE/ ($OUT if set)
#   PCDARTS_WHEELS=DIR bash bench/gpu_check.sh   # install missing pure dependencies (pydantic ...) from wheels in DIR
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SIZES='--batch 8 --C 4 --layers 3 --image-size 8 --steps 1' bash bench/gpu_check.sh
#                                                # a dry run of this script's flow on the CPU (no figures)
#
# Parts, in one budget of 460 s (GPU_CHECK_BUDGET_S) that each part's time limit is cut from: device
# facts; the speed grid at the full sizes (K 1/4, batch 256, C=16, 8 cells, 32x32: eager fp32 NCHW
# reference vs bf16 / channels-last); 4 packed K=4 searches vs one alone; host synchronisations per
# search step; then, with the time left, the same K=4 point compiled. Each part prints its rows as it
# measures them and rewrites its JSON after each, so one that runs out of time keeps what it measured;
# the summary at the end is read from the JSON. The JSON and logs stay in the results folder. Exit 0
# when every part ran (whatever the figures), 2 when something needed is missing, 1 when a part failed
# or ran out of time.
set -u
START=$(date +%s)
cd "$(dirname "$0")/.."
# `python3 bench/X.py` puts bench/ on sys.path, not the repository root: without this pcdarts_core
# imports only where it is pip-installed. The packed search processes inherit it.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-460}   # everything from here on; the 8-minute goal minus Python start-ups and kill delays
DEVICE=${GPU_CHECK_DEVICE:-cuda}
read -r -a SIZES <<< "${GPU_CHECK_SIZES:---batch 256 --C 16 --layers 8 --image-size 32}"   # last on each command line: they win
OUT_DIR=${OUT:-bench/results/gpu_check-$(date -u +%Y%m%dT%H%M%SZ)}
failed=0

say() { echo "== $*"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# --- what this machine has ---------------------------------------------------------------
missing() {  # pcdarts_core's requirements besides the standard library that $PY lacks or has too old, as pip names
    "$PY" - <<'EOF'
import importlib.util
import re

need = {"torch": "torch", "numpy": "numpy", "pydantic": "pydantic>=2.5", "typing_extensions": "typing-extensions"}
absent = [pip for module, pip in need.items() if importlib.util.find_spec(module) is None]
if "pydantic>=2.5" not in absent:
    try:
        import pydantic
        too_old = tuple(int(n) for n in re.findall(r"\d+", str(pydantic.VERSION))[:2]) < (2, 5)
    except Exception:  # a pydantic that does not even import is as good as none
        too_old = True
    if too_old:
        absent.append("pydantic>=2.5")
print(" ".join(absent))
EOF
}
if ! command -v "$PY" >/dev/null; then
    echo "gpu_check: no '$PY' here; set PYTHON to the Python that has PyTorch" >&2
    exit 2
fi
has_pip=1
"$PY" -m pip --version >/dev/null 2>&1 || has_pip=0
no_pip_help() {  # WHEELS_DIR
    echo "$PY has no pip: get it ($PY -m ensurepip, with --user outside a virtual environment, or the python3-pip package), or
  unpack the wheels by hand (a wheel is a zip of what goes on the path):
    mkdir site && for w in ${1%/}/*.whl; do $PY -m zipfile -e \"\$w\" site/; done
    PYTHONPATH=site bash bench/gpu_check.sh"
}
absent=$(missing)
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ -n "$absent" ] && [ -n "${PCDARTS_WHEELS:-}" ]; then
    if [ "$has_pip" = 0 ]; then
        echo "gpu_check: missing or too old: $absent; cannot install them from $PCDARTS_WHEELS: $(no_pip_help "$PCDARTS_WHEELS")" >&2
        exit 2
    fi
    site=$(mktemp -d /tmp/pcdarts-site-XXXXXX)
    trap 'rm -rf "$site"' EXIT
    say "installing $absent from the wheels in $PCDARTS_WHEELS (into $site, for this run only)"
    # shellcheck disable=SC2086
    if "$PY" -m pip install --quiet --no-index --find-links "$PCDARTS_WHEELS" --target "$site" $absent; then
        export PYTHONPATH="$site:$PYTHONPATH"
    else
        echo "gpu_check: pip could not install them from $PCDARTS_WHEELS (its message is above)" >&2
    fi
    absent=$(missing)
fi
if [ -n "$absent" ]; then
    quoted=$(echo "$absent" | sed "s/\([^ ]*\)/'\1'/g")
    if [ "$has_pip" = 1 ]; then
        cat >&2 <<EOF
gpu_check: missing or too old Python packages: $absent
  pcdarts_core needs them besides PyTorch. With a network: $PY -m pip install $quoted
  Without one: download their wheels elsewhere for this Python (e.g. pip download 'pydantic>=2.5'
  --only-binary=:all: --python-version $pyver --platform manylinux2014_x86_64 -d wheels/), bring the
  folder, and run: PCDARTS_WHEELS=wheels/ bash bench/gpu_check.sh
EOF
    else
        cat >&2 <<EOF
gpu_check: missing or too old Python packages: $absent
  pcdarts_core needs them besides PyTorch, and $(no_pip_help wheels)
  (download the wheels elsewhere: pip download $quoted --only-binary=:all: --python-version $pyver
  --platform manylinux2014_x86_64 -d wheels/)
EOF
    fi
    exit 2
fi
# every exported name, so every module imports (the package itself imports its modules on first use)
if ! err=$("$PY" -c "from pcdarts_core import *" 2>&1); then
    echo "gpu_check: pcdarts_core does not import from $PWD with $PY: $(echo "$err" | tail -n 1)" >&2
    exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: PyTorch sees no CUDA device here; run it on a GPU machine" >&2
    exit 2
fi

mkdir -p "$OUT_DIR"
say "device facts"
{
    date -u +"date %Y-%m-%dT%H:%M:%SZ"
    git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
    if [ "$DEVICE" = cuda ]; then
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
        "$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs')"
    else
        "$PY" -c "import os, torch; print(f'torch {torch.__version__}, device $DEVICE (a dry run: no GPU figures), {os.cpu_count()} cores')"
    fi
} 2>&1 | tee "$OUT_DIR/facts.txt"

limit_for() {  # NOMINAL LATER: NOMINAL s, or, when the budget left cannot hold it and the required parts after it (LATER s), its share
    local left
    left=$(left)
    if [ $(( $1 + $2 )) -le "$left" ]; then echo "$1"; else echo $(( left * $1 / ($1 + $2) )); fi
}
run_part() {  # required|optional NAME SECONDS COMMAND...: one part under its own limit, logged
    local need=$1 name=$2 limit=$3
    shift 3
    if [ "$limit" -lt 30 ]; then
        say "$name: skipped, only ${limit} s of the budget for it"
        [ "$need" = required ] && failed=1
        return
    fi
    say "$name (at most ${limit} s)"
    # SIGTERM at the limit: the scripts then write what they measured and stop; SIGKILL 5 s later.
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        say "$name: ended with exit $rc$([ "$rc" -eq 124 ] && echo " (did not finish within ${limit} s)")"
        [ "$need" = required ] && failed=1
    fi
}

SPEED=("$PY" bench/search_speed.py --device "$DEVICE" --compile off)
# K=4 first: if the grid runs out of time, the rows the goals are about are in its JSON.
run_part required speed_grid "$(limit_for 230 150)" "${SPEED[@]}" --ks 4 1 --precision fp32 bf16 \
    --memory-format nchw channels_last --steps 10 --epochs 2 "${SIZES[@]}" --json "$OUT_DIR/search_speed.json"
# Its own deadline 10 s inside the part's limit, so it ends on its own and says which group was late.
limit=$(limit_for 110 40)
run_part required packing "$limit" "$PY" bench/pack_searches.py --device "$DEVICE" --processes 4 --k 4 --steps 8 --epochs 2 \
    "${SIZES[@]}" --timeout $(( limit - 10 )) --json "$OUT_DIR/pack_searches.json"
# No reference point: the grid has it, and this part's time is for the counted epoch.
run_part required host_syncs "$(limit_for 40 0)" "${SPEED[@]}" --ks 4 --precision bf16 --memory-format channels_last \
    --no-reference --steps 3 --epochs 2 --sync-debug "${SIZES[@]}" --json "$OUT_DIR/host_syncs.json"
# Optional: a compile that does not finish in the time left does not pay within this check either. Compared
# with the grid's eager bf16 channels-last K=4 point in the summary.
run_part optional compiled $(( $(left) - 5 )) "${SPEED[@]}" --ks 4 --precision bf16 --memory-format channels_last \
    --no-reference --compile on --steps 10 --epochs 2 "${SIZES[@]}" --json "$OUT_DIR/search_speed_compiled.json"

say "summary ($(( $(date +%s) - START )) s; results in $OUT_DIR)"
"$PY" - "$OUT_DIR" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
VERDICT = {True: "PASS", False: "FAIL", None: "----"}


def load(part, name):
    path = out / name
    if not path.exists():
        print(f"{part}: nothing measured ({name} not written)")
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        print(f"{part}: {name} unreadable ({err})")
        return None


def number(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def goal_lines(part, data):
    note = "" if data.get("complete") else f" [partial: {data['measured']} of {data['points']} points]"
    for name, g in data["goals"].items():
        sign = ">=" if name == "speedup" else "<="
        print(f"{part}: {VERDICT[g['pass']]} {name} = {number(g.get('value'))} (goal {sign} {g.get('limit', '-')}): {g['why']}{note}")


def eager_k4(grid):
    rows = [r for r in (grid or {}).get("results", []) if (r["k"], r["precision"], r["memory_format"], r["compile"]) == (4, "bf16", "channels_last", "off")]
    return rows[0]["images_per_s"] if rows else None


grid = load("speed_grid", "search_speed.json")
if grid:
    goal_lines("speed_grid", grid)
pack = load("packing", "pack_searches.json")
if pack:
    if pack.get("complete"):
        print(f"packing: {VERDICT[pack['goal']['pass']]} packing = {pack['speedup']:.2f}x (goal >= {pack['goal']['limit']}), "
              f"GPU share per trial {number(pack['gpu_share'], 'g')}")
    else:
        alone = pack.get("alone")
        print(f"packing: ---- not measured: {pack.get('error')}"
              + (f" (alone: {alone['images_per_s']:.1f} img/s)" if alone else ""))
syncs = load("host_syncs", "host_syncs.json")
if syncs:
    counted = [r["host_syncs"] for r in syncs["results"] if r.get("host_syncs")]
    for s in counted:
        print(f"host_syncs: {s['total']} in one epoch of {s['steps']} steps ({(s['total'] - 2) / s['steps']:.1f} per step "
              f"beyond the epoch's 2 reads); from {s['places']}")
    if not counted:
        print("host_syncs: not counted" + (" (counted on CUDA only)" if syncs["results"] else f" ({syncs.get('stopped') or 'no point measured'})"))
compiled = load("compiled", "search_speed_compiled.json")
if compiled:
    rows = [r for r in compiled["results"] if r["images_per_s"]]
    eager = eager_k4(grid)
    if rows:
        ratio = f", {rows[0]['images_per_s'] / eager:.2f}x the eager one ({eager:.1f} img/s)" if eager else ""
        print(f"compiled: K=4 bf16 channels-last compiled {rows[0]['images_per_s']:.1f} img/s{ratio}; "
              f"projected search {number(rows[0]['projected_search_s'] / 60, '.1f')} min")
    else:
        print(f"compiled: not measured ({compiled.get('stopped') or 'no point'})")
EOF
exit $failed
