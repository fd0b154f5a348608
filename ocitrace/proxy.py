"""`ocitrace proxy`: mitmproxy with the ocitrace addons, and what the client must set to use it."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys
from pathlib import Path

from ocitrace.analyzers.strings import LANGUAGES, os_error_text, text

DEFAULT_PORT = 8080
DEFAULT_CONFDIR = Path("~/.mitmproxy").expanduser()
EXAMPLE = ("example:\n  ocitrace proxy --map registry.test=http://127.0.0.1:5000\n"
           "  HTTPS_PROXY=http://127.0.0.1:8080 SSL_CERT_FILE=~/.mitmproxy/mitmproxy-ca-cert.pem "
           "skopeo inspect docker://registry.test/app:latest")


def ensure_ca(confdir: Path) -> Path:
    """Create mitmproxy's CA now, so its path can be given to clients before any traffic."""
    from mitmproxy.certs import CertStore

    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir / "mitmproxy-ca-cert.pem"


def port(value: str) -> int:
    """A TCP port a client can be told: 1 to 65535."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1 to 65535)")
    return int(value)


def port_problem(host: str, port: int) -> OSError | None:
    """Why the proxy could not listen on host:port, found before any file is touched; None when it can."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc
    return None


def mitmdump_args(args: argparse.Namespace) -> list[str]:
    argv = ["--listen-host", args.host, "--listen-port", str(args.port),
            "--set", f"ocitrace_out={args.out}", "--set", f"ocitrace_lang={args.lang}",
            "--set", f"confdir={args.confdir}",
            # ocitrace prints one line per call; mitmdump's own flow dump and chatter would bury it.
            "--set", "flow_detail=0", "--set", "termlog_verbosity=alert"]
    for spec in args.map:
        argv += ["--set", f"ocitrace_map={spec}"]
    if args.map:  # mapped names need not resolve: connect upstream only once a request says where to
        argv += ["--set", "connection_strategy=lazy"]
    if args.keep_secrets:
        argv += ["--set", "ocitrace_keep_secrets=true"]
    extra = list(args.extra)
    return argv + (extra[1:] if extra[:1] == ["--"] else extra)


def _reachable(host: str) -> str:
    """An address a client on this machine can use for a proxy listening on `host`."""
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return "127.0.0.1" if ":" not in host else "[::1]"
    except ValueError:
        pass
    return f"[{host}]" if ":" in host else host


def banner(args: argparse.Namespace, ca: Path) -> str:
    lang = args.lang
    where = f"{_reachable(args.host)}:{args.port}"
    lines = [text("proxy_banner", lang, where=f"{args.host}:{args.port}", out=args.out)]
    if any(a.startswith("reverse:") or a.startswith("--mode=reverse:") for a in args.extra):
        lines.append(text("proxy_reverse", lang, where=where))
    else:
        lines += [text("proxy_env", lang), f"  export HTTPS_PROXY=http://{where}",
                  f"  export SSL_CERT_FILE={ca}   # " + text("proxy_go_clients", lang)]
    lines.append(text("proxy_stop", lang))
    return "\n".join(lines)


def run_mitmdump(argv: list[str]) -> None:
    """mitmdump with the ocitrace addons loaded once, as objects (no script reload, no second import)."""
    from mitmproxy.tools import cmdline
    from mitmproxy.tools.dump import DumpMaster
    from mitmproxy.tools.main import run

    from ocitrace.addons.reads import read_more
    from ocitrace.addons.registry_trace import RegistryTrace
    from ocitrace.addons.upstream_map import UpstreamMap

    class Ocitrace:
        """The ocitrace addons as one entry of mitmproxy's chain, which they are children of. mitmproxy spends some
        microseconds on every entry for each of a call's eight events, hook or not (a second entry cost 1 to 2% of
        a small call's time here); a child is reached for a fraction of that. mitmproxy shields entries from each
        other's faults, not children: the map's one hook is a table lookup, so the trace's is not left unrun."""

        def __init__(self) -> None:
            # The upstream map first: it chooses where a call goes before its body streams.
            self.addons = [UpstreamMap(), RegistryTrace()]

    class TraceMaster(DumpMaster):
        def __init__(self, options, **kwargs) -> None:
            super().__init__(options, **kwargs)
            self.addons.add(Ocitrace())

    read_more()  # a blob crosses the proxy's layers in pieces of up to 256 KiB, not 64 (addons/reads.py)
    run(TraceMaster, cmdline.mitmdump, argv)


def cmd_proxy(args: argparse.Namespace) -> int:
    from ocitrace.addons.recording import folder_problem
    from ocitrace.addons.upstream_map import parse_map_spec

    from .cli import fail

    lang = args.lang
    for spec in args.map:
        try:
            parse_map_spec(spec)
        except ValueError:
            return fail(text("error_map", lang, spec=spec))
    problem = port_problem(args.host, args.port)
    if problem is not None:
        key = "error_port_in_use" if problem.errno == errno.EADDRINUSE else "error_listen"
        return fail(text(key, lang, where=f"{args.host}:{args.port}", reason=os_error_text(problem, lang)))
    said = folder_problem(Path(args.out), lang)
    if said is not None:
        return fail(said)
    try:
        ca = ensure_ca(args.confdir)
    except OSError as exc:
        return fail(text("error_ca", lang, path=args.confdir, reason=os_error_text(exc, lang)))
    if not _loopback(args.host):
        print(text("warning_open_proxy", lang, host=args.host), file=sys.stderr, flush=True)
    if args.keep_secrets:
        print(text("warning_keep_secrets", lang, out=args.out), file=sys.stderr, flush=True)
    print(banner(args, ca), flush=True)
    sys.argv = ["ocitrace proxy"]  # mitmproxy names itself by argv[0] in its messages
    try:
        run_mitmdump(mitmdump_args(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def register(sub) -> None:
    p = sub.add_parser("proxy", help="run the live proxy: one line per registry call, a report at the end",
                       description="Run mitmproxy with the ocitrace addons. Each registry call is printed as it "
                                   "completes and recorded into --out; report.md is written when it stops.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other makes an open proxy, with a warning)")
    p.add_argument("--out", type=Path, default=Path("ocitrace-out"),
                   help="output folder (default ./ocitrace-out); a session already there moves to its earlier/")
    p.add_argument("--map", action="append", default=[], metavar="HOST=URL",
                   help="send HOST to another upstream, e.g. registry.test=http://127.0.0.1:5000 (repeatable)")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of the log lines and report "
                   "(default en)")
    p.add_argument("--confdir", type=Path, default=DEFAULT_CONFDIR,
                   help="mitmproxy's folder for its CA (default ~/.mitmproxy)")
    p.add_argument("--keep-secrets", action="store_true",
                   help="write flows.mitm as it passed, credentials included (default: redacted, as the reports)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more mitmdump arguments")
    p.set_defaults(func=cmd_proxy)
