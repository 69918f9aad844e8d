"""A small client for one cluster, over the `kubernetes` package's configuration and transport.

Plain JSON in and out (no generated models: fedgen reads custom resources as often as built-in ones), a
timeout on every request and no retries, so an unreachable cluster costs one timeout. Failures become one
ExternalError line (exit 3) that says which cluster and context, and whether the server could not be reached
or refused the credentials; a missing object is None, not an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fedgen.errors import ExternalError, InputError

DEFAULT_TIMEOUT = 10.0  # seconds, per request (connect and read each)
Obj = dict[str, Any]


class ClusterUnreachable(ExternalError):
    """The API server could not be reached (network, TLS, timeout)."""


class CredentialsRefused(ExternalError):
    """The API server answered 401 or 403."""


@dataclass(frozen=True)
class Resource:
    """One API resource as discovery describes it."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:300]


class Kube:
    """Requests to one cluster (one kubeconfig context)."""

    def __init__(self, *, cluster: str, context: str, kubeconfig: Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        self.cluster, self.context, self.timeout = cluster, context, timeout
        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            # Exec plugins (gke-gcloud-auth-plugin) run here: their failure is a credentials problem.
            raise CredentialsRefused(f"cluster {cluster} (context {context}): cannot load credentials: {_one_line(exc)}") from None
        configuration.retries = 0
        self.server = str(configuration.host)
        self._api = client.ApiClient(configuration)
        self._discovery: dict[str, dict[str, Resource] | None] = {}

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"cluster {self.cluster} (context {self.context}, {self.server})"

    # ---------------------------------------------------------------------------------------- transport

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None, content_type: str | None = None) -> tuple[int, Any]:
        """(HTTP status, parsed JSON body or None). Raises ClusterUnreachable / CredentialsRefused."""
        import urllib3

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _method, url, headers, body, _post = self._api.param_serialize(
            method=method, resource_path=path, query_params=sorted((query or {}).items()), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(method, url, headers, body, None, _request_timeout=(self.timeout, self.timeout))
            response.read()
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ClusterUnreachable(f"{self.where} is unreachable: {_one_line(reason)}") from None
        except OSError as exc:
            raise ClusterUnreachable(f"{self.where} is unreachable: {_one_line(exc)}") from None
        status = int(response.status)
        text = (response.data or b"").decode("utf-8", "replace")
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if status in (401, 403):
            message = _one_line(data.get("message") if isinstance(data, dict) else text)
            if status == 401:
                raise CredentialsRefused(f"{self.where} refused the credentials (401): {message}")
            raise CredentialsRefused(f"{self.where} refused the request with these credentials (403, not allowed): {message}")
        return status, data

    def _checked(self, method: str, path: str, **kwargs: Any) -> Any:
        status, data = self.request(method, path, **kwargs)
        if status >= 300:
            message = data.get("message") if isinstance(data, dict) else data
            raise ExternalError(f"{self.where}: {method} {path} failed ({status}): {_one_line(message)}")
        return data

    # ---------------------------------------------------------------------------------------- discovery

    def resources(self, api_version: str) -> dict[str, Resource] | None:
        """kind -> Resource for an apiVersion, or None when the cluster does not serve it (CRD missing)."""
        if api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            status, data = self.request("GET", path)
            if status == 404:
                self._discovery[api_version] = None
            elif status >= 300 or not isinstance(data, dict):
                raise ExternalError(f"{self.where}: discovery of {api_version} failed ({status})")
            else:
                found = {}
                for r in data.get("resources") or []:
                    if isinstance(r, dict) and "/" not in str(r.get("name")):
                        found[str(r.get("kind"))] = Resource(api_version, str(r.get("kind")), str(r.get("name")), bool(r.get("namespaced")))
                self._discovery[api_version] = found
        return self._discovery[api_version]

    def resource(self, api_version: str, kind: str) -> Resource | None:
        served = self.resources(api_version)
        return None if served is None else served.get(kind)

    @staticmethod
    def collection_path(resource: Resource, namespace: str | None) -> str:
        base = f"/api/{resource.api_version}" if "/" not in resource.api_version else f"/apis/{resource.api_version}"
        if resource.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        return f"{base}/{resource.plural}"

    def object_path(self, resource: Resource, namespace: str | None, name: str) -> str:
        return f"{self.collection_path(resource, namespace)}/{quote(name, safe='')}"

    # ------------------------------------------------------------------------------------------ objects

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The live object, or None when it (or its API) does not exist."""
        resource = self.resource(api_version, kind)
        if resource is None:
            return None
        status, data = self.request("GET", self.object_path(resource, namespace, name))
        if status == 404:
            return None
        if status >= 300 or not isinstance(data, dict):
            raise ExternalError(f"{self.where}: reading {kind} {namespace or ''}/{name} failed ({status})")
        return data

    def list(self, api_version: str, kind: str, namespace: str | None, *, label_selector: str | None = None) -> list[Obj]:
        resource = self.resource(api_version, kind)
        if resource is None:
            return []
        query = {"labelSelector": label_selector} if label_selector else None
        data = self._checked("GET", self.collection_path(resource, namespace), query=query)
        return [i for i in (data or {}).get("items") or [] if isinstance(i, dict)]

    def apply(self, obj: Mapping[str, Any], *, field_manager: str, force: bool = False, dry_run: bool = False) -> Obj:
        """Server-side apply of one object (PATCH application/apply-patch+yaml; JSON is YAML)."""
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        resource = self.resource(api_version, kind)
        if resource is None:
            raise ExternalError(f"{self.where} does not serve {kind} ({api_version}): install what provides it first")
        namespace = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise InputError(f"{kind} {meta.get('name')} has no namespace")
        query = {"fieldManager": field_manager, **({"force": "true"} if force else {}), **({"dryRun": "All"} if dry_run else {})}
        path = self.object_path(resource, namespace, str(meta.get("name")))
        status, data = self.request("PATCH", path, query=query, body=dict(obj), content_type="application/apply-patch+yaml")
        if status >= 300:
            message = data.get("message") if isinstance(data, dict) else data
            raise ExternalError(
                f"{self.where}: applying {kind} {namespace + '/' if namespace else ''}{meta.get('name')} failed ({status}): {_one_line(message)}"
            )
        return data if isinstance(data, dict) else {}
