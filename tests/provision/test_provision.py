"""fedgen.provision against the real NVFlare 2.9 library (no mocks): certificates, kits, re-issue rules."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from fedgen.errors import ExternalError, InputError
from fedgen.provision import KitFile, ProvisionResult, provision
from fedgen.spec.model import Federation
from fedgen.state.document import StateDocument
from tests.support import ADMIN, HOSTS, make_federation


def bypassing_the_loader(fed: Federation, *, site: str | None = None, admin_role: str | None = None) -> Federation:
    """`fed` with its first site renamed or its admin's role changed to what the spec loader refuses (names
    NVFlare rejects, reserved names, no project_admin): input only a direct caller of provision() can give."""
    if site is not None:
        fed = replace(fed, sites=(replace(fed.sites[0], name=site), *fed.sites[1:]))
    if admin_role is not None:
        fed = replace(fed, admins=(replace(fed.admins[0], role=admin_role),))
    return fed


@pytest.fixture(scope="module")
def base() -> ProvisionResult:
    """One cold provisioning run shared by the tests (they must not mutate it)."""
    return provision(make_federation(), StateDocument())


def doc_copy(result: ProvisionResult) -> StateDocument:
    """The result's state without its recorded kits: the tests here exercise NVFlare itself (the kit cache
    has its own tests at the end)."""
    return replace(copy.deepcopy(result.document), kits={})


def entry_bytes(document: StateDocument, name: str) -> bytes:
    return json.dumps(document.nvflare_cert[name], sort_keys=True).encode()


def cert_of(document: StateDocument, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(document.nvflare_cert[name]["cert"].encode())


def kit_cert(result: ProvisionResult, name: str, file: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(result.kits[name][f"startup/{file}"].data)


def test_empty_document_creates_ca_and_every_certificate(base: ProvisionResult) -> None:
    names = ("server1", "site1", "site2", ADMIN)
    assert base.issued == tuple(sorted(names))
    assert set(base.kits) == set(names)
    doc = base.document
    assert doc.project == "proj"
    assert list(doc.nvflare_cert) == ["root_cert", "root_pri_key", *names]
    assert doc.participants == {
        "server1": {"type": "server", "org": "org_a", "host_names": list(HOSTS)},
        "site1": {"type": "client", "org": "org_b"},
        "site2": {"type": "client", "org": "org_c"},
        ADMIN: {"type": "admin", "org": "org_a", "role": "project_admin"},
    }
    # The kit's certificate and key are the ones kept in the state.
    assert base.kits["site1"]["startup/client.crt"].data.decode() == doc.nvflare_cert["site1"]["cert"]
    assert base.kits["server1"]["startup/server.key"].data.decode() == doc.nvflare_cert["server1"]["pri_key"]


def test_kit_layout_and_modes(base: ProvisionResult) -> None:
    server = base.kits["server1"]
    for path in (
        "startup/fed_server.json",
        "startup/rootCA.pem",
        "startup/server.crt",
        "local/resources.json.default",
        "readme.txt",
    ):
        assert server[path].mode == 0o644, path
    assert server["startup/server.key"] == KitFile(server["startup/server.key"].data, 0o600)
    for script in ("start.sh", "sub_start.sh", "stop_fl.sh"):
        assert server[f"startup/{script}"].mode == 0o755
    site = base.kits["site1"]
    assert site["startup/client.key"].mode == 0o600
    assert {"startup/fed_client.json", "startup/client.crt", "startup/rootCA.pem"} <= set(site)
    admin = base.kits[ADMIN]
    assert admin["startup/fl_admin.sh"].mode == 0o755
    assert "startup/fed_admin.json" in admin
    for kit in base.kits.values():
        assert not any(p.endswith("signature.json") for p in kit)  # plain 2.9 kits are not signed
        assert all(f.mode in (0o644, 0o755, 0o600) for f in kit.values())
        assert all(f.mode == 0o600 for p, f in kit.items() if p.endswith(".key"))


def test_same_document_gives_byte_identical_kits(base: ProvisionResult) -> None:
    doc = doc_copy(base)
    before = doc.to_bytes()
    first = provision(make_federation(), doc)
    second = provision(make_federation(), doc)
    assert doc.to_bytes() == before  # input not mutated
    assert first.issued == second.issued == ()
    assert first.document is not doc
    assert first.document.to_bytes() == second.document.to_bytes() == base.document.to_bytes()
    assert set(first.kits) == set(second.kits) == set(base.kits)
    for name, kit in first.kits.items():
        assert list(kit) == list(second.kits[name])
        for path, file in kit.items():
            assert file.data == second.kits[name][path].data, (name, path)
            assert file.mode == second.kits[name][path].mode, (name, path)
    assert first.kits == base.kits
    # The document survives its JSON form: records compare equal after a round trip.
    reloaded = StateDocument.from_bytes(base.document.to_bytes(), "test")
    assert provision(make_federation(), reloaded, kits_for=()).issued == ()


def test_kits_for_limits_kits_but_every_participant_gets_a_certificate() -> None:
    result = provision(make_federation(), StateDocument(), kits_for=["site1"])
    assert set(result.kits) == {"site1"}
    assert result.issued == ("admin@example.com", "server1", "site1", "site2")
    names = {"root_cert", "root_pri_key", "server1", "site1", "site2", ADMIN}
    assert set(result.document.nvflare_cert) == names
    assert provision(make_federation(), result.document, kits_for=()).kits == {}


def test_server_kit_does_not_depend_on_listed_clients(base: ProvisionResult) -> None:
    alone = provision(make_federation(), doc_copy(base), kits_for=["server1"])
    assert set(alone.kits) == {"server1"}
    assert alone.issued == ()
    assert alone.kits["server1"] == base.kits["server1"]
    # Entries of participants left out of the project are carried over unchanged (kits: only the server's).
    assert replace(alone.document, kits={}).to_bytes() == replace(base.document, kits={}).to_bytes()
    assert set(alone.document.kits) == {"server1"} and alone.document.kits["server1"] == base.document.kits["server1"]


def test_left_out_participants_are_not_given_to_nvflare(base: ProvisionResult) -> None:
    """A broken entry of a site whose kit is not asked for is never read by NVFlare, and kept as it is."""
    doc = doc_copy(base)
    doc.nvflare_cert["site2"] = {"cert": "not a certificate", "pri_key": "not a key"}
    result = provision(make_federation(), doc, kits_for=["site1"])
    assert result.issued == ()
    assert result.document.nvflare_cert["site2"] == {"cert": "not a certificate", "pri_key": "not a key"}
    assert result.kits["site1"] == base.kits["site1"]
    # Asking for its kit hands the entry to NVFlare, which reports (does not raise) the failure.
    with pytest.raises(ExternalError) as info:
        provision(make_federation(), doc, kits_for=["site2"])
    assert info.value.exit_code == 3
    assert str(info.value).startswith("nvflare provisioning failed: ")
    assert "\n" not in str(info.value)


def test_adding_a_site_issues_exactly_one_certificate(base: ProvisionResult) -> None:
    fed = make_federation(sites=(("site1", "org_b"), ("site2", "org_c"), ("client3", "org_b")))
    result = provision(fed, doc_copy(base))
    assert result.issued == ("client3",)
    new, old = result.document, base.document
    assert set(new.nvflare_cert) == set(old.nvflare_cert) | {"client3"}
    for key in old.nvflare_cert:
        assert entry_bytes(new, key) == entry_bytes(old, key), key
    assert new.participants["client3"] == {"type": "client", "org": "org_b"}
    root = x509.load_pem_x509_certificate(old.nvflare_cert["root_cert"].encode())
    kit_cert(result, "client3", "client.crt").verify_directly_issued_by(root)
    assert result.kits["server1"] == base.kits["server1"]


def test_changing_host_names_reissues_the_server_certificate_only(base: ProvisionResult) -> None:
    fed = make_federation(host_names=("fl2.example.com", "fl.example.com"))
    result = provision(fed, doc_copy(base))
    assert result.issued == ("server1",)
    for key in base.document.nvflare_cert:
        if key != "server1":
            assert entry_bytes(result.document, key) == entry_bytes(base.document, key), key
    server_crt = kit_cert(result, "server1", "server.crt")
    san = server_crt.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["fl2.example.com", "fl.example.com"]
    assert result.document.participants["server1"]["host_names"] == ["fl2.example.com", "fl.example.com"]
    client = json.loads(result.kits["site1"]["startup/fed_client.json"].data)
    assert client["servers"][0]["service"]["target"] == "fl2.example.com:8002"
    # Unchanged from then on.
    assert provision(fed, result.document).issued == ()


def test_changing_an_admin_role_reissues_that_admin_only(base: ProvisionResult) -> None:
    fed = bypassing_the_loader(make_federation(), admin_role="lead")  # the spec needs a project_admin
    result = provision(fed, doc_copy(base))
    assert result.issued == (ADMIN,)
    for key in base.document.nvflare_cert:
        if key != ADMIN:
            assert entry_bytes(result.document, key) == entry_bytes(base.document, key), key
    role = kit_cert(result, ADMIN, "client.crt").subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)
    assert [a.value for a in role] == ["lead"]
    assert result.document.participants[ADMIN]["role"] == "lead"


def test_changing_an_org_reissues_that_participant(base: ProvisionResult) -> None:
    fed = make_federation(sites=(("site1", "org_x"), ("site2", "org_c")))
    result = provision(fed, doc_copy(base), kits_for=["site1"])
    assert result.issued == ("site1",)
    org = cert_of(result.document, "site1").subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [a.value for a in org] == ["org_x"]
    assert entry_bytes(result.document, "site2") == entry_bytes(base.document, "site2")


def test_missing_record_reissues(base: ProvisionResult) -> None:
    doc = doc_copy(base)
    del doc.participants["site2"]
    result = provision(make_federation(), doc, kits_for=())
    assert result.issued == ("site2",)
    assert result.document.participants["site2"] == {"type": "client", "org": "org_c"}


def test_removed_participants_are_dropped(base: ProvisionResult) -> None:
    fed = replace(make_federation(sites=(("site1", "org_b"),)), admins=())  # no admin: the loader requires one
    result = provision(fed, doc_copy(base))
    assert result.issued == ()
    assert set(result.document.nvflare_cert) == {"root_cert", "root_pri_key", "server1", "site1"}
    assert set(result.document.participants) == {"server1", "site1"}
    assert set(result.kits) == {"server1", "site1"}


def test_server_certificate_names_and_chain(base: ProvisionResult) -> None:
    root = x509.load_pem_x509_certificate(base.kits["server1"]["startup/rootCA.pem"].data)
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "proj"
    server = kit_cert(base, "server1", "server.crt")
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "server1"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == list(HOSTS)
    server.verify_directly_issued_by(root)
    for name in ("site1", "site2", ADMIN):
        cert = kit_cert(base, name, "client.crt")
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        cert.verify_directly_issued_by(root)
        assert base.kits[name]["startup/rootCA.pem"].data == base.kits["server1"]["startup/rootCA.pem"].data

    fed_server = json.loads(base.kits["server1"]["startup/fed_server.json"].data)
    assert fed_server["servers"][0]["service"]["target"] == "server1:8002"
    assert fed_server["servers"][0]["admin_port"] == 8003
    fed_client = json.loads(base.kits["site1"]["startup/fed_client.json"].data)
    assert fed_client["servers"][0]["service"] == {"target": "fl.example.com:8002", "scheme": "grpc"}
    assert fed_client["servers"][0]["identity"] == "server1"
    fed_admin = json.loads(base.kits[ADMIN]["startup/fed_admin.json"].data)
    assert fed_admin["admin"]["port"] == 8003
    assert fed_admin["admin"]["host"] == "fl.example.com"
    assert b"config_folder=config" in base.kits["site1"]["startup/sub_start.sh"].data


def test_nvflare_exception_becomes_external_error() -> None:
    # A site name the spec would refuse, given directly: NVFlare's Participant raises ValueError.
    fed = bypassing_the_loader(make_federation(sites=(("site9", "org_b"),)), site="bad name!")
    with pytest.raises(ExternalError) as info:
        provision(fed, StateDocument())
    message = str(info.value)
    assert info.value.exit_code == 3
    assert message.startswith("nvflare provisioning failed: ")
    assert "bad name!" in message
    assert "\n" not in message


def test_nvflare_reported_failure_becomes_external_error(base: ProvisionResult) -> None:
    doc = doc_copy(base)
    doc.nvflare_cert["root_cert"] = "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"
    with pytest.raises(ExternalError) as info:
        provision(make_federation(), doc)
    assert str(info.value).startswith("nvflare provisioning failed: ")
    assert "\n" not in str(info.value)


def test_input_errors(base: ProvisionResult) -> None:
    with pytest.raises(InputError, match="nobody"):
        provision(make_federation(), doc_copy(base), kits_for=["nobody"])
    with pytest.raises(InputError, match="belongs to NVFlare project 'proj'"):
        provision(make_federation(name="other"), doc_copy(base))
    doc = doc_copy(base)
    del doc.nvflare_cert["root_pri_key"]
    with pytest.raises(InputError, match="private key"):
        provision(make_federation(), doc)
    with pytest.raises(InputError, match="reserved"):
        provision(bypassing_the_loader(make_federation(sites=(("site9", "org_b"),)), site="root_cert"), StateDocument())


def test_output_is_silent_and_no_key_material_is_left_behind(
    base: ProvisionResult, capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    # An undefined role makes NVFlare print a warning; adding a site makes it log INFO lines.
    fed = bypassing_the_loader(make_federation(sites=(("site1", "org_b"), ("site2", "org_c"), ("site4", "org_b"))), admin_role="auditor")
    provision(fed, doc_copy(base))
    with pytest.raises(ExternalError):
        provision(bypassing_the_loader(make_federation(sites=(("site9", "org_b"),)), site="bad name!"), StateDocument())
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


# ------------------------------------------------------------------------------------ kits kept in the state


def _nvflare_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedgen.provision import lighter

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("NVFlare ran although every kit was recorded with the same inputs")

    monkeypatch.setattr(lighter, "run", refuse)


def test_a_provision_that_issues_nothing_returns_the_recorded_kits_without_nvflare(base: ProvisionResult, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(base.document.kits) == {"server1", "site1", "site2", ADMIN}
    reloaded = StateDocument.from_bytes(base.document.to_bytes(), "state")  # through its JSON form
    fresh = provision(make_federation(), doc_copy(base), kits_for=["server1", "site1"])  # NVFlare, no cache
    _nvflare_must_not_run(monkeypatch)
    cached = provision(make_federation(), reloaded, kits_for=["server1", "site1"])
    assert cached.issued == ()
    assert {n: dict(k) for n, k in cached.kits.items()} == {n: dict(k) for n, k in fresh.kits.items()}
    assert cached.kits["server1"]["startup/server.key"].mode == 0o600
    assert cached.document.to_bytes() == fresh.document.to_bytes()


@pytest.mark.parametrize(
    "change",
    ["port", "host_names", "nvflare_version", "corrupt_record", "new_root"],
)
def test_the_recorded_kit_is_used_only_for_the_same_inputs(base: ProvisionResult, change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every input a kit is made from changes its key: NVFlare runs again and the kit shows the change."""
    from fedgen.provision import kitcache, lighter

    runs: list[int] = []
    real = lighter.run

    def counting(*args: object, **kwargs: object) -> object:
        runs.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lighter, "run", counting)
    fed, doc = make_federation(), copy.deepcopy(base.document)
    if change == "port":  # not a certificate input: nothing is re-issued, only fed_server.json differs
        fed = replace(fed, server=replace(fed.server, fl_port=9102))
    elif change == "host_names":
        fed = make_federation(host_names=("fl-new.example.com",))
    elif change == "nvflare_version":
        monkeypatch.setattr(kitcache, "installed_nvflare_version", lambda: "2.9.99")
    elif change == "corrupt_record":
        doc.kits["server1"]["files"]["startup/fed_server.json"]["data"] = "not base64!"
    else:
        doc = StateDocument()
    result = provision(fed, doc, kits_for=["server1"])
    assert runs, f"{change}: the recorded kit was used"
    fed_server = json.loads(result.kits["server1"]["startup/fed_server.json"].data)
    if change == "port":
        assert result.issued == () and fed_server["servers"][0]["service"]["target"].endswith(":9102")
    elif change in ("nvflare_version", "corrupt_record"):
        assert dict(result.kits["server1"]) == dict(base.kits["server1"])
    else:
        assert "server1" in result.issued
    # The record now matches the new inputs: the same call again needs no NVFlare.
    runs.clear()
    again = provision(fed, result.document, kits_for=["server1"])
    assert not runs and dict(again.kits["server1"]) == dict(result.kits["server1"])


def test_a_worker_starts_without_provision_core() -> None:
    """The NVFlare worker (and validate's static kits) start without provision.core and what only it imports;
    `from fedgen.provision import provision` still finds it."""
    code = (
        "import sys, fedgen.provision.worker, fedgen.provision.static, fedgen.provision.lighter\n"
        "print(sorted(m for m in ('fedgen.provision.core', 'fedgen.provision.kitcache') if m in sys.modules))\n"
        "from fedgen.provision import ProvisionResult, provision\n"
        "print(provision.__module__, ProvisionResult.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "fedgen.provision.core fedgen.provision.core"]
