"""Where ML Metadata lives, from the configuration: shared by the nodes and the report.

Imports ml_metadata / TFX only when called.

PostgreSQL settings (`metadata.postgresql` in the configuration), as MLMD's
PostgreSQLDatabaseConfig takes them:
  host, port, dbname, user;
  password_env:      the environment variable holding the password (in a pod: set
                     from the Kubernetes secret `secret_name`, key `secret_key`);
  skip_db_creation:  true on Cloud SQL, where the database is made beforehand
                     and the user may not create databases;
  sslmode, sslrootcert, sslcert, sslkey: libpq's SSL settings (verify-full with
                     the server's CA on a public address; the Cloud SQL Auth
                     proxy or a private IP may use disable or require).
"""
from __future__ import annotations

from pipeline_src.config import Config, ConfigError, is_true

SSL_SETTINGS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def metadata_connection_config(config: Config):
    """SQLite under EMERALD_HOME by default; Postgres where nodes run in parallel."""
    if config.metadata.backend == "postgresql":
        return postgresql_connection_config(config.metadata.postgresql)
    from tfx.orchestration import metadata

    config.paths.metadata.parent.mkdir(parents=True, exist_ok=True)
    return metadata.sqlite_metadata_connection_config(str(config.paths.metadata))


def postgresql_connection_config(settings, environ=None):
    """MLMD's ConnectionConfig for PostgreSQL; the password is read from the environment
    at connection time, never from the configuration file."""
    import os

    from ml_metadata.proto import metadata_store_pb2

    environ = os.environ if environ is None else environ
    settings = dict(settings)
    connection = metadata_store_pb2.ConnectionConfig()
    pg = connection.postgresql
    pg.host = settings.get("host", "localhost")
    pg.port = str(settings.get("port", "5432"))
    pg.dbname = settings.get("dbname", "mlmd")
    pg.user = settings.get("user", "airflow")
    password_env = settings.get("password_env")
    if password_env and environ.get(password_env):
        pg.password = environ[password_env]
    pg.skip_db_creation = is_true(settings.get("skip_db_creation", False))
    mode = settings.get("sslmode")
    if mode is not None and mode not in SSL_MODES:
        raise ConfigError(f"metadata.postgresql.sslmode {mode!r} is not one of {SSL_MODES}")
    for name in SSL_SETTINGS:
        if settings.get(name):
            setattr(pg.ssloption, name, settings[name])
    return connection
