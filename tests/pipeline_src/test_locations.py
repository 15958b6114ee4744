"""A gs:// location against a GCS emulator asks nobody for credentials (quick).

gcsfs looks for credentials unless told otherwise, and google-auth then probes the GCE
metadata server (169.254.169.254): from a test machine, traffic to an address that is
not ours. Against STORAGE_EMULATOR_HOST a location is anonymous, as ingestion's client
is. Run in a fresh interpreter, whose metadata server is a local listener counting calls.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import emerald_testing as testing

WRITE_AND_READ = """
from pipeline_src.locations import location
report = location("gs://emerald-boot/reports/2026-01-01") / "summary.json"
report.write_text('{"night": "2026-01-01"}')
print(report.read_text())
"""


def test_a_gs_location_on_an_emulator_never_probes_the_metadata_server(tmp_path):
    probes = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)

    def count(stop):
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            probes.append(connection.recv(200))
            connection.close()

    stop = threading.Event()
    counter = threading.Thread(target=count, args=(stop,), daemon=True)
    counter.start()
    metadata = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        with testing.gcs_emulator(tmp_path / "emulator.log") as url:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("GOOGLE", "GCE_", "STORAGE_EMULATOR"))}
            env.update(STORAGE_EMULATOR_HOST=url, GCE_METADATA_HOST=metadata,
                       GCE_METADATA_IP=metadata, HOME=str(tmp_path))
            proc = subprocess.run([sys.executable, "-c", WRITE_AND_READ], env=env,
                                  capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        counter.join()
        listener.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == '{"night": "2026-01-01"}'
    assert probes == []
