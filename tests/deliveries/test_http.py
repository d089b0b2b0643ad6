"""The hardened HTTP client against real loopback receivers: address refusal, the pinned
connection, the total deadline, the byte cap, redirects and keep-alive.

Every server here listens on 127.0.0.1; nothing connects anywhere else.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from urllib3.exceptions import ReadTimeoutError

from deliveries import http
from deliveries.http import HttpResult, post
from webhooks import destinations
from webhooks.destinations import UrlRefused, check_url, is_allowed_ip

LOOPBACK_NETWORKS = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
TIMEOUT_S = 1.0
# A dripping receiver would take many seconds to finish; the deadline must cut it near 1 s.
CUT_OFF_S = 2.0
DRIP_INTERVAL_S = 0.2
READ_BYTES = 64 * 1024
STORE_BYTES = 4 * 1024
# Far more than loopback socket buffers hold (a few MiB each way on Linux), so a client
# reading it all would be seen doing so.
HUGE_BODY_BYTES = 32 * 1024 * 1024
WRITE_CHUNK_BYTES = 64 * 1024
# How long a listener waits to be sure nobody is connecting.
NO_ACCEPT_WAIT_S = 0.3
SERVER_JOIN_S = 5.0


@pytest.fixture
def loopback(settings):
    """Loopback receivers reachable, a short deadline, the default caps."""
    settings.WEBHOOK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS
    settings.WEBHOOK_HTTPS_ONLY = False
    settings.WEBHOOK_TIMEOUT = TIMEOUT_S
    settings.WEBHOOK_RESPONSE_READ_BYTES = READ_BYTES
    settings.WEBHOOK_RESPONSE_STORE_BYTES = STORE_BYTES
    return settings


@pytest.fixture
def no_exemptions(settings):
    """Production policy: only publicly routable addresses."""
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.WEBHOOK_HTTPS_ONLY = False
    settings.WEBHOOK_TIMEOUT = TIMEOUT_S
    return settings


# --- Receivers ---------------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


Respond = Callable[[BaseHTTPRequestHandler], None]


class CountingServer(ThreadingHTTPServer):
    """A threading HTTP server that counts accepted TCP connections and records requests."""

    daemon_threads = True

    def __init__(self, respond: Respond, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.accepts = 0
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def get_request(self):
        request = super().get_request()
        with self.lock:
            self.accepts += 1
        return request

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up mid-response is what several tests provoke.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.seen.append(Seen(self.path, headers, body))
        self.server.respond(self)


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Respond:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


@dataclass
class HugeBody:
    """Announces and writes HUGE_BODY_BYTES, counting what the client let it write."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    written: int = 0
    finished: threading.Event = field(default_factory=threading.Event)

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            handler.send_response(self.status)
            for name, value in self.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(HUGE_BODY_BYTES))
            handler.end_headers()
            chunk = b"x" * WRITE_CHUNK_BYTES
            while self.written < HUGE_BODY_BYTES:
                handler.wfile.write(chunk)
                self.written += len(chunk)
        except OSError:
            handler.close_connection = True
        finally:
            self.finished.set()


@pytest.fixture
def serve() -> Iterator[Callable[..., CountingServer]]:
    servers: list[CountingServer] = []

    def start(respond: Respond, ssl_context: ssl.SSLContext | None = None) -> CountingServer:
        server = CountingServer(respond, ssl_context)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class RawServer:
    """A bare TCP listener on 127.0.0.1 handing each connection to ``handle``."""

    handle: Callable[[socket.socket, threading.Event], None]
    stop: threading.Event = field(default_factory=threading.Event)
    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        # OSError: the client gave up, as it should.
        with conn, contextlib.suppress(OSError):
            self.handle(conn, self.stop)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Callable[[socket.socket, threading.Event], None]) -> RawServer:
        server = RawServer(handle)
        thread = threading.Thread(target=server.serve, daemon=True)
        server.threads.append(thread)
        thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop.set()
        for thread in server.threads:
            thread.join(SERVER_JOIN_S)
        server.listener.close()


def read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def dripping(at_once: bytes, dripped: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """A receiver that sends ``at_once``, then ``dripped`` one byte every DRIP_INTERVAL_S."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        read_request_head(conn)
        conn.sendall(at_once)
        for byte in dripped:
            if stop.wait(DRIP_INTERVAL_S):
                return
            conn.sendall(bytes([byte]))

    return handle


def silent(conn: socket.socket, stop: threading.Event) -> None:
    read_request_head(conn)
    stop.wait()


def timed_post(url: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> tuple[HttpResult, float]:
    started = time.monotonic()
    result = post(url, body, headers or {})
    return result, time.monotonic() - started


# --- TLS material ------------------------------------------------------------------------


@dataclass
class Tls:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Tls:
    """A throwaway CA and a certificate for "localhost" (and no IP address) signed by it."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "leaf.pem"
    cert_path.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "leaf.key"
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Tls(ca_path=ca_path, cert_path=cert_path, key_path=key_path)


# --- check_url and is_allowed_ip ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://240.0.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "https://example.com/" + "a" * 2029,
        "/relative",
        "http:///nohost",
    ],
)
def test_check_url_refuses_when_url_or_address_is_not_allowed(no_exemptions, url):
    with pytest.raises(UrlRefused):
        check_url(url)


def test_check_url_refuses_when_url_is_one_character_over_the_limit(no_exemptions):
    at_limit = "http://93.184.216.34/" + "a" * (destinations.MAX_URL_LENGTH - len("http://93.184.216.34/"))
    check_url(at_limit, resolve=False)
    with pytest.raises(UrlRefused, match="at most 2048 characters"):
        check_url(at_limit + "a", resolve=False)


PUBLIC_NEEDED = "; webhook URLs must reach a publicly routable host"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://0x7f000001/", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://192.168.1.1/", "192.168.1.1 is a private address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://169.254.169.254/", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1 is a non-public address"),
        ("http://192.0.2.1/", "192.0.2.1 is a non-public address"),
    ],
)
def test_check_url_names_the_refused_address_and_its_kind_when_host_is_a_literal(no_exemptions, url, message):
    with pytest.raises(UrlRefused) as refused:
        check_url(url, resolve=False)

    assert str(refused.value) == message + PUBLIC_NEEDED


def test_check_url_never_names_the_address_a_host_name_resolved_to(no_exemptions):
    with pytest.raises(UrlRefused) as refused:
        check_url("http://localhost:8080/hook")

    assert str(refused.value) == "host resolves to a non-public address" + PUBLIC_NEEDED
    assert "127.0.0.1" not in str(refused.value)
    assert "::1" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/", "https://93.184.216.34:8443/hook?x=1", "https://[2606:4700::1111]/"]
)
def test_check_url_accepts_when_literal_is_public(no_exemptions, url):
    check_url(url, resolve=False)


def test_check_url_refuses_http_when_https_only(no_exemptions):
    no_exemptions.WEBHOOK_HTTPS_ONLY = True
    with pytest.raises(UrlRefused, match="https"):
        check_url("http://93.184.216.34/", resolve=False)
    check_url("https://93.184.216.34/", resolve=False)


def test_check_url_reports_unresolvable_host_when_lookup_fails(no_exemptions):
    # A label over 63 characters fails inside the resolver call without any DNS traffic.
    with pytest.raises(UrlRefused, match="could not resolve host"):
        check_url("http://" + "a" * 64 + ".example/")


def test_check_url_accepts_loopback_in_every_form_when_loopback_is_exempt(loopback):
    for url in ["http://127.0.0.1/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://localhost/"]:
        check_url(url)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("2002:808:808::1", True),  # 6to4 of a public address
        ("::ffff:8.8.8.8", True),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("203.0.113.7", False),
        ("255.255.255.255", False),
        ("2001:db8::1", False),
        ("3fff::1", False),
        ("2001::1", False),  # Teredo
        ("fec0::1", False),  # site-local
        ("fd00::1", False),
        ("ff02::1", False),
        ("::", False),
        ("::7f00:1", False),  # IPv4-compatible, deprecated
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::808:808", False),  # local-use NAT64
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
    ],
)
def test_is_allowed_ip_follows_public_routability_when_nothing_is_exempt(no_exemptions, address, allowed):
    assert is_allowed_ip(ipaddress.ip_address(address)) is allowed


def test_is_allowed_ip_applies_ipv4_exemption_to_mapped_ipv6_when_loopback_is_exempt(loopback):
    assert is_allowed_ip(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not is_allowed_ip(ipaddress.ip_address("::ffff:10.0.0.1"))


# --- post: refusal costs no connection ---------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"])
def test_post_refuses_without_connecting_when_address_is_not_allowed(no_exemptions, host):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]

        result = post(f"http://{host}:{port}/hook", b"{}", {})

        assert result.status is None
        named = {"localhost": "host resolves to a non-public address", "[::ffff:127.0.0.1]": "::ffff:127.0.0.1"}
        # A name's refusal never says what it resolved to; a literal is named, disguises unmasked.
        expected = named.get(host, "127.0.0.1")
        if expected[0].isdigit() or ":" in expected:
            expected += " is a loopback address"
        assert result.error == expected + PUBLIC_NEEDED
        assert not result.ok
        listener.settimeout(NO_ACCEPT_WAIT_S)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_post_returns_error_when_url_is_refused(no_exemptions):
    result = post("ftp://example.com/", b"{}", {})

    assert result.status is None
    assert "http" in result.error


# --- post: answers -----------------------------------------------------------------------


def test_post_returns_status_truncated_body_and_retry_after_when_receiver_answers(loopback, serve):
    loopback.WEBHOOK_RESPONSE_STORE_BYTES = 16
    server = serve(answer(200, b"y" * 100, {"Retry-After": "120", "X-Noise": "1"}))

    result = post(f"http://127.0.0.1:{server.port}/hook", b'{"a": 1}', {"X-Signature": "v1,abc"})

    assert result == HttpResult(
        status=200, body="y" * 16, duration_ms=result.duration_ms, error="", headers={"retry-after": "120"}
    )
    assert result.ok
    [seen] = server.seen
    assert seen.path == "/hook"
    assert seen.body == b'{"a": 1}'
    assert seen.headers["user-agent"] == loopback.WEBHOOK_USER_AGENT
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-signature"] == "v1,abc"
    assert seen.headers["accept-encoding"] == "identity"


def test_post_keeps_caller_content_type_when_given(loopback, serve):
    server = serve(answer(204))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {"content-type": "application/cloudevents+json"})

    assert result.status == 204
    assert server.seen[0].headers["content-type"] == "application/cloudevents+json"


def test_post_returns_status_without_error_when_receiver_answers_500(loopback, serve):
    server = serve(answer(500, b"boom"))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.body, result.error, result.ok) == (500, "boom", "", False)


def test_post_replaces_invalid_utf8_when_body_is_cut_inside_a_character(loopback, serve):
    loopback.WEBHOOK_RESPONSE_STORE_BYTES = 2
    server = serve(answer(200, "é!".encode()[0:1] + "é".encode()))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert result.body == "\ufffd\ufffd"


def test_post_reads_body_when_receiver_closes_connection_after_answer(loopback, serve):
    # http.client closes its socket before the body is read; the reader must keep it open.
    server = serve(answer(200, b"bye", {"Connection": "close"}))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.body, result.error) == (200, "bye", "")


def test_post_reads_body_when_receiver_answers_chunked(loopback, raw_server):
    def chunked(conn: socket.socket, stop: threading.Event) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        stop.wait()

    server = raw_server(chunked)

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.body, result.error) == (200, "abcde", "")


def test_post_does_not_follow_when_receiver_redirects(loopback, serve):
    target = serve(answer(200))
    server = serve(answer(302, b"moved", {"Location": f"http://127.0.0.1:{target.port}/elsewhere"}))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.error, result.ok) == (302, "", False)
    assert target.accepts == 0
    assert target.seen == []


@pytest.mark.parametrize("status", [200, 302])
def test_post_reads_only_up_to_cap_when_body_is_huge(loopback, serve, status):
    # A 3xx too: requests' Session.send reads a redirect's whole body even when not following.
    huge = HugeBody(status=status, headers={"Location": "http://127.0.0.1:9/"})
    server = serve(huge)

    result, elapsed = timed_post(f"http://127.0.0.1:{server.port}/")

    assert (result.status, result.error) == (status, "")
    assert result.body == "x" * STORE_BYTES
    assert elapsed < TIMEOUT_S
    assert huge.finished.wait(SERVER_JOIN_S)
    assert huge.written < HUGE_BODY_BYTES


def test_post_reuses_one_connection_when_same_thread_posts_twice(loopback, serve):
    server = serve(answer(200, b"ok"))

    first = post(f"http://127.0.0.1:{server.port}/one", b"{}", {})
    second = post(f"http://127.0.0.1:{server.port}/two", b"{}", {})

    assert (first.status, second.status) == (200, 200)
    assert [seen.path for seen in server.seen] == ["/one", "/two"]
    assert server.accepts == 1


def test_post_uses_separate_connections_when_threads_differ(loopback, serve):
    server = serve(answer(200, b"ok"))
    results: list[HttpResult] = []
    post_in_thread = threading.Thread(
        target=lambda: results.append(post(f"http://127.0.0.1:{server.port}/", b"{}", {}))
    )

    results.append(post(f"http://127.0.0.1:{server.port}/", b"{}", {}))
    post_in_thread.start()
    post_in_thread.join(SERVER_JOIN_S)

    assert [result.status for result in results] == [200, 200]
    assert server.accepts == 2


def test_post_sends_url_host_in_host_header_when_connecting_by_resolved_address(loopback, serve):
    server = serve(answer(200))

    result = post(f"http://localhost:{server.port}/", b"{}", {})

    assert result.status == 200
    assert server.seen[0].headers["host"] == f"localhost:{server.port}"


# --- post: network errors and the total deadline -----------------------------------------


def test_post_reports_connection_refused_when_nothing_listens(loopback):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]

    result = post(f"http://127.0.0.1:{port}/", b"{}", {})

    assert (result.status, result.error) == (None, "connection refused")


def test_post_reports_closed_connection_when_receiver_hangs_up_without_answer(loopback, raw_server):
    def hang_up(conn: socket.socket, stop: threading.Event) -> None:
        read_request_head(conn)
        conn.shutdown(socket.SHUT_WR)  # a clean FIN; closing with unread bytes would be a reset
        while conn.recv(4096):
            pass

    server = raw_server(hang_up)

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.error) == (None, "connection closed without a response")


@pytest.mark.parametrize(
    ("at_once", "dripped"),
    [
        (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        (b"HTTP/1.1 200 OK\r\n", b"Content-Type: text/plain\r\nX-Slow: yes\r\nContent-Length: 2\r\n\r\nok"),
    ],
    ids=["status line", "headers"],
)
def test_post_times_out_at_deadline_when_receiver_drips_head(loopback, raw_server, at_once, dripped):
    server = raw_server(dripping(at_once, dripped))

    result, elapsed = timed_post(f"http://127.0.0.1:{server.port}/")

    assert result.status is None
    assert result.error == f"timeout after {TIMEOUT_S}s"
    assert TIMEOUT_S * 0.9 <= elapsed < CUT_OFF_S
    assert result.duration_ms < CUT_OFF_S * 1000


def test_post_times_out_at_deadline_when_receiver_drips_body(loopback, raw_server):
    server = raw_server(dripping(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab", b"c" * 98))

    result, elapsed = timed_post(f"http://127.0.0.1:{server.port}/")

    assert result.status == 200
    assert "timeout" in result.error
    assert not result.ok
    assert result.body.startswith("ab")
    assert TIMEOUT_S * 0.9 <= elapsed < CUT_OFF_S


def test_post_times_out_at_deadline_when_receiver_never_answers(loopback, raw_server):
    server = raw_server(silent)

    result, elapsed = timed_post(f"http://127.0.0.1:{server.port}/")

    assert (result.status, result.error) == (None, f"timeout after {TIMEOUT_S}s")
    assert elapsed < CUT_OFF_S


def test_post_times_out_at_deadline_when_receiver_does_not_read_request(loopback, raw_server):
    # Never reads: once the socket buffers fill up, sending blocks.
    server = raw_server(lambda conn, stop: stop.wait())

    result, elapsed = timed_post(f"http://127.0.0.1:{server.port}/", body=b"{" * HUGE_BODY_BYTES)

    assert (result.status, result.error) == (None, f"timeout after {TIMEOUT_S}s")
    assert elapsed < CUT_OFF_S


def test_post_deadline_covers_each_attempt_when_connection_is_reused(loopback, serve, raw_server):
    server = serve(answer(200, b"ok"))
    url = f"http://127.0.0.1:{server.port}/"
    assert post(url, b"{}", {}).status == 200
    time.sleep(TIMEOUT_S + 0.1)  # the first attempt's deadline is long gone

    result = post(url, b"{}", {})

    assert (result.status, result.error) == (200, "")
    assert server.accepts == 1


# --- TLS ---------------------------------------------------------------------------------


def test_post_reports_tls_error_when_certificate_is_not_trusted(loopback, serve, tls):
    server = serve(answer(200), ssl_context=tls.server_context())

    result = post(f"https://localhost:{server.port}/", b"{}", {})

    assert result.status is None
    assert result.error.startswith("TLS error: certificate verify failed")
    assert server.seen == []


def test_post_times_out_at_deadline_when_receiver_drips_tls_handshake(loopback, raw_server):
    # A TLS handshake record header announcing 16 KiB, then its bytes one at a time.
    server = raw_server(dripping(b"\x16\x03\x03\x40\x00", b"\x02" * 200))

    result, elapsed = timed_post(f"https://localhost:{server.port}/")

    assert (result.status, result.error) == (None, f"timeout after {TIMEOUT_S}s")
    assert elapsed < CUT_OFF_S


def test_pinned_https_connection_verifies_url_host_when_connecting_by_address(loopback, serve, tls):
    # post() trusts only the public CA bundle, so the pinned pool is used directly here.
    server_names: list[str | None] = []
    context = tls.server_context()
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = serve(answer(200, b"secure"), ssl_context=context)
    pool = http._PinnedHTTPSConnectionPool(
        "localhost", server.port, cert_reqs="CERT_REQUIRED", ca_certs=str(tls.ca_path)
    )
    http._deadline.at = time.monotonic() + TIMEOUT_S
    try:
        response = pool.urlopen("POST", "/", body=b"{}", preload_content=True)
    finally:
        http._deadline.at = None
        pool.close()

    assert (response.status, response.data) == (200, b"secure")
    assert server_names == ["localhost"]
    assert server.seen[0].headers["host"] == f"localhost:{server.port}"


def test_pinned_https_read_stops_at_deadline_when_receiver_drips_body(loopback, serve, tls):
    def drip_body(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(100):
            time.sleep(DRIP_INTERVAL_S)
            handler.wfile.write(b"z")
            handler.wfile.flush()

    server = serve(drip_body, ssl_context=tls.server_context())
    pool = http._PinnedHTTPSConnectionPool(
        "localhost", server.port, cert_reqs="CERT_REQUIRED", ca_certs=str(tls.ca_path)
    )
    started = time.monotonic()
    http._deadline.at = started + TIMEOUT_S
    try:
        response = pool.urlopen("POST", "/", body=b"{}", preload_content=False)
        with pytest.raises(ReadTimeoutError) as raised:
            response.read()
    finally:
        http._deadline.at = None
        pool.close()

    assert "timeout" in http._describe(raised.value, url="https://localhost/", timeout=TIMEOUT_S)
    assert time.monotonic() - started < CUT_OFF_S


# --- post: answers that are not text -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (b"ok\x00nul", "ok\ufffdnul"),
        (b"\x89PNG\r\n\x1a\n\x00", "\ufffdPNG\r\n\x1a\n\ufffd"),
        (b"caf\xe9", "caf\ufffd"),
    ],
)
def test_post_replaces_and_marks_body_when_answer_is_not_text(loopback, serve, body, stored):
    server = serve(answer(200, body))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.status, result.body, result.body_replaced) == (200, stored, True)


def test_post_does_not_mark_body_when_cap_cuts_a_character(loopback, serve):
    loopback.WEBHOOK_RESPONSE_STORE_BYTES = 2
    server = serve(answer(200, "aé".encode()))

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert (result.body, result.body_replaced) == ("a", False)


def test_post_error_holds_no_nul_when_status_line_is_garbled(loopback, raw_server):
    def garbled(conn: socket.socket, stop: threading.Event) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 2\x0000 OK\r\nContent-Length: 0\r\n\r\n")
        stop.wait()

    server = raw_server(garbled)

    result = post(f"http://127.0.0.1:{server.port}/", b"{}", {})

    assert result.status is None
    assert result.error
    assert "\x00" not in result.error


def test_post_sends_the_same_request_when_the_urls_preparation_is_reused(loopback, serve):
    server = serve(answer(200))
    url = f"http://127.0.0.1:{server.port}/hook?a=1&b=%C3%A9"

    results = [post(url, body, {"X-N": str(n)}) for n, body in enumerate([b'{"n":0}', b'{"longer":"body, 1"}'])]

    assert [r.status for r in results] == [200, 200]
    first, second = server.seen
    assert (first.path, second.path) == ("/hook?a=1&b=%C3%A9",) * 2
    assert (first.body, second.body) == (b'{"n":0}', b'{"longer":"body, 1"}')
    assert second.headers["content-length"] == str(len(second.body))
    assert (first.headers["x-n"], second.headers["x-n"]) == ("0", "1")
    assert set(first.headers) == set(second.headers)
    assert {name: value for name, value in first.headers.items() if name not in ("x-n", "content-length")} == {
        name: value for name, value in second.headers.items() if name not in ("x-n", "content-length")
    }
