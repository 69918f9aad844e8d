"""Turn the BUILT manifests (kubectl kustomize output) into what a node would run for the server pod.

- `expand` is Kubernetes' $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion), used on
  env values (with the variables defined before them) and on command/args (with the container's env).
- `materialise_volume` writes a volume's content the way the kubelet does: ConfigMap, Secret and projected
  volumes in the AtomicWriter layout (files in a `..<timestamp>` folder, a `..data` symlink to it, and one
  top-level symlink per entry pointing into `..data/`: every link stays inside the mount, which NVFlare's
  realpath checks accept), `items`/`path`/`mode`/`defaultMode`, then the fsGroup ownership pass
  (group = fsGroup, +r for the group on read-only volumes, +rw on emptyDir, setgid on folders); emptyDir as a
  0777 folder; the gcsfuse CSI volume as a folder with the mount options' uid/gid/dir-mode. Secrets come from
  the SealedSecrets, unsealed by the real `kubeseal --recovery-unseal` with the test's controller key.
- `server_plan` builds the podinit plan (tests/e2e/podinit.py): a tmpfs root made read-only
  (readOnlyRootFilesystem), an "image" layer (host /usr, /etc; the venv's interpreter as /usr/local like the
  python base images), then every volumeMount at its real path (sorted by depth like containerd; subPath and
  readOnly honoured), and the container's command, args, env, uid/gid, fsGroup, no_new_privs, drop ALL.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgen.errors import ExternalError
from fedgen.executables import find_tool

# What the image would provide (an NVFlare image built on a python base image): PATH and LANG.
IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
IMAGE_WORKDIR = "/"  # the NVFlare image's WORKDIR is not knowable here; the root is the strictest choice

RO_MASK, RW_MASK, EXEC_MASK = 0o440, 0o660, 0o110


# ------------------------------------------------------------------------------------------------ expansion


def expand(value: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' $(VAR) expansion: $$ is a literal $, $(NAME) is replaced when NAME is defined and kept
    verbatim otherwise, an unterminated $( and any other $x are copied as they are."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(value)
    while cursor < n:
        if value[cursor] == "$" and cursor + 1 < n:
            out.append(value[checkpoint:cursor])
            rest = value[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    found = lookup(name)
                    out.append(found if found is not None else f"$({name})")
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + value[checkpoint:]


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The env the manifest defines (value only; valueFrom is not used by fedgen's server), each value expanded
    with the variables defined before it, as the kubelet does."""
    env: dict[str, str] = {}
    for entry in container.get("env", []) or []:
        if "valueFrom" in entry:
            raise AssertionError(f"env {entry['name']} uses valueFrom, which this test does not emulate")
        env[entry["name"]] = expand(str(entry.get("value", "")), env.get)
    return env


# ---------------------------------------------------------------------------------------------- the objects


@dataclass
class Built:
    """The objects of one `kubectl kustomize` output, by (kind, namespace, name)."""

    objects: list[dict[str, Any]]
    by_key: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj in self.objects:
            meta = obj.get("metadata", {})
            self.by_key[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.by_key[(kind, namespace, name)]
        except KeyError:
            raise AssertionError(f"the built sync root has no {kind} {namespace}/{name}") from None

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.by_key.get((kind, namespace, name))


def secret_data(built: Built, namespace: str, name: str, sealing_key: bytes) -> dict[str, bytes]:
    """The Secret the Sealed Secrets controller would create from SealedSecret namespace/name, unsealed by the
    real `kubeseal --recovery-unseal` (the controller's own code, not fedgen's) with the test's controller key."""
    sealed = built.get("SealedSecret", namespace, name)
    try:
        kubeseal = find_tool("kubeseal")
    except ExternalError as exc:
        raise AssertionError(f"{exc}: the end-to-end test unseals with the real kubeseal") from None
    with tempfile.TemporaryDirectory(prefix="fedgen-e2e-unseal-") as folder:
        key = Path(folder) / "controller.key"
        key.touch(mode=0o600)
        key.write_bytes(sealing_key)
        proc = subprocess.run(
            [str(kubeseal), "--recovery-unseal", "--recovery-private-key", str(key), "-o", "json"],
            input=json.dumps(sealed), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"kubeseal --recovery-unseal of SealedSecret {namespace}/{name} failed: {proc.stderr.strip()}")
    secret = json.loads(proc.stdout)
    meta = secret["metadata"]
    assert (meta.get("namespace"), meta["name"]) == (namespace, name), f"kubeseal made Secret {meta}"
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


# ------------------------------------------------------------------------------------ kubelet volume layout


def _select(data: Mapping[str, bytes], items: list[dict[str, Any]] | None, default_mode: int) -> list[tuple[str, bytes, int]]:
    if not items:
        return [(key, value, default_mode) for key, value in sorted(data.items())]
    out = []
    for item in items:
        if item["key"] not in data:
            raise AssertionError(f"volume item {item['key']} is not in the source (optional sources are not used here)")
        out.append((item["path"], data[item["key"]], int(item.get("mode", default_mode))))
    return out


def _atomic_write(target: Path, files: list[tuple[str, bytes, int]], *, root_mode: int) -> None:
    """The kubelet's AtomicWriter layout (pkg/volume/util/atomic_writer.go)."""
    target.mkdir(parents=True)
    target.chmod(root_mode)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    ts_dir = target / stamp
    ts_dir.mkdir()
    ts_dir.chmod(0o755)
    tops: set[str] = set()
    for rel, content, mode in files:
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise AssertionError(f"volume path {rel!r} would escape the volume")
        dest = ts_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        dest.chmod(mode)
        tops.add(Path(rel).parts[0])
    (target / "..data").symlink_to(stamp)
    for top in sorted(tops):
        (target / top).symlink_to(f"..data/{top}")


def _fs_group_pass(root: Path, fs_group: int | None, *, readonly: bool) -> None:
    """SetVolumeOwnership (pkg/volume/volume_linux.go): lchown to group fsGroup, files |= 0440 (read-only
    volumes) or 0660, folders also setgid and group/other x (|= 0110)."""
    if fs_group is None:
        return
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        os.lchown(path, -1, fs_group)
        if stat.S_ISLNK(st.st_mode):
            continue
        mask = RO_MASK if readonly else RW_MASK
        if stat.S_ISDIR(st.st_mode):
            mask |= stat.S_ISGID | EXEC_MASK
        os.chmod(path, stat.S_IMODE(st.st_mode) | mask)


def _mount_options(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def materialise_volume(
    volume: Mapping[str, Any],
    target: Path,
    *,
    built: Built,
    namespace: str,
    sealing_key: bytes,
    fs_group: int | None,
) -> str:
    """Write one pod volume's content at `target` (a host folder); returns the volume type."""
    if "emptyDir" in volume:
        target.mkdir(parents=True)
        target.chmod(0o777)  # emptyDir's setupDir
        _fs_group_pass(target, fs_group, readonly=False)
        return "emptyDir"
    if "configMap" in volume:
        src = volume["configMap"]
        cm = built.get("ConfigMap", namespace, src["name"])
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        files = _select(data, src.get("items"), int(src.get("defaultMode", 0o644)))
        _atomic_write(target, files, root_mode=0o777)  # a wrapped on-disk emptyDir
        _fs_group_pass(target, fs_group, readonly=True)
        return "configMap"
    if "secret" in volume:
        src = volume["secret"]
        data = secret_data(built, namespace, src["secretName"], sealing_key)
        files = _select(data, src.get("items"), int(src.get("defaultMode", 0o644)))
        _atomic_write(target, files, root_mode=0o1777)  # a wrapped tmpfs emptyDir
        _fs_group_pass(target, fs_group, readonly=True)
        return "secret"
    if "projected" in volume:
        proj = volume["projected"]
        default_mode = int(proj.get("defaultMode", 0o644))
        projected: list[tuple[str, bytes, int]] = []
        for source in proj["sources"]:
            if "configMap" in source:
                src = source["configMap"]
                cm = built.get("ConfigMap", namespace, src["name"])
                data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
            elif "secret" in source:
                src = source["secret"]
                data = secret_data(built, namespace, src["name"], sealing_key)
            else:
                raise AssertionError(f"projected source {sorted(source)} is not emulated")
            projected.extend(_select(data, src.get("items"), default_mode))
        paths = [f[0] for f in projected]
        if len(paths) != len(set(paths)):
            raise AssertionError(f"projected volume {volume['name']} has colliding paths: {sorted(paths)}")
        _atomic_write(target, projected, root_mode=0o1777)  # a wrapped tmpfs emptyDir
        _fs_group_pass(target, fs_group, readonly=True)
        return "projected"
    if "csi" in volume and volume["csi"].get("driver") == "gcsfuse.csi.storage.gke.io":
        opts = _mount_options(volume["csi"].get("volumeAttributes", {}).get("mountOptions", ""))
        target.mkdir(parents=True)
        os.chown(target, int(opts.get("uid", 0)), int(opts.get("gid", 0)))
        target.chmod(int(opts.get("dir-mode", "755"), 8))
        return "gcsfuse"
    raise AssertionError(f"volume {volume.get('name')} of an unknown type: {sorted(volume)}")


# ------------------------------------------------------------------------------------------ the pod's plan


@dataclass
class ServerPod:
    plan: dict[str, Any]
    volumes: dict[str, Path]  # volume name -> host folder
    mounts: list[dict[str, Any]]  # the container's volumeMounts
    container: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    kit_root: str  # the path given to NVFlare with -m
    kit_host: Path  # where that path lives on the host (the kit emptyDir)
    log: Path  # the server's own log.txt (on the host)
    notes: list[str] = field(default_factory=list)


def _python_image_layer(root: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Mounts giving the chroot an interpreter at /usr/local/bin/python3 with nvflare importable, like a
    python base image: /usr/local is the venv's base interpreter prefix, its site-packages is the venv's."""
    notes = []
    base = Path(sys.base_prefix).resolve()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    ops: list[dict[str, Any]] = []
    if base != Path("/usr/local"):
        ops.append({"op": "bind", "source": str(base), "target": f"{root}/usr/local", "readonly": True})
        notes.append(f"/usr/local in the container is {base} (the venv's base interpreter), read-only")
        libdir = sysconfig.get_config_var("LIBDIR")
        if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and Path(libdir).resolve().is_relative_to(base):
            # libpython is found through an absolute RUNPATH: make that path exist too.
            inside = f"{root}{Path(libdir).resolve()}"
            ops.append({"op": "mkdirs", "path": inside})
            ops.append({"op": "bind", "source": str(Path(libdir).resolve()), "target": inside, "readonly": True})
            notes.append(f"{libdir} (libpython's RUNPATH) also mounted at its own path")
    if not (base / "bin" / "python3").exists():
        raise AssertionError(f"{base}/bin/python3 does not exist: cannot give the container /usr/local/bin/python3")
    ops.append({"op": "bind", "source": str(site_packages), "target": f"{root}/usr/local/lib/{version}/site-packages", "readonly": True})
    notes.append(f"/usr/local/lib/{version}/site-packages is the venv's {site_packages} (nvflare {version})")
    return ops, notes


def _expand_mkdirs(ops: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """`mkdirs` ops become one mkdir per missing component, 0755 root (what runc does for mount points)."""
    out: list[dict[str, Any]] = []
    made: set[str] = set()
    for op in ops:
        if op["op"] != "mkdirs":
            out.append(op)
            continue
        rel = Path(op["path"]).relative_to(root)
        current = Path(root)
        for part in rel.parts:
            current = current / part
            if str(current) not in made:
                out.append({"op": "mkdir", "path": str(current), "mode": 0o755})
                made.add(str(current))
    return out


def server_pod(
    built: Built,
    *,
    namespace: str,
    deployment: str,
    sealing_key: bytes,
    workdir: Path,
    bucket: Path,
    pod_ip: str,
    extra_hosts: Mapping[str, list[str]],
    grace: float = 15.0,
    report: Path,
) -> ServerPod:
    """Materialise the Deployment's pod (first container) under workdir and return the podinit plan."""
    dep = built.get("Deployment", namespace, deployment)
    pod_spec = dep["spec"]["template"]["spec"]
    containers = pod_spec["containers"]
    if len(containers) != 1:
        raise AssertionError(f"expected one container in {deployment}, found {len(containers)}")
    if pod_spec.get("initContainers"):
        raise AssertionError("init containers are not emulated")
    container = containers[0]
    pod_sc = pod_spec.get("securityContext", {}) or {}
    sc = {**pod_sc, **(container.get("securityContext", {}) or {})}
    fs_group = pod_sc.get("fsGroup")
    uid = sc.get("runAsUser")
    gid = sc.get("runAsGroup", uid)
    if uid is None:
        raise AssertionError("the container has no runAsUser: the image's user is not knowable here")
    if sc.get("runAsNonRoot") and uid == 0:
        raise AssertionError("runAsNonRoot with runAsUser 0: the kubelet would refuse to start this container")

    vol_root = workdir / "volumes"
    volumes: dict[str, Path] = {}
    kinds: dict[str, str] = {}
    for volume in pod_spec.get("volumes", []):
        target = bucket if "csi" in volume else vol_root / volume["name"]
        kinds[volume["name"]] = materialise_volume(volume, target, built=built, namespace=namespace, sealing_key=sealing_key, fs_group=fs_group)
        volumes[volume["name"]] = target

    root = str(workdir / "rootfs")
    (workdir / "rootfs").mkdir()
    etc = workdir / "etc"
    etc.mkdir()
    pod_name = f"{deployment}-5d4c7b9f8-e2e00"[:63]  # a ReplicaSet pod's name: <deployment>-<hash>-<suffix>
    (etc / "hosts").write_text(  # the kubelet's hosts file (pkg/kubelet/kubelet_pods.go managedHostsFileContent)
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
        f"{pod_ip}\t{pod_name}\n" + "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in extra_hosts.items())
    )
    (etc / "hostname").write_text(pod_name + "\n")
    for f in ("hosts", "hostname"):
        (etc / f).chmod(0o644)

    ops: list[dict[str, Any]] = [{"op": "tmpfs", "target": root, "options": "mode=0755"}]
    # The "image": merged-/usr layout of the host, its /etc, and the interpreter.
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            ops.append({"op": "symlink", "target": os.readlink(host), "path": f"{root}/{name}"})
        elif host.is_dir():
            ops += [{"op": "mkdirs", "path": f"{root}/{name}"}, {"op": "bind", "source": str(host), "target": f"{root}/{name}", "readonly": True}]
    for name in ("usr", "etc"):
        ops += [{"op": "mkdirs", "path": f"{root}/{name}"}, {"op": "bind", "source": f"/{name}", "target": f"{root}/{name}", "readonly": True}]
    image_ops, notes = _python_image_layer(root)
    ops += image_ops
    # What the runtime adds: /proc of the PID namespace, /dev with a private /dev/shm, read-only /sys, and the
    # kubelet's /etc/hosts and /etc/hostname.
    ops += [
        {"op": "mkdirs", "path": f"{root}/proc"},
        {"op": "proc", "target": f"{root}/proc"},
        {"op": "mkdirs", "path": f"{root}/dev"},
        {"op": "bind", "source": "/dev", "target": f"{root}/dev", "recursive": True},
        {"op": "tmpfs", "target": f"{root}/dev/shm", "options": "mode=1777,size=64m,nosuid,nodev"},
        {"op": "mkdirs", "path": f"{root}/sys"},
        {"op": "bind", "source": "/sys", "target": f"{root}/sys", "readonly": True},
        {"op": "bind", "source": str(etc / "hosts"), "target": f"{root}/etc/hosts", "readonly": False},
        {"op": "bind", "source": str(etc / "hostname"), "target": f"{root}/etc/hostname", "readonly": True},
    ]
    # The pod's volumeMounts at their real paths, parents first (containerd sorts by path depth).
    mounts = container.get("volumeMounts", [])
    for m in sorted(mounts, key=lambda m: len(Path(m["mountPath"]).parts)):
        if m.get("mountPropagation") not in (None, "None"):
            raise AssertionError("mount propagation is not emulated")
        source = volumes[m["name"]]
        if m.get("subPath") or m.get("subPathExpr"):
            sub = m.get("subPath") or expand(m["subPathExpr"], container_env(container).get)
            source = source / sub
            if not source.exists():  # the kubelet creates a missing subPath as a folder
                source.mkdir(parents=True)
        target = f"{root}{m['mountPath']}"
        # configMap, secret and projected volumes are always mounted read-only (since Kubernetes 1.10).
        readonly = bool(m.get("readOnly")) or kinds[m["name"]] in ("configMap", "secret", "projected")
        ops.append({"op": "mkdirs", "path": target})
        ops.append({"op": "bind", "source": str(source), "target": target, "readonly": readonly})
    if sc.get("readOnlyRootFilesystem"):
        ops.append({"op": "remount_ro", "target": root})
    ops = _expand_mkdirs(ops, root)

    env_defined = container_env(container)
    env = {**IMAGE_ENV, "HOSTNAME": pod_name, **env_defined}
    command = [expand(a, env_defined.get) for a in container.get("command", [])]
    args = [expand(a, env_defined.get) for a in container.get("args", [])]
    if not command:
        raise AssertionError("the container has no command: the image's entrypoint is not knowable here")
    argv = command + args
    groups = sorted({g for g in (gid, fs_group, *(pod_sc.get("supplementalGroups") or [])) if g is not None})
    caps = (sc.get("capabilities") or {}).get("drop") or []
    plan = {
        "mounts": ops,
        "root": root,
        "cwd": container.get("workingDir") or IMAGE_WORKDIR,
        "user": {
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "no_new_privs": sc.get("allowPrivilegeEscalation") is False,
            "drop_all_caps": "ALL" in caps,
        },
        "umask": 0o022,
        "argv": argv,
        "env": env,
        "grace": grace,
        "report": str(report),
    }
    # The kit root NVFlare gets with -m is the kit emptyDir's mount path.
    try:
        kit_root = argv[argv.index("-m", argv.index("-m") + 1) + 1]
    except ValueError:
        raise AssertionError(f"no kit root (-m) in the container's command line {argv}") from None
    kit_mount = next((m for m in mounts if m["mountPath"].rstrip("/") == kit_root.rstrip("/")), None)
    if kit_mount is None:
        raise AssertionError(f"the kit root {kit_root} is not a volumeMount of the container")
    kit_host = volumes[kit_mount["name"]]
    notes.append(f"volumes: {', '.join(f'{n}={k}' for n, k in kinds.items())}")
    return ServerPod(plan, volumes, mounts, container, argv, env, kit_root, kit_host, kit_host / "log.txt", notes)
