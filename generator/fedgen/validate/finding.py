"""What a rule reports: a Finding, located in a repo file and on an object, with a stable fingerprint."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
SEVERITIES = (ERROR, WARNING)

# What a finding quotes comes from a hostile repository: control characters (ANSI escapes, newlines that
# forge log lines), invisible and bidirectional-override characters are shown escaped, and length is capped.
MESSAGE_LIMIT = 500
NAME_LIMIT = 300  # path and object
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """text with unsafe characters escaped (a newline as \\n, ESC as \\x1b), at most limit characters."""
    out = _UNSAFE.sub(_escape, text)
    return out if len(out) <= limit else out[: limit - 1] + "\u2026"


def fingerprint(rule: str, path: str, obj: str | None, pointer: str) -> str:
    """Stable across runs and unrelated edits: rule, file, object and JSON pointer, never the message or line."""
    text = "\0".join((rule, path, obj or "", pointer))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Finding:
    rule: str  # FG301
    slug: str  # gateway-server-missing
    severity: str  # error | warning
    path: str  # repo-relative, posix
    line: int | None  # 1-based; None when the file has no line for it
    object: str | None  # Kind/namespace/name (Kind/name when cluster-scoped); None for a file
    message: str  # one line
    remediation: str
    pointer: str = ""  # JSON pointer inside the object (or file) the finding is about
    fingerprint: str = ""

    @property
    def sort_key(self) -> tuple[str, int, str, str, str, str]:
        return (self.path, self.line or 0, self.rule, self.object or "", self.pointer, self.message)


@dataclass(frozen=True)
class Suppressed:
    """A finding silenced by an allowlist entry, kept for the summary and SARIF suppressions."""

    finding: Finding
    reason: str
    entry_line: int | None
