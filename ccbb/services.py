"""Starting the application's processes: what they need first (database schema, Redis) and the
one clear line when it is not there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from ccbb.child_processes import ChildFailed, free_port, start_and_wait
from ccbb.embedded import EmbeddedRedis, EmbeddedRedisError, RedisUnavailable, check_redis
from ccbb.settings import Settings, get_settings
from store.db import DatabaseUnavailable, check_database, make_engine
from store.migrate import SchemaOutdated, check_schema, upgrade

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """Redis or the database cannot be used; the message says which and what to do."""


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """``REDIS_URL``, or the embedded Redis of the data directory (started or joined)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    try:
        embedded = EmbeddedRedis(settings.data_dir)
        embedded.start()
    except EmbeddedRedisError as exc:
        raise ServiceUnavailable(str(exc)) from None
    try:
        yield embedded.url
    finally:
        embedded.stop()


def prepare_database(settings: Settings, *, require_schema: bool = True) -> None:
    """Check the database answers. The embedded SQLite is brought up to date here; a configured
    database must already be (``ccbb migrate``, once per release), else one line says so."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.sqlalchemy_url
    embedded = not settings.database_url

    async def check() -> None:
        engine = make_engine(url)
        try:
            await check_database(engine)
            if require_schema and not embedded:
                await check_schema(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except (DatabaseUnavailable, SchemaOutdated) as exc:
        raise ServiceUnavailable(str(exc)) from None
    if embedded:
        upgrade(url)


@contextlib.contextmanager
def services_ready(settings: Settings) -> Iterator[str]:
    """Redis answering (REDIS_URL, or the embedded one) and the database ready; yields the
    Redis URL. Raises ServiceUnavailable with the one line to show."""
    with redis_url(settings) as url:
        try:
            asyncio.run(check_redis(url))
        except RedisUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        prepare_database(settings)
        yield url


def migrate() -> int:
    settings = get_settings()
    try:
        prepare_database(settings, require_schema=False)
        upgrade(settings.sqlalchemy_url)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def run_worker() -> int:
    from arq.worker import run_worker as arq_run_worker
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ccbb.worker import WorkerSettings, redis_settings

    settings = get_settings()
    logging.getLogger().setLevel(logging.INFO)
    try:
        with services_ready(settings) as url:
            delay = 1.0
            while True:  # Redis away for longer than the client rides out: connect again
                try:
                    arq_run_worker(WorkerSettings, redis_settings=redis_settings(url))  # type: ignore[arg-type]
                    break
                except (RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
                    log.warning(
                        "worker: Redis unreachable (%s): reconnecting in %.0f s", exc, delay
                    )
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def _resolved(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"redis_url": url})


def run_web(host: str, port: int) -> int:
    import uvicorn

    from web.app import create_app

    settings = get_settings()
    signal.signal(signal.SIGTERM, _exit_on_signal)  # see run_all
    try:
        with services_ready(settings) as url:
            uvicorn.run(
                create_app(_resolved(settings, url), freeze_gc=True),
                host=host,
                port=port,
                log_level="info",
                proxy_headers=False,  # the app's own, from CCBB_TRUSTED_PROXIES (web.app)
            )
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def run_all(host: str, port: int, demo: bool = False) -> int:
    """The web app and a worker together, on the embedded Redis and SQLite unless REDIS_URL and
    DATABASE_URL say otherwise: one command for one machine."""
    import os
    import subprocess

    import uvicorn

    from web.app import create_app

    settings = get_settings()
    try:
        with services_ready(settings) as url:
            extra_env, helpers = demo_services(settings) if demo else ({}, [])
            if demo:
                from ccbb.clickbank_demo import clickbank_sandbox

                shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
                cb_env, cb_proc = clickbank_sandbox(f"http://{shown}:{port}")
                extra_env.update(cb_env)
                helpers.append(cb_proc)
                from ccbb.paypal_demo import paypal_sandbox

                pp_env, pp_proc = paypal_sandbox()
                extra_env.update(pp_env)
                helpers.append(pp_proc)
            if demo and "CCBB_PUBLIC_URL" not in os.environ:
                extra_env["CCBB_PUBLIC_URL"] = f"http://{host}:{port}"  # links in demo mails
            # the worker and the web app (its Test connection) reach the same sandbox
            os.environ.update(extra_env)
            web_settings = _resolved(Settings() if extra_env else settings, url)
            if demo:
                from ccbb.paypal_demo import demo_payout

                demo_payout(web_settings)  # a payout the newcomer can see
            worker = Supervised(
                "worker",
                [sys.executable, "-m", "ccbb.cli", "worker"],
                env={**os.environ, "REDIS_URL": url, "CCBB_DATA_DIR": str(settings.data_dir)},
            )
            worker.start()
            # uvicorn stops on SIGTERM, then raises it again: let that end this process through
            # the `finally` below, which stops the worker and the helpers, not around them
            signal.signal(signal.SIGTERM, _exit_on_signal)
            try:
                sys.stderr.write(f"ccbb: dashboard at http://{host}:{port}/ (Ctrl-C stops)\n")
                uvicorn.run(
                    create_app(web_settings, freeze_gc=True),
                    host=host,
                    port=port,
                    log_level="info",
                    proxy_headers=False,  # the app's own, from CCBB_TRUSTED_PROXIES (web.app)
                )
            finally:
                worker.stop()
                for proc in helpers:
                    proc.terminate()
                for proc in helpers:
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    except (ServiceUnavailable, ChildFailed) as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


class Supervised:
    """A child process of ``ccbb run`` kept alive: when it dies (killed, crashed), it is started
    again after a backoff (1 s, doubling up to 60 s; back to 1 s once it has run for a minute),
    and the log says so. A running scan of a dead worker is picked up again by its lease."""

    MIN_BACKOFF = 1.0
    MAX_BACKOFF = 60.0
    STABLE_SECONDS = 60.0

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        import threading

        self.name = name
        self.args = args
        self.env = env
        self.proc: Any = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{name}", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        import subprocess

        with self._lock:
            if not self._stopping.is_set():
                self.proc = subprocess.Popen(self.args, env=self.env)  # noqa: S603
                self.started_at = time.monotonic()

    def _watch(self) -> None:
        backoff = self.MIN_BACKOFF
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - self.started_at >= self.STABLE_SECONDS:
                backoff = self.MIN_BACKOFF
            self.restarts += 1
            message = f"the {self.name} (pid {self.proc.pid}) exited with code {code}: " \
                f"restarting it in {backoff:.0f} s (restart {self.restarts})"  # fmt: skip
            log.warning(message)
            sys.stderr.write(f"ccbb: {message}\n")
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.MAX_BACKOFF)
            self._spawn()
            sys.stderr.write(f"ccbb: the {self.name} is running again (pid {self.proc.pid})\n")

    def stop(self, timeout: float = 30.0) -> None:
        import subprocess

        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def create_user(email: str, password: str, *, admin: bool) -> int:
    from sqlalchemy.exc import IntegrityError

    from store import users
    from store.db import session_factory
    from web.auth import hash_password, password_problem, plausible_email

    settings = get_settings()
    email = users.normalize_email(email)
    if not plausible_email(email):
        sys.stderr.write(f"ccbb: {email!r} is not an e-mail address\n")
        return 2
    if problem := password_problem(password):
        sys.stderr.write(f"ccbb: {problem}\n")
        return 2
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1

    async def make() -> None:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                await users.create_user(
                    session, email=email, password_hash=hash_password(password), is_admin=admin
                )
        finally:
            await engine.dispose()

    try:
        asyncio.run(make())
    except IntegrityError:
        sys.stderr.write(f"ccbb: a user {email} exists already\n")
        return 1
    sys.stderr.write(f"ccbb: user {email} created{' (admin)' if admin else ''}\n")
    return 0


DEMO_CREDITS = 20


async def _demo_credits(session: Any, user: Any) -> None:
    """Top the demo account up to DEMO_CREDITS (a ledger entry, as any grant)."""
    import uuid

    from billing import messages
    from store import credits

    have = await credits.balance(session, user_id=user.id)
    await session.commit()
    if have < DEMO_CREDITS:
        await credits.grant(
            session, user_id=user.id, amount=DEMO_CREDITS - have, kind="demo", source="demo",
            comment=messages.DEMO_CREDITS, idempotency_key=f"demo:{uuid.uuid4().hex}",
        )  # fmt: skip


def demo_env(site_port: int, api_port: int) -> dict[str, str]:
    """The workers' environment in demo mode: the sandbox API, and the demo's host names mapped
    to the demo site. Private networks stay refused: the crawler reaches the demo site because
    its address is a mapping's target, and no other private address (see scanner.net)."""
    mappings = [f"{h}:{p}:127.0.0.1:{site_port}" for h in ("demo.example", "amzn.to", "amzn.eu",
                "a.co") for p in (80, 443)]  # fmt: skip
    return {
        "CCBB_AMAZON_API_HOST": f"http://127.0.0.1:{api_port}",
        "CCBB_AMAZON_AUTH": f"http://127.0.0.1:{api_port}/auth/o2/token",
        "CCBB_CONNECT_TO": ",".join(mappings),
        # every account signed up in the demo gets some scan credits (as the demo account does)
        "CCBB_SIGNUP_CREDITS": str(DEMO_CREDITS),
    }


def demo_services(settings: Settings) -> tuple[dict[str, str], list[Any]]:
    """For ``ccbb run --demo``: the demo site and the sandbox Amazon API as processes of their own,
    a demo account with its sandbox credentials saved; returns the workers' environment."""
    import json
    import secrets as secrets_mod

    site_port, api_port, smtp_port = free_port(), free_port(), free_port()
    catalogue = settings.data_dir / "demo-catalogue.json"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    site = start_and_wait(
        [sys.executable, "-m", "ccbb.sandbox.demo_site", "--pages", "300", "--port",
         str(site_port), "--catalogue-json", str(catalogue)], "http://",
    )  # fmt: skip
    data = json.loads(catalogue.read_text())
    data["credentials"][0]["tps"] = 5.0
    catalogue.write_text(json.dumps(data))
    api = start_and_wait(
        [sys.executable, "-m", "ccbb.cli", "sandbox-amazon", "--port", str(api_port),
         "--catalogue", str(catalogue)], "http://",
    )  # fmt: skip
    env = demo_env(site_port, api_port)
    password = secrets_mod.token_urlsafe(9)
    credential = data["credentials"][0]

    async def account() -> None:
        from sqlalchemy.exc import IntegrityError

        from store import credentials, users
        from store.crypto import SecretBox
        from store.db import session_factory
        from web.auth import hash_password

        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                existing = await users.get_user_by_email(session, email="demo@example.com")
                if existing is not None:
                    existing.password_hash = hash_password(password)
                    session.add(existing)
                    await session.commit()
                    await _demo_credits(session, existing)
                    return
                try:
                    user = await users.create_user(
                        session, email="demo@example.com", password_hash=hash_password(password)
                    )
                except IntegrityError:
                    return
                assert user.id is not None
                await _demo_credits(session, user)
                await credentials.create_credential(
                    session, box=SecretBox.from_settings(settings), user_id=user.id,
                    credential_id=credential["credential_id"],
                    secret=credential["credential_secret"], version=credential["version"],
                    partner_tag="demo-20", label="Demo sandbox", tps=float(credential["tps"]),
                )  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(account())
    sys.stderr.write(
        "ccbb: demo mode — log in as demo@example.com with the password "
        f"{password}, click New Scan, scan http://demo.example/ with the saved 'Demo sandbox' "
        "credentials and the tag demo-20 (cloaking prefix http://demo.example/go/)\n"
    )
    # the product's mail goes to a local catcher, shown at /demo/mail
    mail_dir = settings.data_dir / "demo-mail"
    catcher = start_and_wait(
        [sys.executable, "-m", "ccbb.sandbox.smtp_catcher", "--port", str(smtp_port),
         "--dir", str(mail_dir)],
        "smtp catcher ready",
    )  # fmt: skip
    env.update({"CCBB_SMTP_HOST": "127.0.0.1", "CCBB_SMTP_PORT": str(smtp_port),
                "CCBB_SMTP_TLS": "off", "CCBB_DEMO_MAIL_DIR": str(mail_dir)})  # fmt: skip
    sys.stderr.write("ccbb: demo mail (sign-up confirmations, alerts…) shows at /demo/mail\n")
    return env, [site, api, catcher]
