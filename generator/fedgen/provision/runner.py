"""Parallel certificate issuance: NVFlare in worker processes (`python -m fedgen.provision.worker`).

A new certificate costs one RSA-2048 key generation inside NVFlare (~45 ms on one core, more on slow
machines), so a cold render of a large federation is almost all key generation. When enough certificates are
new they are issued in worker processes: first, in this process, NVFlare creates the root CA (when the seed
has none) and issues the server's certificate (when needed), because every NVFlare project holds the server
and it must be issued once; then the other new participants are split into contiguous groups, one per
worker, and each worker has NVFlare issue its group in its own private temporary root seeded with the root CA
and the server entry; their cert.json entries are merged. Workers: the `workers=` argument, else
FEDGEN_PROVISION_WORKERS, else the CPUs this process may use, capped at MAX_WORKERS and at one worker per
MIN_PER_WORKER new certificates; with fewer than 2, the caller issues everything in its own process.

Progress: with a `progress(done, total)` callback each worker issues its group in batches of about
1/PROGRESS_STEPS of it (each batch one NVFlare run, which reloads the root CA and server keys: ~0.1 s) and
reports after each; without one a worker runs NVFlare once for its whole group and reports nothing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fedgen.errors import ExternalError, InputError
from fedgen.provision import lighter
from fedgen.provision.roster import ROOT_CERT, ROOT_KEYS, Roster

WORKERS_ENV = "FEDGEN_PROVISION_WORKERS"
MAX_WORKERS = 16
# A worker process costs an interpreter start and NVFlare's import (~1 s of CPU): only worth it for a batch.
MIN_PER_WORKER = 16
# With a progress callback: about this many reports per worker, each batch at least MIN_PER_WORKER certificates.
PROGRESS_STEPS = 16

Progress = Callable[[int, int], None]  # (certificates done, certificates in all)


def worker_count(workers: int | None, new_certificates: int) -> int:
    """How many processes issue the new certificates (1: no worker processes)."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            if not env.isdigit() or int(env) < 1:
                raise InputError(f"{WORKERS_ENV}={env!r}: expected a whole number of worker processes, 1 or more")
            workers = int(env)
        else:
            workers = min(_available_cpus(), MAX_WORKERS, new_certificates // MIN_PER_WORKER)
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers={workers!r}: expected a whole number of worker processes, 1 or more")
    return max(1, min(workers, new_certificates))


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    """Contiguous groups of near-equal size, in order."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return [g for g in groups if g]


def issue_in_parallel(roster: Roster, seed: dict[str, Any], to_issue: list[str], workers: int, progress: Progress | None = None) -> dict[str, Any]:
    """Issue a certificate for every name in to_issue; return the seed with the root CA and those entries."""
    seed = dict(seed)
    server = roster.server_name
    total, done = len(to_issue), 0
    if progress is not None:
        progress(0, total)
    if ROOT_CERT not in seed or server in to_issue:
        # The root CA and the server first, here: every NVFlare project holds the server, so each worker
        # is seeded with its entry and none issues it again.
        base = {k: seed[k] for k in ROOT_KEYS if k in seed}
        new_cert, _ = lighter.run(roster, [server], base, [], with_kits=False)
        lighter.check_issued(new_cert, [server])
        if ROOT_CERT in seed and new_cert[ROOT_CERT] != seed[ROOT_CERT]:
            raise ExternalError(f"{lighter.FAILED}: the root CA changed unexpectedly")
        seed.update({k: new_cert[k] for k in (*ROOT_KEYS, server)})
        if server in to_issue:
            done = 1
            if progress is not None:
                progress(done, total)
    base = {k: seed[k] for k in (*ROOT_KEYS, server)}
    groups = split([n for n in to_issue if n != server], workers)
    requests: list[dict[str, Any]] = [{"roster": roster.to_json(), "group": group, "base": base} for group in groups]
    reporter = None
    if progress is not None:
        for request, group in zip(requests, groups):
            request["batch"] = max(MIN_PER_WORKER, -(-len(group) // PROGRESS_STEPS))
        reporter = functools.partial(_report, progress, done, total)
    for group, entries in zip(groups, run_workers(requests, reporter)):
        lighter.check_issued({**base, **entries}, group)
        seed.update({name: entries[name] for name in group})
    return seed


def _report(progress: Progress, before: int, total: int, issued: int) -> None:
    progress(before + issued, total)


def run_workers(requests: list[dict[str, Any]], progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Run one worker process per request, all at once; return their results in order. `progress(n)`: n
    certificates issued so far by all workers together, called as workers report (requests with "batch").

    Workers are `python -m fedgen.provision.worker` processes rather than multiprocessing children: 'spawn'
    and 'forkserver' re-run the caller's __main__ module in every child (a script calling fedgen without a
    main guard would run again, or fail), and 'fork' is unsafe in a process with threads. A request (which
    holds the root CA key) goes over the worker's stdin, never to disk; the stdin stays open while the worker
    runs, and its end tells the worker that this process is gone (it then removes its temporary root)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for request in requests:
            proc = spawn_worker()
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        replies = _read_replies(procs, progress)
        results = []
        for proc, reply in zip(procs, replies):
            code = proc.wait()
            if reply is None:
                raise ExternalError(f"{lighter.FAILED}: a provisioning worker exited with status {code}")
            if "error" in reply or not isinstance(reply.get("entries"), dict):
                raise ExternalError(str(reply.get("error") or f"{lighter.FAILED}: a provisioning worker gave no result"))
            results.append(reply["entries"])
        return results
    except OSError as exc:
        raise ExternalError(f"{lighter.FAILED}: cannot run a provisioning worker ({exc})") from None
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()  # a worker still running sees the end of its input and stops
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()


def _read_replies(procs: list[subprocess.Popen[bytes]], progress: Callable[[int], None] | None) -> list[dict[str, Any] | None]:
    """Every worker's output, read as it comes: JSON lines, {"progress": n} (certificates that worker has
    issued so far) and then its reply. Per worker its reply (an object), or None when it gave none."""
    buffers = [b""] * len(procs)
    issued = [0] * len(procs)
    replies: list[dict[str, Any] | None] = [None] * len(procs)
    with selectors.DefaultSelector() as selector:
        for i, proc in enumerate(procs):
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, i)
        while selector.get_map():
            for key, _ in selector.select():
                i = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    lines, buffers[i] = [buffers[i]], b""
                else:
                    *lines, buffers[i] = (buffers[i] + chunk).split(b"\n")
                for line in filter(None, lines):
                    try:
                        message = json.loads(line)
                    except ValueError:
                        message = None
                    if isinstance(message, dict) and isinstance(message.get("progress"), int) and len(message) == 1:
                        issued[i] = message["progress"]
                        if progress is not None:
                            progress(sum(issued))
                    else:
                        replies[i] = message if isinstance(message, dict) else None
    return replies


def spawn_worker() -> subprocess.Popen[bytes]:
    """A `python -m fedgen.provision.worker` process (see that module for the protocol); raises OSError."""
    import fedgen

    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fedgen.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "fedgen.provision.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
