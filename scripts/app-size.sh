#!/usr/bin/env bash
# Prints the phone app's download sizes as one JSON line: the WebAssembly
# module (raw, gzip -9, brotli -q 11 as served) and the app shell (every other
# file under web/, each gzipped on its own). Run after scripts/build-wasm.sh.
# Then checks the budget: the brotli WebAssembly (what a phone downloads) must
# not grow past WASM_BR_BUDGET bytes (default 416,000: issue 11's "does not
# grow past today's ≈ 416 KB"; measured 411,039 on 2026-11-30). Over it, a
# clear warning line is printed; the exit status stays 0 (a benchmark
# reports, it does not fail a build).
set -euo pipefail
cd "$(dirname "$0")/.."
wasm=web/pkg/gridsync_client_bg.wasm
budget=${WASM_BR_BUDGET:-416000}
[ -f "$wasm" ] || { echo "no $wasm: run scripts/build-wasm.sh first" >&2; exit 1; }
for f in "$wasm.gz" "$wasm.br"; do
  [ -f "$f" ] || { echo "no $f: run scripts/build-wasm.sh first" >&2; exit 1; }
done
gzip -dc "$wasm.gz" | cmp -s - "$wasm" || echo "note: $wasm.gz is not $wasm compressed (a build in progress?): sizes may not match" >&2
size() { wc -c < "$1" | tr -d ' '; }
shell_raw=0; shell_gz=0
while IFS= read -r -d '' f; do
  shell_raw=$((shell_raw + $(size "$f")))
  shell_gz=$((shell_gz + $(gzip -9 -c "$f" | wc -c)))
done < <(find web -type f ! -path 'web/pkg/*.gz' ! -path 'web/pkg/*.br' ! -name '*.wasm' -print0)
br=$(size $wasm.br)
printf '{"bench":"app_size","wasm_raw":%s,"wasm_gzip":%s,"wasm_brotli":%s,"wasm_brotli_budget":%s,"shell_raw":%s,"shell_gzip":%s,"total_gzip":%s}\n' \
  "$(size $wasm)" "$(size $wasm.gz)" "$br" "$budget" "$shell_raw" "$shell_gz" "$(( shell_gz + $(size $wasm.gz) ))"
if [ "$br" -gt "$budget" ]; then
  printf 'WARNING: app download grew: %s is %s bytes brotli, over the budget of %s bytes (+%s); see BENCHMARKS.md "Weak phone, weak network (issue 11)"\n' \
    "$wasm.br" "$br" "$budget" "$(( br - budget ))"
else
  printf 'ok: %s is %s bytes brotli, within the budget of %s bytes (%s to spare)\n' "$wasm.br" "$br" "$budget" "$(( budget - br ))"
fi
