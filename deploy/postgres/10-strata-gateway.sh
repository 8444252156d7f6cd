#!/bin/sh
# Runs once, when the PostgreSQL container initialises an empty data
# directory. The migrations create strata_gateway NOLOGIN; creating it here
# first with LOGIN and a password is kept by them (they only add grants).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v pw="$STRATA_GATEWAY_PASSWORD" <<'SQL'
CREATE ROLE strata_gateway LOGIN NOINHERIT PASSWORD :'pw';
SQL
