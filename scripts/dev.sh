#!/usr/bin/env bash
# README command 1: installs what is missing, builds the `procure` binary and runs `procure dev`
# (embedded Temporal dev server, worker, API and sandbox). Arguments go to `procure dev`; with
# none, `--demo-orders 5`. PROCURE_PROFILE=debug builds without --release.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The running system needs no PostgreSQL (its default store is a SQLite file) and no nginx
# (only the TLS tests run one): bootstrap just what it builds and runs with.
: "${PROCURE_BOOTSTRAP_STEPS:=temporal cargo}"
export PROCURE_BOOTSTRAP_STEPS
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

case "${PROCURE_PROFILE:-release}" in
    release) build_flags=(--release) ;;
    debug) build_flags=() ;;
    *)
        echo "dev: PROCURE_PROFILE must be release or debug, not ${PROCURE_PROFILE}" >&2
        exit 2
        ;;
esac

echo "dev: cargo build ${build_flags[*]} --bin procure" >&2
# The JSON messages name the built executable, wherever the target directory is configured.
bin=$(cargo build "${build_flags[@]}" --bin procure --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\/procure\)".*/\1/p' | tail -n1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "dev: could not locate the built procure binary" >&2
    exit 1
fi

if [ "$#" -eq 0 ]; then
    set -- --demo-orders 5
fi
echo "dev: exec $bin dev $*" >&2
exec "$bin" dev "$@"
