#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 for the tests (installed on the CI machines, stopped on a new
# one) and make the test database; idempotent: a running cluster, an existing role or database is
# kept. Prints the URL to export as FLEETGATE_TEST_DATABASE_URL (peer auth over the local socket).
set -euo pipefail
DB="${1:-fleetgate_test}"
ROLE="$(id -un)"
if ! command -v pg_lsclusters >/dev/null; then
    echo "ci_postgres: PostgreSQL is not installed (apt-get install -y postgresql)" >&2
    exit 1
fi
if ! pg_lsclusters --no-header | awk '$1 == "15" && $2 == "main" && $4 == "online" {found = 1} END {exit !found}'; then
    pg_ctlcluster 15 main start >&2
fi
as_postgres() { if [ "$ROLE" = postgres ]; then "$@"; else su postgres -c "$(printf '%q ' "$@")"; fi; }
for _ in $(seq 1 30); do  # the socket appears a moment after the start returns
    as_postgres psql -Atqc "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
done
if [ "$(as_postgres psql -Atqc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    as_postgres createuser --superuser "$ROLE" >&2
fi
if [ "$(psql -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    createdb "$DB" >&2
fi
echo "postgresql:///$DB"
