"""spec file -> Federation: safe YAML, JSON Schema, semantic checks, then frozen records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fedgen.errors import InputError, SpecErrors
from fedgen.spec.defaults import fill_defaults
from fedgen.spec.model import (
    Admin,
    Cluster,
    Federation,
    GitOps,
    Platform,
    Resources,
    Sealing,
    Server,
    Site,
    Workspace,
)
from fedgen.spec.schema import schema_errors, spec_schema
from fedgen.spec.semantic import derived_bucket_name, platform_bucket_name, semantic_problems
from fedgen.spec.yamlsafe import forbidden_character, load_yaml_file


def load_federation(path: Path, *, now: datetime | None = None) -> Federation:
    """Load and check a spec; raise SpecErrors with every problem, sorted by position."""
    origin = _display(path)
    bad = forbidden_character(str(path.absolute()))
    if bad is not None:
        # The spec's path is written into generated headers and commands: one line, always.
        raise InputError(f"{origin!r}: the spec's path holds the control or invisible character U+{ord(bad):04X}; rename it")
    doc = load_yaml_file(path, origin=origin)
    errors = schema_errors(doc)
    if errors:
        raise SpecErrors([msg for _, msg in errors])
    data = fill_defaults(doc.data, spec_schema())  # the one place defaults come from: the schema
    spec_dir = path.resolve().parent
    problems = semantic_problems(data, spec_dir, now=now)
    if problems:
        # A problem at a filled-in default points at the nearest part of the document that is written.
        positioned = sorted({(doc.position(p, key=k), doc.error(p, m, key=k)) for p, m, k in problems})
        raise SpecErrors([msg for _, msg in positioned])
    return _build(data, path.resolve(), spec_dir)


def _display(path: Path) -> str:
    """The path as the user typed it."""
    return str(path)


def _build(data: Any, spec_path: Path, spec_dir: Path) -> Federation:
    """The records of a schema-valid document with its defaults filled in (no fallbacks here)."""
    spec = data["spec"]
    s = spec["server"]
    server = Server(
        name=str(s["name"]),
        org=str(s["org"]),
        cluster=str(s["cluster"]),
        tenant=str(s["tenant"]),
        fl_port=int(s["ports"]["fl"]),
        admin_port=int(s["ports"]["admin"]),
        # Derived, not a schema default: the server's own name.
        host_names=tuple(str(h) for h in s["hostNames"]) if "hostNames" in s else (str(s["name"]),),
        exposure=str(s["exposure"]),
        load_balancer_source_ranges=tuple(sorted(str(c) for c in s["loadBalancerSourceRanges"])),
        external_address=_opt(s.get("externalAddress")),
        max_clients=int(s["maxClients"]) if "maxClients" in s else None,
        max_jobs=int(s["maxJobs"]),
        resources=Resources(cpu=_opt(s["resources"].get("cpu")), memory=_opt(s["resources"].get("memory"))),
    )
    g = spec["gitops"]
    gitops = GitOps(
        engine=str(g["engine"]),
        repo=str(g["repo"]),
        revision=str(g["revision"]),
        auth=str(g["auth"]),
        secret_ref=_opt(g.get("secretRef")),
        gcp_service_account_email=_opt(g.get("gcpServiceAccountEmail")),
    )
    cert = spec["sealing"].get("certificate")
    sealing = Sealing(
        certificate=(spec_dir / str(cert)).resolve() if cert else None,
        scope=str(spec["sealing"]["scope"]),
    )
    p = spec["platform"]
    platform = Platform(
        kind=str(p["kind"]),
        resource_name_prefix=str(p["resourceNamePrefix"]),
        platform_name=str(p["platformName"]),
    )
    bucket_name = derived_bucket_name(spec)
    assert bucket_name is not None  # the server cluster exists once semantic checks passed
    return Federation(
        name=str(data["metadata"]["name"]),
        nvflare_version=str(spec["nvflare"]["version"]),
        image=str(spec["nvflare"]["image"]),
        gitops=gitops,
        sealing=sealing,
        clusters=tuple(
            Cluster(
                name=str(c["name"]),
                project_id=str(c["projectId"]),
                region=str(c["region"]),
                project_number=_opt(c.get("projectNumber")),
                sealing_certificate=(spec_dir / str(c["sealing"]["certificate"])).resolve() if "sealing" in c else None,
                # Derived, not a schema default: the federation's platform.
                platform=str(c["platform"]["kind"]) if "platform" in c else platform.kind,
            )
            for c in spec["clusters"]
        ),
        platform=platform,
        workspace=Workspace(
            bucket=str(spec["workspace"]["bucket"]),
            bucket_name=bucket_name,
            platform_bucket=bucket_name == platform_bucket_name(spec),
        ),
        server=server,
        sites=tuple(Site(name=str(x["name"]), org=str(x["org"]), cluster=_opt(x.get("cluster")), enrollment=str(x["enrollment"])) for x in spec["sites"]),
        admins=tuple(Admin(name=str(x["name"]), org=str(x["org"]), role=str(x["role"])) for x in spec["admins"]),
        spec_path=spec_path,
        node_pool_machine_type=str(p["nodePoolMachineType"]),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
