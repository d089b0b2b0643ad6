"""Where webhook requests may go: the address policy, applied at create, update and every attempt.

``check_url`` refuses what is wrong on its face (not http(s), credentials, an over-long URL)
and any host, IP literal in any numeric disguise or resolved name, that is not publicly
routable. ``WEBHOOK_ALLOWED_NETWORKS`` exempts networks for development and tests. The
delivery client (``deliveries.http``) applies ``is_allowed_ip`` again to the addresses it
actually connects to.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import typing

import idna
from django.conf import settings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Browsers and many servers and proxies stop at about this length; nothing legitimate needs more.
MAX_URL_LENGTH = 2048

# Neither publicly routable nor caught by every Python version's ``is_global``.
_NOT_GLOBAL_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, home of cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
# Only 2000::/3 holds global unicast addresses; inside it these are not.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NOT_GLOBAL_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "3ffe::/16",  # the returned 6bone
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UrlRefused(ValueError):
    """A URL the service will not post to; the message says why, for a human."""


# What a refusal asks for. A name's refusal never says what it resolved to: the service's own
# resolver would otherwise map internal names for whoever asks. An address typed in the URL
# is the caller's own, and may be named (in the form the resolver reads it).
_PUBLIC_HOST_NEEDED = "webhook URLs must reach a publicly routable host"
NAME_REFUSAL = f"host resolves to a non-public address; {_PUBLIC_HOST_NEEDED}"
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def refusal(ip: IPAddress, *, literal: bool) -> str:
    """Why ``ip`` is refused: named if the URL gave it literally, else only that the host's is."""
    if not literal:
        return NAME_REFUSAL
    kind = address_kind(ip)
    article = "an" if kind[0] in "aeiou" else "a"
    # Python 3.11 writes ::ffff:127.0.0.1 as ::ffff:7f00:1; say it as it was most likely typed.
    shown = f"::ffff:{ip.ipv4_mapped}" if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    return f"{shown} is {article} {kind} address; {_PUBLIC_HOST_NEEDED}"


def address_kind(ip: IPAddress) -> str:
    """The word for a refused address: private, loopback, link-local, ..., else "non-public"."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_kind(embedded)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip.version == net.version and ip in net for net in _PRIVATE_NETWORKS):
        return "private"
    if ip.is_reserved:
        return "reserved"
    return "non-public"


# --- URL and address checks --------------------------------------------------------------


# What str.isspace() calls whitespace (re's \s is the same set), and the ASCII controls: one
# search, where a check per character cost a fifth of check_url.
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise UrlRefused unless ``url`` is one the service may post to.

    With ``resolve`` the host name is looked up too, and every address it resolves to must be
    allowed. Without it only the URL itself is judged; ``post`` relies on that and validates
    the resolved addresses in the connection, where they are used.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"Must be at most {MAX_URL_LENGTH} characters long")
    if _WHITESPACE_OR_CONTROL.search(url):
        raise UrlRefused("Must not contain whitespace or control characters")
    try:
        # The parser requests itself uses, so what is checked is what is connected to.
        parts = parse_url(url)
    except LocationParseError as exc:
        raise UrlRefused("Not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.host:
        raise UrlRefused("Must be an absolute http or https URL with a host, like https://example.com/webhook")
    if parts.scheme == "http" and settings.WEBHOOK_HTTPS_ONLY:
        raise UrlRefused("Must use https (WEBHOOK_HTTPS_ONLY is on)")
    if parts.auth is not None:
        raise UrlRefused("Must not contain a user name or password: receivers check the signature instead")
    host = _normalize_host(parts.host)
    literal = _literal_ip(host)
    if literal is not None:
        if not is_allowed_ip(literal):
            raise UrlRefused(refusal(literal, literal=True))
        return
    if not resolve:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve_host(host, port, timeout=float(settings.WEBHOOK_TIMEOUT))
    except (OSError, UnicodeError) as exc:  # gaierror, or the lookup outlived the deadline
        raise UrlRefused(f"could not resolve host {host}; check the name") from exc
    if not infos:
        raise UrlRefused(f"could not resolve host {host}; check the name")
    for ip in addresses_of(infos):
        if not is_allowed_ip(ip):
            raise UrlRefused(refusal(ip, literal=False))


def is_allowed_ip(ip: IPAddress) -> bool:
    """True if the service may connect to ``ip``: it is publicly routable, or exempted.

    ``WEBHOOK_ALLOWED_NETWORKS`` exempts networks (development and tests); everything else
    must be global unicast. IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are
    judged by that IPv4 address, since that is where the packets end up.
    """
    for network in settings.WEBHOOK_ALLOWED_NETWORKS:
        if ip.version == network.version and ip in network:
            return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_allowed_ip(embedded)
        if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _NOT_GLOBAL_V6):
            return False
    elif any(ip in net for net in _NOT_GLOBAL_V4):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address leads to, if it is one.

    Teredo (2001::/32) is not unwrapped: it is refused as a whole with 2001::/23.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _normalize_host(host: str) -> str:
    """The host as the connection will see it: IPv6 unbracketed, names IDNA-encoded."""
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise UrlRefused("The IPv6 address in brackets is not valid") from exc
        return inner
    if not host.isascii():
        try:
            # As requests does before sending, so "１２７.０.０.１" is seen as 127.0.0.1.
            return idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise UrlRefused("The host name is not valid") from exc
    return host


def _literal_ip(host: str) -> IPAddress | None:
    """The address the resolver would read in ``host`` without asking DNS, else None.

    IPv4 goes through ``inet_aton`` as the resolver does, which accepts the disguises:
    "2130706433", "0x7f000001", "0177.0.0.1" and "127.1" are all 127.0.0.1.
    """
    if ":" in host:
        return ipaddress.IPv6Address(host)
    try:
        packed = socket.inet_aton(host.removesuffix("."))
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


_AddrInfo = tuple[typing.Any, ...]


def resolve_host(host: str, port: int, *, timeout: float | None) -> list[_AddrInfo]:
    """``getaddrinfo`` that gives up after ``timeout`` seconds (None: the resolver's own).

    The resolver cannot be interrupted, so a name lookup runs in a daemon thread that is
    abandoned when it takes too long; it ends on its own when the resolver gives up.
    """
    family = allowed_gai_family()
    if timeout is None or literal_ip_or_none(host) is not None:
        return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    outcome: dict[str, typing.Any] = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:  # handed over to the waiting thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"resolving {host} took longer than {timeout:.1f}s")
    if "error" in outcome:
        raise outcome["error"]
    if "infos" not in outcome:
        raise OSError(f"resolving {host} failed")
    return outcome["infos"]


def literal_ip_or_none(host: str) -> IPAddress | None:
    try:
        return _literal_ip(host)
    except ValueError:
        return None


def addresses_of(infos: list[_AddrInfo]) -> list[IPAddress]:
    return [ipaddress.ip_address(info[4][0]) for info in infos]
