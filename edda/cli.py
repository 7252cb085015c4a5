"""The ``edda`` command: look at and act on the instances of a database.

``list``, ``show``, ``cancel`` and ``retry`` work on a database that running
nodes use at the same time, and never become a node themselves (a node would
take its share of the partitions): they read, or commit a request and tell the
owning node (`edda.runtime.admin`). ``serve`` runs an app's ASGI interface
under uvicorn; ``viewer`` serves a node with the web viewer.

Exit codes: 0 done; 1 refused or impossible (unknown instance, not
cancellable, database unreachable); 2 usage errors. Errors are one line on
stderr; ``EDDA_DEBUG=1`` adds the traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import re
import sys
import traceback
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from edda import _cli_format as fmt
from edda._extras import install_hint as _install_hint
from edda.journal.database import shown_url
from edda.journal.faults import describe, is_transient
from edda.runtime.admin import AdminClient, AdminError, Request
from edda.runtime.queries import STATUSES
from edda.runtime.timeline import timeline

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

DB_ENV = "EDDA_DB_URL"
NATS_ENV = "EDDA_NATS_URL"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SERVER_HINT = _install_hint("server")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


class CliError(Exception):
    """A refused or impossible command: one line on stderr, and its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- arguments ------------------------------------------------------------------------

def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``3d``, ``1w`` ago, or an ISO time (local time if it names no
    zone).

    Raises:
        argparse.ArgumentTypeError: If it is neither.
    """
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time ago (10m, 2h, 3d) nor an ISO time "
            "(2024-05-01 or 2024-05-01T10:00:00+02:00)") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edda", description="Look at and act on the workflow instances of an Edda "
                                 "database, or serve an app.")
    parser.add_argument("--db", metavar="URL", default=None,
                        help=f"the database (sqlite:///file.db or postgresql://...); "
                             f"default: ${DB_ENV}")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                    help=f"the database (sqlite:///file.db or postgresql://...); "
                         f"default: ${DB_ENV}")
    db.add_argument("--timeout", type=_seconds, default=30.0, metavar="SECONDS",
                    help="give up if the database has not answered by then (default 30)")
    nats = argparse.ArgumentParser(add_help=False)
    nats.add_argument("--nats", metavar="URL", action="append", default=None,
                      help="a NATS server of the nodes' cluster (repeatable); default: "
                           f"${NATS_ENV}; without it the database's own bell is used")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", parents=[db], help="list instances, newest first")
    p.add_argument("--status", choices=STATUSES, help="only instances in this status")
    p.add_argument("--workflow", metavar="NAME", help="only workflows whose name contains NAME")
    p.add_argument("--since", type=parse_when, metavar="WHEN",
                   help="started at or after WHEN (10m, 2h, 3d ago, or an ISO time)")
    p.add_argument("--until", type=parse_when, metavar="WHEN", help="started before WHEN")
    p.add_argument("--limit", type=_positive, default=50, help="most instances (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_list)

    p = commands.add_parser("show", parents=[db], help="an instance and its journal as a "
                                                       "timeline")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=_show)

    p = commands.add_parser("cancel", parents=[db, nats],
                            help="cancel a running or waiting instance")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--by", default="cli", help="who cancels, as recorded (default: cli)")
    p.set_defaults(run=_cancel)

    p = commands.add_parser("retry", parents=[db, nats],
                            help="run a failed instance again from its last good step")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--by", default="cli", help="who retries, as recorded (default: cli)")
    p.set_defaults(run=_retry)

    serve = argparse.ArgumentParser(add_help=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                           "(default 127.0.0.1)")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"))
    p = commands.add_parser("serve", parents=[serve],
                            help="serve an app (module:app) under uvicorn")
    p.add_argument("app", metavar="MODULE:APP",
                   help="where the EddaApp is, as module.path:name (name defaults to app)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                   help=f"set ${DB_ENV} for the module, and check the app uses it")
    p.set_defaults(run=_serve)

    p = commands.add_parser("viewer", parents=[serve, nats],
                            help="serve the web viewer of a database")
    p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                   help=f"the database; default: ${DB_ENV}")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("-m", "--import-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, so its workflows are registered (repeatable)")
    p.set_defaults(run=_viewer)
    return parser


def _db_url(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    url = args.db or os.environ.get(DB_ENV)
    if not url:
        parser.error(f"no database given: pass --db URL or set {DB_ENV} "
                     "(for example sqlite:///app.db or postgresql://user:pass@host/db)")
    return str(url)


def _nats_of(args: argparse.Namespace) -> list[str] | None:
    given: list[str] | None = getattr(args, "nats", None)
    return given or [u.strip() for u in os.environ.get(NATS_ENV, "").split(",") if u.strip()] \
        or None


def _client(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AdminClient:
    url = _db_url(args, parser)
    try:
        return AdminClient(url, nats_url=_nats_of(args))
    except ValueError as exc:
        parser.error(_scrub(str(exc), url))
    except ImportError as exc:  # a driver or NATS client that is not installed
        raise CliError(str(exc)) from None


# -- running a command against the database ------------------------------------------------

def _scrub(text: str, db_url: str) -> str:
    """``text`` without the URL's password, wherever it appears."""
    match = re.match(r"^[^:]+://[^:@/]*:([^@/]+)@", db_url)
    if match and match.group(1):
        text = text.replace(match.group(1), "***")
    return text


def _explain(exc: BaseException, client: AdminClient, timeout: float) -> str:
    where = shown_url(client.db_url)
    if isinstance(exc, AdminError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"the database at {where} did not answer within {timeout:g} s"
    if is_transient(exc):
        return f"cannot reach the database at {where}: {describe(exc)}"
    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "asyncpg", "sqlite3")) or isinstance(exc, OSError):
        return f"the database at {where} refused: {describe(exc)}"
    return ""


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser,
         work: Callable[[AdminClient], Awaitable[int]]) -> int:
    client = _client(args, parser)

    async def session() -> int:
        async with asyncio.timeout(args.timeout):
            await client.open()
        try:
            async with asyncio.timeout(args.timeout):
                return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(session())
    except CliError:
        raise
    except Exception as exc:
        message = _explain(exc, client, args.timeout)
        if not message:
            raise
        raise CliError(_scrub(message, client.db_url)) from exc


def _list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    async def work(client: AdminClient) -> int:
        found: list[dict[str, Any]] = []
        token = None
        while len(found) < args.limit:
            page = await client.find_instances(
                status=args.status, workflow_name=args.workflow, started_after=args.since,
                started_before=args.until, limit=min(1000, args.limit - len(found)),
                page_token=token)
            found += page["instances"]
            token = page["next_page_token"]
            if not page["has_more"]:
                break
        if args.json:
            _out(fmt.to_json(found))
        elif found:
            _out(fmt.instance_table(found))
        else:
            _err("no instances")
        return 0

    if args.workflow is not None and (not args.workflow or "\x00" in args.workflow):
        parser.error("--workflow must be a non-empty name")
    return _run(args, parser, work)


async def _instance(client: AdminClient, instance_id: str) -> dict[str, Any]:
    inst = await client.get_instance(instance_id)
    if inst is None:
        raise CliError(f"no workflow instance {instance_id!r} in {shown_url(client.db_url)}")
    return inst


def _show(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    async def work(client: AdminClient) -> int:
        inst = await _instance(client, args.instance_id)
        steps = timeline(await client.get_history(args.instance_id))
        if args.json:
            _out(fmt.to_json({"instance": inst, "timeline": steps}))
        else:
            _out(fmt.instance_header(inst) + "\n")
            _out(fmt.timeline_text(steps, datetime.now(UTC)))
        return 0

    return _run(args, parser, work)


def _acted(what: str, instance_id: str, outcome: Request, doing: str) -> str:
    done = f"{what} of {instance_id} committed"
    if outcome.owner is None:
        return f"{done}; no node runs it now: it is acted on when a node starts on this database"
    if not outcome.told:
        return (f"{done}; node {outcome.owner} acts on it at its next sweep "
                "(within a few seconds)")
    return f"{done}; node {outcome.owner} is {doing} it now"


def _request(what: str, doing: str) -> Callable[[argparse.Namespace, argparse.ArgumentParser],
                                                int]:
    """The ``cancel`` or ``retry`` command: commit the request, then say who acts on it."""
    def command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        async def work(client: AdminClient) -> int:
            ask = client.cancel if what == "cancel" else client.retry
            outcome = await ask(args.instance_id, args.by)
            if not outcome.accepted:
                raise CliError(outcome.reason)
            _out(_acted(what, args.instance_id, outcome, doing))
            return 0

        return _run(args, parser, work)

    return command


_cancel = _request("cancel", "cancelling")
_retry = _request("retry", "running")


# -- serving ---------------------------------------------------------------------------------

def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise CliError(f"this command needs uvicorn: {_SERVER_HINT}") from None
    return uvicorn


def _import(module: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn does: modules beside you import
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise CliError(f"cannot import {module!r}: there is no module {exc.name!r} "
                           f"(from {os.getcwd()})") from None
        raise CliError(_raised_by(module, exc)) from exc
    except Exception as exc:
        raise CliError(_raised_by(module, exc)) from exc


def _raised_by(module: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return (f"importing {module!r} raised {type(exc).__name__}: {exc}{where}; "
            "set EDDA_DEBUG=1 for the traceback")


def _serve_app(app: Any, args: argparse.Namespace, url: str) -> int:
    uvicorn = _uvicorn()
    _out(url)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    lifespan="on")
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise CliError("the app did not start (see the log above)") from None
    return 0


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from edda.runtime.app import EddaApp

    module, _, name = args.app.partition(":")
    name = name or "app"
    if not module or not all(part.isidentifier() for part in (*module.split("."),
                                                              *name.split("."))):
        parser.error(f"{args.app!r} is not module:app (for example myservice.main:app)")
    given = getattr(args, "db", None)
    _uvicorn()  # before the module starts anything
    if given:
        os.environ[DB_ENV] = given
    target = _import(module)
    for part in name.split("."):
        if not hasattr(target, part):
            raise CliError(f"module {module!r} has no attribute {name!r}")
        target = getattr(target, part)
    if not isinstance(target, EddaApp):
        raise CliError(f"{args.app} is a {type(target).__name__}, not an EddaApp")
    if given and target.db_url != given:
        parser.error(f"{args.app} uses {shown_url(target.db_url)}, not --db {shown_url(given)}; "
                     f"let the app read ${DB_ENV} or leave --db out")
    return _serve_app(target, args, f"serving {args.app} ({target.service_name}, "
                                    f"{shown_url(target.db_url)}) on "
                                    f"http://{args.host}:{args.port}")


def _viewer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from edda.runtime.app import EddaApp

    url = _db_url(args, parser)
    _uvicorn()
    for module in args.import_module:
        _import(module)
    try:
        app = EddaApp("edda-viewer", url, nats_url=_nats_of(args), observer=True)
    except ValueError as exc:
        parser.error(_scrub(str(exc), url))
    except ImportError as exc:
        raise CliError(str(exc)) from None
    return _serve_app(app, args, f"Edda viewer of {shown_url(url)}: "
                                 f"http://{args.host}:{args.port}/viewer/")


# -- the entry point ---------------------------------------------------------------------------

class _OneLine(logging.Formatter):
    """Log records as ``edda: message``, without tracebacks unless debugging."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"edda: {record.getMessage()}"
        if record.exc_info and os.environ.get("EDDA_DEBUG"):
            text += "\n" + self.formatException(record.exc_info)
        return text


def _fail(message: str, code: int) -> NoReturn:
    _err(f"edda: {message}")
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``edda`` command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.getLogger("edda").addHandler(handler)
    logging.getLogger("edda").setLevel(logging.WARNING)
    try:
        code: int = args.run(args, parser)
        return code
    except CliError as exc:
        if exc.__cause__ is not None and os.environ.get("EDDA_DEBUG"):
            traceback.print_exception(exc.__cause__)
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("EDDA_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set EDDA_DEBUG=1 for the traceback)",
              1)


def edda_viewer_args(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Edda's ``edda-viewer`` flags as ``edda viewer`` arguments: ``--db/-d`` takes a
    SQLite file path or a URL (default ``demo.db``; ``EDDA_DB_URL`` overrides it, as in
    Edda), ``--port/-p`` (default 8080) and ``--import-module/-m`` as they are."""
    out: list[str] = ["viewer"]
    db: str | None = None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("-d", "--db") and rest:
            db = rest.pop(0)
        elif arg.startswith("--db="):
            db = arg.partition("=")[2]
        elif arg == "-p":
            out.append("--port")
        else:
            out.append(arg)
    db = env.get(DB_ENV) or db or "demo.db"
    return [*out, "--db", db if "://" in db else f"sqlite:///{db}"]


def viewer_main(argv: Sequence[str] | None = None) -> int:
    """Edda's ``edda-viewer`` command: the web viewer, with Edda's flags."""
    return main(edda_viewer_args(sys.argv[1:] if argv is None else argv, os.environ))


if __name__ == "__main__":
    sys.exit(main())
