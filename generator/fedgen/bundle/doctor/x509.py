"""Just enough of X.509 (DER) to name a certificate and say when it is valid, with the standard library only."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST"}
Name = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Cert:
    subject: Name
    issuer: Name
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str

    @property
    def cn(self) -> str | None:
        return next((v for k, v in self.subject if k == "CN"), None)


def describe(name: Name) -> str:
    return ", ".join(f"{k}={v}" for k, v in name) or "(empty name)"


def day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad length")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        element = _tlv(data, start)
        out.append(element)
        start = element[2]
    return out


def _oid(raw: bytes) -> str:
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)] if raw else []
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _name(data: bytes, element: tuple[int, int, int]) -> Name:
    out = []
    for _, set_start, set_end in _children(data, element[1], element[2]):
        for _, start, end in _children(data, set_start, set_end):
            (_, os_, oe), (vtag, vs, ve) = _children(data, start, end)[:2]
            oid = _oid(data[os_:oe])
            value = data[vs:ve].decode("utf-16-be" if vtag == 0x1E else "utf-8", errors="replace")
            out.append((_NAMES.get(oid, oid), value))
    return tuple(out)


def _time(data: bytes, element: tuple[int, int, int]) -> dt.datetime:
    tag, start, end = element
    text = data[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime, RFC 5280: YY >= 50 is 19YY
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)


def parse_der(der: bytes) -> Cert:
    """Subject, issuer, validity and SHA-256 of an X.509 certificate (ValueError when it is not one)."""
    try:
        _, start, end = _tlv(der, 0)
        _, tbs_start, tbs_end = _children(der, start, end)[0]
        fields = _children(der, tbs_start, tbs_end)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _serial, _algorithm, issuer, validity, subject = fields[:5]
        not_before, not_after = _children(der, validity[1], validity[2])[:2]
        return Cert(_name(der, subject), _name(der, issuer), _time(der, not_before), _time(der, not_after), hashlib.sha256(der).hexdigest())
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an X.509 certificate ({exc})") from None


def parse_pem(text: str) -> Cert:
    """The first certificate of a PEM file."""
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", text, re.DOTALL)
    if match is None:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the PEM certificate is not base64") from None
    return parse_der(der)
