"""The one hardened HTTP client of the service: every webhook leaves through ``post``.

Customers type the URLs we post to, so each request is a server-side request forgery risk.
The defences, in the order a request meets them:

* ``check_url`` refuses what is wrong on its face: not http(s), credentials, an over-long URL,
  or a host that is an IP literal (in any of the numeric disguises the resolver accepts) that
  is not publicly routable.
* The connection is pinned: the host name is resolved once, inside the connection's own
  ``_new_conn``, every resolved address is validated, and the socket connects to one of those
  validated addresses. There is no second lookup a rebinding DNS server could answer
  differently, and a refused address never costs a connection. Host header, TLS SNI and
  certificate checks still use the URL's host name.
* One total deadline (``WEBHOOK_TIMEOUT``) covers resolution, connect, TLS handshake, sending
  and reading the status line, headers and body; a receiver dripping one byte at a time
  cannot stretch it (``requests``' own timeout restarts with every byte).
* Redirects are never followed, at most ``WEBHOOK_RESPONSE_READ_BYTES`` of a body are read,
  and nothing is taken from the environment (proxies, netrc, CA bundle overrides).

One job in a long module, on purpose: these defences only hold together (the deadline wraps
the pinned socket that the adapter's pools open), so they are read and changed in one place.
"""

from __future__ import annotations

import codecs
import http.client
import io
import re
import socket
import ssl
import sys
import threading
import time
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.util import parse_url
from urllib3.util.ssl_match_hostname import CertificateError as Urllib3CertificateError

from webhooks.destinations import (
    UrlRefused,
    addresses_of,
    check_url,
    is_allowed_ip,
    literal_ip_or_none,
    refusal,
    resolve_host,
)

# The only response header worth keeping: it tells the retry schedule when to come back.
_KEPT_HEADERS = ("retry-after",)


@dataclass(frozen=True)
class HttpResult:
    """What one attempt produced: an HTTP answer, or the network error that prevented it.

    ``error`` is empty on an HTTP answer, whatever its status; a 3xx is an answer. When the
    receiver answered but the body could not be read in time, both ``status`` and ``error`` are
    set, and the attempt is not ``ok``.
    """

    status: int | None
    body: str
    duration_ms: int
    error: str
    headers: dict[str, str] = field(default_factory=dict)
    # True when the body was not UTF-8 text (binary, NUL bytes): what could not be stored
    # as text was replaced with U+FFFD.
    body_replaced: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and self.status is not None and 200 <= self.status < 300


# --- The total deadline ------------------------------------------------------------------


class _Deadline(threading.local):
    # time.monotonic() at which the current attempt of this thread must be over, if any.
    at: float | None = None


_deadline = _Deadline()


def _remaining() -> float | None:
    """Seconds left for this thread's attempt (None: no deadline); TimeoutError once it is over."""
    at = _deadline.at
    if at is None:
        return None
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the attempt's deadline has passed")
    return remaining


def _timeout_for(conn: HTTPConnection) -> float | None:
    remaining = _remaining()
    if remaining is not None:
        return remaining
    # Outside post(): urllib3's own per-operation timeout (or its "use the default" marker).
    return conn.timeout if isinstance(conn.timeout, int | float) else socket.getdefaulttimeout()


class _DeadlineSocket:
    """Wraps a connected socket so every send and receive fits in the attempt's deadline.

    http.client only sends through ``sendall`` and only reads through ``makefile("rb")``;
    both re-arm the socket timeout with the time left before each system call, so a receiver
    trickling bytes cannot restart the clock. Everything else is the wrapped socket's.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self._sock, name)

    def _arm(self) -> None:
        remaining = _remaining()
        if remaining is not None:
            self._sock.settimeout(remaining)

    def sendall(self, data: typing.Any, flags: int = 0) -> None:
        # socket.sendall bounds the whole call, but SSLSocket.sendall restarts its timeout
        # for every record; send piece by piece and re-arm each time instead.
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                self._arm()
                if flags:
                    sent += self._sock.send(octets[sent:], flags)
                else:
                    sent += self._sock.send(octets[sent:])

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: typing.Any) -> typing.Any:
        if mode != "rb":
            return self._sock.makefile(mode, buffering, **kwargs)  # type: ignore[call-overload]
        # The socket's own unbuffered reader keeps the socket's reference counting, so the
        # body can still be read after http.client closes a "Connection: close" socket.
        raw = self._sock.makefile("rb", buffering=0)
        return io.BufferedReader(_DeadlineReader(raw, self), buffering or io.DEFAULT_BUFFER_SIZE)


class _DeadlineReader(io.RawIOBase):
    def __init__(self, raw: typing.Any, sock: _DeadlineSocket) -> None:
        self._raw = raw
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int | None:
        self._sock._arm()
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


# --- Pinned connections ------------------------------------------------------------------


class _RefusedAddress(NewConnectionError):
    """The host resolved to an address that is not allowed; no connection was attempted."""

    def __init__(self, conn: HTTPConnection, refusal: str) -> None:
        self.refusal = refusal
        super().__init__(conn, refusal)


def _open_pinned_socket(conn: HTTPConnection) -> socket.socket:
    """Resolve once, refuse unless every address is allowed, connect to one of them.

    Replaces urllib3's ``create_connection``, whose connect-by-name would do the lookup we
    cannot validate. Only the socket's destination changes: the connection keeps the URL's
    host for the Host header, SNI and certificate matching.
    """
    host = conn._dns_host.strip("[]")  # the trailing dot of an FQDN matters to the resolver
    try:
        infos = resolve_host(host, conn.port, timeout=_timeout_for(conn))
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Resolving {conn.host} timed out") from exc
    except UnicodeError as exc:
        raise LocationParseError(f"'{host}', not a valid host name") from exc
    if not infos:
        raise NewConnectionError(conn, f"{conn.host} resolves to no address")
    for ip in addresses_of(infos):
        if not is_allowed_ip(ip):
            raise _RefusedAddress(conn, refusal(ip, literal=literal_ip_or_none(host) is not None))

    last_error: OSError | None = None
    for family, socktype, proto, _canonname, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(_timeout_for(conn))
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            # What is left also bounds the TLS handshake, which CPython times as a whole.
            sock.settimeout(_timeout_for(conn))
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from exc
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last_error}") from last_error


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _open_pinned_socket(self)

    def connect(self) -> None:
        super().connect()
        self.sock = typing.cast(socket.socket, _DeadlineSocket(self.sock))


class _PinnedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _open_pinned_socket(self)

    def connect(self) -> None:
        super().connect()  # TLS-wraps the pinned socket; the wrapper goes on the TLS socket
        self.sock = typing.cast(socket.socket, _DeadlineSocket(self.sock))


class _PinnedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A new dict: the default one is shared by every PoolManager in the process.
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PinnedHTTPConnectionPool,
            "https": _PinnedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: typing.Any) -> typing.Any:
        # A proxy would connect by name behind our back; post() never configures one.
        raise requests.exceptions.InvalidProxyURL("proxies are not supported")

    # Never through a proxy (post() passes none; proxy_manager_for refuses one), so the three
    # steps below are requests' own without the proxy lookups, which parse the URL each time,
    # and build_response takes no cookies (the session's policy refuses them all anyway):
    # together ~35 µs of the ~330 a POST cost in process against nginx.

    def request_url(self, request: requests.PreparedRequest, proxies: typing.Any) -> str:
        return request.path_url

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: typing.Any, proxies: typing.Any = None, cert: typing.Any = None
    ) -> typing.Any:
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from exc
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def build_response(self, req: requests.PreparedRequest, resp: typing.Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = typing.cast(str, req.url)
        response.request = req
        response.connection = self
        return response


# --- Sending -----------------------------------------------------------------------------

_local = threading.local()


def _session() -> requests.Session:
    """This thread's session: its own keep-alive connections, nothing from the environment."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies, netrc credentials or CA bundle from env vars
        # Receivers of different customers may share a host; none gets another's cookies.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = _PinnedAdapter(max_retries=0)  # a POST is not repeated behind our back
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


# Receivers' URLs as requests prepares them, kept per thread: a drain posts to one URL over and
# over, and preparing it (parsing, quoting, IDNA, credentials) cost more than the rest of the
# request's preparation. Forgotten all at once when this many are held.
PREPARED_URLS_KEPT = 1_024


def _prepare(url: str, headers: CaseInsensitiveDict[str], body: bytes) -> requests.PreparedRequest:
    """The POST as requests' ``PreparedRequest.prepare`` makes it, without the session's
    merging (cookies, auth, hooks, environment: all switched off here) and with the URL's
    preparation done once per thread and URL (``PREPARED_URLS_KEPT``).

    ``check_url`` has refused URLs with credentials, so the auth step (which reads them from
    the URL) and an empty cookie jar would add nothing; headers and body are prepared as
    ``prepare`` does, Content-Length included.
    """
    urls: dict[str, str] | None = getattr(_local, "prepared_urls", None)
    if urls is None or len(urls) >= PREPARED_URLS_KEPT:
        urls = _local.prepared_urls = {}
    prepared_url = urls.get(url)
    if prepared_url is None:
        first = requests.PreparedRequest()
        first.prepare(method="POST", url=url, headers=headers, data=body)
        if first.url is not None:
            urls[url] = first.url
        return first
    prepared = requests.PreparedRequest()
    prepared.prepare_method("POST")
    prepared.url = prepared_url
    prepared.prepare_headers(headers)
    prepared.prepare_body(body, None)
    prepared.prepare_hooks(None)
    return prepared


_NETWORK_ERRORS = (
    requests.RequestException,
    Urllib3HTTPError,
    http.client.HTTPException,
    OSError,
)


def post(url: str, body: bytes, headers: Mapping[str, str]) -> HttpResult:
    """POST ``body`` to ``url`` once and report what happened; never raises for the network.

    Sends ``User-Agent: WEBHOOK_USER_AGENT`` and ``Content-Type: application/json`` unless
    ``headers`` set them. The whole attempt is bounded by ``WEBHOOK_TIMEOUT``.
    """
    # Longer than most functions: one attempt, from the refusal check to the capped read, is
    # one sequence whose finally-clause must see every step's state.
    timeout = float(settings.WEBHOOK_TIMEOUT)
    started = time.monotonic()
    try:
        check_url(url, resolve=False)
    except UrlRefused as exc:
        return HttpResult(status=None, body="", duration_ms=_ms_since(started), error=str(exc))

    request_headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
        {
            "User-Agent": settings.WEBHOOK_USER_AGENT,
            "Content-Type": "application/json",
            # The byte cap is on what crosses the wire; a compressed body could hide a bomb.
            "Accept-Encoding": "identity",
        }
    )
    request_headers.update(headers)
    read_cap = settings.WEBHOOK_RESPONSE_READ_BYTES
    status: int | None = None
    kept: dict[str, str] = {}
    chunks: list[bytes] = []
    error = ""
    response: requests.Response | None = None
    _deadline.at = started + timeout
    try:
        session = _session()
        prepared = _prepare(url, request_headers, body)
        # Straight to the adapter: Session.send, even with allow_redirects=False, reads a
        # 3xx body in full (to offer Response.next), with no cap. Nothing is followed here.
        response = session.get_adapter(url).send(
            prepared, stream=True, timeout=timeout, verify=True, cert=None, proxies={}
        )
        status = response.status_code
        kept = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        received = 0
        while received < read_cap:
            # read1: what has arrived, so a body cut off by the deadline is kept in part.
            chunk = response.raw.read1(read_cap - received, decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except _NETWORK_ERRORS as exc:
        error = _describe(exc, url=url, timeout=timeout)
    finally:
        if response is not None:
            # Releases a fully read connection for reuse; closes one with unread bytes.
            response.close()
        _deadline.at = None
    whole = b"".join(chunks)
    kept_bytes = whole[: settings.WEBHOOK_RESPONSE_STORE_BYTES]
    answer, replaced = storable_text(kept_bytes, cut=len(kept_bytes) < len(whole) or len(whole) >= read_cap)
    return HttpResult(
        status=status,
        body=answer,
        duration_ms=_ms_since(started),
        error=storable_text(error.encode("utf-8", errors="replace"))[0],
        headers={name: storable_text(value.encode("utf-8", errors="replace"))[0] for name, value in kept.items()},
        body_replaced=replaced,
    )


def storable_text(raw: bytes, *, cut: bool = False) -> tuple[str, bool]:
    """``raw`` as text PostgreSQL can store, and whether anything had to be replaced.

    A receiver may answer anything: an image, gzip, NUL bytes (which a PostgreSQL text value
    cannot hold). Undecodable bytes and NUL become U+FFFD. When ``cut`` (a cap ended the
    bytes), a multi-byte character cut off at the very end is dropped, not counted as replaced.
    """
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(raw, final=not cut)
        replaced = False
    except UnicodeDecodeError:
        text, replaced = raw.decode("utf-8", errors="replace"), True
    if "\x00" in text:
        text, replaced = text.replace("\x00", "\ufffd"), True
    return text, replaced


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _describe(exc: BaseException, *, url: str, timeout: float) -> str:
    """A short, stable description of why an attempt got no (complete) HTTP answer."""
    chain = list(_exception_chain(exc))
    for cause in chain:
        if isinstance(cause, _RefusedAddress):
            return cause.refusal
    for cause in chain:
        if _is_timeout(cause):
            return f"timeout after {timeout}s"
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or _strip_ssl_location(str(cause))}"
        if isinstance(cause, Urllib3CertificateError):
            return f"TLS error: {cause}"
    for cause in chain:
        if isinstance(cause, NameResolutionError | socket.gaierror):
            return f"could not resolve host {_host_of(url)}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, http.client.RemoteDisconnected):  # a ConnectionResetError too
            return "connection closed without a response"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by receiver"
    innermost = chain[-1] if chain else exc
    return f"connection error: {type(innermost).__name__}: {innermost}"[:300]


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | requests.Timeout | ReadTimeoutError):
        return True
    # urllib3 files NewConnectionError (refused, unreachable, ...) under ConnectTimeoutError.
    return isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError)


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps, outermost first.

    requests and urllib3 nest causes in ``args`` and ``reason`` as well as ``__cause__``.
    """
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested.extend(current.args)
        pending.extend(item for item in nested if isinstance(item, BaseException))


def _strip_ssl_location(message: str) -> str:
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", message)


def _host_of(url: str) -> str:
    try:
        return parse_url(url).host or url
    except LocationParseError:
        return url
