#!/usr/bin/env bash
# Runs every cargo fuzz target (or those named in TARGETS) for SECONDS each, default 60:
#   fuzz/run.sh            # decode and normalize, 60 s each
#   TARGETS=decode fuzz/run.sh 600
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo fuzz passes nightly-only flags to rustc
# (-Z sanitizer=address); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it. Findings land in
# fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/ (both ignored by git), seeded
# from fuzz/seeds/TARGET/. Exits non-zero on the first finding.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 1; }
targets="${TARGETS:-$(cargo fuzz list)}"
for target in $targets; do
  mkdir -p "corpus/$target"
  echo "==> fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
