#!/usr/bin/env bash
# A short fuzz run of the policy parser (parse → fmt → reparse → render), as CI does it.
# Only a stable toolchain is available here; cargo-fuzz's nightly flags work with RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-45}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/parse
RUSTC_BOOTSTRAP=1 cargo fuzz run parse corpus/parse seeds -- \
  -dict=parse.dict -max_total_time="$seconds" -timeout=5
