"""The ``cairn`` command line.

Every command that touches the database finds it through
:func:`service.database.location.locate`: ``DATABASE_URL`` if set, else the embedded server
in ``--data-dir`` (started if needed, shared with a running ``cairn serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from . import __version__
from .config import FROM_COMMAND_LINE, Settings, described, from_env
from .database.location import DEFAULT_DATA_DIR, Location, locate
from .database.migrate import migrate_url
from .errors import CairnError

if TYPE_CHECKING:
    from .domain.i18n import Locale

Command = Callable[[argparse.Namespace, Location], int]


class _Terminated(BaseException):
    """SIGTERM arrived: unwind to :func:`main` like Ctrl-C does, releasing PostgreSQL on the way."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated


def _serve_settings(args: argparse.Namespace) -> Settings:
    """``cairn serve``'s settings, database aside (known once PostgreSQL is found), and its
    logging configured by them.

    Raises:
        ConfigurationError: an argument or a variable does not fit its setting.
    """
    from .http.logs import configure_logging

    settings = from_env(
        "",
        **{name: getattr(args, name) for name in FROM_COMMAND_LINE if name != "database_url"},
    )
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _serve(args: argparse.Namespace, location: Location) -> int:
    import uvicorn

    # The metrics' mode is this command's to choose (see _serve_workers): with one process,
    # values live in its memory. prometheus_client reads the variable once, when first
    # imported, which nothing has done yet.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    from .http.app import create_app

    settings = msgspec.structs.replace(args.settings, database_url=location.url)
    asyncio.run(migrate_url(location.url))
    url = _client_url(settings.host, settings.port)
    for line in asyncio.run(_first_run(location, url, locale=settings.locale)):
        # The terminal only, never the logging module: these lines may carry a token.
        print(line)
    app = create_app(settings) if args.workers == 1 else None
    where = f"embedded PostgreSQL in {location.data_dir}" if location.embedded else "DATABASE_URL"
    if app is None:
        where += f", {args.workers} worker processes"
    print(
        f"cairn {__version__} serving on http://{settings.host}:{settings.port} ({where})",
        flush=True,
    )
    if app is None:
        return _serve_workers(args, settings)
    # uvicorn handles Ctrl-C and SIGTERM: it stops accepting, finishes requests and runs the
    # app's shutdown. Then it restores the previous handlers and raises the signal again:
    # SIGTERM reaches _on_sigterm and unwinds to main(); asyncio's Ctrl-C handler lets
    # uvicorn.run return. Either way main() then stops the embedded PostgreSQL, exit 0.
    uvicorn.run(app, **_uvicorn_options(args, settings))
    return 0


def _uvicorn_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """uvicorn's options of ``cairn serve``, in one process or several."""
    from .http.server import WorkerProtocol, protocol
    from .realtime.endpoint import MAX_READ

    return {
        "host": settings.host,
        "port": settings.port,
        # The protocol bounds how long a request may take to arrive, and drains connections
        # on SIGTERM (see http/server.py).
        "http": protocol(settings) if args.workers == 1 else WorkerProtocol,
        "log_level": settings.log_level,
        # Logging is configure_logging's (log_config=None), the access log Cairn's own
        # (http/accesslog.py: route templates, never query strings).
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        # No per-message deflate: it costs ~50 KiB per WebSocket (see docs/BENCHMARKS.md).
        "ws_per_message_deflate": False,
        # WebSocket frames are read up to MAX_READ (2 MiB, not uvicorn's 16), a larger one
        # closes the socket with 1009: the stream answers a frame too long to decode with a
        # short bad_frame, but only after reading it.
        "ws_max_size": MAX_READ,
        "ws_ping_interval": settings.ping_interval,
        "ws_ping_timeout": settings.ping_timeout,
    }


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """``cairn serve --workers N``: uvicorn's supervisor in this process, N worker processes
    each running the app (from ``settings``, handed over in the environment) on the one
    listening socket.

    Their metrics meet in a fresh folder (``PROMETHEUS_MULTIPROC_DIR``, set before they start,
    removed when they have ended): whichever process answers ``/metrics`` adds them all up.
    The supervisor handles SIGTERM and Ctrl-C itself: it stops the workers (each finishing
    its requests and shutting its app down) and returns.
    """
    import uvicorn

    from .http.app import worker_environment
    from .metrics import MULTIPROCESS_ENV

    folder = tempfile.mkdtemp(prefix="cairn-metrics-")
    os.environ.update(worker_environment(settings))
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        uvicorn.run(
            "service.http.app:app_from_env",
            factory=True,
            workers=args.workers,
            **_uvicorn_options(args, settings),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _workers(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least one worker, not {value}")
    return value


async def _first_run(location: Location, url: str, *, locale: Locale) -> list[str]:
    """The lines ``cairn serve`` prints before serving while nobody is in the database (none
    once somebody is), in ``locale`` (the ``locale`` setting: the instance's default
    language).

    On the embedded database (one's own machine) it creates the first admin and shows their
    API token, once, in a ready ``curl`` command against ``url``. On a server named by
    ``DATABASE_URL`` a first admin is a deliberate act: it shows the command that makes one
    and creates nobody.
    """
    from .bootstrap import FIRST_ADMIN_EMAIL, FIRST_ADMIN_NAME, create_first_admin, has_people
    from .domain.i18n import translator
    from .events.store import EventStore

    t = translator(locale)
    store = await EventStore.open(location.url, min_size=1, max_size=2)
    try:
        if not location.embedded:
            if await has_people(store):
                return []
            name, email = t.gettext("Your Name"), t.gettext("you@example.com")
            return [
                t.gettext(
                    "nobody is in this database yet; make the first admin (prints their API token):"
                ),
                f'    cairn people create-admin --name "{name}" --email {email}',
            ]
        admin = await create_first_admin(store)
    finally:
        await store.close()
    if admin is None:
        return []
    return [
        t.gettext("first run: created the admin {name} <{email}> ({person_id}).").format(
            name=FIRST_ADMIN_NAME, email=FIRST_ADMIN_EMAIL, person_id=admin.person_id
        ),
        t.gettext("Their API token is in this command, shown this once (only its hash is kept):"),
        "",
        f'    curl -H "Authorization: Bearer {admin.token}" {url}/v1/me',
        "",
        t.gettext("Change their name and e-mail with {request} {body}.").format(
            request=f"PATCH /v1/people/{admin.person_id}", body='{"name": "…", "email": "…"}'
        ),
    ]


def _client_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches ``cairn serve --host host --port port`` at."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _migrate(args: argparse.Namespace, location: Location) -> int:
    applied = asyncio.run(migrate_url(location.url))
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print("schema is up to date")
    return 0


def _verify(args: argparse.Namespace, location: Location) -> int:
    import asyncpg

    from .events.chain import verify

    async def run() -> int:
        conn = await asyncpg.connect(location.url)
        try:
            report = await verify(conn)
        finally:
            await conn.close()
        print(f"checked {report.events} events in {report.streams} streams")
        print(f"log digest {report.digest}")
        if report.ok:
            print("hash chain intact")
            return 0
        if report.first_broken is not None:
            print(f"BROKEN at position {report.first_broken}: {report.reason}", file=sys.stderr)
        if report.ahead:
            print(
                f"BROKEN: {report.ahead} events come from transactions this PostgreSQL has not "
                "reached (a dump restored into another server?): its readers cannot see them. "
                f"Stop PostgreSQL, run `pg_resetwal --epoch={report.epoch} -D <its data folder>`, "
                "start it and verify again (docs/OPERATIONS.md, Backup and restore)",
                file=sys.stderr,
            )
        return 1

    asyncio.run(migrate_url(location.url))
    return asyncio.run(run())


def _create_admin(args: argparse.Namespace, location: Location) -> int:
    from .bootstrap import create_admin
    from .events.store import EventStore

    async def run() -> str:
        await migrate_url(location.url)
        store = await EventStore.open(location.url, min_size=1, max_size=2)
        try:
            admin = await create_admin(store, args.name, args.email)
        finally:
            await store.close()
        return admin.token

    token = asyncio.run(run())
    # The token alone on stdout, so that scripts can capture it; the rest goes to stderr.
    print(
        f"created admin {args.name} <{args.email}>; their API token (shown once):", file=sys.stderr
    )
    print(token, flush=True)
    return 0


def _replay(args: argparse.Namespace, location: Location) -> int:
    from .commands.snapshot import replay_json
    from .events.store import EventStore

    async def run() -> bytes:
        await migrate_url(location.url)
        store = await EventStore.open(location.url, min_size=1, max_size=2)
        try:
            return await replay_json(store, args.project, args.until_position)
        finally:
            await store.close()

    sys.stdout.buffer.write(asyncio.run(run()))
    sys.stdout.buffer.write(b"\n")
    return 0


def _projections_status(args: argparse.Namespace, location: Location) -> int:
    from .projections import admin

    asyncio.run(migrate_url(location.url))
    return asyncio.run(admin.status(location.url))


def _projections_rebuild(args: argparse.Namespace, location: Location) -> int:
    from .projections import admin

    if bool(args.names) == args.all:
        print("cairn: name the projections to rebuild, or give --all", file=sys.stderr)
        return 2
    asyncio.run(migrate_url(location.url))
    return asyncio.run(admin.rebuild(location.url, [] if args.all else args.names))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``30s`` (or plain seconds) as a duration."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not number.isascii() or not number.isdigit():
        raise argparse.ArgumentTypeError(f"not a duration like 24h, 90m, 2d: {text!r}")
    return timedelta(seconds=int(number) * _UNITS[unit])


def _blobs_gc(args: argparse.Namespace, location: Location) -> int:
    from .blobs.collect import gc
    from .events.store import EventStore

    async def run() -> int:
        await migrate_url(location.url)
        store = await EventStore.open(location.url, min_size=1, max_size=2)
        try:
            async with store.pool.acquire() as conn:
                done = await gc(
                    conn,
                    grace=args.grace,
                    dry_run=args.dry_run,
                    referenced=lambda: store.values_in_data("sha256"),
                )
        finally:
            await store.close()
        verb = "would remove" if args.dry_run else "removed"
        for sha256, size in done.blobs:
            print(f"{verb} {sha256} ({size} bytes)")
        total = sum(size for _, size in done.blobs)
        print(
            f"{verb} {len(done.blobs)} blobs ({total} bytes) and {done.uploads} abandoned "
            f"uploads; kept {done.kept} found attached or uploaded again meanwhile"
        )
        return 0

    return asyncio.run(run())


def _blobs_verify(args: argparse.Namespace, location: Location) -> int:
    import asyncpg

    from .blobs.collect import verify

    async def run() -> int:
        await migrate_url(location.url)
        conn = await asyncpg.connect(location.url)
        try:
            found = await verify(conn)
        finally:
            await conn.close()
        for line in found.broken:
            print(f"CORRUPT {line}")
        if found.broken:
            print(f"{len(found.broken)} of {found.blobs} blobs are damaged", file=sys.stderr)
            return 1
        print(f"{found.blobs} blobs, {found.bytes} bytes: all intact")
        return 0

    return asyncio.run(run())


def _mail_rotate_key(args: argparse.Namespace, location: Location) -> int:
    import asyncpg

    from .reads.mail_keys import rotate

    async def run() -> str:
        await migrate_url(location.url)
        conn = await asyncpg.connect(location.url)
        try:
            return await rotate(conn)
        finally:
            await conn.close()

    key_id = asyncio.run(run())
    print(f"mail key {key_id} signs from now on; older keys still check what they signed")
    return 0


def _mail_serve(args: argparse.Namespace, location: Location) -> int:
    from .mail.inbound import Listener, parse_endpoint, serve

    endpoints = []
    for kind in ("lmtp", "smtp"):
        for text in getattr(args, kind) or []:
            try:
                host, port = parse_endpoint(text)
            except ValueError as exc:
                print(f"cairn: --{kind} {exc}", file=sys.stderr)
                return 2
            endpoints.append((kind, host, port))
    if not endpoints:
        print("cairn: give --lmtp HOST:PORT and/or --smtp HOST:PORT", file=sys.stderr)
        return 2
    settings = from_env(location.url)
    if not settings.mail_domain:
        print("cairn: CAIRN_MAIL_DOMAIN is not set: no address would be ours", file=sys.stderr)
        return 2

    def started(listeners: list[tuple[str, Listener]]) -> None:
        for kind, listener in listeners:
            print(
                f"cairn {__version__} taking mail for @{settings.mail_domain} over "
                f"{kind.upper()} on {listener.host}:{listener.port}",
                flush=True,
            )

    asyncio.run(migrate_url(location.url))
    try:
        asyncio.run(serve(settings, endpoints, started=started))
    except KeyboardInterrupt:
        return 0
    return 0


def _argument_help(name: str) -> str:
    """The ``--help`` of the argument giving setting ``name``, from its field."""
    [setting] = [s for s in described() if s.name == name]
    return f"{setting.description} (default: {setting.default})".replace("%", "%%")


def _environment_help() -> str:
    """``cairn serve --help``'s list of the settings read from the environment, from the
    fields of :class:`~service.config.Settings` (the others are the arguments above)."""
    lines = ["settings from the environment (the arguments above are settings too):"]
    for setting in described():
        if setting.source.startswith("--"):
            continue
        lines.append(f"  {setting.source} (default: {setting.default})")
        lines += textwrap.wrap(
            setting.description,
            78,
            initial_indent=" " * 6,
            subsequent_indent=" " * 6,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn", description="Event-sourced collaboration backend."
    )
    parser.add_argument("--version", action="version", version=f"cairn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str,
        fn: Command,
        help: str,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help)
        p.add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=_argument_help("data_dir")
        )
        p.set_defaults(fn=fn)
        return p

    serve = command("serve", _serve, "run the HTTP and WebSocket service")
    serve.formatter_class = argparse.RawDescriptionHelpFormatter
    serve.epilog = _environment_help()
    for name in ("host", "port", "log_level", "log_format"):
        # Strings, checked (with the environment's) by from_env: one way to say what is wrong.
        [setting] = [s for s in described() if s.name == name]
        serve.add_argument(
            setting.source,
            dest=name,
            metavar="{" + ",".join(setting.choices) + "}" if setting.choices else None,
            help=_argument_help(name),
        )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes serving requests (default 1; more: uvicorn's supervisor runs them, "
        "metrics are added up over them)",
    )
    command("migrate", _migrate, "apply schema migrations (idempotent)")
    command("verify", _verify, "check the event log's hash chain")
    people = sub.add_parser("people", help="manage people").add_subparsers(
        dest="people_command", required=True
    )
    create_admin = command(
        "create-admin", _create_admin, "create an admin and print their API token", people
    )
    create_admin.add_argument("--name", required=True)
    create_admin.add_argument("--email", required=True)
    replay = command("replay", _replay, "print a project's snapshot at a log position (JSON)")
    replay.add_argument("--project", required=True, help="the project's id")
    replay.add_argument("--until-position", type=int, required=True, help="a log position")
    projections = sub.add_parser("projections", help="read models").add_subparsers(
        dest="projections_command", required=True
    )
    command("status", _projections_status, "version, position and lag of each", projections)
    rebuild = command(
        "rebuild", _projections_rebuild, "rebuild from the log and swap in", projections
    )
    rebuild.add_argument("names", nargs="*", metavar="NAME", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    blobs = sub.add_parser("blobs", help="files' bytes").add_subparsers(
        dest="blobs_command", required=True
    )
    collect = command(
        "gc",
        _blobs_gc,
        "remove blobs never attached nor named by an event, after a grace",
        blobs,
    )
    collect.add_argument(
        "--grace",
        type=_duration,
        default=timedelta(hours=24),
        help="keep what was uploaded more recently than this (default 24h; s, m, h, d)",
    )
    collect.add_argument(
        "--dry-run", action="store_true", help="print what would be removed, remove nothing"
    )
    command("verify", _blobs_verify, "re-hash every blob; exit 1 naming any damaged", blobs)
    mail = sub.add_parser("mail", help="mail in, and its keys").add_subparsers(
        dest="mail_command", required=True
    )
    command(
        "rotate-key",
        _mail_rotate_key,
        "make a new key for reply addresses and unsubscribe links (older ones keep checking)",
        mail,
    )
    mail_serve = command(
        "serve",
        _mail_serve,
        "take replies and forwards over LMTP (or SMTP) from the site's mail server",
        mail,
    )
    mail_serve.add_argument(
        "--lmtp", action="append", metavar="HOST:PORT", help="listen for LMTP here (repeatable)"
    )
    mail_serve.add_argument(
        "--smtp",
        action="append",
        metavar="HOST:PORT",
        help="listen for SMTP here (small installations without a mail server; repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cairn`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # With the default SIGTERM action the process would die on the spot, leaving the
    # embedded PostgreSQL running and this process registered as one of its users.
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    location: Location | None = None
    try:
        if args.fn is _serve:
            # Before PostgreSQL is looked for (or started): a bad setting changes nothing,
            # and starting it is logged as the settings say.
            args.settings = _serve_settings(args)
        location = locate(args.data_dir)
        return int(args.fn(args, location))
    except CairnError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except _Terminated:
        # Being asked to stop is how a service ends normally (systemd, docker, CI).
        return 0
    finally:
        if location is not None:
            location.release()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
