"""deploy/nginx/ebr.conf run by a real nginx: the file as shipped, only its ports, certificate and
log paths pointed at a temporary directory, in front of a stand-in upstream that echoes what it
received. Skipped where nginx is not installed (`apt-get install nginx-light`)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
HOST = "ebr.example.org"
OVER_THE_CAP = 10 * 1024 * 1024  # nginx allows 9 MB

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Echo(BaseHTTPRequestHandler):
    """The upstream: answers 200 with the path, the forwarded headers and the body size."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"path": self.path, "proto": self.headers.get("X-Forwarded-Proto"),
                           "bytes": length}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    chain, private = directory / "fullchain.pem", directory / "privkey.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return chain, private


class Edge:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.http_port, self.https_port, upstream_port = _free_port(), _free_port(), _free_port()
        chain, private = _certificate(directory)
        site = (DEPLOY / "ebr.conf").read_text()
        for shipped, here in (("listen 80 default_server;", f"listen 127.0.0.1:{self.http_port} default_server;"),
                              ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
                              ("/etc/ssl/ebr/fullchain.pem", str(chain)), ("/etc/ssl/ebr/privkey.pem", str(private)),
                              ("/var/log/nginx/access.log", str(directory / "access.log"))):
            assert shipped in site, f"ebr.conf no longer has {shipped!r}: update this test"
            site = site.replace(shipped, here)
        (directory / "ebr.conf").write_text(site)
        (directory / "upstream.conf").write_text(
            (DEPLOY / "upstream.conf").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}"))
        temp = {kind: directory / kind for kind in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir()
        (directory / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{}}
http {{
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {directory}/upstream.conf;
    include {directory}/ebr.conf;
}}
""")
        self.upstream = ThreadingHTTPServer(("127.0.0.1", upstream_port), _Echo)
        self.process: subprocess.Popen[bytes] | None = None
        self.serving = False

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([NGINX, "-t", "-p", str(self.directory), "-c", str(self.directory / "nginx.conf")],
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> Edge:
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        self.serving = True
        self.process = subprocess.Popen([NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError((self.directory / "error.log").read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
        if self.serving:
            self.upstream.shutdown()
        self.upstream.server_close()

    def https(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # our own throwaway certificate
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=context, timeout=30)
        try:
            connection.request(method, path, body=body, headers={"Host": HOST, "Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    running = Edge(tmp_path_factory.mktemp("nginx"))
    checked = running.check()
    assert checked.returncode == 0, checked.stderr
    try:
        yield running.start()
    finally:
        running.stop()  # also when nginx never came up: no process is left behind


def test_the_shipped_configuration_passes_nginx_t(edge):
    assert "syntax is ok" in edge.check().stderr


def test_an_api_body_over_the_cap_gets_the_api_json_413(edge):
    status, headers, body = edge.https("POST", "/api/v1/readings", b"x" * OVER_THE_CAP)

    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"errors": [{"index": None, "field": None,
                                            "message": "The body may be at most 8 MB."}]}
    assert headers["strict-transport-security"].startswith("max-age=31536000")


def test_a_page_body_over_the_cap_gets_nginx_s_own_page_not_api_json(edge):
    status, headers, body = edge.https("POST", "/master-records/", b"x" * OVER_THE_CAP)

    assert status == 413
    assert headers["content-type"].startswith("text/html") and b"errors" not in body


def test_api_and_pages_under_the_cap_reach_the_application_over_https(edge):
    for path in ("/api/v1/readings", "/master-records/"):
        status, headers, body = edge.https("POST", path, b"x" * (5 * 1024 * 1024))

        assert status == 200, body[:200]
        assert json.loads(body) == {"path": path, "proto": "https", "bytes": 5 * 1024 * 1024}
        assert headers["strict-transport-security"].startswith("max-age=31536000")


def test_plain_http_redirects_to_the_configured_name(edge):
    connection = http.client.HTTPConnection("127.0.0.1", edge.http_port, timeout=10)
    connection.request("GET", "/batches/?q=1", headers={"Host": "attacker.example"})
    response = connection.getresponse()

    assert response.status == 301
    assert response.getheader("Location") == f"https://{HOST}/batches/?q=1"
