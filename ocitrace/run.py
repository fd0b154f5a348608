"""`ocitrace run -- COMMAND`: strace for registry traffic. A proxy on a free loopback port, the command run with
the environment every common client reads, its terminal untouched; when it ends, the story of its calls.

The proxy runs in its own process session, so the Ctrl-C a user types reaches the command (and this process,
which lets the command decide), never the recording. The proxy's CA lives in a folder that is removed at the
end unless `--confdir` names one: nothing is left outside `--out`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ocitrace.analyzers.strings import LANGUAGES, text

from .cli import FORMATS

READY_TIMEOUT = 30.0
# Variables clients read for a proxy and for the certificates they trust (Go, curl, Python requests, Node).
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
BUNDLE = "ca-bundle.pem"
# Commands whose registry calls are made by a daemon the command's environment does not reach.
_DAEMON = {"docker": {"pull", "push", "build", "buildx", "run", "create", "compose", "image", "container"},
           "podman-remote": {"pull", "push"}}
_LOOPBACK = re.compile(r"(?<![\w.-])(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d+)?(?=[/\s]|$)")
EXAMPLE = ("examples:\n"
           "  ocitrace run -- skopeo inspect docker://docker.io/library/alpine:latest\n"
           "  ocitrace run --map registry.test=http://127.0.0.1:5000 -- "
           "skopeo copy docker://registry.test/app:v1 oci:app:v1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def system_roots() -> str:
    """The machine's trusted roots, as PEM: what internet registries need besides the proxy's CA."""
    for path in (ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt",
                 "/etc/pki/tls/certs/ca-bundle.crt"):
        if path and Path(path).is_file():
            return Path(path).read_text(encoding="utf-8", errors="replace")
    return ""


def write_bundle(confdir: Path, ca: Path) -> Path:
    """The system roots and the proxy's CA in one file: a client given it trusts both."""
    bundle = confdir / BUNDLE
    roots = system_roots()
    bundle.write_text(roots + ("\n" if roots and not roots.endswith("\n") else "") + ca.read_text(), encoding="utf-8")
    return bundle


def environment(base: dict[str, str], port: int, bundle: Path, maps: list[str]) -> dict[str, str]:
    """The command's environment: through the proxy, trusting it; NO_PROXY left out where it would let a mapped
    name go around the proxy."""
    env = dict(base)
    url = f"http://127.0.0.1:{port}"
    env.update({name: url for name in PROXY_VARIABLES})
    env.update({name: str(bundle) for name in CA_VARIABLES})
    mapped = {_host_of(spec.partition("=")[0].strip().lower()) for spec in maps}  # a map may name a port
    for name in ("NO_PROXY", "no_proxy"):
        if name in env:
            kept = [entry for entry in env[name].split(",") if entry.strip() and not _bypasses(entry, mapped)]
            if kept:
                env[name] = ",".join(kept)
            else:
                del env[name]
    return env


def _bypasses(entry: str, mapped: set[str]) -> bool:
    """Whether a NO_PROXY entry would send a mapped name around the proxy, as the loosest client reads it: `*`, the
    name, a domain it is in (`test`, `.test`, `*.test`: Go, curl and Python each match suffixes), with or without
    a port (`registry.test:443`)."""
    entry = entry.strip().lower()
    if entry == "*":
        return True
    domain = _host_of(entry).lstrip("*").lstrip(".")
    return bool(domain) and any(name == domain or name.endswith("." + domain) for name in mapped)


def _host_of(name: str) -> str:
    """`registry.test:5000` -> `registry.test`; `[::1]:5000` -> `::1`; a name without a port as it is."""
    if name.startswith("["):
        return name[1:].partition("]")[0]
    return name.rpartition(":")[0] if name.count(":") == 1 else name


def daemon_warning(command: list[str], lang: str) -> str | None:
    """A sentence when the command's registry calls are made by a daemon this environment does not reach."""
    name = Path(command[0]).name if command else ""
    verbs = [arg for arg in command[1:] if not arg.startswith("-")]
    if name in _DAEMON and verbs and verbs[0] in _DAEMON[name]:
        return text("run_daemon", lang, command=f"{name} {verbs[0]}")
    return None


def loopback_hint(command: list[str], maps: list[str], lang: str) -> str | None:
    """A sentence when the command names a registry on loopback, which Go clients never send through a proxy."""
    for arg in command[1:]:
        match = _LOOPBACK.search(arg)
        if match and not maps:
            return text("run_loopback", lang, address=match.group(0))
    return None


class Proxy:
    """`ocitrace proxy` in its own process session; its call lines go to stderr (or are only counted)."""

    def __init__(self, args: argparse.Namespace, port: int, confdir: Path):
        argv = [sys.executable, "-m", "ocitrace", "proxy", "--port", str(port), "--out", str(args.out),
                "--confdir", str(confdir), "--lang", args.lang]
        for spec in args.map:
            argv += ["--map", spec]
        self.quiet = args.quiet
        # Where the report is, run says itself once the command has ended: the proxy's own line of it is not shown.
        # The calls' lines are, to the last (a call is recorded up to a quarter of a second after it ended).
        from ocitrace.addons.recording import REPORT_FILE

        self.report_line = text("report_written", args.lang, path=args.out / REPORT_FILE)
        self.last_lines: list[str] = []
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Drain the proxy's output to its end whatever becomes of stderr: a proxy that cannot write its log
        # stops forwarding.
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.last_lines = (self.last_lines + [line])[-5:]
            said = line.split("] ", 1)[1] if line.startswith("[") and "] " in line else None  # not its banner
            if said is not None and said != self.report_line and not self.quiet:
                try:
                    print(f"ocitrace: {said}", file=sys.stderr, flush=True)
                except (OSError, ValueError):  # stderr closed (a pipe whose reader left)
                    self.quiet = True

    def wait_ready(self, port: int, ca: Path, out: Path) -> str | None:
        """None once the proxy listens and holds the output folder; else why it did not start (its last line: a
        run that lost the folder to another says so, and the command is not run)."""
        from ocitrace.addons.recording import folder_in_use

        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                last = self.last_lines[-1].split("] ", 1)[-1] if self.last_lines else ""
                return last.removeprefix("ocitrace proxy: ") or f"exit status {self.process.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    if ca.exists() and folder_in_use(out) == str(self.process.pid):
                        return None
            except OSError:
                pass
            time.sleep(0.05)
        return f"not listening after {READY_TIMEOUT:.0f} s"

    def stop(self) -> None:
        from .lab import terminate  # here, not at start-up: the lab's imports cost `--version` 40 ms

        terminate(self.process, timeout=60)
        self._reader.join(timeout=5)


def _die_with_parent() -> None:
    """In the proxy's process: be stopped (SIGTERM) if ocitrace run dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Stopped(Exception):
    """This process was told to stop (SIGTERM, SIGHUP, SIGQUIT) before or after the command ran."""

    def __init__(self, number: int):
        super().__init__(number)
        self.status = 128 + number


def _stop(number: int, frame) -> None:
    raise Stopped(number)


def guard_signals() -> None:
    """From the start: the keyboard's signals are the command's (this process goes on to record and report);
    a request to stop unwinds, so the proxy is stopped and its CA folder removed."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)


def run_command(command: list[str], env: dict[str, str]) -> int:
    """Run the command on this terminal. Ctrl-C and Ctrl-\\ reach it (this process ignores them); a SIGTERM or
    SIGHUP sent to this process is passed on. The command's exit status, or 128 + the signal that ended it."""
    # Ignored signals stay ignored across exec: the command gets the keyboard's back while it is started.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        print(f"ocitrace: {command[0] or repr(command[0])}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    finally:
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: child.send_signal(number))
    try:
        status = child.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _stop)
    return 128 - status if status < 0 else status


def cmd_run(args: argparse.Namespace) -> int:
    from ocitrace.addons.recording import folder_problem
    from ocitrace.addons.upstream_map import parse_map_spec

    from .cli import fail

    lang = args.lang
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        return fail(text("run_no_command", lang))
    for spec in args.map:
        try:
            parse_map_spec(spec)
        except ValueError:
            return fail(text("error_map", lang, spec=spec))
    said = folder_problem(Path(args.out), lang)
    if said is not None:
        return fail(said)
    if shutil.which(command[0]) is None:  # before the earlier session is moved aside: nothing to record
        return fail(text("run_no_such_command", lang, command=command[0]), 127)
    for hint in (daemon_warning(command, lang), loopback_hint(command, args.map, lang)):
        if hint:
            print(f"ocitrace: {hint}", file=sys.stderr, flush=True)
    guard_signals()
    try:
        return _traced(args, command, lang)
    except Stopped as stopped:
        return stopped.status


def _traced(args: argparse.Namespace, command: list[str], lang: str) -> int:
    from ocitrace.addons.recording import REPORT_FILE
    from ocitrace.analyzers.strings import os_error_text

    from .cli import fail
    from .proxy import ensure_ca

    with tempfile.TemporaryDirectory(prefix="ocitrace-run-") as scratch:
        confdir = args.confdir or Path(scratch)
        try:
            ca = ensure_ca(confdir)
            bundle = write_bundle(confdir, ca)
        except OSError as exc:
            return fail(text("error_ca", lang, path=confdir, reason=os_error_text(exc, lang)))
        port = free_port()
        proxy = Proxy(args, port, confdir)
        try:
            problem = proxy.wait_ready(port, ca, args.out)
            if problem is not None:
                return fail(text("run_proxy_failed", lang, reason=problem))
            status = run_command(command, environment(dict(os.environ), port, bundle, args.map))
        finally:
            proxy.stop()
    _print_report(args, lang, args.out / REPORT_FILE)
    return status


def _print_report(args: argparse.Namespace, lang: str, report: Path) -> None:
    """The story of what the command did (or the records, with --format json/jsonl), on stderr: the command's
    own output keeps stdout."""
    from ocitrace.analyzers.analysis import analyze
    from ocitrace.analyzers.captures import read_captures
    from ocitrace.analyzers.report import render
    from ocitrace.analyzers.story import render_story

    from .cli import _write

    captures = read_captures([args.out / "flows.mitm"])
    analysis = analyze(captures.calls)
    try:
        print(text("run_summary", lang, calls=len(analysis.calls), path=report), file=sys.stderr)
    except OSError:
        pass
    if args.format == "markdown":
        output = "\n".join(render_story(analysis, lang)) + "\n"
    else:
        output = render(analysis, args.format, lang)
    try:
        if args.report:
            _write(output, None)
        else:
            sys.stderr.write(output)
    except OSError:  # the reader of the pipe left: the story was not wanted
        pass


def register(sub) -> None:
    p = sub.add_parser("run", help="run a command through the proxy and tell what it said to registries",
                       description="Start the proxy on a free loopback port, run COMMAND with HTTPS_PROXY and a CA "
                                   "bundle it trusts, and when it ends print the story of its registry calls. The "
                                   "command's input, output and exit status are its own.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("ocitrace-out"),
                   help="output folder (default ./ocitrace-out); a session already there moves to its earlier/")
    p.add_argument("--map", action="append", default=[], metavar="HOST=URL",
                   help="send HOST to another upstream, e.g. registry.test=http://127.0.0.1:5000 (repeatable)")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of the lines and report (default en)")
    p.add_argument("--format", choices=FORMATS, default="markdown",
                   help="what is printed at the end: the story (markdown, default) or the call records")
    p.add_argument("--quiet", action="store_true", help="no line per call, only the count at the end")
    p.add_argument("--report", action="store_true", help="print the report on stdout instead of stderr")
    p.add_argument("--confdir", type=Path, default=None,
                   help="keep the proxy's CA here (default: a folder removed when the command ends)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="the command to run")
    p.set_defaults(func=cmd_run)
