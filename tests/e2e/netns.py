"""Network namespaces for the end-to-end federation: one for the server, one per site and for the admin.

Each participant namespace is joined to the server's by its own veth pair, point-to-point: the server end of
every pair carries the same address (SERVER_IP/32, peer = the participant's address), the participant end
carries 10.77.0.<n>/32 with SERVER_IP as peer. So every participant reaches the server at one address, nothing
is routed anywhere else, and no address or interface is added to the root namespace. The names a participant
dials are mapped in /etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts (the part of
`docker run --add-host`). Everything created is recorded and removed by `teardown`, which never raises.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from fedgen.holder import pid_alive

SERVER_IP = "10.77.0.1"
SUBNET = "10.77.0"
NETNS_ETC = Path("/etc/netns")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise PrerequisiteError(message)


class PrerequisiteError(AssertionError):
    """Something the end-to-end test needs from the machine is missing: a failure, never a skip."""


def check_prerequisites() -> None:
    require(os.geteuid() == 0, "the end-to-end test must run as root (network and mount namespaces, chroot, setuid)")
    for tool in ("ip", "unshare", "mount", "umount"):
        require(shutil.which(tool) is not None, f"`{tool}` is missing: install iproute2 / util-linux (scripts/bootstrap.sh does)")
    probe = f"fgeprobe{secrets.token_hex(3)}"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    require(proc.returncode == 0, f"`ip netns add` does not work here: {proc.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


@dataclass
class Leg:
    name: str  # participant label
    netns: str
    address: str
    veth_server: str
    veth_peer: str


def _prefix() -> str:
    """fge + the test process's PID (6 hex digits) + 1 random hex digit: short enough for veth names (15
    characters), and it tells `reap_stale` whose namespaces these are."""
    return f"fge{os.getpid():06x}{secrets.token_hex(1)[0]}"


STALE = re.compile(r"^fge([0-9a-f]{6})[0-9a-f]-")


def reap_stale() -> list[str]:
    """Remove namespaces and /etc/netns entries left by an end-to-end run whose test process no longer exists
    (killed hard, so no finalizer ran). Namespaces of live runs are never touched."""
    removed = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in listing.splitlines() if line.strip()}
    if NETNS_ETC.is_dir():
        names |= {p.name for p in NETNS_ETC.iterdir()}
    for name in sorted(names):
        m = STALE.match(name)
        if not m or pid_alive(int(m.group(1), 16)):
            continue
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        removed.append(name)
    if removed:
        try:
            NETNS_ETC.rmdir()  # only succeeds when empty
        except OSError:
            pass
    return removed


@dataclass
class Topology:
    prefix: str = field(default_factory=_prefix)
    server_ns: str = ""
    legs: dict[str, Leg] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _etc: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)
    _made_etc: bool = False

    def start(self) -> None:
        self.stale_removed = reap_stale()
        self._made_etc = not NETNS_ETC.exists()
        self.server_ns = self._add_ns("srv")

    def _add_ns(self, label: str) -> str:
        name = f"{self.prefix}-{label}"
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def add_participant(self, label: str, dialled: list[str], *, mapped_to: str = SERVER_IP) -> Leg:
        """A namespace for one participant, its veth pair to the server, and the hosts mapping (the dialled
        names to mapped_to: the server, or e.g. 127.0.0.1 where something in between listens)."""
        n = len(self.legs) + 2
        assert n < 255
        ns = self._add_ns(label)
        veth_server, veth_peer = f"{self.prefix}s{n}", f"{self.prefix}p{n}"
        address = f"{SUBNET}.{n}"
        # Created directly inside the two namespaces: nothing appears in the root namespace, even briefly.
        ip("link", "add", "name", veth_server, "netns", self.server_ns, "type", "veth", "peer", "name", veth_peer, "netns", ns)
        ip("-n", self.server_ns, "addr", "add", f"{SERVER_IP}/32", "peer", f"{address}/32", "dev", veth_server)
        ip("-n", ns, "addr", "add", f"{address}/32", "peer", f"{SERVER_IP}/32", "dev", veth_peer)
        ip("-n", self.server_ns, "link", "set", veth_server, "up")
        ip("-n", ns, "link", "set", veth_peer, "up")
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=False)
        self._etc.append(etc)
        (etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{label}\n" + "".join(f"{mapped_to}\t{name}\n" for name in dialled)
        )
        leg = Leg(label, ns, address, veth_server, veth_peer)
        self.legs[label] = leg
        return leg

    def pids(self) -> dict[str, list[int]]:
        """Processes still inside each of our namespaces (`ip netns pids`)."""
        out = {}
        for ns in self._namespaces:
            proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
            out[ns] = [int(p) for p in proc.stdout.split()]
        return out

    def describe(self) -> dict[str, object]:
        return {
            "server": {"netns": self.server_ns, "address": SERVER_IP},
            "participants": {
                leg.name: {"netns": leg.netns, "address": leg.address, "veth": f"{leg.veth_peer} <-> {leg.veth_server}"} for leg in self.legs.values()
            },
        }

    def teardown(self) -> None:
        """Delete the namespaces (their veths go with them) and /etc/netns entries. Records, never raises."""
        for etc in reversed(self._etc):
            try:
                shutil.rmtree(etc)
            except OSError as exc:
                self.errors.append(f"rm {etc}: {exc}")
        self._etc.clear()
        for ns in reversed(self._namespaces):
            proc = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if proc.returncode != 0:
                self.errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        self._namespaces.clear()
        try:
            if self._made_etc and NETNS_ETC.is_dir() and not any(NETNS_ETC.iterdir()):
                NETNS_ETC.rmdir()  # only when this run created it and nobody else uses it now
        except OSError:
            pass

    def leftovers(self) -> list[str]:
        """Anything of ours still on the machine after teardown (for the cleanup assertion)."""
        left = []
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left += [line.split()[0] for line in listing.splitlines() if line.startswith(self.prefix)]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if self.prefix in line]
        if NETNS_ETC.is_dir():
            left += [str(p) for p in NETNS_ETC.iterdir() if p.name.startswith(self.prefix)]
        return left
