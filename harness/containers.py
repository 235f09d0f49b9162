"""A stack under test run from a container image (``--stack-image``), through the Docker API.

The harness talks to the engine with the ``docker`` SDK, so Docker Engine and podman's
Docker-compatible service both do (docs/containers.md). A container stack is a launched stack
like any other: it gets the same ``TWINYARD_*`` variables, a free port on this machine, the
same health probe, and its output in the report folder's ``stack.log``. ``ContainerStack``
has ``StackProcess``'s face (``exited``, ``stop``, ``log_path``, ``proc.pid``), so the runner
treats both alike.

Networking is the host's: the simulators and the stack listen on loopback (the stack contract
says ``127.0.0.1:$TWINYARD_STACK_PORT``), which a container on a bridge network cannot reach.

A container outlives the process that started it, so removal is made certain three ways: the
harness removes it when the run ends (``stop``, from the runner's ``finally``, which Ctrl-C
passes through); a small watchdog process removes it when the harness dies without doing so
(SIGKILL, the OOM killer); and every start removes the containers, labelled with a harness's
pid, whose harness is gone (when even the watchdog was killed). ``auto_remove`` is not used:
under podman 4.3 it loses the exit code and the output of a stack that dies at start, which is
exactly when its ``stack.log`` is needed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from harness.stack import StackError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

IMAGE_PREFIX = "image:"  # `compare --a image:NAME`, and how the verdict names such a stack
LABEL = "io.twinyard"
ROLE = f"{LABEL}.role"  # stack, sims
RUN = f"{LABEL}.run"  # one id per container the harness starts
HARNESS_PID = f"{LABEL}.harness-pid"
HARNESS_STARTED = f"{LABEL}.harness-started"  # its start time: a pid is reused, this pair is not
HARNESS_HOST = f"{LABEL}.harness-host"  # pids mean something on one machine only
RUN_DIR = "/twinyard-run"  # its TWINYARD_RUN_DIR: a tmpfs of its own, or kept (restarts)
# What a launched stack gets instead of report-folder paths (runner.private_files): a container
# has files of its own, which vanish with it, and any user of any image may write there.
CONTAINER_FILES = {
    "TWINYARD_RUN_DIR": RUN_DIR,
    "TMPDIR": "/tmp",
    "REFSTACK_DB": f"{RUN_DIR}/refstack.db",
}
API_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
# Where the engine usually listens when DOCKER_HOST says nothing: Docker's socket, then podman's.
USUAL_SOCKETS = (
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    f"{os.environ.get('XDG_RUNTIME_DIR') or f'/run/user/{os.getuid()}'}/podman/podman.sock",
)


class ContainerError(StackError):
    """No engine answers, the image is missing, the engine refused: one line, exit code 2."""


class StackImage(str):
    """A stack run from an image, carried where a stack command goes (``stack_cmd``): its text is
    ``image:NAME``, which is how the verdict names the stack and how ``compare`` spells a side."""

    def __new__(cls, image: str) -> StackImage:
        return super().__new__(cls, f"{IMAGE_PREFIX}{image}")

    @property
    def image(self) -> str:
        return self[len(IMAGE_PREFIX) :]


def engine_url() -> str:
    """Where the Docker API is: DOCKER_HOST, else the first usual socket that exists."""
    if host := os.environ.get("DOCKER_HOST"):
        return host
    for path in USUAL_SOCKETS:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return f"unix://{path}"
    return f"unix://{USUAL_SOCKETS[0]}"


def client() -> docker.DockerClient:
    """A connected client; ContainerError (one line) when no engine answers."""
    import docker

    url = engine_url()
    try:
        if os.environ.get("DOCKER_HOST"):
            api = docker.from_env(timeout=API_TIMEOUT_S)  # TLS settings come from there too
        else:
            api = docker.DockerClient(base_url=url, timeout=API_TIMEOUT_S)
        api.ping()
    except docker.errors.DockerException as exc:
        raise ContainerError(
            f"no Docker or podman API answers at {url} ({_reason(exc)}): start one "
            "(`podman system service`, or `make containers` in a twinyard checkout) and set "
            "DOCKER_HOST to it"
        ) from None
    return api


def _reason(exc: BaseException) -> str:
    """The root cause in a few words, not requests' nested reprs."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def harness_labels(run_id: str, role: str) -> dict[str, str]:
    """Who started a container: the reaper's evidence that its harness is gone."""
    return {
        ROLE: role,
        RUN: run_id,
        HARNESS_PID: str(os.getpid()),
        HARNESS_STARTED: _started(os.getpid()) or "",
        HARNESS_HOST: socket.gethostname(),
    }


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _harness_alive(labels: dict[str, str]) -> bool:
    try:
        pid = int(labels.get(HARNESS_PID, ""))
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True  # not ours to judge, or alive under another user
    started = labels.get(HARNESS_STARTED)
    return not started or _started(pid) in (None, started)


def reap(api: docker.DockerClient) -> list[str]:
    """Remove the containers a harness on this machine started and never removed (it was
    killed, and so was its watchdog); containers of live harnesses and of other machines stay.
    The ids removed."""
    import docker

    removed = []
    mine = {"label": [HARNESS_PID, f"{HARNESS_HOST}={socket.gethostname()}"]}
    try:  # the low-level list: the SDK's inspects each one found, and one may vanish meanwhile
        found = api.api.containers(all=True, filters=mine)
    except docker.errors.DockerException:
        return removed
    for container in found:
        if _harness_alive(container.get("Labels") or {}):
            continue
        with contextlib.suppress(docker.errors.DockerException):
            api.api.remove_container(container["Id"], force=True, v=True)
            removed.append(container["Id"])
    return removed


def _gone(exc: Exception) -> bool:
    """The container no longer exists (podman 4.3 answers some of those 500, not 404)."""
    import docker

    return isinstance(exc, docker.errors.NotFound) or "no such container" in str(exc).lower()


def image_present(api: docker.DockerClient, image: str) -> None:
    """ContainerError unless the engine has ``image``: a run never pulls behind the user's
    back (a pull can take minutes, or hang where no registry is reachable)."""
    import docker

    try:
        api.images.get(image)
    except docker.errors.ImageNotFound:
        raise ContainerError(
            f"no image {image!r} at {engine_url()}: build it (docker build -t {image} .) or "
            "pull it first"
        ) from None
    except docker.errors.DockerException as exc:
        raise ContainerError(f"image {image!r}: {_reason(exc)}") from None


# The watchdog: a process of its own session (Ctrl-C in a terminal and a kill of the harness's
# process group do not reach it) that reads the harness's pipe until it closes. "removed" means
# the harness removed the container itself; a pipe closed without it means the harness died.
_WATCHDOG = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read() != b"removed":
    import docker
    try:
        docker.from_env(timeout=30).containers.get(sys.argv[1]).remove(force=True, v=True)
    except docker.errors.DockerException:
        pass
"""


def _watchdog(container_id: str, url: str) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, container_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DOCKER_HOST": url},
            start_new_session=True,
        )
    except OSError:
        return None  # the reaper at the next start is the fallback


@dataclass
class _Proc:
    """``StackProcess.proc``'s one field the harness reads: the root of the process tree
    (0 when this machine's kernel does not show it: a remote engine, a VM)."""

    pid: int


class ContainerStack:
    """A stack running in a container the harness started from ``image`` (its default command,
    or ``command``), with ``env`` and host networking; its output streamed into ``log_path``."""

    def __init__(
        self,
        image: str,
        env: dict[str, str],
        log_path: Path,
        *,
        command: list[str] | None = None,
        role: str = "stack",
        keep_run_dir: bool = False,
    ) -> None:
        import docker

        self.log_path = log_path
        self.image = image
        api = client()
        reap(api)
        image_present(api, image)
        self.run_id = uuid.uuid4().hex[:12]
        self.name = f"twinyard-{role}-{self.run_id}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: BinaryIO = log_path.open("wb")
        self._code: int | None = None
        self._stopped = False
        self._follower: threading.Thread | None = None  # streams the log once it started
        # A tmpfs goes with the container's process: a stack restarted in it (a scenario's
        # stack_restarts) keeps its files in a folder of this machine's instead, writable by
        # any user of any image, and removed with the container.
        local = engine_url().startswith("unix://")  # a folder here is one it can mount
        self.run_dir = _kept_run_dir() if keep_run_dir and local else None
        storage: dict[str, Any] = (
            {"tmpfs": {RUN_DIR: "mode=1777"}}
            if self.run_dir is None
            else {"volumes": {str(self.run_dir): {"bind": RUN_DIR, "mode": "rw,z"}}}
        )
        try:
            self.container: Container = api.containers.create(
                image,
                command,
                name=self.name,
                labels=harness_labels(self.run_id, role),
                environment=env,
                network_mode="host",
                **storage,
                # The harness probes it itself; podman's health timers need systemd.
                healthcheck={"test": ["NONE"]},
                detach=True,
            )
        except docker.errors.DockerException as exc:
            self._log.close()
            raise ContainerError(
                f"cannot create a container from {image!r}: {_reason(exc)}"
            ) from None
        self._watch = _watchdog(self.container.id, engine_url())
        try:
            self.container.start()
            self.container.reload()
        except docker.errors.DockerException as exc:
            self.stop()
            raise ContainerError(
                f"cannot start a container from {image!r}: {_reason(exc)}"
            ) from None
        self.proc = _Proc(self._host_pid())
        self._follow_logs()

    def _follow_logs(self, since: int | None = None) -> None:
        self._follower = threading.Thread(
            target=self._follow, args=(since,), name=f"{self.name}-logs", daemon=True
        )
        self._follower.start()

    @property
    def restartable(self) -> bool:
        """Whether a restart keeps its files (only then is one played)."""
        return self.run_dir is not None

    def halt(self, kind: str, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """``StackProcess.halt`` for a container: a ``crash`` is SIGKILL to it, a ``deploy``
        its image's stop signal (SIGKILL after ``timeout_s``); the exit code, as ``exited``
        says it. The container stays, with its files, to be started again. Blocks."""
        import docker

        try:
            if kind == "crash":
                self.container.kill(signal="SIGKILL")
            else:
                self.container.stop(timeout=max(1, round(timeout_s)))
            self.container.wait(timeout=API_TIMEOUT_S)
        except docker.errors.DockerException as exc:
            if not _gone(exc):
                raise ContainerError(f"cannot stop {self.name}: {_reason(exc)}") from None
        except Exception as exc:  # requests' timeout of the wait
            raise ContainerError(f"{self.name} did not stop: {exc}") from None
        if self._follower is not None:
            self._follower.join(5)
        return self.exited()

    def start_again(self) -> None:
        """What its supervisor does after a crash or a deploy: the same container (its
        command, environment and kept files) started again; its output appended to the log."""
        import docker

        since = int(time.time())
        try:
            self.container.start()
            self.container.reload()
        except docker.errors.DockerException as exc:
            raise ContainerError(f"cannot start {self.name} again: {_reason(exc)}") from None
        self._code = None
        self.proc = _Proc(self._host_pid())
        self._follow_logs(since)

    @property
    def pid(self) -> int | None:
        """The container's first process as this machine's kernel shows it, for the lockstep's
        process watch; None when not visible here."""
        return self.proc.pid or None

    def _host_pid(self) -> int:
        """State.Pid, trusted only if that process is in this container's cgroup (a daemon in a
        VM or another pid namespace gives a pid that means nothing here)."""
        pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                return pid if self.container.id in f.read() else 0
        except OSError:
            return 0

    def _follow(self, since: int | None = None) -> None:
        """The container's stdout and stderr into the log (from ``since``, Unix seconds, after
        a restart), until it stops."""
        try:
            options: dict[str, Any] = {"stream": True, "follow": True, "stdout": True}
            options |= {"stderr": True} | ({} if since is None else {"since": since})
            logs = self.container.logs(**options)
            for chunk in logs:
                self._log.write(chunk)
                self._log.flush()
        except Exception:  # the engine went away: exited() asks it again
            pass

    def exited(self) -> int | None:
        """The exit code once the container stopped (a death by signal N, which the engine
        reports as 128+N, as -N like Popen); None while it runs. Free while the log follows."""
        if self._code is not None or self._stopped:
            return self._code
        if self._follower is not None and self._follower.is_alive():
            return None
        import docker

        try:
            self.container.reload()
        except docker.errors.DockerException as exc:
            if not _gone(exc):
                return None  # the engine did not answer: ask again next time
            self._code = -signal.SIGKILL  # removed by someone else: it is gone
            return self._code
        state = self.container.attrs.get("State", {})
        if state.get("Running") or state.get("Status") in ("created", "running", "restarting"):
            return None
        code = int(state.get("ExitCode") or 0)
        self._code = -(code - 128) if 128 < code <= 128 + 64 else code
        return self._code

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop it (its image's stop signal, then SIGKILL after ``timeout_s``) and remove it."""
        if self._stopped:
            return
        self.exited()
        self._stopped = True
        import docker

        with contextlib.suppress(docker.errors.DockerException):
            self.container.stop(timeout=max(1, round(timeout_s)))
        try:
            self.container.remove(force=True, v=True)
            removed = True
        except docker.errors.DockerException as exc:
            removed = _gone(exc)  # if not, the watchdog tries again, then the next reaper
        if self._follower is not None:
            self._follower.join(5)
        self._log.close()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._watch is not None and self._watch.stdin is not None:
            with contextlib.suppress(OSError):
                self._watch.stdin.write(b"removed" if removed else b"")
                self._watch.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watch.wait(30)


def _kept_run_dir() -> Path:
    """A folder of this machine's for a restarted container's files: any user may write
    there (the image's user is not known here), sticky as /tmp is."""
    path = Path(tempfile.mkdtemp(prefix="twinyard-run-"))
    path.chmod(0o1777)
    return path


def default_image() -> str:
    """The image `make containers` builds from this version's Dockerfile."""
    from importlib.metadata import version

    return f"twinyard:{version('twinyard')}"


class Yard(dict[str, str]):
    """``{"erp": "http://127.0.0.1:PORT", "wms": ..., "tms": ..., "carrier": ..., "stack": ...}``,
    with what a test needs to drive the simulators (``headers``: their control-plane token) and
    to sign as they do (``secret``)."""

    def __init__(self, urls: dict[str, str], token: str, secret: str) -> None:
        super().__init__(urls)
        self.token = token
        self.secret = secret

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


SIMS_START_TRIES = 3  # a port block taken between choosing and binding: choose another


@contextlib.contextmanager
def yard(
    stack_image: str | None = None,
    *,
    sims_image: str | None = None,
    log_dir: Path,
    stack_env: dict[str, str] | None = None,
    ready_timeout_s: float = 60.0,
) -> Iterator[Yard]:
    """The yard in containers, on free ports of this machine: the four simulators in one
    (``twinyard sims`` from ``sims_image``, wall clock) and the stack in another (its image's
    default command: the twinyard image's is the reference stack), wired as ``twinyard run``
    wires a launched stack. Both are removed on the way out; their logs stay in ``log_dir``."""
    import secrets as randomness

    import simulators
    from harness.runner import simulator_env
    from harness.stack import free_port
    from simulators.common.guard import new_token

    sims_image = sims_image or default_image()
    token, secret = new_token(), randomness.token_hex(16)
    sims: ContainerStack | None = None
    for _ in range(SIMS_START_TRIES):
        base = _free_block(len(simulators.SYSTEMS))
        urls = {s: f"http://127.0.0.1:{base + i}" for i, s in enumerate(simulators.SYSTEMS)}
        command = ["twinyard", "sims", "--port-base", str(base)]
        sims = ContainerStack(
            sims_image,
            {"TWINYARD_CONTROL_TOKEN": token},
            log_dir / "sims.log",
            command=command,
            role="sims",
        )
        if _answers([f"{url}/_sim/clock" for url in urls.values()], sims, ready_timeout_s):
            break
        sims.stop()
        sims = None
    if sims is None:
        raise ContainerError(f"the simulators did not start from {sims_image!r} ({log_dir})")
    try:
        port = free_port()
        env = simulator_env(urls, secret, port, token) | CONTAINER_FILES | (stack_env or {})
        stack = ContainerStack(stack_image or default_image(), env, log_dir / "stack.log")
        try:
            stack_url = f"http://127.0.0.1:{port}"
            if not _answers([f"{stack_url}/_stack/health"], stack, ready_timeout_s):
                raise ContainerError(
                    f"the stack from {stack.image!r} was not ready within {ready_timeout_s:.0f} s "
                    f"(its output: {stack.log_path})"
                )
            yield Yard({**urls, "stack": stack_url}, token, secret)
        finally:
            stack.stop()
    finally:
        sims.stop()


def _free_block(size: int) -> int:
    """The first of ``size`` consecutive ports free on loopback now."""
    import random

    for _ in range(200):
        base = random.randrange(20_000, 60_000 - size)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + size):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise ContainerError(f"no {size} consecutive free ports on 127.0.0.1")


def _answers(urls: list[str], container: ContainerStack, timeout_s: float) -> bool:
    """True once every URL answers 2xx; False when the container exits or time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        if container.exited() is not None:
            return False
        try:
            if httpx.get(pending[0], timeout=2.0).is_success:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return not pending
