"""The `ocitrace` command: analyze captures, run the live proxy, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from analyzers.analysis import analyze
from analyzers.captures import read_captures
from analyzers.report import FORMATS, LANGUAGES, render

from . import demo, proxy

EXIT_DAMAGED = 2


def fail(message: str, status: int = EXIT_DAMAGED) -> int:
    print(f"ocitrace: {message}", file=sys.stderr)
    return status


def capture_paths(names: Sequence[str]) -> list[str] | str:
    """The files to read: each name, or the flow file in a folder `ocitrace proxy` wrote; else what is wrong."""
    paths = []
    for name in names:
        path = Path(name)
        if path.is_dir() and (path / "flows.mitm").is_file():
            path = path / "flows.mitm"
        if not path.is_file():
            return f"{name}: no such capture file"
        paths.append(str(path))
    return paths


def cmd_analyze(args: argparse.Namespace) -> int:
    paths = capture_paths(args.captures)
    if isinstance(paths, str):
        return fail(paths)
    captures = read_captures(paths)
    analysis = analyze(captures.calls)
    output = render(analysis, args.format, args.lang, sources=paths, errors=captures.errors)
    if args.output:
        try:
            Path(args.output).write_text(output, encoding="utf-8")
        except OSError as exc:
            return fail(f"cannot write {args.output}: {exc.strerror}")
    else:
        sys.stdout.write(output)
    for error in captures.errors:
        print(f"ocitrace: {error}; the {len(error.calls)} calls read before it were analysed", file=sys.stderr)
    return EXIT_DAMAGED if captures.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocitrace", description="What your container client says to a registry.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('ocitrace')}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="analyse saved captures (mitmproxy flow files, HAR)")
    p.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="flow files or HAR files (or a folder ocitrace proxy wrote), read as one session")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--lang", choices=LANGUAGES, default="en")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_analyze)

    proxy.register(sub)
    demo.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
