"""fedgen.seal against the real kubeseal binary (both directions) plus unit checks.

Keys are generated at test time, never committed. The kubeseal binary is found via $FEDGEN_KUBESEAL,
<repo>/.tools/bin/kubeseal or PATH; the kubeseal tests FAIL (not skip) when it is missing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from fedgen.errors import InputError
from fedgen.seal.certificate import generate_development_keypair
from fedgen.seal.crypto import SCOPES, UnsealError, seal_value, unseal_value
from fedgen.seal.manifest import sealed_secret_manifest
from fedgen.seal.reuse import seal_data
from fedgen.spec.sealing_certificate import SealingCertificate, load_certificate
from tests.support import tool

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "fl-site-1"
NAME = "site-1-credentials"
DATA = {
    "password": b"correct horse battery staple",
    "binary": bytes(range(256)),  # not UTF-8, includes NUL
    "empty": b"",
}
NS_ANNO = "sealedsecrets.bitnami.com/namespace-wide"
CW_ANNO = "sealedsecrets.bitnami.com/cluster-wide"


# ---------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def kubeseal() -> str:
    return tool("kubeseal")


def _run_kubeseal(kubeseal: str, args: list[str], stdin: bytes, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    # No cluster: point kubeconfig at nothing so a stray local config can never be used.
    env = dict(os.environ, KUBECONFIG=str(tmp / "no-kubeconfig"), HOME=str(tmp))
    return subprocess.run([kubeseal, *args], input=stdin, capture_output=True, env=env, cwd=tmp, timeout=120, check=False)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes, bytes]:
    key_pem, cert_pem = generate_development_keypair()
    directory = tmp_path_factory.mktemp("sealing-key")
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key_pem)
    cert_path.write_bytes(cert_pem)
    return key_path, cert_path, key_pem, cert_pem


@pytest.fixture(scope="module")
def cert(keypair: tuple[Path, Path, bytes, bytes]) -> SealingCertificate:
    return load_certificate(keypair[3], origin="dev-cert.pem")


@pytest.fixture(scope="module")
def other_keypair() -> tuple[bytes, bytes]:
    return generate_development_keypair(common_name="rotated")


def _self_signed(key: Any, *, not_before: dt.datetime, not_after: dt.datetime, cn: str = "test") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _yaml_docs(text: bytes) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(text.decode()) if doc is not None]


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


# ---------------------------------------------------------------------------------------------------------------
# our sealing -> kubeseal --recovery-unseal


@pytest.mark.parametrize("scope", SCOPES)
def test_kubeseal_recovery_unseals_what_we_seal(
    kubeseal: str, keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate, tmp_path: Path, scope: str
) -> None:
    key_path = keypair[0]
    encrypted, records = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope=scope, previous={}, records={})
    manifest = sealed_secret_manifest(
        name=NAME,
        namespace=NAMESPACE,
        scope=scope,
        encrypted_data=encrypted,
        labels={"app.kubernetes.io/managed-by": "fedgen"},
    )
    assert "creationTimestamp" not in json.dumps(manifest)
    stream = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(manifest, stream)
    sealed = tmp_path / "sealed.yaml"
    sealed.write_text(stream.getvalue())

    result = _run_kubeseal(
        kubeseal,
        ["--recovery-unseal", "--recovery-private-key", str(key_path)],
        sealed.read_bytes(),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    secret = json.loads(result.stdout)  # default output format of --recovery-unseal is JSON
    assert secret["apiVersion"] == "v1"
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == NAME
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "fedgen"}
    assert secret["type"] == "Opaque"
    # kubeseal prints an empty value as null (Go's nil []byte), hence `or ""`.
    recovered = {k: base64.b64decode(v or "") for k, v in secret.get("data", {}).items()}
    assert recovered == DATA
    assert sorted(records) == sorted(DATA)

    # The same manifest as YAML output (-o yaml) parses to the same Secret.
    as_yaml = _run_kubeseal(
        kubeseal,
        ["--recovery-unseal", "--recovery-private-key", str(key_path), "-o", "yaml"],
        sealed.read_bytes(),
        tmp_path,
    )
    assert as_yaml.returncode == 0, as_yaml.stderr.decode()
    (secret_yaml,) = _yaml_docs(as_yaml.stdout)
    assert {k: base64.b64decode(v or "") for k, v in secret_yaml.get("data", {}).items()} == DATA


def test_controller_reads_scope_from_sealedsecret_metadata(
    kubeseal: str, keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate, tmp_path: Path
) -> None:
    """Pins the upstream fact the manifest relies on: the label comes from the SealedSecret's own annotations."""
    encrypted, _ = seal_data(cert, {"k": b"v"}, namespace=NAMESPACE, name=NAME, scope="namespace-wide", previous={}, records={})
    manifest = sealed_secret_manifest(name=NAME, namespace=NAMESPACE, scope="namespace-wide", encrypted_data=encrypted)
    args = ["--recovery-unseal", "--recovery-private-key", str(keypair[0])]

    only_top = json.loads(json.dumps(manifest))
    del only_top["spec"]["template"]["metadata"]["annotations"]
    ok = _run_kubeseal(kubeseal, args, json.dumps(only_top).encode(), tmp_path)
    assert ok.returncode == 0, ok.stderr.decode()

    only_template = json.loads(json.dumps(manifest))
    del only_template["metadata"]["annotations"]
    bad = _run_kubeseal(kubeseal, args, json.dumps(only_template).encode(), tmp_path)
    assert bad.returncode != 0
    assert b"decrypt" in bad.stderr


# ---------------------------------------------------------------------------------------------------------------
# kubeseal sealing with our certificate -> unseal_value


@pytest.mark.parametrize("scope", SCOPES)
def test_we_unseal_what_kubeseal_seals_with_our_certificate(kubeseal: str, keypair: tuple[Path, Path, bytes, bytes], tmp_path: Path, scope: str) -> None:
    key_path, cert_path, key_pem, _ = keypair
    labels = {"app": "fl"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in DATA.items()},
    }
    result = _run_kubeseal(
        kubeseal,
        ["--cert", str(cert_path), "--scope", scope, "-o", "yaml"],
        json.dumps(secret).encode(),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    (sealed,) = _yaml_docs(result.stdout)
    encrypted = sealed["spec"]["encryptedData"]
    assert sorted(encrypted) == sorted(DATA)
    for key, value in DATA.items():
        assert unseal_value(key_pem, encrypted[key], namespace=NAMESPACE, name=NAME, scope=scope) == value

    # Our manifest has kubeseal's shape, annotations included (ciphertext aside; kubeseal's nulls dropped).
    ours = sealed_secret_manifest(name=NAME, namespace=NAMESPACE, scope=scope, encrypted_data=encrypted, labels=labels)
    assert _strip_nulls(sealed) == ours


# ---------------------------------------------------------------------------------------------------------------
# value format and round trips


@pytest.mark.parametrize("scope", SCOPES)
def test_seal_value_layout_and_round_trip(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate, scope: str) -> None:
    plaintext = b"hello world"
    sealed = seal_value(cert, plaintext, namespace=NAMESPACE, name=NAME, scope=scope)
    blob = base64.b64decode(sealed, validate=True)
    assert base64.b64encode(blob).decode() == sealed  # standard alphabet, padded
    rsa_len = int.from_bytes(blob[:2], "big")
    assert rsa_len == cert.key_size // 8 == 512
    assert len(blob) == 2 + rsa_len + len(plaintext) + 16
    assert unseal_value(keypair[2], sealed, namespace=NAMESPACE, name=NAME, scope=scope) == plaintext
    assert seal_value(cert, plaintext, namespace=NAMESPACE, name=NAME, scope=scope) != sealed  # random


@pytest.mark.parametrize(
    ("sealed_scope", "namespace", "name", "scope"),
    [
        ("strict", NAMESPACE, NAME, "namespace-wide"),
        ("strict", NAMESPACE, NAME, "cluster-wide"),
        ("strict", NAMESPACE, "other-name", "strict"),
        ("strict", "other-ns", NAME, "strict"),
        ("namespace-wide", NAMESPACE, NAME, "strict"),
        ("namespace-wide", "other-ns", NAME, "namespace-wide"),
        ("namespace-wide", NAMESPACE, NAME, "cluster-wide"),
        ("cluster-wide", NAMESPACE, NAME, "strict"),
        ("cluster-wide", NAMESPACE, NAME, "namespace-wide"),
    ],
)
def test_wrong_label_fails_to_unseal(
    keypair: tuple[Path, Path, bytes, bytes],
    cert: SealingCertificate,
    sealed_scope: str,
    namespace: str,
    name: str,
    scope: str,
) -> None:
    sealed = seal_value(cert, b"secret", namespace=NAMESPACE, name=NAME, scope=sealed_scope)
    with pytest.raises(UnsealError, match="cannot decrypt the session key"):
        unseal_value(keypair[2], sealed, namespace=namespace, name=name, scope=scope)


def test_cluster_wide_unseals_under_any_namespace(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate) -> None:
    sealed = seal_value(cert, b"x", namespace=NAMESPACE, name=NAME, scope="cluster-wide")
    assert unseal_value(keypair[2], sealed, namespace="elsewhere", name="other", scope="cluster-wide") == b"x"


def test_unseal_with_wrong_key_or_corrupt_data_fails(
    keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate, other_keypair: tuple[bytes, bytes]
) -> None:
    sealed = seal_value(cert, b"secret", namespace=NAMESPACE, name=NAME, scope="strict")
    with pytest.raises(UnsealError):
        unseal_value(other_keypair[0], sealed, namespace=NAMESPACE, name=NAME, scope="strict")
    blob = bytearray(base64.b64decode(sealed))
    blob[-1] ^= 1
    with pytest.raises(UnsealError, match="authentication"):
        unseal_value(keypair[2], base64.b64encode(bytes(blob)).decode(), namespace=NAMESPACE, name=NAME, scope="strict")
    with pytest.raises(UnsealError, match="base64"):
        unseal_value(keypair[2], "not base64!", namespace=NAMESPACE, name=NAME, scope="strict")
    with pytest.raises(UnsealError, match="truncated"):
        unseal_value(keypair[2], base64.b64encode(bytes(blob[:100])).decode(), namespace=NAMESPACE, name=NAME, scope="strict")


def test_unknown_scope_or_missing_namespace_is_an_input_error(cert: SealingCertificate) -> None:
    with pytest.raises(InputError, match="unknown sealing scope 'global'"):
        seal_value(cert, b"x", namespace=NAMESPACE, name=NAME, scope="global")
    with pytest.raises(InputError, match="unknown sealing scope"):
        sealed_secret_manifest(name=NAME, namespace=NAMESPACE, scope="Strict", encrypted_data={})
    with pytest.raises(InputError, match="needs a namespace"):
        seal_value(cert, b"x", namespace="", name=NAME, scope="namespace-wide")


# ---------------------------------------------------------------------------------------------------------------
# re-sealing only what changed


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_resealing_unchanged_data_keeps_ciphertext(cert: SealingCertificate) -> None:
    first, records = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    assert list(first) == sorted(DATA)
    assert list(records) == sorted(DATA)
    for key, record in records.items():
        assert record == {
            "plaintext_sha256": hashlib.sha256(DATA[key]).hexdigest(),
            "certificate_sha256": cert.sha256,
            "scope": "strict",
            "ciphertext_sha256": _digest(first[key]),
        }
    second, records2 = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope="strict", previous=first, records=records)
    assert second == first
    assert records2 == records


def test_changed_value_is_resealed_others_kept(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate) -> None:
    data = {"a": b"one", "b": b"two"}
    first, records = seal_data(cert, data, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    changed = {"a": b"one", "b": b"TWO"}
    second, records2 = seal_data(cert, changed, namespace=NAMESPACE, name=NAME, scope="strict", previous=first, records=records)
    assert second["a"] == first["a"]
    assert second["b"] != first["b"]
    assert records2["a"] == records["a"]
    assert records2["b"]["plaintext_sha256"] == hashlib.sha256(b"TWO").hexdigest()
    assert records2["b"]["ciphertext_sha256"] == _digest(second["b"])
    assert unseal_value(keypair[2], second["b"], namespace=NAMESPACE, name=NAME, scope="strict") == b"TWO"


def test_added_and_removed_keys(cert: SealingCertificate) -> None:
    first, records = seal_data(cert, {"a": b"1", "b": b"2"}, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    second, records2 = seal_data(cert, {"c": b"3", "a": b"1"}, namespace=NAMESPACE, name=NAME, scope="strict", previous=first, records=records)
    assert list(second) == ["a", "c"]
    assert list(records2) == ["a", "c"]
    assert second["a"] == first["a"]


def test_changed_certificate_reseals(cert: SealingCertificate, other_keypair: tuple[bytes, bytes]) -> None:
    first, records = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    rotated = load_certificate(other_keypair[1], origin="rotated.pem")
    assert rotated.sha256 != cert.sha256
    second, records2 = seal_data(rotated, DATA, namespace=NAMESPACE, name=NAME, scope="strict", previous=first, records=records)
    for key in DATA:
        assert second[key] != first[key]
        assert records2[key]["certificate_sha256"] == rotated.sha256
        assert unseal_value(other_keypair[0], second[key], namespace=NAMESPACE, name=NAME, scope="strict") == DATA[key]


def test_changed_scope_reseals(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate) -> None:
    first, records = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    second, records2 = seal_data(cert, DATA, namespace=NAMESPACE, name=NAME, scope="cluster-wide", previous=first, records=records)
    for key in DATA:
        assert second[key] != first[key]
        assert records2[key]["scope"] == "cluster-wide"
        assert unseal_value(keypair[2], second[key], namespace="x", name="y", scope="cluster-wide") == DATA[key]


def test_previous_not_matching_record_is_resealed(cert: SealingCertificate) -> None:
    """A hand-edited or foreign ciphertext in the repo is never trusted, nor is a value without a record."""
    first, records = seal_data(cert, {"a": b"1", "b": b"2"}, namespace=NAMESPACE, name=NAME, scope="strict", previous={}, records={})
    tampered = dict(first, a=seal_value(cert, b"evil", namespace=NAMESPACE, name=NAME, scope="strict"))
    second, _ = seal_data(
        cert,
        {"a": b"1", "b": b"2"},
        namespace=NAMESPACE,
        name=NAME,
        scope="strict",
        previous=tampered,
        records={"a": records["a"]},
    )
    assert second["a"] not in (first["a"], tampered["a"])
    assert second["b"] != first["b"]  # no record for b


# ---------------------------------------------------------------------------------------------------------------
# manifests


@pytest.mark.parametrize(
    ("scope", "annotations"),
    [("strict", None), ("namespace-wide", {NS_ANNO: "true"}), ("cluster-wide", {CW_ANNO: "true"})],
)
def test_manifest_shape(scope: str, annotations: dict[str, str] | None) -> None:
    manifest = sealed_secret_manifest(
        name=NAME,
        namespace=NAMESPACE,
        scope=scope,
        encrypted_data={"z": "Zm9v", "a": "YmFy"},
        secret_type="kubernetes.io/tls",
        labels={"b": "2", "a": "1"},
    )
    assert manifest["apiVersion"] == "bitnami.com/v1alpha1"
    assert manifest["kind"] == "SealedSecret"
    assert manifest["metadata"].get("annotations") == annotations
    assert {k: v for k, v in manifest["metadata"].items() if k != "annotations"} == {
        "name": NAME,
        "namespace": NAMESPACE,
    }
    assert list(manifest["spec"]["encryptedData"]) == ["a", "z"]
    template = manifest["spec"]["template"]
    assert template["type"] == "kubernetes.io/tls"
    assert template["metadata"]["name"] == NAME
    assert template["metadata"]["namespace"] == NAMESPACE
    assert template["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert template["metadata"].get("annotations") == annotations
    assert "creationTimestamp" not in json.dumps(manifest)
    assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}


def test_manifest_without_labels_has_no_labels_key() -> None:
    manifest = sealed_secret_manifest(name=NAME, namespace=NAMESPACE, scope="strict", encrypted_data={})
    assert manifest["spec"]["template"]["metadata"] == {"name": NAME, "namespace": NAMESPACE}
    assert manifest["spec"]["encryptedData"] == {}


# ---------------------------------------------------------------------------------------------------------------
# certificates


def test_development_certificate_loads(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate) -> None:
    key_pem, cert_pem = keypair[2], keypair[3]
    assert b"-----BEGIN RSA PRIVATE KEY-----" in key_pem or b"-----BEGIN PRIVATE KEY-----" in key_pem
    assert cert.key_size == 4096
    assert cert.pem == cert_pem
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert cert.sha256 == hashlib.sha256(der).hexdigest()
    now = dt.datetime.now(dt.timezone.utc)
    assert now + dt.timedelta(days=3640) < cert.not_after < now + dt.timedelta(days=3660)
    assert cert.not_after.tzinfo is not None
    private = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.public_key().public_numbers() == cert.public_key.public_numbers()


def _assert_one_line_input_error(exc: pytest.ExceptionInfo[InputError], origin: str, *fragments: str) -> None:
    message = str(exc.value)
    assert message.startswith(f"{origin}: "), message
    assert "\n" not in message, message
    assert exc.value.exit_code == 2
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    "garbage",
    [b"", b"hello, I am not a certificate", b"\x00\x01\x02\xff" * 40],
)
def test_load_certificate_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(InputError) as exc:
        load_certificate(garbage, origin="cert.pem")
    _assert_one_line_input_error(exc, "cert.pem", "not a PEM")


def test_load_certificate_rejects_corrupt_pem_certificate() -> None:
    bogus = b"-----BEGIN CERTIFICATE-----\nTUlJQm9ndXM=\n-----END CERTIFICATE-----\n"
    with pytest.raises(InputError) as exc:
        load_certificate(bogus, origin="gs://bucket/cert.pem")
    _assert_one_line_input_error(exc, "gs://bucket/cert.pem", "not a valid X.509 certificate")


def test_load_certificate_rejects_private_key(keypair: tuple[Path, Path, bytes, bytes]) -> None:
    with pytest.raises(InputError) as exc:
        load_certificate(keypair[2], origin="key.pem")
    _assert_one_line_input_error(exc, "key.pem", "PRIVATE KEY", "not an X.509 certificate")


def test_load_certificate_rejects_bare_public_key(cert: SealingCertificate) -> None:
    public_pem = cert.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InputError) as exc:
        load_certificate(public_pem, origin="pub.pem")
    _assert_one_line_input_error(exc, "pub.pem", "PUBLIC KEY", "not an X.509 certificate")


def test_load_certificate_rejects_non_rsa() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    pem = _self_signed(ec.generate_private_key(ec.SECP256R1()), not_before=now, not_after=now + dt.timedelta(days=1))
    with pytest.raises(InputError) as exc:
        load_certificate(pem, origin="ec.pem")
    _assert_one_line_input_error(exc, "ec.pem", "RSA", "EC")


def test_load_certificate_rejects_expired() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _self_signed(key, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    with pytest.raises(InputError) as exc:
        load_certificate(pem, origin="old.pem")
    _assert_one_line_input_error(exc, "old.pem", "expired")


def test_load_certificate_expiry_uses_now(keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate) -> None:
    later = cert.not_after + dt.timedelta(seconds=1)
    with pytest.raises(InputError) as exc:
        load_certificate(keypair[3], origin="dev.pem", now=later)
    _assert_one_line_input_error(exc, "dev.pem", "expired")
    # exactly at not_after it is still valid; a naive `now` is taken as UTC
    assert load_certificate(keypair[3], origin="dev.pem", now=cert.not_after).sha256 == cert.sha256
    naive = (cert.not_after - dt.timedelta(days=1)).replace(tzinfo=None)
    assert load_certificate(keypair[3], origin="dev.pem", now=naive).sha256 == cert.sha256


def test_load_certificate_takes_first_of_a_chain(
    keypair: tuple[Path, Path, bytes, bytes], cert: SealingCertificate, other_keypair: tuple[bytes, bytes]
) -> None:
    loaded = load_certificate(keypair[3] + other_keypair[1], origin="chain.pem")
    assert loaded.sha256 == cert.sha256
