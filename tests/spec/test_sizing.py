"""Federation size (issue 17, item 6): the server admits every declared site and gets memory for them.

The real NVFlare server's behaviour at the limit is proven in tests/e2e/test_capacity.py; here the rendered
configuration is checked for federations too large to provision in a unit test (pure renderers on a real
kit's resources.json.default), and the spec's overrides.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from fedgen.cli import main
from fedgen.render import server
from fedgen.spec import load_federation, sizing
from fedgen.spec.schema import spec_schema
from tests.support import OTHER_SPEC, dump_yaml, kustomize_build

SpecWriter = Callable[..., Path]


def _sites(n: int) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d["spec"]["sites"] = [{"name": f"site-{i}", "org": "hospital"} for i in range(n)]

    return edit


@pytest.fixture(scope="module")
def template_resources(tmp_path_factory: pytest.TempPathFactory, sealing_keypair: tuple[Path, Path]) -> bytes:
    """resources.json.default of a real NVFlare 2.9 server kit, as rendered into the local ConfigMap."""
    repo = tmp_path_factory.mktemp("sizing-repo")
    (repo / "spec").mkdir()
    shutil.copy(sealing_keypair[1], repo / "spec" / "sealing.pem")
    spec = repo / "spec" / "federation.yaml"
    dump_yaml(copy.deepcopy(OTHER_SPEC), spec)
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    built = [d for d in YAML(typ="safe", pure=True).load_all(kustomize_build(repo / "clusters/gke-eu")) if d]
    local = next(d for d in built if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nvflare-flserver-local")
    template = json.loads(local["data"]["resources.json.default"])
    assert template["servers"][0]["max_num_clients"] == sizing.NVFLARE_MAX_CLIENTS, "the premise: NVFlare's template fixes 100"
    assert _max_jobs(template) == _default_max_jobs(), "the spec's default maxJobs is NVFlare's own"
    return str(local["data"]["resources.json.default"]).encode()


def _rendered(write_spec: SpecWriter, template: bytes, edit: Callable[[dict[str, Any]], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resources.json, the server container) the renderers make for the spec after `edit`."""
    fed = load_federation(write_spec(edit))
    resources = json.loads(server.resources_json(fed, template))
    container = server.deployment(fed, digest="0")["spec"]["template"]["spec"]["containers"][0]
    return resources, container


def _default_max_jobs() -> int:
    return int(spec_schema()["properties"]["spec"]["properties"]["server"]["properties"]["maxJobs"]["default"])


def _max_jobs(resources: dict[str, Any]) -> int:
    return int(next(c for c in resources["components"] if c["id"] == "job_scheduler")["args"]["max_jobs"])


@pytest.mark.parametrize("sites", [2, 100, 150, 500, 5000])
def test_server_admits_every_declared_site_and_gets_memory_for_them(write_spec: SpecWriter, template_resources: bytes, sites: int) -> None:
    resources, container = _rendered(write_spec, template_resources, _sites(sites))
    admitted = resources["servers"][0]["max_num_clients"]
    assert admitted >= sites and admitted >= sizing.NVFLARE_MAX_CLIENTS
    assert admitted < sites + sizing.SITE_STEP or admitted == sizing.NVFLARE_MAX_CLIENTS
    jobs = _max_jobs(resources)
    assert jobs == _default_max_jobs()
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits["memory"] == requests["memory"] and limits["cpu"] == requests["cpu"] == "1"
    memory = sizing.memory_bytes(limits["memory"])
    assert memory is not None
    assert memory >= sizing.estimate_mib(sites, jobs) * sizing.HEADROOM * 2**20
    assert memory >= sizing.MEMORY_FLOOR_MIB * 2**20


def test_measured_figures_give_the_issues_totals() -> None:
    """The formula reproduces the measured totals within the headroom: a 150-site job ~0.95 GiB, a 500-site
    job ~2.5 GiB (one job running); the rendered 1 GiB of old holds neither with more than one job."""
    gib = 1024.0
    assert 0.95 * gib / sizing.HEADROOM <= sizing.estimate_mib(150, 1) <= 0.95 * gib
    assert 2.5 * gib / sizing.HEADROOM <= sizing.estimate_mib(500, 1) <= 2.5 * gib
    assert sizing.default_memory_mib(150, 1) * 1.0 >= 0.95 * gib
    assert sizing.default_memory_mib(500, 1) * 1.0 >= 2.5 * gib


def test_adding_a_site_changes_the_server_only_at_a_capacity_step() -> None:
    changes = [
        n
        for n in range(1, 400)
        if (sizing.default_max_clients(n), sizing.default_memory_mib(n, 4)) != (sizing.default_max_clients(n + 1), sizing.default_memory_mib(n + 1, 4))
    ]
    assert changes and all(n % sizing.SITE_STEP == 0 for n in changes), changes


def test_spec_overrides_clients_jobs_and_resources(write_spec: SpecWriter, template_resources: bytes) -> None:
    def edit(d: dict[str, Any]) -> None:
        _sites(3)(d)
        d["spec"]["server"].update(maxClients=7, maxJobs=2, resources={"cpu": "2500m", "memory": "6Gi"})

    resources, container = _rendered(write_spec, template_resources, edit)
    assert resources["servers"][0]["max_num_clients"] == 7
    assert _max_jobs(resources) == 2
    assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"] == "6Gi"
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "2500m"

    # maxJobs alone sizes the memory: fewer jobs at once, less memory.
    def one_job(d: dict[str, Any]) -> None:
        _sites(600)(d)
        d["spec"]["server"]["maxJobs"] = 1

    _, one = _rendered(write_spec, template_resources, one_job)
    _, four = _rendered(write_spec, template_resources, _sites(600))
    less, more = (sizing.memory_bytes(c["resources"]["limits"]["memory"]) for c in (one, four))
    assert less is not None and more is not None and less < more


def test_sites_enrolling_by_request_count(write_spec: SpecWriter, template_resources: bytes) -> None:
    def edit(d: dict[str, Any]) -> None:
        _sites(140)(d)
        d["spec"]["sites"] += [{"name": f"req-{i}", "org": "hospital", "enrollment": "request"} for i in range(20)]

    resources, _ = _rendered(write_spec, template_resources, edit)
    assert resources["servers"][0]["max_num_clients"] >= 160


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1Gi", 2**30),
        ("1536Mi", 1536 * 2**20),
        ("2G", 2e9),
        ("1e9", 1e9),
        (1073741824, 2**30),
        ("512k", 512e3),
        ("", None),
        ("Gi", None),
        ("-1Gi", None),
        ("1GB", None),
        (True, None),
        ("1..5Gi", None),
        (None, None),
    ],
)
def test_memory_quantities(value: object, expected: float | None) -> None:
    assert sizing.memory_bytes(value) == expected


def test_rendered_quantities_round_trip() -> None:
    for mib in (1024, 1536, 4096, 11776):
        assert sizing.memory_bytes(sizing.quantity_mib(mib)) == mib * 2**20
