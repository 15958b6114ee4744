"""MLMD on PostgreSQL as Cloud SQL is used: a real server, the configuration's settings.

A real PostgreSQL 15 started by the test (emerald_testing.postgres_server), reached
over TCP with a password, as a Composer pod reaches Cloud SQL: the password comes
from the environment variable the configuration names, `skip_db_creation` makes
MLMD use a database made beforehand (and fail clearly when there is none), and
`sslmode` reaches libpq (a server without SSL refuses `require`).
"""
from __future__ import annotations

import pytest

import emerald_testing as testing
from pipeline_src.config import ConfigError
from pipeline_src.metadata import postgresql_connection_config

pytestmark = pytest.mark.slow    # a PostgreSQL server per test module: ~5 s
# MLMD 1.16 reports every failure to connect alike (libpq's reason is only logged), so
# each refusal below is paired with the same settings succeeding once the cause is fixed.
REFUSED = "PostgreSQL metadata source error"


@pytest.fixture(scope="module")
def server():
    with testing.postgres_server() as server:
        yield server


def settings(server, **extra) -> dict:
    return {"host": server["host"], "port": server["port"], "user": server["user"],
            "password_env": "EMERALD_MLMD_PASSWORD", **extra}


def store(connection):
    from ml_metadata import metadata_store

    return metadata_store.MetadataStore(connection)


def put_and_read_back(connection) -> list[str]:
    from ml_metadata.proto import metadata_store_pb2

    mlmd = store(connection)
    kind = mlmd.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    mlmd.put_artifacts([metadata_store_pb2.Artifact(type_id=kind, uri="gs://emerald/1")])
    return [a.uri for a in store(connection).get_artifacts()]     # a second connection


def test_password_from_the_named_variable_and_the_database_made_by_mlmd(server):
    connection = postgresql_connection_config(
        settings(server, dbname="mlmd_created"), {"EMERALD_MLMD_PASSWORD": server["password"]})
    assert connection.postgresql.password == server["password"]
    assert not connection.postgresql.skip_db_creation
    assert put_and_read_back(connection) == ["gs://emerald/1"]


def test_without_the_password_the_server_refuses(server):
    connection = postgresql_connection_config(settings(server, dbname="mlmd_created"), {})
    assert not connection.postgresql.password
    with pytest.raises(RuntimeError, match=REFUSED):
        store(connection)


def test_skip_db_creation_uses_the_database_made_beforehand(server):
    environ = {"EMERALD_MLMD_PASSWORD": server["password"]}
    missing = postgresql_connection_config(
        settings(server, dbname="mlmd_cloudsql", skip_db_creation="true"), environ)
    assert missing.postgresql.skip_db_creation
    with pytest.raises(RuntimeError, match=REFUSED):
        store(missing)                       # not created behind the admin's back
    testing.create_database(server, "mlmd_cloudsql")
    assert put_and_read_back(missing) == ["gs://emerald/1"]


def test_sslmode_reaches_the_connection(server):
    environ = {"EMERALD_MLMD_PASSWORD": server["password"]}
    disabled = postgresql_connection_config(settings(server, dbname="mlmd_created",
                                                     sslmode="disable"), environ)
    assert store(disabled).get_artifact_types()
    required = postgresql_connection_config(settings(server, dbname="mlmd_created",
                                                     sslmode="require"), environ)
    assert required.postgresql.ssloption.sslmode == "require"
    with pytest.raises(RuntimeError, match=REFUSED):
        store(required)                      # this server has no SSL: libpq refuses


def test_an_unknown_sslmode_is_a_config_error():
    with pytest.raises(ConfigError, match="sslmode 'secure'"):
        postgresql_connection_config({"sslmode": "secure"}, {})
