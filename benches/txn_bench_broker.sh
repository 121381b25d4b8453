#!/usr/bin/env bash
# What transactions cost the client: examples/txn_bench (no transactions,
# transactions of 1,000 and of 10,000) against examples/bench_broker, which
# answers every transaction request at once and writes no markers, so the
# broker's share of a transaction's end is microseconds. A fresh broker per
# run; RUNS runs; medians per client and mode, of records/s, of the ratio
# to the same run's no-transactions figure, and of the client's CPU time.
#
#   cargo build --release --example bench_broker --example txn_bench
#   RUNS=5 benches/txn_bench_broker.sh [ADDR]        # default 127.0.0.1:29311
#   TXN_BENCH_PEER="/tmp/peerbench/venv/bin/python benches/txn_confluent.py" \
#     RUNS=5 benches/txn_bench_broker.sh             # librdkafka after ours, each mode
#
# Environment: RUNS (3), COUNT (1000000), SIZE (100), TXN_BENCH_PEER,
# TXN_BENCH_FLUSH_EVERY (1: also no transactions with a flush every 1,000
# and 10,000 records), BENCH_BROKER_DISCARD (1: the broker keeps no data),
# TXN_BENCH_LINGER_MS (passed on). Prints the load average before each run.
set -uo pipefail
ADDR="${1:-127.0.0.1:29311}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-3}"
COUNT="${COUNT:-1000000}"
SIZE="${SIZE:-100}"
OUTF=$(mktemp)
LOG=$(mktemp)
BROKER=""
trap 'if [ -n "$BROKER" ]; then kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; fi; rm -f "$OUTF" "$LOG"' EXIT
for run in $(seq 1 "$RUNS"); do
  "$HERE/target/release/examples/bench_broker" "$ADDR" 1 2>"$LOG" &
  BROKER=$!
  sleep 0.3
  echo "run $run: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$HERE/target/release/examples/txn_bench" "$ADDR" "$COUNT" "$SIZE" 2>&1 | tee -a "$OUTF" | grep RESULT
  kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null
  grep BROKER "$LOG" | head -1
  BROKER=""
done
python3 - "$OUTF" <<'PY'
import re, statistics, sys
runs = {}   # (client, mode) -> list of (records/s, cpu)
order = []
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    key = (f.get("client", "kafka-blocking"), f["mode"])
    if key not in runs:
        runs[key] = []
        order.append(key)
    runs[key].append((float(f["records_per_s"]), float(f.get("cpu_s", "nan"))))
print("client mode: median records/s (runs), median of the per-run ratio to no-transactions, median CPU s")
for key in order:
    rates = [r for r, _ in runs[key]]
    base = runs.get((key[0], "no-transactions"), [])
    ratios = [r / b[0] for (r, _), b in zip(runs[key], base)]
    print("%s %s: %.2fM (%s) %.0f%% cpu %.2f" % (
        key[0], key[1], statistics.median(rates) / 1e6,
        " ".join("%.2fM" % (r / 1e6) for r in rates),
        100 * statistics.median(ratios) if ratios else float("nan"),
        statistics.median(c for _, c in runs[key])))
PY
