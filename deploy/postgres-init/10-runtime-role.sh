#!/bin/sh
# First start of the database volume only (docker-entrypoint-initdb.d): the role web, worker,
# beat and relay connect as. It owns nothing; `grant_runtime_role ebr_app` (the migrate step)
# gives it row access, and no more (qms/dbroles.py). The owner role `ebr` runs migrate.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v password="$EBR_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE ebr_app LOGIN PASSWORD :'password';
SQL
