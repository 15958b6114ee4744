"""Where ML Metadata lives, from the configuration: shared by the nodes and the report.

Imports ml_metadata / TFX only when called.
"""
from __future__ import annotations

from pipeline_src.config import Config


def metadata_connection_config(config: Config):
    """SQLite under EMERALD_HOME by default; Postgres where nodes run in parallel."""
    import os

    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    if config.metadata.backend == "postgresql":
        settings = dict(config.metadata.postgresql)
        connection = metadata_store_pb2.ConnectionConfig()
        pg = connection.postgresql
        pg.host = settings.get("host", "localhost")
        pg.port = str(settings.get("port", "5432"))
        pg.dbname = settings.get("dbname", "mlmd")
        pg.user = settings.get("user", "airflow")
        password_env = settings.get("password_env")
        if password_env and os.environ.get(password_env):
            pg.password = os.environ[password_env]
        return connection
    config.paths.metadata.parent.mkdir(parents=True, exist_ok=True)
    return metadata.sqlite_metadata_connection_config(str(config.paths.metadata))
