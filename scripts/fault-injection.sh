#!/usr/bin/env bash
# Faults on a real multi-process federation: runs it once without faults, then again with
# kill -9 of fog workers, key holders, clients and the aggregator at random moments (each
# process is restarted by a supervisor loop, as systemd would), and checks that the faulty run
# finishes every round, counts every client in each, records no round twice, and ends with
# models identical to the fault-free run's, round by round.
#
#   scripts/fault-injection.sh [--clients N] [--rounds K] [--kills M] [--seed S] [--port P] [--out DIR]
#
# Exits non-zero if any check fails. Logs: DIR/{clean,faulty}/logs/.
set -euo pipefail

clients=10 rounds=10 kills=12 seed=$RANDOM port=51051 out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --kills) kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
[[ -n "$out" ]] || out=$(mktemp -d)
mkdir -p "$out"
fogs=2 holders=5 threshold=3
RANDOM=$seed
echo "fault injection: $clients clients, $rounds rounds, $kills kills, seed $seed; logs in $out"

# 1. The reference: the same scenario without faults.
scripts/run-local-deployment.sh --clients "$clients" --fogs $fogs --holders $holders \
  --threshold $threshold --rounds "$rounds" --port "$port" --out "$out/clean" \
  >"$out/clean.txt" 2>&1 || {
  echo "the fault-free run failed: see $out/clean.txt" >&2
  exit 1
}

# 2. The faulty run: every process under a supervisor that restarts it when it dies.
bin=target/release/spddl
d="$out/faulty"
port=$((port + 10))
"$bin" deploy init --clients "$clients" --fogs $fogs --holders $holders --threshold $threshold \
  --port "$port" --out "$d" --set "rounds=$rounds" --share-timeout 3 >/dev/null
mkdir -p "$d/logs"
supervise() { # name, role, config: rerun until it exits 0 (the run is over)
  local name=$1 role=$2 config=$3 n=0
  until "$bin" "$role" --config "$config" >"$d/logs/$name.out" 2>>"$d/logs/$name.log"; do
    n=$((n + 1))
    echo "restart $n" >>"$d/logs/$name.restarts"
    sleep 0.3
  done
}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f -- "--config $d/" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
# (bash reports each killed child on stderr; the kills are listed below instead)
exec 3>&2 2>/dev/null
supervise aggregator aggregator "$d/aggregator.toml" &
aggregator=$!
pids+=("$aggregator")
for ((f = 0; f < fogs; f++)); do supervise "fog-$f" fog "$d/fog-$f.toml" & pids+=($!); done
for ((i = 1; i <= holders; i++)); do supervise "holder-$i" keyholder "$d/holder-$i.toml" & pids+=($!); done
client_pids=()
for ((c = 0; c < clients; c++)); do
  supervise "client-$c" client "$d/client-$c.toml" &
  pids+=($!)
  client_pids+=($!)
done

# The killer: every 0.2–1.1 s (random), kill -9 one process wherever it is in its round,
# taking the roles in turn (aggregator, a fog, a holder, a client) and the instance at random.
killed=()
for ((k = 0; k < kills; k++)); do
  sleep "0.$((RANDOM % 10 + 2))"
  kill -0 "$aggregator" 2>/dev/null || break
  case $((k % 4)) in
    0) victim="aggregator" ;;
    1) victim="fog-$((RANDOM % fogs))" ;;
    2) victim="holder-$((RANDOM % holders + 1))" ;;
    *) victim="client-$((RANDOM % clients))" ;;
  esac
  if pkill -9 -f -- "--config $d/$victim.toml"; then
    killed+=("$victim")
    echo "kill -9 $victim"
  fi
done

exec 2>&3
failed=0
wait "$aggregator" || { echo "aggregator supervisor failed" >&2; failed=1; }
for ((c = 0; c < clients; c++)); do
  wait "${client_pids[$c]}" || { echo "client $c failed: see $d/logs/client-$c.log" >&2; failed=1; }
done

# 3. Checks.
echo
echo "processes killed: ${#killed[@]} (${killed[*]})"
echo "faulty run, per round (the last aggregator process's report from its store):"
column -t -s, "$d/logs/aggregator.out"
clean_models=$(tail -n +2 "$out/clean/logs/aggregator.out" | cut -d, -f1,10)
faulty_models=$(tail -n +2 "$d/logs/aggregator.out" | cut -d, -f1,10)
rounds_seen=$(tail -n +2 "$d/logs/aggregator.out" | cut -d, -f1 | tr '\n' ' ')
expected_rounds=$(seq 0 $((rounds - 1)) | tr '\n' ' ')
if [[ "$rounds_seen" != "$expected_rounds" ]]; then
  echo "FAIL: rounds recorded: $rounds_seen (expected each of $expected_rounds once)" >&2
  failed=1
fi
short=$(tail -n +2 "$d/logs/aggregator.out" | awk -F, -v n="$clients" '$3 != n {print $1}' | tr '\n' ' ')
if [[ -n "$short" ]]; then
  echo "FAIL: rounds that did not count all $clients clients: $short" >&2
  failed=1
fi
if [[ "$clean_models" != "$faulty_models" ]]; then
  echo "FAIL: the models differ from the fault-free run's:" >&2
  diff <(echo "$clean_models") <(echo "$faulty_models") >&2 || true
  failed=1
else
  echo "models after each of the $rounds rounds: identical to the fault-free run's"
fi
echo "aggregator restarts resumed from its store:"
grep -h "resuming\|starting at" "$d/logs/aggregator.log" | sed 's/\x1b\[[0-9;]*m//g; s/^[^ ]* *//' || true
echo "restarts: aggregator $(cat "$d/logs/aggregator.restarts" 2>/dev/null | wc -l), others $(cat "$d"/logs/{fog,holder,client}-*.restarts 2>/dev/null | wc -l)"
exit $failed
