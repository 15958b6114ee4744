"""The GCS emulator glue of tests/gcs_testing.py, on its own (quick).

What the pods' end-to-end test (tests/test_pods_e2e.py) relies on: TF's own gs://
client, which ignores STORAGE_EMULATOR_HOST, reaches fake-gcs-server through the
proxy's CONNECT tunnel and the throwaway CA; Beam's gcsio, whose rename is a batch
of copies then a batch of deletes, works through the proxy's batch split; and the
batch split itself gives google-cloud-storage's parser what GCS would. TF and Beam
run in a fresh process with `gcs_environment` alone, as the pods' processes do.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import gcs_testing
from emerald_testing import anonymous_client

BUCKET = "emerald-proxy-test"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with gcs_testing.gcs_for_tf(tmp_path_factory.mktemp("gcs")) as proxy:
        env = gcs_testing.gcs_environment(proxy)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
            client = anonymous_client()
            client.create_bucket(BUCKET)
            yield proxy, env, client


def _python(env: dict, code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with the GCS environment (and PATH) only."""
    import os

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**env, "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_tfs_own_gs_client_writes_reads_lists_renames_and_deletes_through_the_proxy(gcs):
    proxy, env, client = gcs
    before = proxy.tunnelled
    out = _python(env, f"""
import json
import tensorflow as tf
root = "gs://{BUCKET}/tf"
tf.io.gfile.makedirs(root + "/a/b")
with tf.io.gfile.GFile(root + "/a/b/x.txt", "w") as f:
    f.write("emerald" * 100000)                      # 700 kB: more than one upload chunk
tf.io.gfile.rename(root + "/a/b/x.txt", root + "/a/b/y.txt")
with tf.io.gfile.GFile(root + "/a/b/z.txt", "w") as f:
    f.write("gone")
tf.io.gfile.remove(root + "/a/b/z.txt")
print(json.dumps({{"read": tf.io.gfile.GFile(root + "/a/b/y.txt").read()[:14],
                  "size": tf.io.gfile.stat(root + "/a/b/y.txt").length,
                  "listed": tf.io.gfile.listdir(root + "/a/b"),
                  "isdir": tf.io.gfile.isdir(root + "/a"),
                  "old": tf.io.gfile.exists(root + "/a/b/x.txt")}}))
""").stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"read": "emerald" * 2, "size": 700000, "listed": ["y.txt"], "isdir": True,
                    "old": False}
    # The emulator holds what TF wrote, whole (no chunk framing), and TF went through a tunnel.
    blob = client.bucket(BUCKET).get_blob("tf/a/b/y.txt")
    assert blob.download_as_bytes() == b"emerald" * 100000
    assert client.bucket(BUCKET).get_blob("tf/a/b/z.txt") is None
    assert proxy.tunnelled > before and not proxy.errors and not proxy.refused


def test_beams_batched_rename_is_split_into_single_requests(gcs):
    proxy, env, client = gcs
    before = proxy.batch_parts
    _python(env, f"""
from apache_beam.io.filesystems import FileSystems
sources = ["gs://{BUCKET}/beam/tmp-%d" % i for i in range(3)]
for i, path in enumerate(sources):
    with FileSystems.create(path) as handle:
        handle.write(b"part %d" % i)
FileSystems.rename(sources, [p.replace("tmp-", "out-") for p in sources])
""")
    names = sorted(b.name for b in client.list_blobs(BUCKET, prefix="beam/"))
    assert names == ["beam/out-0", "beam/out-1", "beam/out-2"]
    assert client.bucket(BUCKET).blob("beam/out-2").download_as_bytes() == b"part 2"
    assert proxy.batch_parts - before == 6                  # 3 copies, then 3 deletes
    assert proxy.tokens >= 1                                # Beam's credentials, refreshed here


def test_a_batch_answer_is_what_google_cloud_storage_parses():
    """The split and the join against google-cloud-storage's own batch code, no server."""
    import requests
    from google.cloud.storage.batch import Batch, _unpack_batch_response

    class Client:                     # what Batch reads of a client to build its request
        class _connection:            # noqa: N801 - google-cloud-storage's attribute names
            API_BASE_URL, _client_info = "http://127.0.0.1:1", None

    batch = Batch(Client())
    batch._do_request("POST", "http://127.0.0.1:1/storage/v1/b/b/o/x/copyTo/b/b/o/y?a=1",
                      {"Content-Type": "application/json"}, {"k": "v"}, None)
    batch._do_request("DELETE", "http://127.0.0.1:1/storage/v1/b/b/o/x", {}, None, None)
    headers, body, _ = batch._prepare_batch_request()
    parts = gcs_testing.split_batch(headers["Content-Type"], body.encode())
    assert [(m, p) for m, p, _, _ in parts] == [
        ("POST", "/storage/v1/b/b/o/x/copyTo/b/b/o/y?a=1"), ("DELETE", "/storage/v1/b/b/o/x")]
    assert json.loads(parts[0][3]) == {"k": "v"} and parts[1][3] == b""

    content_type, joined = gcs_testing.join_batch([
        (200, "OK", {"Content-Type": "application/json"}, b'{"name": "y"}'),
        (404, "Not Found", {"Content-Type": "application/json"}, b'{"error": {}}')])
    response = requests.Response()
    response.headers["content-type"] = content_type
    response._content = joined
    answers = list(_unpack_batch_response(response))
    assert [a.status_code for a in answers] == [200, 404]
    assert answers[0].json() == {"name": "y"}


def test_a_chunked_body_is_read_whole():
    chunked = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT"
    stream = io.BytesIO(chunked)
    assert gcs_testing.read_body(stream, {"Transfer-Encoding": "chunked"}) == b"hello, world"
    assert stream.read() == b"NEXT"                 # the next request starts right after
    assert gcs_testing.read_body(io.BytesIO(b"abcdef"), {"Content-Length": "3"}) == b"abc"


def test_the_proxy_presents_googles_name_and_tunnels_nowhere_else(gcs):
    proxy, _, _ = gcs
    assert gcs_testing.probe_tls(proxy, "www.googleapis.com") == "storage.googleapis.com"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy.url}))
    with pytest.raises(urllib.error.URLError):
        opener.open("https://example.com/", timeout=10)
    assert proxy.refused == ["example.com"]
