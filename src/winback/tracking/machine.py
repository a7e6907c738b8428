"""Was an open or a click made by a machine, not a person? (pure)

Opens are counted from a tracking pixel; since 2021 many of those fetches are made by software:

* **Apple Mail Privacy Protection** (``apple-mpp``) prefetches every image of every message on
  Apple's proxies. Its user agent is the bare string ``Mozilla/5.0`` (no platform, no engine) and
  the fetches come from Apple's own network, 17.0.0.0/8. (iCloud Private Relay egress also uses
  partner ranges that change; they are not listed here - the bare UA is the stronger signal.)
* **Image proxies** (``image-proxy``): Gmail's ``GoogleImageProxy`` (``via ggpht.com``), Yahoo's
  ``YahooMailProxy``, other webmail proxies. They fetch when the message is opened but hide the
  reader; some (Yahoo) prefetch on arrival. They are counted apart, as machine opens.
* **Security scanners** (``scanner``): mail gateways that fetch images and follow every link
  before delivery (Barracuda, Proofpoint, Mimecast, Microsoft Defender Safe Links which
  identifies as ``BingPreview``, Symantec/Broadcom MessageLabs, Trend Micro, Sophos, Cisco, ...).
* **Bots** (``bot-ua``): HTTP libraries and headless browsers (curl, python-requests, Go,
  HeadlessChrome ...), crawlers, an empty user agent, and for clicks the bare ``Mozilla/5.0``.
* **Timing** (``prefetch-timing``): an open sooner than ``machine_open_seconds`` after the message
  was sent (no person reads that fast), a click sooner than ``max(machine_open_seconds, 2)``.

The result is ``(machine, reason)``: ``(False, None)`` for a person.
"""

from __future__ import annotations

import ipaddress
import re

APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)

_IMAGE_PROXY = re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy|YahooMailImageProxy|ImageProxy", re.I)
_SCANNER = re.compile(
    r"Barracuda|Proofpoint|Mimecast|BingPreview|Symantec|MessageLabs|Broadcom|Trend ?Micro|Sophos|"
    r"IronPort|Cisco|Forcepoint|Zscaler|FortiGuard|Fortinet|SpamTitan|Avanan|Check ?Point|"
    r"Microsoft Defender|SafeLinks|Safe Links|urldefense|Vade ?Secure|Hornetsecurity|Abnormal ?Security|"
    r"Agari|Cloudmark|Google-Safety|GoogleSafeBrowsing", re.I)
_BOT = re.compile(
    r"^(?:curl|Wget|python-requests|python-urllib|Python/|aiohttp|httpx|Go-http-client|okhttp|Java/|"
    r"Apache-HttpClient|libwww-perl|PHP/|Ruby|axios|node-fetch|undici|Scrapy|HTTPie)|"
    r"HeadlessChrome|PhantomJS|Puppeteer|Playwright|Selenium|"
    r"\b\w*(?:bot|spider|crawler)\b|facebookexternalhit|Slack-ImgProxy|Twitterbot|WhatsApp|TelegramBot|"
    r"Discordbot|LinkedInBot|Embedly|SkypeUriPreview|preview", re.I)

CLICK_MIN_SECONDS = 2.0


def _ua(user_agent: str | None) -> str:
    return " ".join((user_agent or "").split())


def _in_apple_network(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in APPLE_NETWORKS)


def _threshold(settings_tracking, default: float = 2.0) -> float:
    value = getattr(settings_tracking, "machine_open_seconds", None)
    return float(default if value is None else value)


def classify_open(user_agent: str | None, ip: str | None, *, seconds_since_sent: float | None,
                  settings_tracking=None) -> tuple[bool, str | None]:
    """``(machine, reason)`` for a pixel fetch; reasons: apple-mpp, image-proxy, scanner, bot-ua, prefetch-timing."""
    ua = _ua(user_agent)
    if ua == "Mozilla/5.0" or _in_apple_network(ip):
        return True, "apple-mpp"
    if _IMAGE_PROXY.search(ua):
        return True, "image-proxy"
    if _SCANNER.search(ua):
        return True, "scanner"
    if not ua or _BOT.search(ua):
        return True, "bot-ua"
    if seconds_since_sent is not None and seconds_since_sent < _threshold(settings_tracking):
        return True, "prefetch-timing"
    return False, None


def classify_click(user_agent: str | None, ip: str | None, *, seconds_since_sent: float | None,
                   settings_tracking=None) -> tuple[bool, str | None]:
    """``(machine, reason)`` for a followed link; reasons: scanner, bot-ua, image-proxy, prefetch-timing.

    Apple's network is not a reason for a click: MPP prefetches images, never links, and people
    behind iCloud Private Relay click for real."""
    ua = _ua(user_agent)
    if _SCANNER.search(ua):
        return True, "scanner"
    if _IMAGE_PROXY.search(ua):
        return True, "image-proxy"
    if not ua or ua == "Mozilla/5.0" or _BOT.search(ua):
        return True, "bot-ua"
    limit = max(_threshold(settings_tracking), CLICK_MIN_SECONDS)
    if seconds_since_sent is not None and seconds_since_sent < limit:
        return True, "prefetch-timing"
    return False, None


def ip_prefix(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address - never the address itself; ``None`` when not an IP."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
