"""Several "machines" on one Linux host: network namespaces joined by a bridge, each with its own disk.

Each host is a network namespace (``ip netns``) with one veth pair whose other end sits on a bridge in
the root namespace. The bridge carries the shared services' address (``10.77.N.1``); hosts get
``10.77.N.11``, ``.12``... A host sees only its loopback and its veth address, so everything it reaches
goes over the bridge as it would over a LAN. ``N`` is drawn per run, and every interface and
namespace name starts with ``gsmh`` plus a per-run tag, so concurrent runs never meet.

Each host also gets its own mount namespace (``unshare --mount``) in which the other hosts' data
directories are covered by empty, unreadable tmpfs mounts: a process can only read files through
Postgres, Redis or the object store, never by accident through the shared filesystem.

Needs root and the ``ip`` and ``unshare`` tools; :func:`netns_unavailable` says why not, for a skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_PREFIX = "10.77"  # this test's subnet (10.77.0.0/16); one /24 of it per run
NAME_PREFIX = "gsmh"  # every namespace, bridge and veth name starts with it


class NetworkSetupFailed(RuntimeError):
    """An ``ip`` command failed; the message carries the command and its stderr."""


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here (a reason for a skip), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add` as a normal user fails with EPERM)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"the `{tool}` tool is not installed (iproute2 / util-linux)"
    probe = f"{NAME_PREFIX}{secrets.token_hex(3)}p"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if created.returncode != 0:
        return f"`ip netns add` is not allowed here: {created.stderr.strip() or created.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    bridge = f"{NAME_PREFIX}{secrets.token_hex(3)}b"
    created = subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], capture_output=True, text=True)
    if created.returncode != 0:
        return f"a bridge cannot be created here: {created.stderr.strip() or created.returncode}"
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    return None


@dataclass(frozen=True)
class Host:
    """One simulated machine: a network namespace, its address, and its private data directory."""

    name: str
    namespace: str
    address: str
    data_dir: Path
    hidden: tuple[Path, ...] = ()  # the other hosts' data directories, covered inside this host

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host: its network namespace and a mount namespace hiding the others' disks."""
        covers = "".join(f'mount -t tmpfs -o size=64k,mode=000 gsmh-hidden "{path}" && ' for path in self.hidden)
        script = f'{covers}exec "$@"'
        return ["ip", "netns", "exec", self.namespace, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh", *argv]  # fmt: skip


@dataclass
class Network:
    """A bridge with the services' address and the hosts attached to it; :meth:`close` removes everything."""

    root: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    subnet: int = field(default_factory=lambda: _free_subnet())
    hosts: list[Host] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{NAME_PREFIX}{self.tag}br"

    @property
    def services_address(self) -> str:
        """The bridge's address in the root namespace: where Postgres, Redis and the object store listen."""
        return f"{SUBNET_PREFIX}.{self.subnet}.1"

    def open(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _ip("addr", "add", f"{self.services_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_hosts(self, *names: str) -> list[Host]:
        """Create one host per name (single letters: they go into interface names of at most 15 characters)."""
        data_dirs = {name: self.root / f"host-{name}" for name in names}
        added = []
        for name in names:
            number = 11 + len(self.hosts)
            namespace, outside, inside = (f"{NAME_PREFIX}{self.tag}{name}{suffix}" for suffix in ("", "h", "n"))
            _ip("netns", "add", namespace)
            self._namespaces.append(namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._links.append(outside)  # deleting one end deletes the pair
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            address = f"{SUBNET_PREFIX}.{self.subnet}.{number}"
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            data_dirs[name].mkdir(parents=True)
            others = tuple(path for other, path in data_dirs.items() if other != name)
            host = Host(name=name, namespace=namespace, address=address, data_dir=data_dirs[name], hidden=others)
            self.hosts.append(host)
            added.append(host)
        return added

    def close(self) -> list[str]:
        """Remove the namespaces, veths and bridge this network made; returns what could not be removed."""
        leftovers = []
        for namespace in reversed(self._namespaces):
            if subprocess.run(["ip", "netns", "del", namespace], capture_output=True).returncode != 0:
                leftovers.append(namespace)
        for link in reversed(self._links):
            exists = subprocess.run(["ip", "link", "show", link], capture_output=True).returncode == 0
            if exists and subprocess.run(["ip", "link", "del", link], capture_output=True).returncode != 0:
                leftovers.append(link)
        self._namespaces.clear()
        self._links.clear()
        return leftovers


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkSetupFailed(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _free_subnet() -> int:
    """A third octet of 10.77.0.0/16 that no interface of this machine uses yet."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    candidates = [n for n in range(2, 255) if f" {SUBNET_PREFIX}.{n}." not in used]
    if not candidates:
        raise NetworkSetupFailed(f"every /24 of {SUBNET_PREFIX}.0.0/16 is in use on this machine")
    return secrets.choice(candidates)
