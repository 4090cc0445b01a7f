#!/usr/bin/env bash
# Builds the phone's replica (crate gridsync-client) for the browser into web/pkg/:
#   web/pkg/gridsync_client.js          ES module glue (wasm-bindgen --target web)
#   web/pkg/gridsync_client_bg.wasm     the module (wasm-opt -Oz when npm is available)
#   web/pkg/gridsync_client_bg.wasm.gz  gzip -9, for serving precompressed
#   web/pkg/gridsync_client_bg.wasm.br  brotli quality 11, likewise
#
# Compiler: a rustup toolchain that has the wasm32-unknown-unknown target is
# used as is. Otherwise (the CI machines, where `rustup target add` cannot
# download) Debian's rustc-web/cargo-web/rust-web-src are installed once and
# std is built from source (-Zbuild-std), linked with rustup's rust-lld.
# Tools: wasm-bindgen-cli at the Cargo.lock version in ~/.cache/gridsync (one
# install per machine, shared by clones), npm's binaryen in .tools/.
# A rerun with nothing changed only asks cargo and compares a stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TARGET=wasm32-unknown-unknown
PROFILE=wasm
TARGET_DIR=$ROOT/target/wasm
TOOLS=$ROOT/.tools
OUT=$ROOT/web/pkg
NAME=gridsync_client
BINARYEN_VERSION=132
# --converge repeats -Oz while it still shrinks the module (~3 KB brotli; measured 2026-11-30).
WASM_OPT_FLAGS=(-Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# One build at a time: two runs share target/wasm and web/pkg (rm -rf, then
# rewrite), so a second run waits here for the first to finish. The lock is
# held on fd 9 until this script exits.
mkdir -p "$TARGET_DIR"
exec 9>"$TARGET_DIR/build-wasm.lock"
if ! flock -n 9; then
  say "another scripts/build-wasm.sh is running; waiting for its lock ($TARGET_DIR/build-wasm.lock)"
  flock 9
fi

# rustup's cargo may not be on PATH in a fresh non-login shell.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# rustup's rustc (a proxy), never Debian's /usr/bin/rustc.
rustup_rustc() {
  local c
  for c in "${CARGO_HOME:-$HOME/.cargo}/bin/rustc" "$HOME/.cargo/bin/rustc"; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  local IFS=:
  for d in $PATH; do
    c=$d/rustc
    [ -x "$c" ] || continue
    [ "$(readlink -f "$c")" = /usr/bin/rustc ] && continue
    echo "$c"
    return
  done
  return 1
}

debian_pkgs_missing() {
  local p absent=()
  for p in rustc-web cargo-web rust-web-src; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || absent+=("$p")
  done
  echo "${absent[@]}"
}

# ---------------------------------------------------------------- 1. compile
build_args=(build --profile "$PROFILE" --target "$TARGET" -p gridsync-client --lib --target-dir "$TARGET_DIR")
# Only for this build: getrandom picks the browser's crypto.getRandomValues.
wasm_rustflags='--cfg getrandom_backend="wasm_js"'

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -q "^$TARGET\$"; then
  if rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    # With the std sources at hand, the same bare-trap panics as the Debian
    # path below (~25 KB brotli smaller; see there).
    say "compiling gridsync-client for $TARGET (rustup toolchain with the target, std built from rust-src)"
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$wasm_rustflags -Zunstable-options -Cpanic=immediate-abort" \
      cargo "${build_args[@]}" -Zbuild-std=std,panic_abort
  else
    say "compiling gridsync-client for $TARGET (rustup toolchain with the target)"
    warn "no rust-src component: panics keep their formatting code (~25 KB brotli more); \`rustup component add rust-src\` avoids it"
    RUSTFLAGS="$wasm_rustflags" cargo "${build_args[@]}"
  fi
else
  missing=$(debian_pkgs_missing)
  if [ -n "$missing" ]; then
    say "installing Debian packages: $missing (rustup has no $TARGET target here)"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    # shellcheck disable=SC2086
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
  fi
  [ -d /usr/lib/rustlib/src/rust/library ] || die "rust-web-src did not install the std sources"

  rr=$(rustup_rustc) || die "no rustup rustc found: its rust-lld links the wasm (install Rust with rustup)"
  host=$(env -u RUSTC "$rr" -vV | sed -n 's/^host: //p')
  lld=$(env -u RUSTC "$rr" --print sysroot)/lib/rustlib/$host/bin/rust-lld
  [ -x "$lld" ] || die "rust-lld not found at $lld"

  say "compiling gridsync-client for $TARGET (Debian rustc $(/usr/bin/rustc --version | cut -d' ' -f2) + build-std)"
  # std is built here anyway, so a panic can be a bare trap: its message was
  # never shown (no panic hook; stderr goes nowhere in the browser), and the
  # formatting machinery behind it cost ~25 KB brotli (measured 2026-11-30).
  # Same outcome for the app as before: the call throws `unreachable`.
  RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$lld" \
    RUSTFLAGS="$wasm_rustflags -Zunstable-options -Cpanic=immediate-abort" \
    /usr/bin/cargo "${build_args[@]}" -Zbuild-std=std,panic_abort
fi

built=$TARGET_DIR/$TARGET/$PROFILE/$NAME.wasm
[ -f "$built" ] || die "cargo did not produce $built"

# ------------------------------------------------------ 3. wasm-bindgen-cli
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$bindgen_version" ] || die "wasm-bindgen not found in Cargo.lock"
# Kept per user and version outside the checkout, so that every clone on this
# machine (CI clones afresh) reuses one install; a fresh machine installs it.
bindgen_root=${GRIDSYNC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gridsync}/wasm-bindgen-cli-$bindgen_version
bindgen=$bindgen_root/bin/wasm-bindgen
bindgen_is() { [ "$("$1" --version 2>/dev/null | awk '{print $2}')" = "$bindgen_version" ]; }
if ! bindgen_is "$bindgen"; then
  if bindgen_is "$TOOLS/bin/wasm-bindgen"; then
    bindgen=$TOOLS/bin/wasm-bindgen # installed here by an earlier version of this script
  else
    say "installing wasm-bindgen-cli $bindgen_version into $bindgen_root (about two minutes, once per machine)"
    # No --locked: the registry here lacks one of its pinned dependency versions.
    # Only the wasm-bindgen binary (not the test runner), unoptimised: 166 s of
    # CPU to build instead of 420 at cargo install's opt-level 3, and our module
    # then takes it 2.3 s instead of 0.5, byte-identical output (measured 2026-11-30).
    cargo install --root "$bindgen_root" wasm-bindgen-cli --version "$bindgen_version" --force \
      --bin wasm-bindgen --config 'profile.release.opt-level=0'
  fi
fi

# ------------------------------------------------------ 5a. binaryen (npm)
wasm_opt=
if command -v npm >/dev/null 2>&1; then
  wasm_opt=$TOOLS/node/node_modules/.bin/wasm-opt
  installed=$(node -p "require('$TOOLS/node/node_modules/binaryen/package.json').version" 2>/dev/null || true)
  if [ ! -x "$wasm_opt" ] || [ "${installed%%.*}" != "$BINARYEN_VERSION" ]; then
    say "installing binaryen@$BINARYEN_VERSION (npm) into .tools/node"
    mkdir -p "$TOOLS/node"
    if ! npm --prefix "$TOOLS/node" install --no-audit --no-fund --no-save "binaryen@$BINARYEN_VERSION" >&2 \
      || [ ! -x "$wasm_opt" ]; then
      warn "could not install binaryen: the wasm stays unoptimised"
      wasm_opt=
    fi
  fi
else
  warn "npm not found: skipping wasm-opt"
fi

# ------------------------------------------ 4-6. bindgen, optimise, compress
wasm=$OUT/${NAME}_bg.wasm
stamp_file=$TARGET_DIR/pkg.stamp
stamp="$(sha256sum "$built" | cut -d' ' -f1) bindgen=$bindgen_version wasm-opt=${wasm_opt:+$BINARYEN_VERSION} $(basename "$0")=$(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
  && [ -f "$wasm" ] && [ -f "$OUT/$NAME.js" ] && [ -f "$wasm.gz" ] && [ -f "$wasm.br" ]; then
  say "web/pkg is up to date"
else
  rm -f "$stamp_file"
  say "wasm-bindgen --target web -> web/pkg"
  rm -rf "$OUT"
  "$bindgen" --target web --no-typescript --out-dir "$OUT" --out-name "$NAME" "$built"

  optimised=yes
  if [ -n "$wasm_opt" ]; then
    say "wasm-opt ${WASM_OPT_FLAGS[*]:0:2}"
    if "$wasm_opt" "${WASM_OPT_FLAGS[@]}" "$wasm" -o "$wasm.opt"; then
      mv "$wasm.opt" "$wasm"
    else
      rm -f "$wasm.opt"
      optimised=no
      warn "wasm-opt failed: keeping the unoptimised module"
    fi
  fi

  say "precompressing (gzip -9, brotli -q 11)"
  gzip -9 -n -c "$wasm" >"$wasm.gz"
  if command -v brotli >/dev/null 2>&1; then
    brotli -q 11 -f -o "$wasm.br" "$wasm"
  elif command -v node >/dev/null 2>&1; then
    node -e '
      const fs = require("fs"), zlib = require("zlib");
      const [src, dst] = process.argv.slice(1);
      const input = fs.readFileSync(src);
      fs.writeFileSync(dst, zlib.brotliCompressSync(input, { params: {
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_GENERIC,
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: input.length,
      } }));' "$wasm" "$wasm.br"
  else
    die "neither brotli nor node found: cannot write $wasm.br"
  fi
  # After a wasm-opt failure, leave no stamp so that the next run tries again.
  [ "$optimised" = no ] || echo "$stamp" >"$stamp_file"
fi

# ------------------------------------------------------------------ 7. sizes
echo "raw:    $(stat -c %s "$wasm") bytes  web/pkg/${NAME}_bg.wasm"
echo "gzip:   $(stat -c %s "$wasm.gz") bytes  web/pkg/${NAME}_bg.wasm.gz"
echo "brotli: $(stat -c %s "$wasm.br") bytes  web/pkg/${NAME}_bg.wasm.br"
