"""Connection configs made through the API: driver parameters, hosts and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.core.errors import ConfigError
from aggregator.security import outbound
from aggregator.security.connstrings import check_connection_config
from aggregator.security.outbound import OutboundPolicy
from tests.unit.api.helpers import Api

pytestmark = pytest.mark.unit


def resolver(host: str, port: int) -> list[str]:
    names = {
        "metadata.test": ["169.254.169.254"],
        "db.test": ["10.0.0.7"],
        "localhost": ["127.0.0.1"],
    }
    if host not in names:
        raise OSError("unknown")
    return names[host]


LENIENT = OutboundPolicy.build(False, [], resolver)
STRICT = OutboundPolicy.build(True, [], resolver)


@pytest.mark.parametrize(
    ("connector", "config", "message"),
    [
        ("postgres", {"url": "postgresql://u:p@db.test/x?sslkey=/etc/ssl/private/k.pem"},
         "config.url: the libpq parameter 'sslkey' is not allowed reads local files or runs"),
        ("postgres", {"url": "postgresql://u@db.test/x?passfile=/root/.pgpass"},
         "config.url: the libpq parameter 'passfile' is not allowed"),
        ("postgres", {"url": "postgresql:///x?service=prod"},
         "config.url: the libpq parameter 'service' is not allowed"),
        ("postgres", {"url": "postgresql://db.test/x?servicefile=/etc/pg_service.conf"},
         "config.url: the libpq parameter 'servicefile' is not allowed"),
        ("postgres", {"url": "postgresql://db.test/x?sslrootcert=/etc/x.pem"},
         "config.url: the libpq parameter 'sslrootcert' is not allowed"),
        ("postgres", {"url": "postgresql://db.test/x?options=-c%20log_statement%3Dall"},
         "config.url: the libpq parameter 'options' is not allowed"),
        ("postgres", {"url": "postgresql://u:p@169.254.169.254:5432/x"},
         "config.url: outbound connection to 169.254.169.254 (169.254.169.254) refused"),
        ("postgres", {"url": "postgresql://u:p@ok.test,metadata.test/x"},
         "config.url: outbound connection to metadata.test (169.254.169.254) refused"),
        ("postgres", {"url": "postgresql://u@/x?host=metadata.test"},
         "config.url (host): outbound connection to metadata.test"),
        ("postgres", {"url": "postgresql://u@/x?hostaddr=169.254.169.254"},
         "config.url (hostaddr): outbound connection to 169.254.169.254"),
        ("postgres", {"host": "metadata.test"},
         "config.host: outbound connection to metadata.test (169.254.169.254) refused"),
        ("mysql", {"url": "mysql://u:p@db.test/x?local_infile=1"},
         "config.url: the MySQL URL parameter 'local_infile' is not allowed (reads local"),
        ("mysql", {"url": "mysql://u:p@db.test/x?init_command=DROP"},
         "config.url: the MySQL URL parameter 'init_command' is not allowed"),
        ("mysql", {"host": "[fd00:ec2::254]"},
         "config.host: outbound connection to [fd00:ec2::254] (fd00:ec2::254) refused"),
        ("sqlite", {"path": "file:/data/x.db?vfs=unix-dotfile"},
         "config.path: the file: URI parameter 'vfs' is not allowed"),
        ("sqlite", {"path": "file://otherhost/x.db"},
         "config.path: a file: URI names a local file"),
        ("files", {"streams": [{"name": "a", "path": "http://metadata.test/latest"}]},
         "config.streams[0].path: outbound connection to metadata.test"),
        ("files", {"path": "ftp://example.com/x"},
         "config.path: the URL scheme 'ftp' is not allowed"),
        ("rest", {"base_url": "http://169.254.169.254/"},
         "config.base_url: outbound connection to 169.254.169.254"),
        ("rest", {"base_url": "https://api.test/",
                  "auth": {"type": "oauth2", "token_url": "http://metadata.test/t"}},
         "config.auth.token_url: outbound connection to metadata.test"),
    ],
)  # fmt: skip
def test_refused_configs_name_field_and_reason(
    connector: str, config: dict[str, object], message: str
) -> None:
    if connector == "rest" and "auth" in config:
        policy = OutboundPolicy.build(
            False, [], lambda h, p: ["8.8.8.8"] if h == "api.test" else resolver(h, p)
        )
    else:
        policy = LENIENT
    with pytest.raises(ConfigError) as err:
        check_connection_config(connector, config, policy)
    assert err.value.message.startswith(message), err.value.message


@pytest.mark.parametrize(
    ("connector", "config"),
    [
        ("postgres", {"url": "postgresql://u:p@db.test:5432/x?sslmode=require&connect_timeout=5"}),
        ("postgres", {"host": "unresolvable.example", "port": 5432}),
        ("postgres", {"host": "/var/run/postgresql"}),
        ("mysql", {"url": "mysql://u:p@db.test:3306/x"}),
        ("sqlite", {"path": "file:/data/x.db?mode=ro&cache=shared"}),
        ("sqlite", {"path": ":memory:"}),
        ("files", {"streams": [{"name": "a", "path": "s3://bucket/key.csv"}]}),
        ("singer", {"tap": "/opt/taps/tap-csv"}),
    ],
)
def test_allowed_configs_in_lenient_mode(connector: str, config: dict[str, object]) -> None:
    check_connection_config(connector, config, LENIENT)


def test_strict_mode_refuses_private_hosts_sockets_programs_and_free_paths(tmp_path: Path) -> None:
    cases = [
        ("postgres", {"host": "db.test"}, "config.host: outbound connection to db.test (10.0.0.7) "
         "refused: private address"),
        ("postgres", {"host": "/var/run/postgresql"}, "config.host: unix sockets are refused"),
        ("postgres", {"url": "postgresql:///x"}, "config.url: unix sockets are refused"),
        ("mysql", {"url": "mysql://u@127.0.0.1/x"}, "config.url: outbound connection to "
         "127.0.0.1 (127.0.0.1) refused: loopback address"),
        ("singer", {"tap": "/tmp/evil"}, "config.tap: strict outbound mode runs installed plugins"),
        ("sqlite", {"path": "x.db"}, "config.path: set AGGREGATOR_DATA_DIRS"),
        ("postgres", {"database": "x"}, "config.host: outbound connection to localhost "
         "(127.0.0.1) refused: loopback address"),
    ]  # fmt: skip
    for connector, config, message in cases:
        with pytest.raises(ConfigError) as err:
            check_connection_config(connector, config, STRICT)
        assert err.value.message.startswith(message), err.value.message
    allowed = OutboundPolicy.build(True, ["db.test"], resolver)
    check_connection_config("postgres", {"host": "db.test"}, allowed)
    check_connection_config("singer", {"tap": "tap-csv"}, STRICT)


def test_data_dirs_confine_local_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "outside").symlink_to("/etc")
    (data / "link").symlink_to("/etc")
    policy = OutboundPolicy.build(False, [], resolver, data_dirs=[data])
    check_connection_config("sqlite", {"path": str(data / "w.db")}, policy)
    check_connection_config("duckdb", {"path": f"file:{data}/w.duckdb"}, policy)
    check_connection_config("files", {"streams": [{"name": "a", "path": f"{data}/*.csv"}]}, policy)
    for bad in (
        f"{data}/../x.db",
        "/etc/passwd",
        f"{data}/link/passwd",
        f"file://{tmp_path}/outside/x",
    ):
        with pytest.raises(
            ConfigError, match=r"config\.path: the path is outside the allowed data"
        ):
            check_connection_config("sqlite", {"path": bad}, policy)


def test_api_refuses_unsafe_connection_with_422(api: Api) -> None:
    outbound.configure(LENIENT)
    try:
        response = api.client.post(
            "/api/v1/connections",
            headers=api.headers("editor"),
            json={"name": "pg", "connector": "postgres", "kind": "source",
                  "config": {"url": "postgresql://u:hunter2@db.test/x?sslkey=/etc/k.pem"}},
        )  # fmt: skip
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "unsafe_config"
        assert error["message"].startswith("config.url: the libpq parameter 'sslkey'")
        assert "hunter2" not in response.text
        ok = api.client.post(
            "/api/v1/connections",
            headers=api.headers("editor"),
            json={"name": "pg", "connector": "postgres", "kind": "source",
                  "config": {"url": "postgresql://u:hunter2@db.test/x?sslmode=require"}},
        )  # fmt: skip
        assert ok.status_code == 201, ok.text
        patched = api.client.patch(
            f"/api/v1/connections/{ok.json()['id']}",
            headers=api.headers("editor"),
            json={"config": {"host": "metadata.test"}},
        )
        assert patched.status_code == 422
        assert patched.json()["error"]["message"].startswith("config.host: outbound connection")
    finally:
        outbound.configure(None)
