-- Runs once, when the compose Postgres volume is created (docker-entrypoint-initdb.d):
-- ML Metadata gets its own database beside Airflow's (include/profiles/docker.yaml).
CREATE DATABASE mlmd OWNER airflow;
