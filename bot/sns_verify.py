"""Verify SNS messages posted to our HTTPS endpoint, the way AWS documents it.

Anyone can POST to a public endpoint, so a message counts only when: its topic is one we subscribed to, its
signing certificate comes over HTTPS from the SNS host of the topic's own region, that certificate is
current (and issued to sns.amazonaws.com), and its key signed the documented string built from the message.
Messages that reach us through SQS are not checked here: the queue policy decides who may send to the queue.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
import threading
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from http.client import HTTPMessage
from typing import IO, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from bot.alarm_event import SnsEnvelope
from bot.clock import SystemClock
from bot.ports import Clock

Fetcher = Callable[[str], bytes]
_T = TypeVar("_T")

SNS_CERT_CN: Final = "sns.amazonaws.com"
FETCH_TIMEOUT_SECONDS: Final = 5.0
MAX_CERT_BYTES: Final = 64 * 1024
MAX_CACHED_CERTS: Final = 32
# A URL whose certificate could not be fetched or used is refused from memory for a while, so a flood of
# forged messages naming it costs one fetch, not one each.
MAX_CACHED_FAILURES: Final = 256
FAILURE_TTL: Final = timedelta(minutes=1)
# At most this many fetches of certificates not in the cache per minute: forged messages naming a different
# URL each cannot tie up the HTTP workers with a fetch each. SNS retries a refused delivery later.
NEW_CERT_FETCHES_PER_MINUTE: Final = 10

# The string to sign: these keys, in this order, each as "Key\nValue\n" (AWS, "Verifying the signatures of
# Amazon SNS messages"). Subject is signed only when the notification has one.
NOTIFICATION_FIELDS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
OPTIONAL_FIELDS: Final = frozenset({"Subject"})

SIGNATURE_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1,  # SHA1withRSA, still SNS's default for topics that did not opt into version 2
    "2": hashes.SHA256,
}

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# Host suffix of the SNS endpoints per ARN partition.
_PARTITION_DOMAINS: Final = {
    "aws": "amazonaws.com",
    "aws-us-gov": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
}


class SnsVerificationError(Exception):
    """The message cannot be trusted; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnsVerifier:
    """Checks SNS envelopes against an allowlist of topics. Thread-safe.

    Certificates are cached by URL (LRU of MAX_CACHED_CERTS, for `cert_cache_ttl`), and so are failures (LRU
    of MAX_CACHED_FAILURES, for `failure_ttl`); concurrent requests for one URL share one fetch, and new URLs
    are fetched at most NEW_CERT_FETCHES_PER_MINUTE times a minute.
    """

    def __init__(
        self,
        allowed_topics: set[str],
        cert_fetcher: Fetcher | None = None,
        clock: Clock | None = None,
        *,
        expected_cert_cn: str | None = SNS_CERT_CN,
        cert_cache_ttl: timedelta = timedelta(hours=1),
        failure_ttl: timedelta = FAILURE_TTL,
        fetches_per_minute: int = NEW_CERT_FETCHES_PER_MINUTE,
    ) -> None:
        self._allowed_topics = frozenset(allowed_topics)
        self._fetch = cert_fetcher or fetch_https
        self._clock: Clock = clock or SystemClock()
        self._expected_cn = expected_cert_cn  # None skips the subject check (only for odd test setups)
        self._ttl = cert_cache_ttl
        self._failure_ttl = failure_ttl
        self._fetch_budget = fetches_per_minute
        self._certs: OrderedDict[str, tuple[x509.Certificate, datetime]] = OrderedDict()
        self._failures: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self._in_flight: dict[str, threading.Event] = {}
        self._recent_fetches: deque[datetime] = deque()
        self._lock = threading.Lock()

    def verify(self, envelope: SnsEnvelope) -> None:
        """Return when the envelope is authentic; raise SnsVerificationError otherwise."""
        region = self._check_topic(envelope.TopicArn)
        hash_factory = SIGNATURE_HASHES.get(envelope.SignatureVersion)
        if hash_factory is None:
            raise SnsVerificationError(f"unsupported SignatureVersion {envelope.SignatureVersion!r}")
        check_sns_url(envelope.SigningCertURL, envelope.TopicArn, what="SigningCertURL")
        if not urlsplit(envelope.SigningCertURL).path.endswith(".pem"):
            raise SnsVerificationError("SigningCertURL does not name a .pem certificate")
        try:
            signature = base64.b64decode(envelope.Signature, validate=True)
        except (binascii.Error, ValueError):
            raise SnsVerificationError("Signature is not base64") from None
        certificate = self._certificate(envelope.SigningCertURL)
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SnsVerificationError("signing certificate does not hold an RSA key")
        try:
            public_key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), hash_factory())
        except InvalidSignature:
            raise SnsVerificationError(
                f"signature does not match the message (topic {envelope.TopicArn}, region {region})"
            ) from None

    def confirm_subscription(self, envelope: SnsEnvelope, opener: Fetcher | None = None) -> str | None:
        """Verify a SubscriptionConfirmation, GET its SubscribeURL, return the SubscriptionArn if shown."""
        if envelope.Type != "SubscriptionConfirmation":
            raise SnsVerificationError(f"expected a SubscriptionConfirmation, got {envelope.Type}")
        self.verify(envelope)
        url = envelope.SubscribeURL or ""
        check_sns_url(url, envelope.TopicArn, what="SubscribeURL")
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [envelope.TopicArn]:
            raise SnsVerificationError("SubscribeURL is not a ConfirmSubscription for this topic")
        answer = (opener or fetch_https)(url)
        match = re.search(rb"<SubscriptionArn>([^<]+)</SubscriptionArn>", answer)
        return match.group(1).decode("utf-8", "replace") if match else None

    # ------------------------------------------------------------ checks
    def _check_topic(self, topic_arn: str) -> str:
        if topic_arn not in self._allowed_topics:
            raise SnsVerificationError(f"topic {topic_arn!r} is not on the allowlist")
        return topic_region(topic_arn)

    def _certificate(self, url: str) -> x509.Certificate:
        certificate = self._cached_or_fetched(url)
        now = self._clock.now()
        # Checked on every use: a cached certificate can expire while cached.
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsVerificationError(
                f"signing certificate is not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d} "
                f"to {certificate.not_valid_after_utc:%Y-%m-%d})"
            )
        return certificate

    def _cached_or_fetched(self, url: str) -> x509.Certificate:
        """From the cache, or from the one fetch in flight for this URL, or fetched now (within the budget)."""
        for _attempt in range(2):
            with self._lock:
                found = self._from_cache(url, self._clock.now())
                if found is not None:
                    return found
                waiting = self._in_flight.get(url)
                if waiting is None:
                    self._spend_fetch_budget(self._clock.now())
                    self._in_flight[url] = threading.Event()
            if waiting is None:
                return self._fetch_and_cache(url)
            waiting.wait(FETCH_TIMEOUT_SECONDS + 1)  # another request is fetching this URL: share its answer
        raise SnsVerificationError("signing certificate fetch still in progress; try again")

    def _from_cache(self, url: str, now: datetime) -> x509.Certificate | None:
        """A fresh certificate, None when unknown, or the cached failure raised again. Holds the lock."""
        cached = self._certs.get(url)
        if cached is not None and now - cached[1] < self._ttl:
            self._certs.move_to_end(url)
            return cached[0]
        failed = self._failures.get(url)
        if failed is not None and now - failed[1] < self._failure_ttl:
            raise SnsVerificationError(f"{failed[0]} (remembered; not fetched again)")
        return None

    def _spend_fetch_budget(self, now: datetime) -> None:
        """Holds the lock."""
        while self._recent_fetches and now - self._recent_fetches[0] >= timedelta(minutes=1):
            self._recent_fetches.popleft()
        if len(self._recent_fetches) >= self._fetch_budget:
            raise SnsVerificationError(
                f"more than {self._fetch_budget} unknown signing certificates in the last minute; "
                "not fetching more for now"
            )
        self._recent_fetches.append(now)

    def _fetch_and_cache(self, url: str) -> x509.Certificate:
        try:
            certificate = self._load(url)
        except SnsVerificationError as exc:
            with self._lock:
                _put(self._failures, url, (exc.reason, self._clock.now()), MAX_CACHED_FAILURES)
            raise
        else:
            with self._lock:
                self._failures.pop(url, None)
                _put(self._certs, url, (certificate, self._clock.now()), MAX_CACHED_CERTS)
            return certificate
        finally:
            with self._lock:
                self._in_flight.pop(url).set()

    def _load(self, url: str) -> x509.Certificate:
        try:
            pem = self._fetch(url)
        except Exception as exc:  # any transport failure means "cannot verify", never "trust"
            raise SnsVerificationError(f"cannot fetch signing certificate: {exc}") from None
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsVerificationError("signing certificate is not a PEM X.509 certificate") from None
        if self._expected_cn is not None:
            names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            common_names = [str(n.value) for n in names]
            if common_names != [self._expected_cn]:
                raise SnsVerificationError(
                    f"signing certificate is issued to {common_names or 'no CN'}, not {self._expected_cn}"
                )
        return certificate


# ---------------------------------------------------------------- helpers
def _put(cache: OrderedDict[str, _T], key: str, value: _T, bound: int) -> None:
    """Insert as the most recent entry, dropping the least recently used beyond `bound`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > bound:
        cache.popitem(last=False)


def string_to_sign(envelope: SnsEnvelope) -> bytes:
    """The exact bytes SNS signed for this envelope."""
    # SubscriptionConfirmation and UnsubscribeConfirmation share one field list.
    fields: tuple[str, ...] = NOTIFICATION_FIELDS if envelope.Type == "Notification" else CONFIRMATION_FIELDS
    lines: list[str] = []
    for key in fields:
        value = getattr(envelope, key)
        if value is None:
            if key in OPTIONAL_FIELDS:
                continue
            raise SnsVerificationError(f"{envelope.Type} has no {key} to verify")
        lines += [key, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


def topic_region(topic_arn: str) -> str:
    """'arn:aws:sns:us-east-1:123456789012:alarms' -> 'us-east-1'."""
    return _parse_topic(topic_arn)[1]


def sns_host(topic_arn: str) -> str:
    """The only host SNS serves certificates and confirmations from for this topic."""
    partition, region = _parse_topic(topic_arn)
    return f"sns.{region}.{_PARTITION_DOMAINS[partition]}"


def check_sns_url(url: str, topic_arn: str, *, what: str) -> None:
    """Accept only https://sns.<topic region>.<partition domain>/..., exactly: no port, no userinfo."""
    if not url or not url.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise SnsVerificationError(f"{what} is empty or has characters a URL must not have")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SnsVerificationError(f"{what} must use https, not {parts.scheme or 'no scheme'}")
    expected = sns_host(topic_arn)
    # Comparing the whole netloc rejects user@host, host:port and sns.<region>.amazonaws.com.evil.com alike.
    if parts.netloc.lower() != expected:
        raise SnsVerificationError(f"{what} host {parts.netloc!r} is not {expected}")
    if parts.fragment:
        raise SnsVerificationError(f"{what} has a fragment")


def _parse_topic(topic_arn: str) -> tuple[str, str]:
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
        raise SnsVerificationError(f"TopicArn {topic_arn!r} is not an SNS topic ARN")
    partition, region = parts[1], parts[3]
    if partition not in _PARTITION_DOMAINS or not _REGION.match(region):
        raise SnsVerificationError(f"TopicArn {topic_arn!r} has an unknown partition or region")
    return partition, region


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off the SNS host we checked; treat it as a failure instead."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


_OPENER = urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=ssl.create_default_context()), _RefuseRedirects()
)


def fetch_https(url: str) -> bytes:
    """GET an https URL (TLS verified, no redirects, short timeout, bounded size)."""
    if urlsplit(url).scheme != "https":
        raise ValueError("only https URLs are fetched")
    with _OPENER.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
        body: bytes = response.read(MAX_CERT_BYTES + 1)
    if len(body) > MAX_CERT_BYTES:
        raise ValueError(f"response larger than {MAX_CERT_BYTES} bytes")
    return body
