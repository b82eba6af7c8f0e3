#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECONDS (default 600), one after another, one
# libFuzzer process at a time, and prints each one's figures. Targets: the arguments, else all.
#   FUZZ_SECONDS=60 bash fuzz/run.sh cdr config
# Needs cargo-fuzz (stable toolchain: --sanitizer none) and, for `labels`, atheris in the venv;
# `source scripts/env.sh` first (the Makefile does). Corpora grow in fuzz/corpus/<target>/
# (started from fuzz/seeds/<target>/), findings land in fuzz/artifacts/<target>/, logs in
# fuzz/logs/<target>.log; fuzz/dicts/<target>.dict, where present, is the target's dictionary.
# Exits 1 if any target found a crash, panic, out-of-memory or hang.
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-600}
ALL=(raw_image compressed_image cdr bag config labels)
TARGETS=("${@:-${ALL[@]}}")
# -timeout: an input running 10 s is a hang. -rss_limit_mb: an input that makes the process
# hold 2 GiB (or allocate it in one malloc) is a finding: sizes from untrusted lengths.
FLAGS=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# libFuzzer's coverage instrumentation without a sanitizer (the stable toolchain has none); the
# release profile of fuzz/Cargo.toml adds debug assertions and overflow checks.
BUILD=(--sanitizer none)

# The bag and config harnesses write their input to files for each run: in memory, so that a
# disk busy with other work does not stall a run into a false "hang".
if [ -z "${FUZZ_TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then FUZZ_TMPDIR=/dev/shm; fi
export TMPDIR=${FUZZ_TMPDIR:-${TMPDIR:-/tmp}}
mkdir -p logs
if [[ " ${TARGETS[*]} " != " labels " ]]; then
  cargo fuzz build "${BUILD[@]}" || exit 2
fi
found=0
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="logs/$t.log"
  echo "== $t: ${SECONDS_EACH}s, log $log"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=(-dict="dicts/$t.dict")
  start=$(date +%s)
  if [ "$t" = labels ]; then
    python3 fuzz_labels.py "corpus/$t" "seeds/$t" "${FLAGS[@]}" "${dict[@]}" -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  else
    cargo fuzz run "${BUILD[@]}" "$t" "corpus/$t" "seeds/$t" -- "${FLAGS[@]}" "${dict[@]}" -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  fi
  rc=$?
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  artifacts=$(find "artifacts/$t" -type f | wc -l)
  # A hang is re-run alone, to tell a slow input from a machine that stalled the run.
  for f in "artifacts/$t"/timeout-*; do
    [ -e "$f" ] || continue
    s0=$(date +%s.%N)
    if [ "$t" = labels ]; then timeout 60 python3 fuzz_labels.py --replay "$f" >/dev/null 2>&1
    else timeout 60 "target/x86_64-unknown-linux-gnu/release/$t" "$f" >/dev/null 2>&1; fi
    echo "   re-run of $f alone: exit $?, $(echo "$(date +%s.%N) - $s0" | bc) s" | tee -a "$log"
  done
  if [ "$rc" -ne 0 ] || [ "$artifacts" -ne 0 ]; then
    found=1
    status="FINDING (exit $rc, $artifacts file(s) in fuzz/artifacts/$t/)"
  else
    status="clean"
  fi
  summary+=("$(printf '%-17s %5ss  execs %-10s exec/s %-7s cov %-6s ft %-6s corpus %-12s rss %sMB  %s' \
    "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$status")")
  echo "${summary[-1]}"
done
echo "== summary (fuzz/logs/*.log)"
printf '%s\n' "${summary[@]}"
exit $found
