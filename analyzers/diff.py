"""`ocitrace diff A B`: what two captures did differently, by operation, call, endpoint, platform and blob.

Calls are compared by their shape, not their names: the method, the path with its repository, digests and
session ids left out, the step and the status. Two pushes of the same kind of image to two repositories
then compare call for call.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .analysis import Analysis, AnalyzedCall
from .digests import short_digest
from .manifests import Index
from .story import sections, template, title
from .strings import text
from .words import cell, table


def shape(item: AnalyzedCall) -> tuple[str, str, str, str]:
    """(method, path template, step, status) of a call."""
    path = template(item)  # digests and the session id left out, as the story's rows show them
    classification = item.classification
    if classification.repository and path.startswith(f"/v2/{classification.repository}/"):
        path = "/v2/<name>/" + path[len(f"/v2/{classification.repository}/"):]
    if classification.tag and path.endswith("/" + classification.tag):
        path = path[: -len(classification.tag)] + "<tag>"
    status = "—" if item.call.status is None else str(item.call.status)
    return item.call.method, path, item.step or "other", status


def _outcomes(analysis: Analysis) -> dict[str, str]:
    """What became of each blob a push named: uploaded, mounted or already there."""
    outcome: dict[str, str] = {}
    for operation in analysis.operations:
        for digest in operation.present:
            outcome.setdefault(digest, "present")
        for digest in operation.mounted:
            outcome[digest] = "mounted"
        for upload in operation.uploads.values():
            if upload.digest:
                outcome[upload.digest] = "uploaded"
    return outcome


def _platforms(analysis: Analysis) -> set[str]:
    return {p for operation in analysis.operations for p in operation.platforms}


def _indexes(analysis: Analysis) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Each index: its media type, its platforms, and whether the capture pushed or pulled it."""
    pushed = {item.body_digest for item in analysis.calls if item.step == "push-index"}
    return {obj.digest: (obj.value.media_type, tuple(sorted(str(d.platform) for d in obj.value.images
                                                           if d.platform is not None)),
                         "pushed" if obj.digest in pushed else "pulled")
            for obj in analysis.objects if isinstance(obj.value, Index) and obj.digest}


def _endpoint_order(endpoint: str) -> tuple:
    """end-1, end-2, ..., end-4a, ..., end-14, then the extras by name."""
    match = re.fullmatch(r"end-(\d+)([a-z]?)", endpoint)
    return (0, int(match.group(1)), match.group(2)) if match else (1, 0, endpoint)


@dataclass
class Diff:
    a: Analysis
    b: Analysis

    def shapes(self) -> list[tuple[tuple[str, str, str, str], int, int]]:
        """Every call shape with its count in A and in B, in the order first seen."""
        ca, cb = Counter(shape(i) for i in self.a.calls), Counter(shape(i) for i in self.b.calls)
        order = list(dict.fromkeys([shape(i) for i in self.a.calls] + [shape(i) for i in self.b.calls]))
        return [(key, ca[key], cb[key]) for key in order]

    def calls(self) -> list[tuple[tuple[str, str, str, str], int, int]]:
        """Call shapes whose counts differ."""
        return [(key, na, nb) for key, na, nb in self.shapes() if na != nb]

    def endpoints(self) -> list[tuple[str, int, int]]:
        """Calls per endpoint in A and in B, every endpoint either used."""
        ca = Counter(i.endpoint_id or "-" for i in self.a.calls)
        cb = Counter(i.endpoint_id or "-" for i in self.b.calls)
        return [(key, ca[key], cb[key]) for key in sorted(set(ca) | set(cb), key=_endpoint_order)]

    def blobs(self) -> list[tuple[str, str, str]]:
        oa, ob = _outcomes(self.a), _outcomes(self.b)
        return [(digest, oa[digest], ob[digest]) for digest in sorted(set(oa) & set(ob)) if oa[digest] != ob[digest]]

    def blob_counts(self) -> tuple[Counter, Counter]:
        return Counter(_outcomes(self.a).values()), Counter(_outcomes(self.b).values())


def render_diff(a: Analysis, b: Analysis, names: tuple[str, str], lang: str = "en") -> str:
    diff = Diff(a, b)
    name_a, name_b = names  # raw in table headers (table() makes every cell safe), through cell() elsewhere
    out = [f"# {cell(text('diff_title', lang, a=name_a, b=name_b))}", ""]
    parts_a, parts_b = sections(a), sections(b)
    out += [cell(text("diff_summary", lang, name=name_a, calls=len(a.calls), operations=len(parts_a))), "",
            cell(text("diff_summary", lang, name=name_b, calls=len(b.calls), operations=len(parts_b))), ""]

    out += [f"## {text('diff_operations', lang)}", ""]
    rows = []
    titles_a = [title(s, lang) for s in parts_a]
    titles_b = [title(s, lang) for s in parts_b]
    for n in range(max(len(titles_a), len(titles_b))):
        rows.append([n + 1, titles_a[n] if n < len(titles_a) else "", titles_b[n] if n < len(titles_b) else ""])
    out += [table(["#", name_a, name_b], rows), ""]

    calls = diff.calls()
    out += [f"## {text('diff_calls', lang)}", ""]
    if calls:
        only_a = [c for c in calls if c[2] == 0]
        only_b = [c for c in calls if c[1] == 0]
        both = [c for c in diff.shapes() if c[1] and c[2]]
        out.append(cell(text("diff_only", lang, name=name_a, n=sum(c[1] for c in only_a)) + " "
                        + text("diff_only", lang, name=name_b, n=sum(c[2] for c in only_b)) + " "
                        + text("diff_both", lang, n=len(both))))
        mark = {True: text("diff_same", lang), False: ""}
        out += ["", table([text("col_request", lang), text("col_status", lang), text("col_meaning", lang), name_a,
                           name_b, ""],
                          [[f"{method} {path}", status, text(f"step_{step}", lang), na, nb, mark[na == nb]]
                           for (method, path, step, status), na, nb in diff.shapes()]), ""]
    else:
        out += [text("diff_same_calls", lang), ""]

    endpoints = diff.endpoints()
    if endpoints:
        out += [f"## {text('endpoints_heading', lang)}", "",
                table([text("col_endpoint", lang), name_a, name_b, ""],
                      [[key, na, nb, text("diff_same", lang) if na == nb else ""] for key, na, nb in endpoints]), ""]

    pa, pb = _platforms(a), _platforms(b)
    out += [f"## {text('diff_platforms', lang)}", ""]
    out += [cell(text("diff_platform_line", lang, name=name_a, platforms=", ".join(sorted(pa)) or "-")), "",
            cell(text("diff_platform_line", lang, name=name_b, platforms=", ".join(sorted(pb)) or "-"))]
    if pa != pb:
        out += ["", cell(text("diff_platforms_changed", lang, added=", ".join(sorted(pb - pa)) or "-",
                              removed=", ".join(sorted(pa - pb)) or "-"))]
    out.append("")
    ia, ib = _indexes(a), _indexes(b)
    if ia or ib:
        out += [table([text("col_digest", lang), text("col_media_type", lang), text("col_platform", lang), name_a,
                       name_b],
                      [[short_digest(d), media, ", ".join(platforms),
                        text(f"diff_{ia[d][2]}", lang) if d in ia else "", text(f"diff_{ib[d][2]}", lang) if d in ib
                        else ""] for d, (media, platforms, _) in {**ia, **ib}.items()]), ""]

    out += [f"## {text('diff_blobs', lang)}", ""]
    counts_a, counts_b = diff.blob_counts()
    out += [table([text("diff_outcome", lang), name_a, name_b],
                  [[text(f"diff_outcome_{o}", lang), counts_a[o], counts_b[o]]
                   for o in ("uploaded", "mounted", "present")]), ""]
    blobs = diff.blobs()
    if blobs:
        out += [table([text("col_digest", lang), name_a, name_b],
                      [[short_digest(d), text(f"diff_outcome_{x}", lang), text(f"diff_outcome_{y}", lang)]
                       for d, x, y in blobs]), ""]
    return "\n".join(out)
