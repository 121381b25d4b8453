#!/usr/bin/env bash
# Latency and 1 KiB consume of our peer vs librdkafka (rdkafka crate) and
# confluent-kafka against examples/bench_broker, alternating the clients,
# RUNS times each; prints one line per invocation and the medians.
#
#   cargo build --release --example bench_broker --example peer
#   bash ../shared/bench/peers/setup.sh          # once: /tmp/peerbench
#   benches/bench_broker_peers.sh [ADDR]         # default 127.0.0.1:29192
#
# Environment: RUNS (3), LAT_COUNT (5000), CONSUME_COUNT (200000),
# CLIENTS ("ours rdkafka confluent"; a path runs that peer binary), MODES ("latency consume"),
# PEERBENCH_DIR (/tmp/peerbench), PEER_LATENCY_FETCH_WAIT_MS (1).
# The broker is started here and stopped at the end; its CPU time is printed.
set -uo pipefail
ADDR="${1:-127.0.0.1:29192}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P="${PEERBENCH_DIR:-/tmp/peerbench}"
PEERS="$HERE/../shared/bench/peers"
RUNS="${RUNS:-3}"
LAT_COUNT="${LAT_COUNT:-5000}"
CONSUME_COUNT="${CONSUME_COUNT:-200000}"
CLIENTS="${CLIENTS:-ours rdkafka confluent}"
MODES="${MODES:-latency consume}"
export PEER_LATENCY_FETCH_WAIT_MS="${PEER_LATENCY_FETCH_WAIT_MS:-1}"
OURS="${OURS_BIN:-$HERE/target/release/examples/peer}"
ADMIN="$P/venv/bin/python $PEERS/python/admin.py $ADDR"
cmd() {
  case "$1" in
    ours) echo "$OURS" ;;
    rdkafka) echo "$P/target/release/peer-rdkafka" ;;
    confluent) echo "$P/venv/bin/python $PEERS/python/peer_confluent.py" ;;
    *) echo "$1" ;;   # a path: another build of a peer (before/after)
  esac
}
"$HERE/target/release/examples/bench_broker" "$ADDR" 1 2>/tmp/bench_broker.$$.log &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; grep BROKER /tmp/bench_broker.$$.log; rm -f /tmp/bench_broker.$$.log' EXIT
sleep 0.3
OUTF=$(mktemp)
# one invocation: label, then the RESULT fields and user/sys from time(1)
run() {
  local label="$1"; shift
  local t; t=$(mktemp)
  local line
  line=$(/usr/bin/time -f '%U %S' -o "$t" timeout 300 "$@" 2>/dev/null | grep '^RESULT')
  read -r u s < "$t"; rm -f "$t"
  echo "$label user_s=$u sys_s=$s ${line#RESULT }" | tee -a "$OUTF"
}
n=0
if [[ " $MODES " == *" latency "* ]]; then
  for r in $(seq "$RUNS"); do
    for c in $CLIENTS; do
      n=$((n+1)); $ADMIN create "lat$n" 1
      run "latency $c run=$r" $(cmd "$c") "$ADDR" "lat$n" "$LAT_COUNT" 100 latency none
    done
  done
fi
if [[ " $MODES " == *" consume "* ]]; then
  for comp in none lz4; do
    $ADMIN create "ref_$comp" 1
    "$P/target/release/peer-rdkafka" "$ADDR" "ref_$comp" "$CONSUME_COUNT" 1024 produce "$comp" >/dev/null
    for r in $(seq "$RUNS"); do
      for c in $CLIENTS; do
        run "consume_1KiB_$comp $c run=$r" $(cmd "$c") "$ADDR" "ref_$comp" "$CONSUME_COUNT" 1024 consume "$comp"
      done
    done
    $ADMIN delete "ref_$comp"
  done
fi
python3 - "$OUTF" <<'PY'
import sys, statistics, collections
groups = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    kv = dict(p.split("=", 1) for p in parts if "=" in p)
    groups[(parts[0], parts[1])].append(kv)
print("\nmedians (n runs): mode client | p50 p99 p99.9 max us | msgs/s | cpu_s (user+sys)")
for (mode, client), rows in groups.items():
    med = lambda k: statistics.median(float(r.get(k, "nan")) for r in rows)
    cpu = statistics.median(float(r["user_s"]) + float(r["sys_s"]) for r in rows)
    if mode == "latency":
        print(f"{mode} {client} (n={len(rows)}) | {med('lat_p50_us'):.1f} {med('lat_p99_us'):.1f} "
              f"{med('lat_p999_us'):.1f} {med('lat_max_us'):.1f} | - | {cpu:.3f}")
    else:
        print(f"{mode} {client} (n={len(rows)}) | - | {med('msgs_per_s'):,.0f} | {cpu:.3f}")
PY
rm -f "$OUTF"
