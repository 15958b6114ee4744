"""Shared test settings and fixtures.

Airflow is configured once for the whole session, before anything imports it: one
AIRFLOW_HOME shared by every test, $EMERALD_TEST_HOME/airflow (default
/tmp/emerald-test-home/airflow, kept from one session to the next) unless the
environment already sets AIRFLOW_HOME, with this checkout's dags/ and plugins/.
EMERALD_HOME is not set here: a test that needs its own asks for `emerald_home`
(a folder under its tmp_path). Also real SMTP and webhook servers for the alert
tests. Helpers shared with bench/ live in emerald_testing.py, next to this file.
"""
from __future__ import annotations

import os
import pathlib

import pytest

from emerald_testing import free_port

REPO = pathlib.Path(__file__).resolve().parents[1]

# Airflow reads these when it is first imported: point it at this checkout and a
# throwaway home before any test imports it.
_SESSION_HOME = pathlib.Path(os.environ.get("EMERALD_TEST_HOME", "/tmp/emerald-test-home"))
os.environ.setdefault("AIRFLOW_HOME", str(_SESSION_HOME / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import airflow  # noqa: E402,F401 - puts dags/ and plugins/ on sys.path, as a deployment does


@pytest.fixture
def emerald_home(tmp_path, monkeypatch) -> pathlib.Path:
    home = tmp_path / "emerald-home"
    monkeypatch.setenv("EMERALD_HOME", str(home))
    return home


# ---------------------------------------------------------------- real alert servers

class SmtpInbox:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                import email

                parsed = email.message_from_bytes(envelope.content)
                text = "".join(part.get_payload(decode=True).decode("utf8", "replace")
                               for part in parsed.walk() if not part.is_multipart())
                inbox.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "subject": str(parsed["Subject"]), "data": text})
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    @property
    def conn_uri(self) -> str:
        return (f"smtp://127.0.0.1:{self.port}?disable_ssl=true&disable_tls=true"
                "&from_email=emerald%40example.com&timeout=10&retry_limit=1")

    def stop(self):
        self.controller.stop()


class WebhookInbox:
    """A real HTTP server standing in for Slack's incoming webhook."""

    def __init__(self):
        import http.server
        import threading

        self.posts = []
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.posts.append({"path": self.path, "body": body.decode("utf8", "replace")})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXX"

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        return f"slackwebhook://:{quote(self.url, safe='')}@"

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def smtp_inbox():
    inbox = SmtpInbox()
    yield inbox
    inbox.stop()


@pytest.fixture
def webhook_inbox():
    inbox = WebhookInbox()
    yield inbox
    inbox.stop()


@pytest.fixture(scope="module")
def alert_servers():
    """A real SMTP server and a real webhook server shared by a module's tests."""
    smtp, slack = SmtpInbox(), WebhookInbox()
    yield smtp, slack
    smtp.stop()
    slack.stop()
