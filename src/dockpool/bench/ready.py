"""Time to the first ready conversation: from "a conversation asks for a sandbox" to "its server
answers GET /ready with 200" on the published host port.

Three ways to get there, one sample per conversation:
- pooled:     `pool.claim` from a full, settled pool, then GET /ready (answers at once);
- cold:       `pool.claim` at pool size 0: dockpool's cold path creates, starts and waits for
              the engine's health check, then GET /ready;
- docker run: no dockpool at all: docker-py create + start, then poll GET /ready.
Every container is the conversation's, i.e. ours: it is removed after its sample.
"""

from __future__ import annotations

import contextlib
import http.client
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from dockpool import ContainerPool
from dockpool.bench._harness import BenchRun, Result
from dockpool.bench.replacement import settle
from dockpool.bench.targets import PORT, READY_PATH, Target

Progress = Callable[[str], None]
READY = "ask -> /ready 200"  # the series every mode reports
CLAIM = "claim returned"


@dataclass
class Sample:
    mode: str
    index: int
    total: float  # seconds from the ask to the first 200 from /ready (NaN on error)
    claim: float  # seconds until the claim (or docker start) returned
    from_pool: bool
    polls: int = 0  # GET /ready requests made (the last one answered 200)
    start: float = 0.0  # seconds after the round began that this conversation asked
    round: int = 0
    container: str = ""
    error: str = ""


def get_status(port: int, path: str = READY_PATH, timeout: float = 2.0) -> int:
    """HTTP status of GET 127.0.0.1:port/path; 0 if nothing answered (refused, reset, ...)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def wait_ready(port: int, deadline: float, poll: float) -> int:
    """Poll GET /ready until it answers 200; the number of requests. TimeoutError after
    `deadline` (time.perf_counter())."""
    polls = 0
    while True:
        polls += 1
        if get_status(port) == 200:
            return polls
        if time.perf_counter() >= deadline:
            raise TimeoutError(f"/ready on port {port} did not answer 200 after {polls} polls")
        time.sleep(poll)


def converse(
    pool: ContainerPool, target: Target, mode: str, name: str, index: int, t0: float
) -> Sample:
    """One conversation through the pool: claim, then GET /ready until 200."""
    asked = time.perf_counter()
    sample = Sample(mode, index, float("nan"), float("nan"), False, start=asked - t0)
    try:
        lease = pool.claim(name, timeout=target.boot_timeout)
        sample.claim = time.perf_counter() - asked
        sample.from_pool, sample.container = lease.from_pool, lease.container_id
        deadline = asked + target.boot_timeout
        sample.polls = wait_ready(lease.ports[PORT], deadline, target.poll)
        sample.total = time.perf_counter() - asked
    except Exception as exc:
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
    return sample


def pooled(run: BenchRun, target: Target, progress: Progress) -> tuple[Result, ContainerPool]:
    """N conversations one after another, each from a full pool whose refill has settled.

    Returns the pool still open (the caller measures its members, then closes it)."""
    n, size = target.sizes.pooled, target.sizes.pool
    pool = run.pool("pooled", size, spec=target.spec(run), **target.options)
    samples: list[Sample] = []
    for i in range(n):
        progress(f"pooled {i + 1}/{n} (waiting for a full pool of {size})")
        settle(pool, timeout=2 * target.boot_timeout)
        sample = converse(pool, target, "pooled", f"{pool.name}-p{i}", i, time.perf_counter())
        samples.append(sample)
        _drop(run, sample)
    stats = pool.stats()
    res = to_result(f"pooled: claim from a full pool of {size}, then GET /ready", samples)
    res.values["pool hits/misses"] = f"{stats.hits}/{stats.misses}"
    return res, pool


def cold(run: BenchRun, target: Target, progress: Progress) -> Result:
    """N conversations at pool size 0: dockpool creates, starts and waits for healthy."""
    n = target.sizes.cold
    samples: list[Sample] = []
    with run.session("cold", 0, spec=target.spec(run), **target.options) as pool:
        for i in range(n):
            progress(f"cold {i + 1}/{n}")
            sample = converse(pool, target, "cold", f"{pool.name}-c{i}", i, time.perf_counter())
            samples.append(sample)
            _drop(run, sample)
    return to_result("cold: claim at pool size 0 (create + start + healthy), GET /ready", samples)


def docker_run(run: BenchRun, target: Target, progress: Progress) -> Result:
    """N conversations without dockpool: docker-py create + start, then poll GET /ready."""
    n, api = target.sizes.docker_run, run.client.api
    spec = target.spec(run)
    samples: list[Sample] = []
    for i in range(n):
        progress(f"docker run {i + 1}/{n}")
        env = dict(spec.environment) | {k: secrets.token_urlsafe(24) for k in spec.random_env}
        asked = time.perf_counter()
        sample = Sample("docker run", i, float("nan"), float("nan"), False)
        try:
            cid = api.create_container(
                target.image,
                name=run.pool_name(f"run{i}"),
                labels=run.label,
                environment=env,
                ports=[PORT],
                host_config=api.create_host_config(port_bindings={PORT: ("127.0.0.1", None)}),
            )["Id"]
            sample.container = cid
            api.start(cid)
            port = int(api.port(cid, PORT)[0]["HostPort"])
            sample.claim = time.perf_counter() - asked
            sample.polls = wait_ready(port, asked + target.boot_timeout, target.poll)
            sample.total = time.perf_counter() - asked
        except Exception as exc:
            sample.error = f"{type(exc).__name__}: {exc}"[:300]
        samples.append(sample)
        _drop(run, sample)
    res = to_result("docker run (no dockpool): create + start, poll GET /ready", samples)
    res.notes.append(
        f"GET /ready polled every {1e3 * target.poll:.0f} ms; no engine health check involved"
    )
    return res


def _drop(run: BenchRun, sample: Sample) -> None:
    if sample.container:
        with contextlib.suppress(Exception):  # the run's final sweep catches what is left
            run.remove(sample.container)


def to_result(title: str, samples: list[Sample]) -> Result:
    ok = [s for s in samples if not s.error]
    hits = sum(s.from_pool for s in ok)
    res = Result(title)
    res.series[READY] = [s.total for s in ok]
    res.series[CLAIM] = [s.claim for s in ok]
    res.values["conversations"] = len(samples)
    res.values["hit rate"] = f"{hits}/{len(samples)} ({100.0 * hits / max(1, len(samples)):.0f}%)"
    polls = [s.polls for s in ok]
    if polls:
        res.values["GET /ready requests per conversation"] = f"{min(polls)}..{max(polls)}"
    res.notes += [f"#{s.index} (round {s.round}) failed: {s.error}" for s in samples if s.error]
    res.raw["samples"] = [asdict(s) for s in samples]
    return res
