#!/usr/bin/env bash
# Build the libFuzzer target for the C line classifiers (fuzz_parse.c) with AddressSanitizer
# and UndefinedBehaviorSanitizer, and fuzz it for SECONDS (default 60).
#
#   agent/fuzz/run.sh [SECONDS] [libFuzzer options...]
#
# Needs clang with libFuzzer (Debian: apt-get install clang). What the run finds stays in
# agent/fuzz/build/: corpus/ (inputs that reached new code, reused by the next run) and
# artifacts/ (a crashing input, named crash-*; replay it with
# `agent/fuzz/build/fuzz_parse agent/fuzz/build/artifacts/crash-...`). Exits non-zero when
# the fuzzer found a crash, a leak, undefined behaviour or a broken check.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
shift || true
build="${FUZZ_BUILD:-$here/build}"
cc="${CLANG:-clang}"
mkdir -p "$build/corpus" "$build/artifacts"
flags=(-g -std=c99 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
# (yyjson, 10k lines, takes clang a minute and more with UBSan at -O1; at -O0, seconds.)
"$cc" "${flags[@]}" -O0 -c "$here/../native/yyjson.c" -o "$build/yyjson.o"
"$cc" "${flags[@]}" -O1 -c "$here/../native/blake2b.c" -o "$build/blake2b.o"
"$cc" "${flags[@]}" -O1 -I"$here/../native" -c "$here/fuzz_parse.c" -o "$build/fuzz_parse.o"
"$cc" -fsanitize=fuzzer,address,undefined "$build/fuzz_parse.o" "$build/yyjson.o" \
  "$build/blake2b.o" -o "$build/fuzz_parse"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# New inputs go into corpus/ (the first directory); the committed seeds are read only.
exec "$build/fuzz_parse" "$build/corpus" "$here/seeds" \
  -dict="$here/jsonl.dict" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$@"
