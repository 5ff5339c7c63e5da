"""The fault proxy against the real engine, driven by dockpool's own adapter and event source.

These pin what the proxy promises (everything passes untouched unless a fault is armed; a lost
answer means the engine acted, a refused call means it did not; cuts end streams and attaches)
and, through it, what dockpool's adapter raises when the connection fails. The engine's state
is always checked directly, never through the proxy.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import docker
import pytest

from dockpool._adapters.docker_api import DockerAdapter
from dockpool._adapters.event_stream import DockerEventSource, StreamEnded
from dockpool._core.errors import DaemonUnavailableError, ImageNotFoundError
from tests.engine_help import RUN_ID, RUN_LABEL_KEY, engine_socket_path, wait_until
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.docker


class Engine:
    """One engine reached directly (not through the proxy), and this test's labels on it."""

    def __init__(self, socket_path: str, image: str) -> None:
        self.socket = socket_path
        self.image = image
        self.direct = DockerAdapter(base_url=f"unix://{socket_path}")
        case = uuid.uuid4().hex[:12]
        self.labels = {RUN_LABEL_KEY: RUN_ID, "dockpool.test.case": case}
        self._names = iter(range(1_000))
        self._case = case

    def name(self) -> str:
        """A container name no other test uses."""
        return f"fault-proxy-{self._case}-{next(self._names)}"

    def remove_all(self, *, dump: bool) -> None:
        for view in self.direct.list(self.labels):
            if dump:
                print(f"[post-mortem] {view.name} ({view.id[:12]}): {view.status}")
            self.direct.remove(view.id)


@pytest.fixture
def engine_socket() -> str:
    """The socket of the engine under test (scripts/test.sh runs the suite once per engine)."""
    return engine_socket_path()


@pytest.fixture
def engine(request: pytest.FixtureRequest, engine_socket: str, stub_image: str) -> Iterator[Engine]:
    """The engine; every container carrying this test's labels is removed at teardown."""
    if not Path(engine_socket).exists():
        pytest.skip(f"no engine at {engine_socket}")
    eng = Engine(engine_socket, stub_image)
    try:
        eng.direct.resolve_image(stub_image)
    except ImageNotFoundError:
        eng.direct.close()
        pytest.skip(f"{stub_image} is not on the engine at {engine_socket}")
    try:
        yield eng
    finally:
        report = getattr(request.node, "rep_call", None)
        eng.remove_all(dump=report is not None and report.failed)
        eng.direct.close()


@pytest.fixture
def proxy(engine: Engine) -> Iterator[FaultProxy]:
    """A started proxy in front of the engine; at teardown no proxy thread may be left."""
    with FaultProxy(engine.socket) as fault_proxy:
        yield fault_proxy
    left = [t.name for t in threading.enumerate() if t.name.startswith("fault-proxy-")]
    assert not left, f"proxy threads left behind: {left}"


@pytest.fixture
def adapter(proxy: FaultProxy) -> Iterator[DockerAdapter]:
    """dockpool's adapter, talking to the engine through the proxy."""
    through = DockerAdapter(base_url=proxy.url)
    yield through
    through.close()


def events_source(engine: Engine, proxy: FaultProxy) -> DockerEventSource:
    return DockerEventSource(engine.labels, base_url=proxy.url, rollover=30.0, grace=5.0)


def test_every_call_passes_through(
    engine: Engine, proxy: FaultProxy, adapter: DockerAdapter
) -> None:
    """With nothing armed, create, start, rename, inspect, list, remove and the event stream
    all work through the proxy, and it counts each call under its endpoint."""
    source = events_source(engine, proxy)
    events = source.open(None)
    name, new_name = engine.name(), engine.name()
    cid = adapter.create_marker(name, engine.labels, engine.image, stdin=False)
    adapter.start(cid)
    adapter.rename(cid, new_name)
    assert adapter.inspect(cid).name == new_name
    assert [view.id for view in adapter.list(engine.labels)] == [cid]
    assert adapter.remove(cid) is True
    seen: list[str] = []
    for event in events:
        seen.append(event.action)
        if event.action == "destroy":
            break
    assert isinstance(events, Generator)
    events.close()
    source.close()
    assert {"create", "start", "rename", "destroy"} <= set(seen), seen
    counts = proxy.seen()
    for endpoint in ("create", "start", "rename", "inspect", "list", "remove", "events"):
        assert counts.get(endpoint) == 1, counts
    assert proxy.plan.applied == []


def test_lost_rename_answer_raises_but_the_engine_renamed(
    engine: Engine, proxy: FaultProxy, adapter: DockerAdapter
) -> None:
    """A rename whose answer is lost raises DaemonUnavailableError, yet the engine renamed."""
    cid = engine.direct.create_marker(engine.name(), engine.labels, engine.image, stdin=False)
    new_name = engine.name()
    proxy.plan.arm("rename", "lose", match=new_name)
    with pytest.raises(DaemonUnavailableError, match="Connection aborted"):
        adapter.rename(cid, new_name)
    assert engine.direct.inspect(cid).name == new_name
    assert proxy.plan.counts() == {"rename/lose": 1}
    assert proxy.seen()["rename"] == 1  # docker-py did not retry


def test_refused_rename_raises_and_the_engine_did_not_rename(
    engine: Engine, proxy: FaultProxy, adapter: DockerAdapter
) -> None:
    """A refused rename raises DaemonUnavailableError, and the engine never saw it."""
    name = engine.name()
    cid = engine.direct.create_marker(name, engine.labels, engine.image, stdin=False)
    proxy.plan.arm("rename", "refuse")
    with pytest.raises(DaemonUnavailableError, match="Connection aborted"):
        adapter.rename(cid, engine.name())
    assert engine.direct.inspect(cid).name == name
    assert proxy.plan.counts() == {"rename/refuse": 1}
    adapter.rename(cid, engine.name())  # the next call passes (on a new connection)


def test_delay_holds_the_answer(engine: Engine, proxy: FaultProxy, adapter: DockerAdapter) -> None:
    """A delayed answer arrives intact, no sooner than the delay."""
    name = engine.name()
    cid = engine.direct.create_marker(name, engine.labels, engine.image, stdin=False)
    adapter.inspect(cid)  # the connection (and the API version) are settled before timing
    proxy.plan.arm("inspect", "delay", seconds=1.0)
    started = time.monotonic()
    view = adapter.inspect(cid)
    took = time.monotonic() - started
    assert view.name == name
    assert 1.0 <= took < 5.0, took


def test_cut_attach_ends_the_cat_container(
    engine: Engine, proxy: FaultProxy, adapter: DockerAdapter
) -> None:
    """Cutting the attach connection closes the stdin of the container's `cat`: it exits."""
    cid = adapter.create_marker(engine.name(), engine.labels, engine.image, stdin=True)
    attached = adapter.attach_stdin(cid)
    try:
        adapter.start(cid)
        time.sleep(0.5)
        assert engine.direct.inspect(cid).status == "running"
        assert proxy.cut("attach") == 1
        wait_until(lambda: engine.direct.inspect(cid).status == "exited", 15, "cat to exit")
    finally:
        attached.close()


def test_cut_events_ends_the_stream(engine: Engine, proxy: FaultProxy) -> None:
    """Cutting the event stream's connection makes the source's iterator raise StreamEnded."""
    source = events_source(engine, proxy)
    events = source.open(None)
    assert proxy.cut("events") == 1
    started = time.monotonic()
    with pytest.raises(StreamEnded):
        next(events)
    assert time.monotonic() - started < 5.0
    source.close()


def test_keep_alive_connection_carries_many_requests(
    engine: Engine, proxy: FaultProxy, adapter: DockerAdapter
) -> None:
    """Fifty inspects through one adapter go over one kept-alive connection, all counted."""
    cid = engine.direct.create_marker(engine.name(), engine.labels, engine.image, stdin=False)
    for _ in range(50):
        assert adapter.inspect(cid).id == cid
    assert proxy.seen() == {"other": 1, "inspect": 50}  # other: docker-py's GET /version
    # docker-py keeps one pool of connections per URL: /version's, and the inspects' one
    assert proxy.connections == 2


def test_chunked_upload_passes(engine: Engine, proxy: FaultProxy) -> None:
    """A chunked request body (docker-py's put_archive from a generator) arrives whole."""
    cid = engine.direct.create_marker(engine.name(), engine.labels, engine.image, stdin=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        payload = b"through the proxy\n" * 5000
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    data = buffer.getvalue()
    api = docker.APIClient(base_url=proxy.url, version="auto")
    try:
        pieces = (data[i : i + 7000] for i in range(0, len(data), 7000))
        assert api.put_archive(cid, "/tmp", pieces) is True
        stream, _ = api.get_archive(cid, "/tmp/hello.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("hello.txt")
            assert member is not None and member.read() == payload
    finally:
        api.close()
