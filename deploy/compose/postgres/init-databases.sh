#!/usr/bin/env bash
# Creates MET Audit's two databases beside Airflow's metadata database, each with a
# role of its own: the demo source (met_practice) and the results store
# (met_results). The postgres image runs this once, when its data volume is empty.
# Passwords come from the environment (.env); names may be overridden for tests.
set -euo pipefail

: "${MET_PRACTICE_DB_PASSWORD:?set MET_PRACTICE_DB_PASSWORD (see .env.example)}"
: "${MET_RESULTS_DB_PASSWORD:?set MET_RESULTS_DB_PASSWORD (see .env.example)}"
practice_db="${MET_PRACTICE_DB_NAME:-met_practice}"
results_db="${MET_RESULTS_DB_NAME:-met_results}"

# psql's :'var' and :"var" quote the values, so no password or name is pasted into SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v practice_db="$practice_db" -v practice_pw="$MET_PRACTICE_DB_PASSWORD" \
    -v results_db="$results_db" -v results_pw="$MET_RESULTS_DB_PASSWORD" <<'SQL'
CREATE ROLE :"practice_db" LOGIN PASSWORD :'practice_pw';
CREATE DATABASE :"practice_db" OWNER :"practice_db";
CREATE ROLE :"results_db" LOGIN PASSWORD :'results_pw';
CREATE DATABASE :"results_db" OWNER :"results_db";
SQL
echo "created databases ${practice_db} and ${results_db}"
