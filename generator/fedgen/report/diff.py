"""`fedgen render --diff`: the unified diff of one planned change, sealed values shown as digests."""

from __future__ import annotations

import difflib


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """The unified diff of one file; sealed values appear as sha256 digests (a diff is printed in CI logs)."""
    from fedgen.seal.manifest import redact_ciphertext

    a = redact_ciphertext((old or b"").decode(errors="replace")).splitlines(keepends=True)
    b = redact_ciphertext((new or b"").decode(errors="replace")).splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"a/{path}" if old is not None else "/dev/null", tofile=f"b/{path}" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
