#!/bin/sh
# One Postgres, two databases: MLflow's backend store and Prefect's. Runs once, on an empty data volume.
set -eu
for db in mlflow prefect; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "SELECT 'CREATE DATABASE $db' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec"
done
