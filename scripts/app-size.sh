#!/usr/bin/env bash
# Prints the phone app's download sizes as one JSON line: the WebAssembly
# module (raw, gzip -9, brotli -q 11 as served) and the app shell (every other
# file under web/, each gzipped on its own). Run after scripts/build-wasm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
wasm=web/pkg/gridsync_client_bg.wasm
[ -f "$wasm" ] || { echo "no $wasm: run scripts/build-wasm.sh first" >&2; exit 1; }
size() { wc -c < "$1" | tr -d ' '; }
shell_raw=0; shell_gz=0
while IFS= read -r -d '' f; do
  shell_raw=$((shell_raw + $(size "$f")))
  shell_gz=$((shell_gz + $(gzip -9 -c "$f" | wc -c)))
done < <(find web -type f ! -path 'web/pkg/*.gz' ! -path 'web/pkg/*.br' ! -name '*.wasm' -print0)
printf '{"bench":"app_size","wasm_raw":%s,"wasm_gzip":%s,"wasm_brotli":%s,"shell_raw":%s,"shell_gzip":%s,"total_gzip":%s}\n' \
  "$(size $wasm)" "$(size $wasm.gz)" "$(size $wasm.br)" "$shell_raw" "$shell_gz" "$(( shell_gz + $(size $wasm.gz) ))"
