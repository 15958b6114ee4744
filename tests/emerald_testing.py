"""Test and benchmark helpers: sample images, free ports, a real GCS emulator, a faulty proxy.

The one home of what the tests and the benchmarks share: `import
emerald_testing as testing`. tests/ is on sys.path under pytest: tests/conftest.py
is in no package, so pytest's default "prepend" import mode puts its folder at the
front of sys.path before importing it. The bench inserts tests/ itself.

    images     jpeg, png, gif, bomb, truncated, garbled; the sample trees GOOD
               ({name: builder}) and BAD ({name: (builder, reason)}), BAD_MAX_PIXELS;
               write_tree
    examples   split_examples; SpanArtifacts (ImageExampleGen night after night, its
               history resolved by TFX's all_spans)
    network    free_port
    emulator   gcs_emulator (a context manager yielding the URL; storage_server, what
               starts and stops such a server), anonymous_client, upload_tree
    faults     FaultProxy
    postgres   postgres_server (a context manager yielding host, port, user, password),
               create_database, database_url (its SQLAlchemy URL)
    scheduler  quick_retry_config, scheduler_environment, LocalScheduler, run_state,
               task_state, airflow_rows (a real scheduler + triggerer for tests and bench;
               Airflow's DB a SQLite file or a PostgreSQL URL)

No Airflow import, and no Google library until the emulator's client is made.
"""
from __future__ import annotations

import contextlib
import http.client
import io
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional


# --------------------------------------------------------------------------- images

def jpeg(size=(64, 48), color=(200, 120, 40), mode="RGB", exif: Optional[dict] = None,
         quality=90) -> bytes:
    from PIL import Image
    if mode == "CMYK":
        img = Image.new("CMYK", size, (10, 200, 30, 0))
    elif mode == "L":
        img = Image.new("L", size, 128)
    else:
        img = Image.new("RGB", size, color)
        # a little texture so JPEG sizes are realistic
        px = img.load()
        for x in range(0, size[0], 7):
            for y in range(size[1]):
                px[x, y] = (x % 255, y % 255, (x + y) % 255)
    buf = io.BytesIO()
    kwargs = {"quality": quality}
    if exif:
        ex = Image.Exif()
        for k, v in exif.items():
            if k == 0x9003:
                ex.get_ifd(0x8769)[k] = v
            else:
                ex[k] = v
        kwargs["exif"] = ex.tobytes()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def png(size=(40, 30), mode="RGB") -> bytes:
    from PIL import Image
    img = Image.new(mode, size, 90 if mode == "L" else (30, 60, 90))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gif(size=(20, 20)) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("P", size).save(buf, "GIF")
    return buf.getvalue()


def bomb(side=3000) -> bytes:
    """A small PNG that decodes to side*side pixels (use with a low max_pixels)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def truncated() -> bytes:
    data = jpeg((128, 96))
    return data[: len(data) // 2]


def garbled() -> bytes:
    data = bytearray(jpeg((128, 96)))
    # keep the SOI/APP0 header so PIL identifies JPEG, then destroy the scan data
    for i in range(200, len(data) - 2):
        data[i] = (i * 37) % 256
    return bytes(data)


GOOD = {
    "lion/a.jpg": lambda: jpeg((64, 48)),
    "lion/b.jpg": lambda: jpeg((48, 64), exif={0x0112: 6, 0x9003: "2026:01:02 03:04:05"}),
    "tiger/c.png": lambda: png((40, 30)),
    "tiger/png-named.jpg": lambda: png((30, 40)),           # PNG whatever the extension says
    "bear/gray.jpg": lambda: jpeg((32, 32), mode="L"),
    "bear/cmyk.jpg": lambda: jpeg((36, 24), mode="CMYK"),
}

BAD = {
    "lion/empty.jpg": (lambda: b"", "empty file"),
    "lion/truncated.jpg": (truncated, "corrupt or truncated"),
    "tiger/garbled.jpg": (garbled, "corrupt or truncated"),
    "tiger/notes.jpg": (lambda: b"this is not an image\n" * 10, "not an image"),
    "bear/anim.gif": (gif, "unsupported image format GIF"),
    "bear/bomb.png": (bomb, "too many pixels"),
}
BAD_MAX_PIXELS = 1_000_000   # bomb() is 9 Mpx; every good image is far below


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --------------------------------------------------------------------------- examples

def split_examples(examples_uri: str, split: str) -> list:
    """The tf.Examples of one split of an Examples artifact, parsed (a proto map
    serializes in no fixed order), read as TFX reads a split: every file under
    `Split-{split}/`, in name order."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(f"{examples_uri.rstrip('/')}/Split-{split}/*"))
    assert files, f"no files in split {split} of {examples_uri}"
    return [tf.train.Example.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


class SpanArtifacts:
    """ImageExampleGen's executor run night after night as TFX runs it.

    Each run's outputs are where TFX puts them ({root}/ImageExampleGen/{key}/{run}),
    and its `history` is what TFX's own all_spans resolver op gives over every Examples
    artifact published so far: the latest version of each span.
    """

    def __init__(self, root: Path, spans, **props):
        self.root, self.spans, self.props = Path(root), str(spans), props   # a path or gs://
        self.published: list = []
        self.runs = 0

    def history(self) -> list:
        from tfx.dsl.input_resolution.ops.all_spans_op import AllSpans

        return list(AllSpans.create().apply(self.published))

    def night(self, night, **props):
        """Runs one night; returns tonight's span artifact (the re-made ones: .updated)."""
        import os

        from tfx.types import standard_artifacts

        from pipeline_src.components import examplegen

        self.runs += 1
        outputs = {}
        for key in ("examples", examplegen.UPDATED_SPANS):
            artifact = standard_artifacts.Examples()
            artifact.uri = str(self.root / "ImageExampleGen" / key / str(self.runs))
            os.makedirs(artifact.uri, exist_ok=True)
            outputs[key] = [artifact]
        history = self.history()
        examplegen.Executor().Do({"history": history}, outputs, {
            "input_base": self.spans, "night": str(night), "eval_split": "newest_night",
            "hash_eval_percent": 25, "max_pixels": BAD_MAX_PIXELS, **self.props, **props})
        for artifact in outputs["examples"] + outputs[examplegen.UPDATED_SPANS]:
            artifact.id = len(self.published) + 1        # MLMD would give each an id
            self.published.append(artifact)
        self.updated = outputs[examplegen.UPDATED_SPANS]
        (tonight,) = outputs["examples"]
        return tonight


# --------------------------------------------------------------------------- SVG charts

SVG_NS = "{http://www.w3.org/2000/svg}"


def parse_svg(svg: str):
    """The chart's root element; raises if the output is not well-formed XML."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    return root


def svg_by_class(root, tag: str, cls: str) -> list:
    """The `tag` elements whose class attribute lists `cls`."""
    return [e for e in root.iter(f"{SVG_NS}{tag}") if cls in (e.get("class") or "").split()]


# --------------------------------------------------------------------------- emulator

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _emulator_command() -> list[str]:
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "gcp_storage_emulator"]


@contextlib.contextmanager
def storage_server(name: str, command: list[str], url: str,
                   log_path: Optional[Path] = None) -> Iterator[str]:
    """Runs a GCS JSON API server (`command`, serving at `url`) until the block ends;
    yields the URL once the server answers a bucket listing (30 s at most).

    Its output goes to log_path (if given), whose tail a failure to start quotes."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def failed(why: str) -> RuntimeError:
        log = Path(log_path).read_text(errors="replace")[-3000:] if log_path else ""
        return RuntimeError(f"{name} {why}" + (f":\n{log}" if log else ""))

    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise failed(f"exited with {proc.returncode}")
            try:
                urllib.request.urlopen(url + "/storage/v1/b?project=x", timeout=1).read()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise failed("did not start in 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            out.close()


@contextlib.contextmanager
def gcs_emulator(log_path: Optional[Path] = None) -> Iterator[str]:
    """Starts `gcp-storage-emulator --in-memory` on a free port; yields its http:// URL.

    Its output goes to log_path (if given), whose tail a failure to start quotes.
    Set STORAGE_EMULATOR_HOST to the URL for google-cloud-storage to use it.
    """
    port = free_port()
    with storage_server(
            "gcp-storage-emulator",
            _emulator_command() + ["start", "--host=127.0.0.1", f"--port={port}", "--in-memory",
                                   "--default-bucket=emerald-boot"],
            f"http://127.0.0.1:{port}", log_path) as url:
        yield url


def anonymous_client(project: str = "emerald-test"):
    """A google.cloud.storage.Client without credentials, for the emulator.

    It talks to STORAGE_EMULATOR_HOST: set that before calling.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    return storage.Client(project=project, credentials=AnonymousCredentials())


def upload_tree(client, bucket: str, prefix: str, files: dict[str, bytes]) -> dict[str, int]:
    """Uploads {relative name: bytes} under prefix; returns {object name: generation}."""
    b = client.bucket(bucket)
    gens = {}
    for name, data in files.items():
        blob = b.blob(f"{prefix.strip('/')}/{name}" if prefix else name)
        blob.upload_from_string(data, content_type="application/octet-stream")
        gens[blob.name] = blob.generation
    return gens


# --------------------------------------------------------------------------- fault proxy

class FaultProxy:
    """An HTTP proxy in front of the emulator that fails chosen requests.

    `fault(n, method, path)` returns None to forward, an int status (429, 503, ...)
    to answer with, or "hang" to wait `hang_seconds` before answering 503 (a
    client timeout). Counts forwarded and failed requests.
    """

    def __init__(self, upstream: str, fault: Callable[[int, str, str], object],
                 hang_seconds: float = 3.0):
        self.upstream = upstream.replace("http://", "")
        self.fault = fault
        self.hang_seconds = hang_seconds
        self.requests = 0
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.requests += 1
                    n = proxy.requests
                action = proxy.fault(n, self.command, self.path)
                if action is not None:
                    with proxy.lock:
                        proxy.failed += 1
                    if action == "hang":
                        time.sleep(proxy.hang_seconds)
                        action = 503
                    msg = b'{"error": {"code": %d, "message": "injected fault"}}' % action
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    if action == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "proxy-connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("transfer-encoding", "connection", "content-length"):
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()



# --------------------------------------------------------------------------- flaky alert servers

class FlakyWebhook:
    """A real HTTP server standing in for Slack's webhook that fails its first `failures` posts.

    A failed post is answered `status` with a body that quotes the request path,
    as a proxy's error page might: the path of a Slack webhook is its token, so a
    client error carrying the body must be redacted. Then 200. Counts `attempts`;
    `posts` keeps the bodies it accepted. `failures=None` fails every post.
    """

    def __init__(self, failures: Optional[int] = 1, status: int = 500):
        self.failures, self.status = failures, status
        self.attempts, self.posts = 0, []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.attempts += 1
                failing = inbox.failures is None or inbox.attempts <= inbox.failures
                reply = f"no service at {self.path}" if failing else "ok"
                if not failing:
                    inbox.posts.append(body.decode("utf8", "replace"))
                self.send_response(inbox.status if failing else 200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = (f"http://127.0.0.1:{self.server.server_address[1]}"
                    "/services/T0FLAKY/B0FLAKY/flaky-webhook-token")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        return f"slackwebhook://:{quote(self.url, safe='')}@"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FlakySmtp:
    """A real SMTP server (aiosmtpd) that refuses its first `failures` messages, then accepts.

    A refusal is `reply` to DATA (a 4xx or 5xx); `failures=None` refuses every
    message. Counts `attempts`; `messages` keeps the subjects it accepted.
    """

    def __init__(self, failures: Optional[int] = 1,
                 reply: str = "451 4.3.0 mailbox busy, try again later"):
        from aiosmtpd.controller import Controller

        self.failures, self.reply = failures, reply
        self.attempts, self.messages = 0, []
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                import email

                inbox.attempts += 1
                if inbox.failures is None or inbox.attempts <= inbox.failures:
                    return inbox.reply
                inbox.messages.append(str(email.message_from_bytes(envelope.content)["Subject"]))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    def conn_uri(self, login: str = "", password: str = "") -> str:
        """An Airflow SMTP connection to this server (no TLS), optionally with credentials."""
        from urllib.parse import quote

        auth = f"{quote(login, safe='')}:{quote(password, safe='')}@" if login else ""
        return (f"smtp://{auth}127.0.0.1:{self.port}?disable_ssl=true&disable_tls=true"
                "&from_email=emerald%40example.com&timeout=5&retry_limit=1")

    def stop(self) -> None:
        self.controller.stop()


# --------------------------------------------------------------------------- alert inboxes

ALERT_SECRETS = {"smtp_password": "smtp-Secret-7Qx2v", "webhook_token": "hook-Secret-9fK2w"}

class SmtpInbox:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it receives.

    With `password`, it requires AUTH LOGIN/PLAIN with `login`/`password` (no TLS
    on this loopback server), so a night's logs can be searched for the secret.
    """

    def __init__(self, login: str = "", password: str = ""):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages = []
        self.login, self.password = login, password
        self.logins = 0
        inbox = self

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == login and auth_data.password.decode() == password)
            inbox.logins += ok
            return AuthResult(success=ok)

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                import email

                parsed = email.message_from_bytes(envelope.content)
                text = "".join(part.get_payload(decode=True).decode("utf8", "replace")
                               for part in parsed.walk() if not part.is_multipart())
                inbox.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "subject": str(parsed["Subject"]), "data": text})
                return "250 OK"

        auth = (dict(authenticator=authenticate, auth_required=True, auth_require_tls=False)
                if password else {})
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), **auth)
        self.controller.start()
        self.port = self.controller.port

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        auth = f"{quote(self.login, safe='')}:{quote(self.password, safe='')}@" if self.password else ""
        return (f"smtp://{auth}127.0.0.1:{self.port}?disable_ssl=true&disable_tls=true"
                "&from_email=emerald%40example.com&timeout=10&retry_limit=1")

    def stop(self):
        self.controller.stop()


class WebhookInbox:
    """A real HTTP server standing in for Slack's incoming webhook."""

    def __init__(self, token: str = "XXXX"):
        import http.server
        import threading

        self.posts = []
        self.token = token                  # the secret part of a Slack webhook URL
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
        return f"http://127.0.0.1:{self.port}/services/T000/B000/{self.token}"

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        return f"slackwebhook://:{quote(self.url, safe='')}@"

    def stop(self):
        self.server.shutdown()


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def postgres_server(user: str = "emerald", password: str = "pg-secret-Ruby7"
                    ) -> Iterator[dict]:
    """A real PostgreSQL 15 (Debian's package) in a temp folder, on a free port, with
    password (scram-sha-256) authentication over TCP; yields {host, port, user, password}.

    PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
    system user (runuser); its folder lives outside pytest's root-only temp tree.
    """
    import os
    import pwd
    import shutil
    import tempfile

    if not (POSTGRES_BIN / "initdb").exists():
        raise RuntimeError(f"no PostgreSQL at {POSTGRES_BIN}: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="emerald-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, pwfile, log = folder / "data", folder / "pwfile", folder / "server.log"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    port = free_port()
    run = lambda *cmd: subprocess.run(as_user + [str(c) for c in cmd], check=True,  # noqa: E731
                                      capture_output=True, text=True, timeout=120)
    try:
        run(POSTGRES_BIN / "initdb", "-D", data, "-U", user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync")
        run(POSTGRES_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off", "start")
        yield {"host": "127.0.0.1", "port": port, "user": user, "password": password,
               "socket_dir": str(folder)}
    finally:
        subprocess.run(as_user + [str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server: dict, name: str) -> None:
    """CREATE DATABASE through psql as the server's user (what a Cloud SQL admin does)."""
    import os

    subprocess.run(["psql", "-h", server["host"], "-p", str(server["port"]), "-U", server["user"],
                    "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True, text=True, timeout=60,
                   env=dict(os.environ, PGPASSWORD=server["password"]))


def database_url(server: dict, name: str) -> str:
    """The SQLAlchemy URL of database `name` on a postgres_server (Airflow's driver)."""
    from urllib.parse import quote

    return (f"postgresql+psycopg2://{quote(server['user'])}:{quote(server['password'], safe='')}"
            f"@{server['host']}:{server['port']}/{name}")


# --------------------------------------------------------------------------- the real scheduler

def quick_retry_config(folder: Path, **sections: dict) -> Path:
    """include/emerald.yaml with retries seconds apart (and `sections` merged over it),
    written into `folder`: a run under the real scheduler must not wait minutes to retry."""
    import yaml

    from pipeline_src.config import DEFAULT_CONFIG_FILE

    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    raw["dag"].update(retry_delay_minutes=0.05, max_retry_delay_minutes=0.1)
    for name, values in sections.items():
        raw[name].update(values)
    config_file = Path(folder) / "emerald.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    return config_file


def scheduler_environment(home: Path, config_file: Path, **settings: str):
    """(env, config) for `airflow scheduler` / `triggerer` / `tasks run` processes of one home.

    None of the caller's Airflow or Emerald settings; EMERALD_HOME and EMERALD_CONFIG
    as given; Airflow's own settings from the project (night.airflow_environment); the
    SequentialExecutor (every task its own `airflow tasks run` process, SQLite); only
    the runs a test triggers; free ports for the log servers. `settings` (EMERALD_* or
    AIRFLOW_*) are applied last.
    """
    import os

    from pipeline_src.config import load_config
    from pipeline_src.orchestration.night import airflow_environment

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "EMERALD_", "STORAGE_EMULATOR_HOST"))}
    env.update(EMERALD_HOME=str(home), EMERALD_CONFIG=str(config_file),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    env.update({k: v for k, v in settings.items() if k.startswith("EMERALD_")})
    config = load_config(env=env)
    env.update(airflow_environment(config))
    env.update(AIRFLOW__CORE__EXECUTOR="SequentialExecutor",
               AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",      # only the runs triggered
               AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    env.update({k: v for k, v in settings.items() if not k.startswith("EMERALD_")})
    return env, config


DAG_ID = "emerald_nightly"        # include/emerald.yaml's dag_id


def airflow_db(env: dict) -> Path | str:
    """The Airflow database of an environment (scheduler_environment's), for airflow_rows:
    a SQLite file (a Path), or a server's SQLAlchemy URL."""
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else url


class LocalScheduler:
    """`airflow scheduler` + `airflow triggerer` in their own process groups.

    As a context manager: the database migrated, the DAGs serialized and `DAG_ID`
    unpaused, then both started; both stopped on the way out. `trigger` and
    `wait_for_run` are a night under them, as Dorothy would start one from the UI.
    """

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.crash_survivors: list = []      # psutil.Process: see kill()
        self.db = airflow_db(env)

    def __enter__(self) -> "LocalScheduler":
        self.airflow("db", "migrate")
        self.airflow("dags", "reserialize")
        self.airflow("dags", "unpause", DAG_ID)
        try:
            self.start("scheduler")
            self.start("triggerer")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def trigger(self, run_id: str, night: str, *, second: int = 0, **conf) -> None:
        """A manual run of `night` (logical date NIGHTT02:00:SS), conf {"night": night, **conf}."""
        import json

        self.airflow("dags", "trigger", DAG_ID, "--run-id", run_id,
                     "--exec-date", f"{night}T02:00:{second:02d}+00:00",
                     "--conf", json.dumps({"night": night, **conf}))

    def wait_for_run(self, run_id: str, timeout_s: float, poll_s: float = 2) -> str:
        """The run's final state (success or failed); TimeoutError naming the state it is
        still in after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (state := run_state(self.db, run_id)) not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {state} after {timeout_s:.0f} s")
            time.sleep(poll_s)
        return state

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env,
                              capture_output=True, text=True, timeout=300)
        if check:
            assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc

    def start(self, name: str) -> None:
        out = open(self.logs / f"{name}.{len(list(self.logs.glob(name + '.*')))}.log", "w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", name], env=self.env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL the process alone (a crash): the task it launched lives on, and so
        do its other children until stop(). A scheduler's DagFileProcessorManager is in
        a process group of its own (Airflow's set_new_process_group), so the children
        are found by parent pid (psutil), not by group."""
        import psutil

        proc = self.procs.pop(name)
        self.crash_survivors.extend(psutil.Process(proc.pid).children(recursive=True))
        proc.kill()
        proc.wait(timeout=30)

    def stop(self) -> None:
        import os
        import signal

        import psutil

        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for survivor in self.crash_survivors:   # what a crash left outlives no test
            try:
                if survivor.is_running():        # that process still, not a reused pid
                    survivor.kill()
            except psutil.NoSuchProcess:
                pass


def airflow_rows(db: Path | str, sql: str, *args) -> list[tuple]:
    """Rows of Airflow's metadata DB: a SQLite file (a Path; read-only, the scheduler keeps
    writing) or a server's SQLAlchemy URL (a str). `sql` takes `?` placeholders."""
    if isinstance(db, str):
        import sqlalchemy

        engine = sqlalchemy.create_engine(db)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in
                        conn.exec_driver_sql(sql.replace("?", "%s"), tuple(args)).fetchall()]
        finally:
            engine.dispose()
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def run_state(db: Path | str, run_id: str, dag_id: str = DAG_ID) -> Optional[str]:
    rows = airflow_rows(db, "SELECT state FROM dag_run WHERE dag_id=? AND run_id=?",
                        dag_id, run_id)
    return rows[0][0] if rows else None


def task_state(db: Path | str, run_id: str, task_id: str, dag_id: str = DAG_ID) -> dict:
    rows = airflow_rows(db, "SELECT state, try_number, pid FROM task_instance "
                            "WHERE dag_id=? AND run_id=? AND task_id=?", dag_id, run_id, task_id)
    state, tries, pid = rows[0] if rows else (None, 0, None)
    return {"state": state, "try_number": tries, "pid": pid}
