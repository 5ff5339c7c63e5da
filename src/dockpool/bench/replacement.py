"""Replacement latency: a member is killed from outside; how fast does the pool react?

Timestamps are wall-clock nanoseconds on one host: the `die` event's `timeNano` (dockerd's
clock), `time.time_ns()` just before `kill`, and `time.time_ns()` in the receivers of
dockpool's signals (`member_lost`, `member_creating` of the replacement, its `member_ready`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dockpool import POOL_LABEL, ContainerPool, ContainerSpec, PoolTimeoutError, signals
from dockpool.bench._activity import EventReader
from dockpool.bench._harness import BenchRun, Result, outliers

WATCHED = ("member_lost", "member_creating", "member_ready", "member_retired")
WAIT = 60.0


@dataclass(frozen=True)
class Rec:
    signal: str
    key: str
    container_id: str
    reason: str
    t_ns: int


class SignalRecorder:
    """Records the member signals of one pool, with the wall-clock time they fired."""

    def __init__(self, pool: ContainerPool) -> None:
        self.pool = pool
        self.cond = threading.Condition()
        self.recs: list[Rec] = []
        self._connected: list[tuple[Any, Callable[..., None]]] = []
        for name in WATCHED:
            sig = getattr(signals, name)
            recv = self._receiver(name)
            sig.connect(recv, sender=pool, weak=False)
            self._connected.append((sig, recv))

    def _receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: object, **payload: Any) -> None:
            now = time.time_ns()
            member = payload["member"]
            rec = Rec(name, member.key, member.container_id or "", payload.get("reason", ""), now)
            with self.cond:
                self.recs.append(rec)
                self.cond.notify_all()

        return receive

    def wait(
        self, pred: Callable[[Rec], bool], since: int, timeout: float = WAIT
    ) -> tuple[int, Rec] | None:
        """The first (index, record) from index `since` on that satisfies `pred`, or None."""
        found: list[tuple[int, Rec]] = []

        def look() -> bool:
            hits = (ir for ir in enumerate(self.recs[since:], since) if pred(ir[1]))
            hit = next(hits, None)
            found[:] = [hit] if hit else []
            return bool(found)

        with self.cond:
            self.cond.wait_for(look, timeout=timeout)
        return found[0] if found else None

    def close(self) -> None:
        for sig, recv in self._connected:
            sig.disconnect(recv, sender=self.pool)


class DieReader:
    """Our own docker events reader: the `die` times of a pool's members (survives restarts)."""

    def __init__(self, pool_name: str) -> None:
        filters = {"type": ["container"], "event": ["die"], "label": [f"{POOL_LABEL}={pool_name}"]}
        self.cond = threading.Condition()
        self.died: dict[str, tuple[int, int]] = {}  # id -> (timeNano, received at)
        self.reader = EventReader(filters, self._seen, name="bench-die-reader").start()

    def _seen(self, raw: dict[str, Any]) -> None:
        now = time.time_ns()
        cid = (raw.get("Actor") or {}).get("ID") or raw.get("id", "")
        with self.cond:
            self.died.setdefault(cid, (int(raw.get("timeNano", 0)), now))
            self.cond.notify_all()

    def wait(self, cid: str, timeout: float = 5.0) -> tuple[int, int] | None:
        with self.cond:
            self.cond.wait_for(lambda: cid in self.died, timeout=timeout)
            return self.died.get(cid)

    def close(self) -> None:
        self.reader.stop()


@dataclass
class Kill:
    index: int
    victim: str
    kill_ns: int
    die_ns: int | None = None  # the die event's timeNano
    die_seen_ns: int | None = None  # when our reader received it
    lost_ns: int | None = None
    creating_ns: int | None = None
    ready_ns: int | None = None
    replacement: str = ""
    reason: str = ""


def _secs(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else (b - a) / 1e9


def run_kills(
    run: BenchRun, n: int, size: int = 3, spec: ContainerSpec | None = None, **options: Any
) -> Result:
    kills: list[Kill] = []
    with run.session("repl", size, spec=spec, **options) as pool:
        rec, dies = SignalRecorder(pool), DieReader(pool.name)
        try:
            for i in range(n):
                settle(pool)
                kills.append(_kill_one(run, pool, rec, dies, i))
        finally:
            rec.close()
            dies.close()
    return _report(kills, size)


def settle(pool: ContainerPool, timeout: float = WAIT) -> None:
    """Full, and nothing warming or being removed: the next kill starts from a quiet pool."""
    deadline = time.monotonic() + timeout
    pool.wait_until_full(timeout=timeout)
    while time.monotonic() < deadline:
        st = pool.stats()
        if st.ready >= st.size and st.warming == 0 and st.retiring == 0:
            return
        time.sleep(0.05)
    raise PoolTimeoutError(f"pool {pool.name} did not settle in {timeout} s")


def _kill_one(
    run: BenchRun, pool: ContainerPool, rec: SignalRecorder, dies: DieReader, i: int
) -> Kill:
    running = run.client.api.containers(
        filters={"label": f"{POOL_LABEL}={pool.name}", "status": "running"}
    )
    prefix = f"/dockpool-{pool.name}-"
    victim = next((c["Id"] for c in running if c["Names"][0].startswith(prefix)), None)
    if victim is None:
        raise RuntimeError(f"pool {pool.name}: no running member to kill")
    since = len(rec.recs)
    k = Kill(i, victim, time.time_ns())
    run.client.api.kill(victim)
    lost = rec.wait(lambda r: r.signal == "member_lost" and r.container_id == victim, since)
    if lost is not None:  # its replacement: the next create after the loss (same thread)
        k.lost_ns, k.reason = lost[1].t_ns, lost[1].reason
        creating = rec.wait(lambda r: r.signal == "member_creating", lost[0])
        if creating is not None:
            k.creating_ns, k.replacement = creating[1].t_ns, creating[1].key
            key = creating[1].key
            ready = rec.wait(lambda r: r.signal == "member_ready" and r.key == key, creating[0])
            k.ready_ns = ready[1].t_ns if ready else None
    die = dies.wait(victim)
    if die is not None:
        k.die_ns, k.die_seen_ns = die
    return k


def _report(kills: list[Kill], size: int) -> Result:
    res = Result(f"Replacement latency (member killed; pool of {size})")
    pairs = {
        "kill -> die (dockerd)": ("kill_ns", "die_ns"),
        "die -> member_lost": ("die_ns", "lost_ns"),
        "die -> member_creating": ("die_ns", "creating_ns"),
        "die -> member_ready": ("die_ns", "ready_ns"),
        "kill -> member_creating": ("kill_ns", "creating_ns"),
        "kill -> member_ready": ("kill_ns", "ready_ns"),
        "die -> our reader got it": ("die_ns", "die_seen_ns"),
    }
    for label, (a, b) in pairs.items():
        values = [_secs(getattr(k, a), getattr(k, b)) for k in kills]
        res.series[label] = [v for v in values if v is not None]
    res.values["kills"] = len(kills)
    for what in ("die_ns", "lost_ns", "creating_ns", "ready_ns"):
        missing = sum(getattr(k, what) is None for k in kills)
        if missing:
            res.notes.append(f"{missing} kill(s) without {what[:-3]} within {WAIT:.0f} s")
    reasons = sorted({k.reason for k in kills})
    res.values["member_lost reasons"] = ", ".join(reasons)
    ready = [k for k in kills if k.die_ns and k.ready_ns]
    for i in outliers([(k.ready_ns or 0) - (k.die_ns or 0) for k in ready]):
        k = ready[i]
        res.notes.append(
            f"slow replacement #{k.index}: die->lost {_fmt(k.die_ns, k.lost_ns)}, "
            f"die->creating {_fmt(k.die_ns, k.creating_ns)}, "
            f"creating->ready {_fmt(k.creating_ns, k.ready_ns)}"
        )
    res.raw["kills"] = [asdict(k) for k in kills]
    return res


def _fmt(a: int | None, b: int | None) -> str:
    v = _secs(a, b)
    return "n/a" if v is None else f"{1e3 * v:.1f} ms"
