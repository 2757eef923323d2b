#!/usr/bin/env bash
# Starts a real multi-process SPDDL federation on 127.0.0.1 — an aggregator, fog workers,
# key holders and clients as separate processes talking gRPC over mutual TLS — runs its
# rounds, prints the accuracy and timings per round, stops every process it started, and
# exits non-zero if anything failed.
#
#   scripts/run-local-deployment.sh [--clients N] [--fogs F] [--rounds K] [--holders L]
#                                   [--threshold T] [--port P] [--out DIR] [--set key=value]…
#
# Logs of every process: DIR/logs/*.log (default DIR: a new temporary directory).
set -euo pipefail

clients=20 fogs=2 rounds=5 holders=5 threshold=3 port=50051 out="" sets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --fogs) fogs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --holders) holders=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
cargo build --release --quiet -p spddl-cli
bin=target/release/spddl
[[ -n "$out" ]] || out=$(mktemp -d)/deployment
"$bin" deploy init --clients "$clients" --fogs "$fogs" --holders "$holders" \
  --threshold "$threshold" --port "$port" --out "$out" --set "rounds=$rounds" "${sets[@]}"
mkdir -p "$out/logs"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start=$(date +%s.%N)
"$bin" aggregator --config "$out/aggregator.toml" >"$out/logs/aggregator.out" 2>"$out/logs/aggregator.log" &
aggregator=$!
pids+=("$aggregator")
for ((f = 0; f < fogs; f++)); do
  "$bin" fog --config "$out/fog-$f.toml" 2>"$out/logs/fog-$f.log" &
  pids+=($!)
done
for ((i = 1; i <= holders; i++)); do
  "$bin" keyholder --config "$out/holder-$i.toml" >"$out/logs/holder-$i.out" 2>"$out/logs/holder-$i.log" &
  pids+=($!)
done
client_pids=()
for ((c = 0; c < clients; c++)); do
  "$bin" client --config "$out/client-$c.toml" >"$out/logs/client-$c.out" 2>"$out/logs/client-$c.log" &
  pids+=($!)
  client_pids+=($!)
done

failed=0
wait "$aggregator" || { echo "aggregator failed: see $out/logs/aggregator.log" >&2; failed=1; }
for ((c = 0; c < clients; c++)); do
  wait "${client_pids[$c]}" || { echo "client $c failed: see $out/logs/client-$c.log" >&2; failed=1; }
done
end=$(date +%s.%N)

echo
echo "per round (aggregator):"
column -t -s, "$out/logs/aggregator.out" || cat "$out/logs/aggregator.out"
echo
awk '/^round /{n++; bytes+=$8; train+=$10; seal+=$12; up+=$14}
     END{if (n) printf "per client upload (mean of %d): %.0f bytes on the wire, train %.2f s, encrypt+sign %.2f s, upload until stored %.2f s\n", n, bytes/n, train/n, seal/n, up/n}' \
  "$out"/logs/client-*.out
awk '/failed_over [1-9]/{n++} END{printf "uploads that failed over to another fog: %d\n", n}' "$out"/logs/client-*.out
awk -v s="$start" -v e="$end" -v d="$out" 'BEGIN{printf "total wall time: %.1f s; logs in %s/logs\n", e - s, d}' 
rounds_done=$(($(wc -l <"$out/logs/aggregator.out") - 1))
if [[ $rounds_done -ne $rounds ]]; then
  echo "only $rounds_done of $rounds rounds completed" >&2
  failed=1
fi
exit $failed
