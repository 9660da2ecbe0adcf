#!/bin/sh
# Runs every fuzz target for SECONDS (split evenly) on a fresh seed corpus;
# fails if any target finds a crash, a leak, undefined behaviour or a hang.
set -eu
secs=$1; shift
n=$#
[ "$n" -gt 0 ] || { echo "fuzz-smoke: no targets"; exit 1; }
per=$(( secs / n )); [ "$per" -ge 5 ] || per=5
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds"
build-fuzz/seeds "$work/seeds"
for t in "$@"; do
	name=$(basename "$t")
	mkdir -p "$work/$name"
	cp "$work/seeds/"* "$work/$name/"
	echo "fuzz-smoke: $name for ${per}s"
	if ! "$t" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-artifact_prefix="$work/" -print_final_stats=1 "$work/$name" >"$work/$name.log" 2>&1; then
		tail -n 40 "$work/$name.log"
		mkdir -p build-fuzz/findings && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
			"$work"/oom-* build-fuzz/findings/ 2>/dev/null || true
		echo "fuzz-smoke: $name FAILED (inputs in build-fuzz/findings)"
		exit 1
	fi
	grep -E '^stat::number_of_executed_runs|^#[0-9]+.*DONE' "$work/$name.log" | tail -n 2 || true
done
echo "fuzz-smoke: all $n targets ran ${per}s each without findings"
