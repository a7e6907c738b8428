"""Machine opens and clicks, with user agents as they appear in real tracking logs."""

from __future__ import annotations

import pytest

from winback.config import TrackingSettings
from winback.tracking.machine import classify_click, classify_open, ip_prefix

T = TrackingSettings()

IPHONE_MAIL = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Mobile/15E148")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
          "Safari/537.36")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.6099.43 Mobile Safari/537.36")
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
THUNDERBIRD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
BING_PREVIEW = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/79.0.3945.74 Safari/537.36 Edg/79.0.309.43 BingPreview/1.0b")
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/119.0.6045.105 "
            "Safari/537.36")


@pytest.mark.parametrize("ua, ip, reason", [
    ("Mozilla/5.0", "17.58.63.21", "apple-mpp"),          # Apple MPP proxy: bare UA, Apple's network
    ("Mozilla/5.0", "104.28.40.7", "apple-mpp"),          # bare UA through another egress
    (IPHONE_MAIL, "17.120.4.9", "apple-mpp"),             # a full UA, but fetched from Apple's 17.0.0.0/8
    (GMAIL_PROXY, "66.249.84.12", "image-proxy"),
    (YAHOO_PROXY, "74.6.231.20", "image-proxy"),
    (BING_PREVIEW, "40.77.167.1", "scanner"),             # Microsoft Defender / Safe Links
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "64.235.144.1", "scanner"),
    ("Proofpoint URL Defense", None, "scanner"),
    ("Mimecast Security Scanner/1.0", None, "scanner"),
    ("curl/8.4.0", "203.0.113.5", "bot-ua"),
    ("python-requests/2.31.0", "203.0.113.5", "bot-ua"),
    (HEADLESS, "203.0.113.5", "bot-ua"),
    ("", "203.0.113.5", "bot-ua"),
    (None, None, "bot-ua"),
])
def test_machine_opens(ua, ip, reason):
    assert classify_open(ua, ip, seconds_since_sent=3600, settings_tracking=T) == (True, reason)


@pytest.mark.parametrize("ua", [IPHONE_MAIL, CHROME, ANDROID, OUTLOOK, THUNDERBIRD])
def test_people_open_and_click(ua):
    assert classify_open(ua, "198.51.100.23", seconds_since_sent=600, settings_tracking=T) == (False, None)
    assert classify_click(ua, "198.51.100.23", seconds_since_sent=600, settings_tracking=T) == (False, None)
    assert classify_open(ua, "2001:db8::1", seconds_since_sent=None, settings_tracking=T) == (False, None)


def test_timing_prefetch():
    assert classify_open(CHROME, None, seconds_since_sent=0.8, settings_tracking=T) == (True, "prefetch-timing")
    assert classify_open(CHROME, None, seconds_since_sent=-5, settings_tracking=T) == (True, "prefetch-timing")
    assert classify_open(CHROME, None, seconds_since_sent=2.5, settings_tracking=T) == (False, None)
    assert classify_click(CHROME, None, seconds_since_sent=1.5, settings_tracking=T) == (True, "prefetch-timing")
    slow = TrackingSettings(machine_open_seconds=10)
    assert classify_open(CHROME, None, seconds_since_sent=5, settings_tracking=slow)[1] == "prefetch-timing"


def test_clicks_from_scanners_and_bots_but_not_apple_network():
    assert classify_click(BING_PREVIEW, None, seconds_since_sent=30, settings_tracking=T) == (True, "scanner")
    assert classify_click("Go-http-client/1.1", None, seconds_since_sent=30, settings_tracking=T) == (True, "bot-ua")
    assert classify_click("Mozilla/5.0", None, seconds_since_sent=30, settings_tracking=T) == (True, "bot-ua")
    assert classify_click(IPHONE_MAIL, "17.1.2.3", seconds_since_sent=30, settings_tracking=T) == (False, None)


def test_ip_prefix_never_keeps_the_address():
    assert ip_prefix("198.51.100.23") == "198.51.100.0/24"
    assert ip_prefix("2001:db8:abcd:12:1:2:3:4") == "2001:db8:abcd::/48"
    assert ip_prefix("::ffff:198.51.100.23") == "198.51.100.0/24"
    assert ip_prefix("not an ip") is None and ip_prefix(None) is None and ip_prefix("") is None
