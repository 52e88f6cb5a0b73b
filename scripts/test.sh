#!/usr/bin/env bash
# README command 2: installs what is missing, builds every test of the workspace once, then runs
# them (cargo-nextest with the profile in .config/nextest.toml when available, else cargo test).
# Extra arguments go to the test runner, e.g. `scripts/test.sh -p procure-domain`.
# Exit status: the tests'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

# Tests start real Temporal dev servers (one busy core each): 2..4 at a time.
threads=${PROCURE_TEST_THREADS:-$(nproc 2>/dev/null || echo 2)}
[ "$threads" -lt 2 ] && threads=2
[ "$threads" -gt 4 ] && threads=4

if cargo nextest --version >/dev/null 2>&1; then
    echo "test: cargo nextest run --workspace --no-run" >&2
    cargo nextest run --workspace --no-run "$@"
    echo "test: cargo nextest run --workspace --test-threads $threads" >&2
    exec cargo nextest run --workspace --test-threads "$threads" "$@"
else
    echo "test: cargo test --workspace --no-run (cargo-nextest not installed)" >&2
    cargo test --workspace --no-run "$@"
    echo "test: cargo test --workspace -- --test-threads $threads" >&2
    exec cargo test --workspace "$@" -- --test-threads "$threads"
fi
