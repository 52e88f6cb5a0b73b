#!/bin/sh
# Brings Temporal's two PostgreSQL databases (created empty by docker/postgres/init.sql) to the
# schema shipped with this admin-tools image. Run by the `temporal-schema` service of
# docker/compose.yaml before the server starts; running it again changes nothing: setup-schema
# keeps a newer recorded version and update-schema applies only the versions not yet applied.
set -eu
: "${POSTGRES_SEEDS:?the database host}" "${POSTGRES_USER:?the database user}"
: "${SQL_PASSWORD:?the database password, read by temporal-sql-tool}"
schema=/etc/temporal/schema/postgresql/v12

sql() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
        -u "$POSTGRES_USER" "$@"
}

# Executions, histories and task queues.
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d "$schema/temporal/versioned"
# Visibility: listing and searching workflows, search attributes such as OrderState.
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d "$schema/visibility/versioned"
echo "Temporal schema is up to date"
