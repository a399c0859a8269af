#!/bin/bash
# Fuzzes the API with schemathesis (from PyPI) against a live carehook.
#
# It runs inside a network namespace that has only loopback (`unshare -n`, as
# root), so nothing the fuzzer makes carehook send can leave 127.0.0.1. Before
# fuzzing it makes a webhook, an event, a delivery and a token, and points each
# operation's {id} at them, so the fuzzer gets past 404s.
#
#   cargo build && sudo unshare -n scripts/schemathesis.sh [schemathesis flags]
#   e.g. --max-examples 300 --exclude-checks positive_data_acceptance
set -euo pipefail
BIN=${CAREHOOK_BIN:-target/debug/carehook}
ST=${SCHEMATHESIS:-schemathesis}
WORK=$(mktemp -d)
PORT=18090
BASE=http://127.0.0.1:$PORT
ip link set lo up
export CAREHOOK_ADMIN_TOKEN=schemathesis-admin-token-0123456789
export CAREHOOK_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
"$BIN" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$WORK/st.db" > "$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; echo "server log: $WORK/serve.log"' EXIT
for _ in $(seq 50); do curl -sf $BASE/healthz >/dev/null && break; sleep 0.2; done
H="Authorization: Bearer $CAREHOOK_ADMIN_TOKEN"
api() { curl -sf -H "$H" -H "Content-Type: application/json" "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
WH=$(api -X POST $BASE/api/v1/webhooks -d '{"name":"fuzz","events":["*"],"url":"https://example.org/hook/{{patient_id}}","auth":{"type":"basic","username":"u","password":"p"},"body":"{\"p\":\"{{patient_name}}\"}","retry":{"schedule":[]}}' | field '["id"]')
EV=$(api -X POST $BASE/api/v1/events -d '{"event":"kc_appointment_book","data":{"patient_name":"Ada"}}')
EVID=$(echo "$EV" | field '["id"]')
DL=$(echo "$EV" | field '["deliveries"][0]')
TK=$(api -X POST $BASE/api/v1/tokens -d '{"name":"fuzz"}' | field '["id"]')
cat > "$WORK/schemathesis.toml" <<TOML
[[operations]]
include-path-regex = "^/api/v1/webhooks/\\\\{id\\\\}"
parameters = { "path.id" = "$WH" }
[[operations]]
include-path-regex = "^/api/v1/deliveries/\\\\{id\\\\}"
parameters = { "path.id" = "$DL" }
[[operations]]
include-path-regex = "^/api/v1/events/\\\\{id\\\\}"
parameters = { "path.id" = "$EVID" }
[[operations]]
include-path-regex = "^/api/v1/tokens/\\\\{id\\\\}"
parameters = { "path.id" = "$TK" }
TOML
"$ST" --config-file "$WORK/schemathesis.toml" run $BASE/api/v1/openapi.json -H "$H" --checks all "$@"
