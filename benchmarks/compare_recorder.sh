#!/usr/bin/env bash
# Side by side in one run: bench_recorder.py against another checkout (BEFORE, default /work/main)
# and this one, round after round alternating, so that both see the same machine load.
#   benchmarks/compare_recorder.sh [BEFORE_CHECKOUT] [ROUNDS] [bench_recorder args...]
# For record_throughput_ratio pass --throughput-only: each run already alternates unrecorded and
# recorded windows of one workload, and prints the median over them with its IQR (the medians of
# *_iqr over rounds below are a rough guide); the two checkouts' runs may meet different load.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
before="${1:-/work/main}"
rounds="${2:-3}"
shift 2 || true
out="$(mktemp -d)"
for r in $(seq 1 "$rounds"); do
  PRODTURE_TREE="$before/python-adapter" "$before/.venv/bin/python" "$here/benchmarks/bench_recorder.py" \
    --rounds 1 "$@" >>"$out/before.txt" 2>>"$out/before.err"
  "$here/.venv/bin/python" "$here/benchmarks/bench_recorder.py" --rounds 1 "$@" >>"$out/after.txt" 2>>"$out/after.err"
done
"$here/.venv/bin/python" - "$out/before.txt" "$out/after.txt" <<'PY'
import statistics, sys
def load(path):
    values = {}
    for line in open(path):
        if ":" in line and not line.startswith("#"):
            name, value = line.split(":", 1)
            values.setdefault(name.strip(), []).append(float(value))
    return values
before, after = load(sys.argv[1]), load(sys.argv[2])
print(f"{'name (median of rounds)':45s} {'before':>10s} {'after':>10s}")
nan = [float("nan")]
for name in [*before, *(n for n in after if n not in before)]:  # after may print more
    b = statistics.median(before.get(name, nan))
    a = statistics.median(after.get(name, nan))
    print(f"{name:45s} {b:10.3f} {a:10.3f}")
PY
echo "# raw output in $out" >&2
