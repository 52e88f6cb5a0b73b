#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis (PyPI) generates requests from the API's OpenAPI
# document (/api/openapi.json) and sends them to a live `procure dev` (sandbox marketplaces,
# SQLite, Temporal dev server) as an admin, then as nobody. Passes only with zero 5xx answers
# and zero answers outside the document (status codes, content types, response schemas).
#
#   scripts/fuzz.sh                 # 40 examples per operation
#   FUZZ_EXAMPLES=200 scripts/fuzz.sh
#
# Bounded (examples per operation and a time budget), loopback only; stops everything it
# started. The report goes to target/fuzz/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh
if ! command -v schemathesis >/dev/null 2>&1; then
    echo "fuzz: pip install schemathesis" >&2
    python3 -m pip install -q schemathesis >&2
fi

cargo build --bin procure
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
data=$(mktemp -d)
out=target/fuzz
mkdir -p "$out"
target/debug/procure dev --data-dir "$data" --api-port "$api_port" --sandbox-port "$(free_port)" \
    --temporal-port "$(free_port)" --ui-port "$(free_port)" >"$out/procure.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
api="http://127.0.0.1:$api_port"
for _ in $(seq 1 120); do
    curl -fsS "$api/health" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS "$api/health" >/dev/null

token=$(target/debug/procure token --role admin --subject fuzzer --ttl-s 3600)
examples=${FUZZ_EXAMPLES:-40}
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
echo "fuzz: schemathesis against $api/api/openapi.json, $examples examples per operation" >&2
status=0
schemathesis run "$api/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$examples" \
    --max-time 600 \
    --seed "${FUZZ_SEED:-1}" \
    --workers 2 \
    --report junit --report-dir "$out" || status=$?
echo "fuzz: without credentials" >&2
schemathesis run "$api/api/openapi.json" \
    --checks "$checks" \
    --max-examples 5 \
    --max-time 120 \
    --seed "${FUZZ_SEED:-1}" || status=$?
[ "$status" = 0 ] && echo "fuzz: no server error, no answer outside the document" >&2
exit $status
