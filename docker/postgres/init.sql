-- Runs once, when the PostgreSQL volume is empty (the image's /docker-entrypoint-initdb.d), as
-- the superuser `temporal` (POSTGRES_USER). Temporal's two databases are created here so that
-- the schema job (temporal/setup-schema.sh) only ever applies schema, which is safe to repeat;
-- procure gets a role and a database of its own and migrates it itself on connect.
-- Demo passwords: see docker/secrets/README.md.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
CREATE ROLE procure LOGIN PASSWORD 'procure-demo';
CREATE DATABASE procure OWNER procure;
