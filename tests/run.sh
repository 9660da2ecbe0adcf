#!/bin/sh
# Runs each cmocka test binary, shows its output, and ends with one summary
# line "make test: N passed, M failed" summed over all of them.  Exits
# non-zero if any test failed or any binary crashed.
# Servers the tests start scan no Ollama / Hugging Face / LM Studio store of
# the machine's user (tests/test_discover.c builds its own and unsets this).
export DORMANT_DISCOVER=false
passed=0; failed=0; crashed=0; skipped=0
log=$(mktemp); kv=$(mktemp -d); trap 'rm -f "$log"; rm -rf "$kv"' EXIT
# saved KV caches (kv_persist) go to a private folder, not the user's cache
export DORMANT_KV_DIR="$kv"
for t in "$@"; do
	BUILD="${BUILD:-build}" "$t" >"$log" 2>&1; rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$t: exited with status $rc" >&2; crashed=$((crashed + 1))
	fi
done
echo
echo "make test: $passed passed, $((failed + crashed)) failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$crashed" -eq 0 ]
