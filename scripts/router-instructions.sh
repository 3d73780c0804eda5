#!/usr/bin/env bash
# Instructions the router executes per proxied request, counted by
# callgrind: a number that does not move with machine noise, unlike the
# wall-clock rows of hwc-bench (docs/benchmarks.md). Two hwc-bench runs
# with the router under valgrind differ only by 2,000 requests at
# concurrency 64; the difference of their totals over 2,000 is the cost of
# one request, start-up and warm-up cancelled out. User space only: the
# kernel's share (syscalls, loopback TCP) is not counted.
#
#   scripts/router-instructions.sh [extra hwc-bench flags, e.g. --router-rust-log warn]
#
# Needs valgrind (`apt-get install valgrind`) and builds of hwc-model-router
# and hwc-bench with the profile the router ships with (`cargo build
# --profile release-lto -p hwc-model-router -p hwc-bench`; PROFILE=release
# measures the plain release profile instead). Takes about a minute. Keeps
# the second run's profile as
# $OUT_DIR/callgrind.out (`callgrind_annotate --inclusive=yes` reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  echo "router-instructions: valgrind is not installed; apt-get install valgrind" >&2
  exit 2
fi
target_dir="${CARGO_TARGET_DIR:-target}"
profile="${PROFILE:-release-lto}"
release="$target_dir/$profile"
for bin in hwc-model-router hwc-bench; do
  if [[ ! -x "$release/$bin" ]]; then
    echo "router-instructions: no $release/$bin; cargo build --profile $profile -p hwc-model-router -p hwc-bench" >&2
    exit 2
  fi
done
out_dir="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$out_dir"
router="$(cd "$release" && pwd)/hwc-model-router"
wrapper="$out_dir/router-under-callgrind"
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$out_dir/cg/out.%p $router "\$@"
EOF
chmod +x "$wrapper"

total() {
  rm -rf "$out_dir/cg"
  mkdir -p "$out_dir/cg"
  "$release/hwc-bench" --router-bin "$wrapper" --no-litellm --no-nginx \
    --requests-c1 200 --requests-high "$1" --streams 2 --warmup 50 --rounds 1 "${@:2}" \
    >/dev/null 2>"$out_dir/bench.log" || {
    echo "router-instructions: hwc-bench failed; see $out_dir/bench.log" >&2
    exit 1
  }
  callgrind_annotate "$out_dir"/cg/out.* 2>/dev/null |
    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

small=$(total 1000 "$@")
large=$(total 3000 "$@")
cp "$out_dir"/cg/out.* "$out_dir/callgrind.out"
echo "instructions per request: $(((large - small) / 2000)) (totals $small and $large; profile $out_dir/callgrind.out)"
