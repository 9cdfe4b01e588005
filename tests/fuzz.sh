#!/usr/bin/env bash
# The BGP speaker's fuzz targets (bgp/fuzz: decode + re-encode, and
# decode -> FSM/RIB; and BFD's, in the same fuzz crate: control-packet
# decode + re-encode -> session FSM) under AddressSanitizer with libFuzzer,
# RUNS inputs each (default 1,000,000), starting from the checked-in seeds.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`: the
# sanitizer flags are nightly-only) and a C++ compiler (libFuzzer is built
# by libfuzzer-sys). The same flags `cargo fuzz build` passes, without
# needing cargo-fuzz installed. A crash stops the run and leaves its input
# in bgp/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../bgp/fuzz"
runs=${RUNS:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export RUSTFLAGS="-Zsanitizer=address -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
triple=x86_64-unknown-linux-gnu
cargo +nightly build --release --target "$triple" --bin decode --bin fsm --bin bfd
mkdir -p artifacts
for t in decode:seeds:4096 fsm:seeds-fsm:8192 bfd:seeds-bfd:1024; do
  IFS=: read -r bin seeds max <<<"$t"
  corpus=$(mktemp -d)
  cp "$seeds"/* "$corpus"/
  echo "=== $bin: $runs inputs under AddressSanitizer"
  "$CARGO_TARGET_DIR/$triple/release/$bin" -runs="$runs" -max_len="$max" \
    -artifact_prefix=artifacts/ "$corpus" 2>&1 | grep -E '^#[0-9]+.*DONE|^Done|ERROR|SUMMARY'
  rm -rf "$corpus"
done
