"""What the test cluster changes on the host, and taking all of it back.

The node's address lives on an interface of its own (a port-less bridge: this kernel has no
``dummy`` driver, and a local address answers on a bridge without ports just the same); the CNI
bridge, pod network namespaces, volume and overlay mounts, kubelet's cgroups, kube-proxy's
iptables chains and two sysctls come and go with the cluster. :func:`snapshot` records the host
before the cluster starts and after it is gone; :func:`leftovers` names every difference, so
teardown is checked, not assumed. :func:`sweep` removes what a cluster left behind from its work
directory alone: it also cleans up after a session that was killed (SIGKILL) before it could
tear down.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster.artifacts import cache_dir
from tests.support.cluster.configs import BRIDGE, NODE_IFACE, NODE_IP, POD_CIDR

CGROUP_ROOT = Path("/sys/fs/cgroup")
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
ISOLATION_CHAIN = "TOKENPOOL-ISOLATE"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60)


# --- the node's own network --------------------------------------------------------------------


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (Path("/proc/sys") / name).read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)


def set_up_network() -> None:
    """The node address on an interface of its own, and pods fenced in: whatever a pod sends that is
    not for another pod (or the host itself, which is not forwarded) is dropped."""
    run("ip", "link", "add", NODE_IFACE, "type", "bridge")
    run("ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_IFACE)
    run("ip", "link", "set", NODE_IFACE, "up")
    # Pod-to-Service traffic crosses the bridge: it must go through iptables (kube-proxy's DNAT).
    write_sysctls({"net/bridge/bridge-nf-call-iptables": "1"})
    run("iptables", "-N", ISOLATION_CHAIN)
    run("iptables", "-A", ISOLATION_CHAIN, "-s", POD_CIDR, "!", "-d", POD_CIDR, "-j", "DROP")
    run("iptables", "-I", "FORWARD", "1", "-j", ISOLATION_CHAIN)


def tear_down_network() -> None:
    for argv in (
        ("iptables", "-D", "FORWARD", "-j", ISOLATION_CHAIN),
        ("iptables", "-F", ISOLATION_CHAIN),
        ("iptables", "-X", ISOLATION_CHAIN),
        ("ip", "link", "delete", BRIDGE),
        ("ip", "link", "delete", NODE_IFACE),
    ):
        run(*argv, check=False)


# --- processes, mounts, cgroups -----------------------------------------------------------------


def processes_using(workdir: Path) -> list[int]:
    """PIDs whose command line names the work directory (components, containerd shims)."""
    needle = str(workdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def kubepods_cgroups() -> list[Path]:
    """The cgroups kubelet made (``kubepods`` trees in every v1 hierarchy), deepest first."""
    dirs: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        top = hierarchy / "kubepods"
        if top.is_dir():
            dirs += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def container_processes() -> list[int]:
    pids: set[int] = set()
    for cgroup in kubepods_cgroups():
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    return sorted(pids)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    prefix = str(path).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    for _ in range(3):  # a mount can hide another at the same point
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            run("umount", "-l", point, check=False)


def sweep(workdir: Path) -> None:
    """Remove what a cluster using ``workdir`` left: processes, containers, mounts, cgroups,
    interfaces and iptables chains (kube-proxy's own are removed by ``kube-proxy --cleanup``)."""
    for _ in range(20):
        pids = processes_using(workdir) + container_processes()
        if not pids:
            break
        kill_all(pids)
        time.sleep(0.1)  # waiting for the kernel to reap killed processes, not test synchronisation
    unmount_all(workdir)
    for cgroup in kubepods_cgroups():
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    tear_down_network()


# --- checking ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostState:
    links: frozenset[str]
    mounts: frozenset[str]
    chains: frozenset[str]
    sysctls: tuple[tuple[str, str], ...]
    kubepods: bool


def _chains() -> frozenset[str]:
    """Every iptables chain as ``tool:table:chain`` (IPv4 and IPv6)."""
    names: set[str] = set()
    for tool in ("iptables", "ip6tables"):
        table = ""
        for line in run(f"{tool}-save", check=False).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                names.add(f"{tool}:{table}:{line[1:].split()[0]}")
    return frozenset(names)


def remove_chains(chains: frozenset[str]) -> None:
    """Delete these chains: first every rule that jumps to one, then the chains themselves
    (kubelet's KUBE-FIREWALL and canaries; kube-proxy's are gone already after --cleanup)."""
    by_table: dict[tuple[str, str], set[str]] = {}
    for entry in chains:
        tool, table, chain = entry.split(":", 2)
        by_table.setdefault((tool, table), set()).add(chain)
    for (tool, table), doomed in by_table.items():
        for line in run(f"{tool}-save", "-t", table, check=False).stdout.splitlines():
            words = line.split()
            if line.startswith("-A ") and "-j" in words and words[words.index("-j") + 1] in doomed:
                run(tool, "-t", table, "-D", *words[1:], check=False)
        for chain in doomed:
            run(tool, "-t", table, "-F", chain, check=False)
        for chain in doomed:
            run(tool, "-t", table, "-X", chain, check=False)


def snapshot() -> HostState:
    links = frozenset(re.findall(r"^\d+: ([^:@]+)", run("ip", "-o", "link").stdout, re.MULTILINE))
    mounts = frozenset(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return HostState(
        links, mounts, _chains(), tuple(sorted(read_sysctls().items())), bool(kubepods_cgroups())
    )


def leftovers(before: HostState, after: HostState, workdir: Path) -> list[str]:
    """Everything the cluster added to the host and did not take back, in words."""
    problems = [f"network interface {n}" for n in sorted(after.links - before.links)]
    problems += [f"mount {m}" for m in sorted(after.mounts - before.mounts) if not _image_build(m)]
    problems += [f"iptables chain {c}" for c in sorted(after.chains - before.chains)]
    if after.sysctls != before.sysctls:
        problems.append(f"sysctls {dict(before.sysctls)} -> {dict(after.sysctls)}")
    if after.kubepods and not before.kubepods:
        problems.append("kubepods cgroups")
    problems += [
        f"process {pid}: {_cmdline(pid)}" for pid in processes_using(workdir) + container_processes()
    ]
    return problems


def _image_build(mount: str) -> bool:
    """A mount of the image build's private dockerd (hack/cluster/build-images.sh, which removes
    it itself when the build ends): another checkout on this host may be building meanwhile."""
    return mount.startswith((str(cache_dir() / "docker"), "/tmp/tokenpool-dockerd-"))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"
