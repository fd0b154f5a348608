"""`ocitrace proxy`: mitmproxy with the ocitrace addon, and what the client must set to use it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import addons
from addons.registry_trace import writable_problem
from addons.upstream_map import parse_map_spec
from analyzers.report import LANGUAGES

ADDON = Path(addons.__file__).with_name("registry_trace.py")
DEFAULT_CONFDIR = Path("~/.mitmproxy").expanduser()


def ensure_ca(confdir: Path) -> Path:
    """Create mitmproxy's CA now, so its path can be given to clients before any traffic."""
    from mitmproxy.certs import CertStore

    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir / "mitmproxy-ca-cert.pem"


def mitmdump_args(args: argparse.Namespace) -> list[str]:
    argv = ["--listen-host", args.host, "--listen-port", str(args.port), "-s", str(ADDON),
            "--set", f"ocitrace_out={args.out}", "--set", f"ocitrace_lang={args.lang}",
            "--set", f"confdir={args.confdir}",
            # Mapped names need not resolve: connect upstream only once the request says where to.
            "--set", "connection_strategy=lazy",
            # ocitrace prints one line per call; mitmdump's own flow dump and chatter would bury it.
            "--set", "flow_detail=0", "--set", "termlog_verbosity=alert"]
    for spec in args.map:
        argv += ["--set", f"ocitrace_map={spec}"]
    extra = list(args.extra)
    return argv + (extra[1:] if extra[:1] == ["--"] else extra)


def banner(args: argparse.Namespace, ca: Path) -> str:
    where = f"{args.host}:{args.port}"
    head = (f"ocitrace proxy on {where}; writing {args.out}/ (flows.mitm, events.jsonl; report.md when stopped;"
            " a previous run's files there are replaced)\n")
    if any(a.startswith("reverse:") or a.startswith("--mode=reverse:") for a in args.extra):
        return head + f"Reverse mode: use {where} as the registry's address in the client.\nStop with Ctrl-C."
    return head + ("In the client's environment:\n"
                   f"  export HTTPS_PROXY=http://{where}\n"
                   f"  export SSL_CERT_FILE={ca}   # Go clients: docker CLI, skopeo, buildah, crane, oras\n"
                   "Stop with Ctrl-C.")


def cmd_proxy(args: argparse.Namespace) -> int:
    from .cli import fail

    for spec in args.map:
        try:
            parse_map_spec(spec)
        except ValueError as exc:
            return fail(f"--map: {exc}")
    problem = writable_problem(Path(args.out))
    if problem:
        return fail(problem)
    try:
        ca = ensure_ca(args.confdir)
    except OSError as exc:
        return fail(f"cannot create the mitmproxy CA in {args.confdir}: {exc.strerror}")
    print(banner(args, ca), flush=True)
    from mitmproxy.tools.main import mitmdump

    sys.argv = ["mitmdump"]
    return mitmdump(mitmdump_args(args)) or 0


def register(sub) -> None:
    p = sub.add_parser("proxy", help="run the live proxy: one line per registry call, a report at the end")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--out", type=Path, default=Path("ocitrace-out"), help="output folder (default ./ocitrace-out)")
    p.add_argument("--map", action="append", default=[], metavar="HOST=URL",
                   help="send HOST to another upstream, e.g. registry.test=http://127.0.0.1:5000 (repeatable)")
    p.add_argument("--lang", choices=LANGUAGES, default="en")
    p.add_argument("--confdir", type=Path, default=DEFAULT_CONFDIR, help="mitmproxy's folder for its CA")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more mitmdump arguments")
    p.set_defaults(func=cmd_proxy)
