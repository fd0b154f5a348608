"""The audit of a capture: every finding (the rules' and the analysis' own), each registry's rate-limit account,
and the slowest calls, as the report's sections and as JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .findings import ERROR, INFO, WARNING, Finding, worth_telling
from .rules import rule
from .runs import Runs
from .strings import text
from .tally import MOST_ROWS
from .words import cell, finding_text, shorten_digests, size, table

if TYPE_CHECKING:
    from .analysis import Analysis

_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def findings(analysis: Analysis) -> Iterator[tuple[tuple[int, ...], Finding]]:
    """Each finding worth a reader's eyes, as JSON lists them: every call's in call order, with the 0-based calls
    each is about (the analysis keeps every call for JSON), then the capture's."""
    for item in analysis.calls:
        for finding in item.findings:
            if worth_telling(finding):
                yield (item.index,), finding
    for found in analysis.findings:
        yield found.calls, found.finding


def counts(analysis: Analysis) -> dict[str, int]:
    """How many findings of each code: every call's, then the capture's."""
    counted = Counter(analysis.tally.codes)
    counted.update(found.finding.code for found in analysis.findings)
    return dict(counted)


def errors(analysis: Analysis) -> int:
    """How many findings are errors: what `--strict` fails on."""
    return analysis.tally.errors + sum(found.finding.severity == ERROR for found in analysis.findings)


def finding_records(analysis: Analysis) -> list[dict[str, Any]]:
    records = []
    for calls, finding in findings(analysis):
        where = {"call": calls[0] + 1} if len(calls) == 1 else {"calls": [i + 1 for i in calls]}
        known = rule(finding.code)
        extra = {"side": known.side, "kind": known.kind, "spec": known.section} if known else {}
        records.append({**where, **finding.record(), **extra})
    return records


def findings_section(analysis: Analysis, lang: str) -> list[str]:
    # The capture's own findings (its `at: end` rules, or an analysis that failed at the end as one did on a call)
    # join the row told in the same words; a bounded row takes no call out of order, so theirs then make their own.
    at_end: dict[tuple[str, str], list[int]] = {}
    for found in analysis.findings:
        at_end.setdefault((found.finding.code, finding_text(found.finding, lang)), []).extend(found.calls)
    rows = dict(analysis.tally.told[lang])
    own = []
    for row, calls in at_end.items():
        kept = rows.get(row)
        if kept is None:
            rows[row] = Runs(sorted(set(calls)))
        elif calls and kept.whole:
            rows[row] = Runs(sorted(set(kept) | set(calls)))
        elif calls:
            own.append((row, Runs(sorted(set(calls)))))
    told = [*rows.items(), *own]
    out = [f"## {text('findings_heading', lang)}", ""]
    if not told:
        return out + [text("findings_none", lang), ""] + limits_section(analysis, lang)
    table_rows = []
    ordered = sorted(told, key=lambda kv: (_ORDER[Finding(kv[0][0]).severity], kv[1].first or 0))
    # the findings of the rows not shown, each row's calls once (as the table counts them)
    untold = sum(len(calls) for _, calls in ordered[MOST_ROWS:]) + analysis.tally.untold[lang]
    for (code, words), calls in ordered[:MOST_ROWS]:
        known = rule(code)
        table_rows.append([text(f"severity_{Finding(code).severity}", lang),
                           text(f"side_{known.side}", lang) if known else "", f"{code}: {shorten_digests(words)}",
                           calls.text(), known.section_in(lang) if known else ""])
    headers = [text(k, lang) for k in ("col_severity", "col_side", "col_finding", "col_calls", "col_spec")]
    out += [table(headers, table_rows), ""]
    if untold:
        out += [text("more_findings", lang, n=untold), ""]
    return out + limits_section(analysis, lang)


def limits_section(analysis: Analysis, lang: str) -> list[str]:
    told = [a for a in analysis.tally.limits.all if a.told]
    if not told:
        return []
    rows = []
    for a in told:
        limit = "-" if a.limit is None else (text("limit_window", lang, limit=a.limit, hours=_hours(a.window))
                                             if a.window else str(a.limit))
        remaining = "-" if a.last_remaining is None else f"{a.first_remaining} → {a.last_remaining}"
        rows.append([a.host, limit, text(f"counted_by_{a.counted_by}", lang) if a.counted_by else "-", remaining,
                     a.manifest_gets, a.manifest_heads, a.limited])
    headers = [text(k, lang) for k in ("col_host", "col_limit", "col_counted_by", "col_remaining",
                                       "col_manifest_gets", "col_manifest_heads", "col_limited")]
    return [f"### {text('limits_heading', lang)}", "", text("limits_intro", lang), "", table(headers, rows), ""]


def _hours(seconds: int | None) -> str:
    if not seconds:
        return "?"
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds} s"


def limit_records(analysis: Analysis) -> list[dict[str, Any]]:
    return [a.record() for a in analysis.tally.limits.all]


def slowest(analysis: Analysis) -> list[dict[str, Any]]:
    """The slowest calls, with the bytes they moved and the rate they moved them at."""
    records = []
    for item in analysis.tally.slowest:
        moved = max(item.call.request_size or 0, item.call.response_size or 0)
        records.append({"call": item.index + 1, "method": item.call.method, "path": item.call.path,
                        "status": item.call.status, "seconds": round(item.call.duration, 3), "bytes": moved,
                        "bytes_per_second": int(moved / item.call.duration) if moved else None})
    return records


def slowest_section(analysis: Analysis, lang: str) -> list[str]:
    records = slowest(analysis)
    if not records:
        return []
    rows = []
    for r in records:
        rate = text("rate_value", lang, bytes=size(r["bytes_per_second"])) if r["bytes_per_second"] else "-"
        status = "-" if r["status"] is None else r["status"]
        rows.append([r["call"], f"{r['method']} {shorten_digests(r['path'])}", status, f"{r['seconds']:.3f}",
                     size(r["bytes"]) if r["bytes"] else "-", rate])
    headers = [text(k, lang) for k in ("col_index", "col_request", "col_status", "col_seconds", "col_bytes",
                                       "col_rate")]
    return [f"## {text('slowest_heading', lang)}", "", table(headers, rows), ""]


__all__ = ["cell", "counts", "errors", "finding_records", "findings", "findings_section", "limit_records",
           "slowest", "slowest_section"]
