"""WHO MUST ACT, as text (stderr) and as JSON (stdout, `--format json`) for render, rotate, remove and
enroll approve; the offboarding paragraph `fedgen certs` shares. Pure functions of fedgen.api's results.

The JSON shape is documented in docs/certificates.md ("Who must act") and held by tests/certs/test_who_acts.py:
keys are only ever added.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgen.enroll.layout import request_path, signed_path

if TYPE_CHECKING:
    from fedgen.api import ApprovalResult, RemoveResult, RenderResult
    from fedgen.certs.offboarding import RootRotationPlan, StillValid
    from fedgen.certs.redistribution import Reason, Recipient, WhoMustAct
    from fedgen.write import Plan

SHOWN = 5  # names shown of a long list before "… and N more"
KIND_WORDS = {"server": "server", "client": "site", "admin": "admin"}


@dataclass(frozen=True)
class Context:
    """What the commands a report suggests are made of."""

    federation: str
    spec: Path | None  # as the user typed it
    engine: str  # Config Sync | Argo CD

    @property
    def spec_arg(self) -> str:
        return shlex.quote(str(self.spec)) if self.spec else "SPEC"

    def command(self, recipient: Recipient) -> str | None:
        """The operator's command that makes what `recipient` needs (None: a commit, or the site's own step)."""
        name = shlex.quote(recipient.name)
        if recipient.action == "bundle":
            return f"fedgen client-bundle {name} --spec {self.spec_arg}"
        if recipient.action == "enroll-kit":
            return f"fedgen enroll kit {name} --spec {self.spec_arg}"
        if recipient.action == "approve":
            return f"fedgen enroll approve {shlex.quote(request_path(self.federation, recipient.name))} --spec {self.spec_arg}"
        return None


def summarised(names: Sequence[str], shown: int = SHOWN) -> str:
    """`a, b, c, d, e … and 7 more`."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} … and {len(names) - shown} more"


def issued_line(issued: Sequence[str]) -> list[str]:
    if not issued:
        return []
    noun = "certificate" if len(issued) == 1 else "certificates"
    return [f"issued {len(issued)} {noun}: {summarised(issued)}"]


def _reason_text(reason: Reason) -> str:
    fixed = {
        "new-participant": "new participant",
        "not-enrolled": "not enrolled yet",
        "root-ca": "root CA changed",
        "own-certificate": "own certificate re-issued",
        "kit-changed": "its kit changed",
    }
    if reason.reason in fixed:
        return fixed[reason.reason]

    return f"{reason.reason.replace('-', ' ')} {reason.old or '(unset)'} -> {reason.new or '(unset)'}"


REPACKAGE = "it re-packages its kit (nvflare package --force)"


def _own_steps(recipient: Recipient) -> list[str]:
    """What the participant changes in its own configuration, which no file from the operator holds: an enrolled
    site's connect_to.host (then it re-packages), the address it maps the server's name to."""
    steps = []
    for reason in recipient.reasons:
        if reason.reason == "host-name" and recipient.action in ("approve", "reconfigure"):
            steps.append(f"it sets connect_to.host: {reason.new} in {recipient.name}/site.yaml (its request folder), then {REPACKAGE}")
        if reason.reason == "server-address" and recipient.action != "commit":
            steps.append(f"if it maps the server's host name itself (/etc/hosts, --add-host, hostAliases): now to {reason.new or 'the address you give it'}")
    return steps


def _action_text(recipient: Recipient, ctx: Context) -> str:
    if recipient.action == "commit":
        workload = "the server" if recipient.kind == "server" else "the client on its cluster"
        return f"commit and push: {ctx.engine} rolls {workload}"
    own = _own_steps(recipient)
    if recipient.action == "approve":
        repackaged = any(r.reason == "host-name" for r in recipient.reasons)  # (its own step says so)
        return "; ".join(["approve its request again", *([] if repackaged else [REPACKAGE]), *own])
    text = {
        "bundle": ["a new bundle"],
        "enroll-kit": ["an enrollment kit, then it requests and you approve (docs/enrollment.md)"],
        "package": [f"pull {signed_path(ctx.federation, recipient.name)} and package its kit (nvflare package)"],
        "reconfigure": [],
    }[recipient.action]
    return "; ".join([*text, *own])


_COMMAND_LABELS = {"bundle": "bundles", "enroll-kit": "enrollment kits", "approve": "approvals"}


def who_must_act_lines(who: WhoMustAct, ctx: Context) -> list[str]:
    """The text: who must act (grouped by what and why), the commands, who is new or removed, and what stays
    valid (offboarding_lines)."""
    lines = []
    if who.must_act:
        groups: dict[tuple[str, str], list[str]] = {}
        for r in who.must_act:
            key = (_action_text(r, ctx), ", ".join(_reason_text(reason) for reason in r.reasons))
            groups.setdefault(key, []).append(r.name)
        lines.append(f"who must act ({len(who.must_act)}):")
        lines += [f"  {summarised(names)}: {action} ({why})" for (action, why), names in groups.items()]
        for action, label in _COMMAND_LABELS.items():
            chosen = [r for r in who.must_act if r.action == action]
            if chosen:
                lines.append(f"  {label}: {ctx.command(replace(chosen[0], name='NAME'))}")
    else:
        lines.append("who must act: nobody (no participant's kit changed)")
    if who.removed:
        lines.append(f"removed: {summarised([f'{p.name} ({KIND_WORDS[p.kind]})' for p in who.removed])}")
    for cert in who.superseded:
        lines.append(
            f"note: the previous certificate of {cert.name} stays valid until {_until(cert)}: NVFlare checks no revocation, "
            f"only a new root CA ends it (fedgen rotate --root-ca --spec {ctx.spec_arg})"
        )
    if who.still_valid:
        lines += offboarding_lines(who.still_valid, who.root_rotation, ctx)
    return lines


def _until(cert: StillValid) -> str:
    return f"{cert.not_after:%Y-%m-%d} ({cert.days_left} days)"


def offboarding_lines(still_valid: Sequence[StillValid], plan: RootRotationPlan | None, ctx: Context) -> list[str]:
    """Which removed participants still hold certificates valid under the current root CA, until when, and what
    a new root CA (the one way to end them) requires from everyone who remains."""
    lines = ["offboarding: NVFlare checks no revocation, so these removed participants still hold certificates valid under the current root CA:"]
    lines += [f"  {c.name} ({KIND_WORDS.get(c.kind, c.kind)}) until {_until(c)}" for c in still_valid[: SHOWN * 4]]
    if len(still_valid) > SHOWN * 4:
        lines.append(f"  … and {len(still_valid) - SHOWN * 4} more")
    if plan is None:
        return lines
    lines.append(f"to end them, start a new root CA (fedgen rotate --root-ca --spec {ctx.spec_arg}: asks first, backs up the state); it requires:")
    if plan.bundles:
        lines.append(f"  a new bundle for each of: {summarised(plan.bundles)}")
    if plan.reapprove:
        lines.append(f"  approving the request of each of these sites again: {summarised(plan.reapprove)}")
    clusters = f" and the clients on their own clusters ({summarised(plan.cluster_sites)})" if plan.cluster_sites else ""
    lines.append(f"  commit and push: {plan.engine} restarts {plan.server}{clusters} on the new kits")
    return lines


def removal_lines(who: WhoMustAct, state: str | None, *, check: bool) -> list[str]:
    """After `fedgen remove` (or its --check): the federation's certificates that stay valid, and what holds
    their root CA's key."""
    if not who.removed:
        return [f"note: state {state} holds no certificates: nothing to say about the kits handed out"]
    lines = [f"{'would remove' if check else 'removed'} participants: {summarised([f'{p.name} ({KIND_WORDS[p.kind]})' for p in who.removed])}"]
    if not who.still_valid:
        return lines
    lines.append("offboarding: NVFlare checks no revocation, so their certificates stay valid under the federation's root CA:")
    lines += [f"  {c.name} ({KIND_WORDS.get(c.kind, c.kind)}) until {_until(c)}" for c in who.still_valid[: SHOWN * 4]]
    if len(who.still_valid) > SHOWN * 4:
        lines.append(f"  … and {len(who.still_valid) - SHOWN * 4} more")
    lines.append(
        f"no server trusts that root once the GitOps engine has removed this federation's server; its key is in the state {state} "
        "and the backups beside it: delete them once you are sure, so that nothing can be issued under it again"
    )
    return lines


def still_valid_json(certs: Sequence[StillValid]) -> list[dict[str, Any]]:
    return [{"name": c.name, "kind": c.kind, "valid_until": c.not_after.isoformat(), "days_left": c.days_left} for c in certs]


def root_rotation_json(plan: RootRotationPlan | None, ctx: Context) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "command": f"fedgen rotate --root-ca --spec {ctx.spec_arg}",
        "bundles": list(plan.bundles),
        "cluster_sites": list(plan.cluster_sites),
        "reapprove": list(plan.reapprove),
        "server": plan.server,
        "engine": plan.engine,
    }


def who_must_act_json(who: WhoMustAct, ctx: Context) -> dict[str, Any]:
    return {
        "must_act": [
            {
                "name": r.name,
                "kind": r.kind,
                "action": r.action,
                "command": ctx.command(r),
                "reasons": [
                    {
                        "reason": reason.reason,
                        "old": reason.old,
                        "new": reason.new,
                        "fields": [{"file": f.file, "field": f.field, "old": f.old, "new": f.new} for f in reason.fields],
                    }
                    for reason in r.reasons
                ],
            }
            for r in who.must_act
        ],
        "new": list(who.new),
        "removed": [{"name": p.name, "kind": p.kind} for p in who.removed],
        "superseded": still_valid_json(who.superseded),
        "still_valid": still_valid_json(who.still_valid),
        "root_rotation": root_rotation_json(who.root_rotation, ctx),
    }


def _changes_json(plan: Plan) -> dict[str, Any]:
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in ("create", "update", "delete")}
    return {"files": [{"action": c.action, "path": c.path} for c in plan.changes], **counts, "unchanged": len(plan.unchanged)}


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_context(result: RenderResult, spec: Path) -> Context:
    return Context(result.federation.name, spec, result.federation.gitops.engine_name)


def render_json(result: RenderResult, spec: Path, command: str) -> str:
    """`fedgen render|rotate --format json`."""
    fed = result.federation
    ctx = render_context(result, spec)
    return dumps(
        {
            "command": command,
            "federation": fed.name,
            "written": result.written,
            "changes": _changes_json(result.plan),
            "issued": list(result.issued),
            "backup": result.backup.copy if result.backup else None,
            "sealing_changes": [{"cluster": c.cluster, "recorded": list(c.recorded), "new": c.new} for c in result.sealing_changes],
            "warnings": list(result.warnings),
            "who_must_act": who_must_act_json(result.who_must_act, ctx),
        }
    )


def remove_json(result: RemoveResult, federation: str, check: bool) -> str:
    """`fedgen remove --format json`."""
    ctx = Context(federation, None, "")
    return dumps(
        {
            "command": "remove",
            "federation": federation,
            "written": not check,
            "changes": _changes_json(result.plan),
            "state": result.state,
            "backup": result.backup.copy if result.backup else None,
            "who_must_act": who_must_act_json(result.who_must_act, ctx),
        }
    )


def approve_json(approval: ApprovalResult, ctx: Context) -> str:
    """`fedgen enroll approve --format json`."""
    result = approval.approval
    return dumps(
        {
            "command": "enroll approve",
            "federation": result.federation,
            "action": result.action,
            "site": result.site,
            "signed": result.signed_path,
            "written": list(result.written),
            "key_fingerprint": result.key_fingerprint,
            "rootca_fingerprint": result.signed.rootca_fingerprint,
            "valid_until": result.signed.not_after.isoformat(),
            "backup": result.backup.copy if result.backup else None,
            "who_must_act": who_must_act_json(approval.who_must_act, ctx),
        }
    )
