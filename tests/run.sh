#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# On a fresh Debian 12 machine as root it installs what the tests need, then
# checks formatting and lints and runs every test once from one build.
set -euo pipefail
cd "$(dirname "$0")/.."

# etcd-server: the etcdv3 tests start a real etcd on loopback.
# protobuf-compiler: etcd-client's build script runs protoc (Tabby's own
# protos use protox and need none).
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# cargo prints one "test result" per test binary, the last ones often for
# crates with no doc-tests; the total is what a reader (and CI) wants.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
