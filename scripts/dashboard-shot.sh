#!/bin/sh
# dashboard-shot.sh DORMANT OUT.png — the README's dashboard screenshot:
# a real `dormant serve` on a synthetic tiny model (random weights: the
# playground's text is meaningless), some keep_alive 0 and keep-alive
# requests, the page in headless Chromium (tests/js/dash.mjs, DASH_DEMO=1).
# Needs node, npm and chromium (run `npm ci` in tests/js once).
set -e
bin=$1; out=$2
dir=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" synth --preset tiny --type Q8_0 -o "$dir/tiny.gguf" >/dev/null
[ -d tests/js/node_modules/playwright-core ] || (cd tests/js && npm ci --no-audit --no-fund)
: >"$dir/log"
"$bin" serve --port 0 --model "tiny=$dir/tiny.gguf" 2>"$dir/log" & pid=$!
i=0
until port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\) .*|\1|p' "$dir/log") && [ -n "$port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/log"; exit 1; }; sleep 0.1
done
HOME=$dir DASH_DEMO=1 node tests/js/dash.mjs "http://127.0.0.1:$port" "$out"
