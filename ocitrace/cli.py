"""The `ocitrace` command: analyze captures, run the live proxy, run the demo.

Each command imports what it uses when it runs: `--version` and `analyze` never load the proxy machinery.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path

from ocitrace.analyzers.strings import LANGUAGES

# Exit statuses: 0 done; 1 `--strict` and the capture holds an error finding (a CI gate); 2 bad input.
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
FORMATS = ("markdown", "json", "jsonl")  # report.FORMATS, without loading the report machinery at start-up
# A folder ocitrace proxy recorded holds its session in these, best first (events.jsonl says less).
SESSION_FILES = ("flows.mitm", "events.jsonl")
CAPTURE_SUFFIXES = (".mitm", ".flows", ".har")

ANALYZE_EXAMPLE = """examples:
  ocitrace analyze ocitrace-out                 the session a proxy recorded there
  ocitrace analyze captures/demo --lang zh      every session under a folder, as one, in Chinese
  ocitrace analyze flows.mitm --format jsonl    one JSON record per call
  ocitrace analyze --strict -o report.md ci/    fail (exit 1) on an error finding, as a CI gate"""
DIFF_EXAMPLE = "example:\n  ocitrace diff captures/demo/build-push captures/demo/manual"
DEMO_EXAMPLE = "example:\n  ocitrace demo --out /tmp/demo"


def fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"ocitrace: {message}", file=sys.stderr)
    return status


def _session_in(folder: Path) -> Path | None:
    return next((folder / name for name in SESSION_FILES if (folder / name).is_file()), None)


def _captures_under(folder: Path) -> list[Path]:
    """The captures a folder holds: its own session if it is one, else every capture below it."""
    session = _session_in(folder)
    if session is not None:
        return [session]
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            found += _captures_under(entry)
        elif entry.suffix in CAPTURE_SUFFIXES:
            found.append(entry)
    return found


def capture_paths(names: Sequence[str], lang: str) -> list[str] | str:
    """The files to read for the names given (files, or folders searched for captures); else what is wrong."""
    from ocitrace.analyzers.strings import text

    paths: list[str] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = _captures_under(path)
            if not found:
                return text("error_no_capture_in", lang, path=name)
            paths += [str(p) for p in found]
        elif path.is_file():
            paths.append(str(path))
        else:
            return text("error_no_capture", lang, path=name)
    return paths


def _reader_left() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit


def _write(output: str, destination: str | None) -> None:
    """Text as UTF-8 wherever it goes; bytes that were not UTF-8 in the capture come out escaped."""
    data = output.encode("utf-8", "backslashreplace")
    if destination is None:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader of the pipe left (`| head`): what it did not read was not wanted
            _reader_left()
    else:
        Path(destination).write_bytes(data)


class _CannotWrite(Exception):
    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


class _Lines:
    """Lines written as they are made (`--format jsonl`: each call's record once it is analysed, so that no call is
    held for the end), UTF-8 as `_write` writes them: to stdout, or to the destination, opened at the first line
    (a run that reads nothing leaves it as it was). Written in place, whatever it is (a file, a device, a pipe)."""

    def __init__(self, destination: str | None):
        self._destination = destination
        self._out = sys.stdout.buffer if destination is None else None
        self.reader_left = False  # stdout was a pipe whose reader went away: the rest is not wanted

    def write(self, line: str) -> None:
        try:
            if self._out is None:
                self._out = open(self._destination, "wb")  # noqa: SIM115 - held across writes, closed in close
            self._out.write(line.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            self._failed(exc)

    def close(self) -> None:
        """Every line is in (an empty capture still makes its empty file)."""
        try:
            if self._out is None:
                self._out = open(self._destination, "wb")  # noqa: SIM115
            if self._destination is None:
                self._out.flush()
            else:
                self._out.close()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self._destination is None and isinstance(exc, BrokenPipeError):
            self.reader_left = True
            _reader_left()
            return
        if self._out is not None and self._destination is not None:
            try:
                self._out.close()
            except OSError:
                pass  # it is told once, below: not again as Python lets the file go
            self._out = None
        raise _CannotWrite(exc) from None


def _overwrites(output: str | None, inputs: Sequence[str | Path]) -> bool:
    """Whether writing `output` would replace one of the captures read."""
    if output is None or not Path(output).exists():
        return False
    return any(os.path.samefile(output, p) for p in inputs)  # under any name: a link, a hard link


def _inputs(names: Sequence[str], output: str | None, lang: str) -> list[str] | int:
    """The capture files `names` stand for, or the exit status of a one-sentence refusal: none found, or
    `output` would be written over one of them."""
    from ocitrace.analyzers.strings import text

    paths = capture_paths(names, lang)
    if isinstance(paths, str):
        return fail(paths)
    if _overwrites(output, paths):
        return fail(text("error_same_file", lang, path=output))
    return paths


def _tell_problems(captures, lang: str) -> None:
    """What reading noticed (damage, a file given twice, an empty one), one line each on stderr."""
    from ocitrace.analyzers.report import capture_problem

    for path, finding in [(e.path, e.finding) for e in captures.errors] + captures.notices:
        print(f"ocitrace: {capture_problem(path, finding, lang)}", file=sys.stderr)


def _read_whole(names: Sequence[str], output: str | None, lang: str, bodies: bool = False):
    """The captures `names` stand for, read to their end; or the exit status when they cannot be (none found,
    `output` over one of them, damage: each told in one sentence). `bodies`: every body whole (see
    read_flow_file)."""
    from ocitrace.analyzers.captures import read_captures

    paths = _inputs(names, output, lang)
    if isinstance(paths, int):
        return paths
    captures = read_captures(paths, bodies=bodies)
    _tell_problems(captures, lang)
    return EXIT_BAD_INPUT if captures.errors else captures


def cmd_analyze(args: argparse.Namespace) -> int:
    from itertools import chain

    from ocitrace.analyzers.captures import read_captures
    from ocitrace.analyzers.strings import os_error_text, text

    lang = args.lang
    paths = _inputs(args.captures, args.output, lang)
    if isinstance(paths, int):
        return paths
    # Reading overlaps the analysis, and a large flow file is read by every core.
    from ocitrace.progress import Bar

    lines = _Lines(args.output) if args.format == "jsonl" else None
    # lines drawn on the terminal as they come say how far it is: no bar between them
    bar = Bar(sum(Path(p).stat().st_size for p in paths), text("progress_reading", lang),
              drawn=not (lines is not None and args.output is None and sys.stdout.isatty()))
    captures = read_captures(paths, workers=os.cpu_count() or 1, stream=True, progress=bar)
    # The readers start before the analysis is imported (~0.15 s), and read on meanwhile.
    calls = iter(captures.calls)
    first = next(calls, None)
    calls = chain([first], calls) if first is not None else iter(())
    from ocitrace.analyzers.analysis import Analyzer
    from ocitrace.analyzers.report import capture_problem, event_line, render
    from ocitrace.analyzers.story import STORY_CALLS
    # Memory that hardly grows with the capture: markdown tells the story of the first calls and counts the rest;
    # jsonl writes each call's record as it is analysed and keeps none. JSON, one document, keeps every call.
    analyzer = Analyzer(keep={"markdown": STORY_CALLS, "jsonl": 0}.get(args.format))
    try:
        for call in calls:
            item = analyzer.add(call)
            if lines is not None:
                lines.write(event_line(item))
                if lines.reader_left:
                    return 0
        analysis = analyzer.finish()
        if captures.errors and not analysis.count:  # nothing read: a report of nothing would look clean
            for error in captures.errors:
                print(f"ocitrace: {capture_problem(error.path, error.finding, lang)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if lines is not None:
            lines.close()
    except _CannotWrite as exc:
        return fail(text("error_cannot_write", lang, path=args.output, reason=os_error_text(exc.error, lang)))
    finally:
        bar.close()
    if lines is None:
        output = render(analysis, args.format, lang, sources=paths, errors=captures.errors, notices=captures.notices)
        try:
            if args.format == "markdown" and args.output is None and sys.stdout.isatty():
                from ocitrace import terminal  # drawn for the terminal: tables, headings, colour

                terminal.show(output, text("terminal_diagram", lang))
            else:
                _write(output, args.output)
        except OSError as exc:
            return fail(text("error_cannot_write", lang, path=args.output, reason=os_error_text(exc, lang)))
    _tell_problems(captures, lang)
    if captures.errors:
        return EXIT_BAD_INPUT
    if args.strict:
        from ocitrace.analyzers import audit

        errors = audit.errors(analysis)
        if errors:
            print(f"ocitrace: {text('strict_failed', lang, n=errors)}", file=sys.stderr)
            return EXIT_FINDINGS
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ocitrace.analyzers.analysis import analyze
    from ocitrace.analyzers.diff import render_diff
    from ocitrace.analyzers.strings import os_error_text, text

    lang = args.lang
    analyses = []
    for name in (args.a, args.b):
        captures = _read_whole([name], args.output, lang)
        if isinstance(captures, int):
            return captures
        if not captures.calls:
            return fail(text("error_diff_empty", lang, path=name))
        analyses.append(analyze(captures.calls))
    output = render_diff(analyses[0], analyses[1], (args.a, args.b), lang)
    try:
        _write(output, args.output)
    except OSError as exc:
        return fail(text("error_cannot_write", lang, path=args.output, reason=os_error_text(exc, lang)))
    return 0


def cmd_redact(args: argparse.Namespace) -> int:
    """A copy of a capture safe to share: what the reports hide, hidden in the capture too."""
    import json as json_module

    from ocitrace.analyzers import redact, tnetstrings
    from ocitrace.analyzers.captures import CaptureError, capture_format, read_captures
    from ocitrace.analyzers.report import capture_problem
    from ocitrace.analyzers.strings import os_error_text, text

    lang, source, target = args.lang, Path(args.capture), Path(args.output)
    if not source.is_file():
        return fail(text("error_no_capture", lang, path=args.capture))
    if target.exists() and target.resolve() == source.resolve():
        return fail(text("error_same_file", lang, path=args.output))
    captures = read_captures([source])  # a damaged capture is refused before anything is written
    if captures.errors:
        return fail(capture_problem(captures.errors[0].path, captures.errors[0].finding, lang))
    try:
        kind = capture_format(source)
        if kind == "har":
            document = json_module.loads(source.read_bytes().decode("utf-8-sig"))
            target.write_text(json_module.dumps(redact.har(document), ensure_ascii=False, indent=1),
                              encoding="utf-8", errors="backslashreplace")
        elif kind == "flows":
            from mitmproxy.io import tnetstring

            with tnetstrings.mapped(source) as buf, open(target, "wb") as out:
                for state, _ in tnetstrings.iter_values(buf):
                    tnetstring.dump(redact.flow_state(state) if isinstance(state, dict) else state, out)
        else:  # events are written redacted; an empty file is empty
            target.write_bytes(source.read_bytes())
    except CaptureError as exc:
        return fail(capture_problem(exc.path, exc.finding, lang))
    except OSError as exc:
        return fail(text("error_cannot_write", lang, path=target, reason=os_error_text(exc, lang)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json as json_module

    from ocitrace.analyzers.har import har_document
    from ocitrace.analyzers.strings import os_error_text, text

    lang = args.lang
    captures = _read_whole(args.captures, args.har, lang, bodies=True)  # a HAR holds every body the capture held
    if isinstance(captures, int):
        return captures
    document = har_document(captures.calls, _version())
    try:
        _write(json_module.dumps(document, ensure_ascii=False, indent=1) + "\n", args.har)
    except OSError as exc:
        return fail(text("error_cannot_write", lang, path=args.har, reason=os_error_text(exc, lang)))
    return 0


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    return lambda args: getattr(import_module(module), function)(args)


def _version() -> str:
    from importlib.metadata import version

    return version("ocitrace")


class _Version(argparse.Action):
    """--version, looked up only when asked for."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"ocitrace {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocitrace", description="What your container client says to a registry.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="analyse saved captures (mitmproxy flow files, HAR, events.jsonl)",
                       description="Analyse captures as one session: classify every call, decode the manifests, "
                                   "check the digests, and write the report.",
                       epilog=ANALYZE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="flow files, HAR files, events.jsonl, or folders (a folder ocitrace proxy wrote is its "
                        "session; any other is searched for captures)")
    p.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default markdown)")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of the report and messages (default en)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the capture holds an error finding (a digest mismatch, a MUST of the spec "
                        "broken): a CI gate. Exit 2 is bad input, 0 otherwise")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("diff", help="compare two captures: operations, calls, platforms, blobs",
                       description="Compare two captures (files or folders, as analyze reads them) by operation, "
                                   "call shape, endpoint counts, platforms and what became of each blob.",
                       epilog=DIFF_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="the first capture")
    p.add_argument("b", metavar="B", help="the second capture")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of the comparison (default en)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("redact", help="write a copy of a capture that is safe to share",
                       description="Copy a flow file or a HAR file with what the reports hide hidden: credentials "
                                   "in headers, cookies, query strings, form bodies and token answers. The copy "
                                   "reads the same in ocitrace analyze.",
                       epilog="example:\n  ocitrace redact capture.mitm shared.mitm",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("capture", metavar="IN", help="a flow file or a HAR file")
    p.add_argument("output", metavar="OUT", help="where the redacted copy goes")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of messages (default en)")
    p.set_defaults(func=cmd_redact)

    p = sub.add_parser("export", help="write captures as a HAR file (for DevTools, Charles, Fiddler)",
                       description="Write the calls of captures (as analyze reads them) as one HAR 1.2 file, "
                                   "redacted like the reports, that Chrome and Firefox DevTools, Charles and Fiddler "
                                   "import.",
                       epilog="example:\n  ocitrace export --har session.har ocitrace-out",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="flow files, HAR files, events.jsonl, or folders")
    p.add_argument("--har", required=True, metavar="OUT", help="the HAR file to write")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="language of messages (default en)")
    p.set_defaults(func=cmd_export)

    from . import proxy, run  # their modules import nothing heavy; mitmproxy is loaded when the proxy runs

    proxy.register(sub)
    run.register(sub)

    p = sub.add_parser("demo", help="replay the article with a local registry and real clients",
                       description="Start a local registry, put ocitrace proxy in front of it, and replay the "
                                   "article's stories with real clients; each is recorded with its reports.",
                       epilog=DEMO_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("captures/demo"),
                   help="where captures and reports go (default captures/demo)")
    p.set_defaults(func=_lazy("ocitrace.demo", "cmd_demo"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
