#!/usr/bin/env bash
# Schema-driven fuzz run of the admin API: serves it (examples/fuzz_server.rs) on a free
# loopback port with seeded data and runs schemathesis against the served OpenAPI document
# with every check. Exits non-zero on any failure (5xx, undocumented status or content type,
# schema mismatch, ignored auth, ...). Run from anywhere: `admin-api/fuzz/run.sh`.
#
# Environment: FUZZ_MAX_EXAMPLES (default 50), FUZZ_MAX_TIME seconds (default 240).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/fuzz-api/venv"
report="$target/fuzz-api/report"
max_examples="${FUZZ_MAX_EXAMPLES:-50}"
max_time="${FUZZ_MAX_TIME:-240}"

# Pinned below the next major version: the CLI flags used here are schemathesis 4's.
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet 'schemathesis>=4.3,<5'
fi

cargo build --quiet -p admin-api --example fuzz_server
server="$target/debug/examples/fuzz_server"

# A free ephemeral port on loopback (the kernel picks it; tiny race until the server binds).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

ADMIN_API_FUZZ_TOKEN="$token" "$server" "$port" &
server_pid=$!
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

# Seeding generates RSA keys: wait until the health check answers.
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "fuzz_server exited early" >&2; exit 1; fi
  sleep 0.5
done

# Real identifiers from the seeded store, mixed into generated values so the routes that look
# things up get past 404 (fingerprints are computed: fixtures are regenerated now and then).
config="$target/fuzz-api/schemathesis.toml"
fingerprints=""
for f in partner/alice.pem partner/alice-renewed.pem partner/bob.pem partner/expired.pem; do
  fp="$(openssl x509 -noout -fingerprint -sha256 -in "fixtures/$f" | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')"
  fingerprints="$fingerprints\"$fp\", "
done
{
  cat "$here/schemathesis.toml"
  cat <<TOML

[dictionaries.fingerprints]
values = [${fingerprints%, }]

[dictionaries.addresses]
values = ["alice@partner.example", "bob@partner.example", "user@agency.example"]

[dictionaries.domains]
values = ["partner.example", "gmail.com"]

[parameters]
"path.fingerprint" = { dictionary = "fingerprints", probability = 0.5 }
"path.address" = { dictionary = "addresses", probability = 0.3 }
"path.domain" = { dictionary = "domains", probability = 0.3 }
TOML
} > "$config"

mkdir -p "$report"
status=0
timeout --signal=INT "$((max_time + 60))" \
  "$venv/bin/st" --config-file "$config" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --checks all \
    -H "Authorization: Bearer $token" \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --seed "${FUZZ_SEED:-$RANDOM}" \
    --report junit --report-dir "$report" \
    "$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "fuzz-api: schemathesis found problems (exit $status); JUnit report in $report" >&2
fi
exit "$status"
