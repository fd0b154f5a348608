"""`ocitrace demo`: the article's three stories, replayed with a real registry and real clients.

A local CNCF distribution registry, the ocitrace proxy in front of it, and buildah, skopeo and the docker
CLI as clients. Each story is captured on its own (flows.mitm, events.jsonl, report.md, report.zh.md).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.diff import render_diff
from ocitrace.analyzers.report import report_of
from ocitrace.analyzers.story import fold, sections
from ocitrace.analyzers.strings import text

from .lab import REGISTRY_NAME, LabError, PlainMitmdump, Proxy, Registry, require, run_client
from .layout import ARTICLE_PLATFORMS, write_base_image
from .token_server import TOKEN_NAME, TokenServer, User

SECURE_NAME = "secure.test"  # the registry that asks for a token
BASE = f"{REGISTRY_NAME}/hj-public/debian"
TARGET = f"{REGISTRY_NAME}/hj-public/test1"
MANUAL = f"{REGISTRY_NAME}/hj-public/test2"
BUILD_PLATFORMS = ("linux/amd64", "linux/arm64")
SEED_COMMANDS = (f"skopeo copy --all --preserve-digests oci:base:latest docker://{BASE}:latest",)
BUILD_COMMANDS = (f"buildah build --platform {','.join(BUILD_PLATFORMS)} --manifest hj-test1 .",
                  f"buildah manifest push --all hj-test1 docker://{TARGET}:new")
MANUAL_COMMANDS = (f"docker manifest create --amend {MANUAL}:new {MANUAL}:arm64 {MANUAL}:amd64",
                   f"docker manifest annotate {MANUAL}:new {MANUAL}:arm64 --os linux --arch arm64",
                   f"docker manifest annotate {MANUAL}:new {MANUAL}:amd64 --os linux --arch amd64",
                   f"docker manifest push --purge {MANUAL}:new")
# Token auth, as Docker Hub, GHCR and Harbor do it: alice may push to team/*, bob only pull from it, carol
# push to other/* only. Passwords are made anew for each run; a capture must never show them.
AUTH_USERS = {"alice": {"team/*": ("pull", "push")}, "bob": {"team/*": ("pull",)},
              "carol": {"other/*": ("pull", "push")}}
SECURE = f"{SECURE_NAME}/team/app"
OTHER = f"{SECURE_NAME}/other/idx"
AUTH_COMMANDS = (
    f"skopeo copy --dest-creds alice:$ALICE_PASSWORD docker://{TARGET}:new docker://{SECURE}:v1",
    f"skopeo inspect --creds bob:$BOB_PASSWORD docker://{SECURE}:v1",
    f"skopeo copy --dest-creds bob:$BOB_PASSWORD docker://{TARGET}:new docker://{SECURE}:v2"
    "  # refused: bob may only pull",
    f"docker login {SECURE_NAME} -u alice --password-stdin <<< $ALICE_PASSWORD",
    f"docker manifest create {OTHER}:v1 {SECURE}:v1",
    f"docker login {SECURE_NAME} -u carol --password-stdin <<< $CAROL_PASSWORD",
    f"docker manifest push {OTHER}:v1  # refused: carol may not read team/app, so no mount from it",
)
REFERRERS_COMMANDS = (
    f"python: oras.client.OrasClient().push(files=['sbom.spdx.json'], target='{TARGET}:sbom', subject=SUBJECT)",
    f"python -m ocitrace.referrers_client {REGISTRY_NAME} hj-public/test1 SUBJECT",
)
RUN_COMMANDS = (f"ocitrace run --map {REGISTRY_NAME}=http://127.0.0.1:PORT -- skopeo inspect docker://{TARGET}:new",)
PULL_COMMANDS = (f"skopeo copy --override-os linux --override-arch arm64 docker://{TARGET}:new oci:pulled:new",)
COMMANDS_FILE = "commands.json"
CLIENTS = ("docker-registry", "skopeo", "buildah", "docker")


class Lab:
    """A registry, a scratch folder, and proxies started on demand in front of the registry."""

    def __init__(self, work: Path, passwords: dict[str, str] | None = None):
        """`passwords`: of the token registry's users (made anew when not given)."""
        self.work = work
        self.confdir = work / "mitmproxy"
        self.registry = Registry(work / "registry")
        self.passwords = passwords or {user: secrets.token_urlsafe(12) for user in AUTH_USERS}
        self.tokens = TokenServer(work / "token", {user: User(self.passwords[user], grants)
                                                   for user, grants in AUTH_USERS.items()}, service=SECURE_NAME)
        self.secure = Registry(work / "secure", public_url=f"https://{SECURE_NAME}", auth={"token": {
            "realm": self.tokens.realm, "service": SECURE_NAME, "issuer": self.tokens.issuer,
            "rootcertbundle": str(self.tokens.certificate)}})
        # While a scenario records: the commands run, and when.
        self.journal: list[dict] = []
        self.folder: Path | None = None  # the story being recorded

    def __enter__(self) -> Lab:
        require(*CLIENTS)
        # buildah reads its auth file from DOCKER_CONFIG and wants it to exist.
        (self.work / "docker").mkdir(parents=True, exist_ok=True)
        (self.work / "docker" / "config.json").write_text("{}")
        self.registry.start()
        self.tokens.start()
        self.secure.start()
        return self

    def __exit__(self, *exc) -> None:
        self.secure.stop()
        self.tokens.stop()
        self.registry.stop()

    @contextmanager
    def proxy(self, out: Path, plain: bool = False) -> Iterator[dict[str, str]]:
        """A proxy writing into `out` (ocitrace, or plain mitmdump -w); yields what a client needs to use it."""
        log = self.work / f"{out.name}.proxy.log"
        kind = PlainMitmdump if plain else Proxy
        maps = {REGISTRY_NAME: self.registry.upstream, SECURE_NAME: self.secure.upstream,
                TOKEN_NAME: self.tokens.upstream}
        with kind(out, maps, self.confdir, log=log) as proxy:
            env = proxy.env()
            env.update(DOCKER_CONFIG=str(self.work / "docker"), STORAGE_DRIVER="vfs", BUILDAH_ISOLATION="chroot")
            yield env

    def run(self, argv: list[str], env: dict[str, str], shown: str, stdin: str | None = None,
            fails: bool = False, cwd: Path | None = None) -> str:
        """Run a client; note which calls (1-based, in the recording) the command made. `fails`: it is meant
        to be refused."""
        start = time.time()
        output = run_client(argv, env, stdin=stdin, fails=fails, cwd=cwd)
        entry = {"command": shown, "span": [start, time.time()]}  # made calls, once the recording is complete
        self.journal.append({**entry, "refused": True} if fails else entry)
        return output

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", "--root", str(self.work / "buildah" / "root"),
                "--runroot", str(self.work / "buildah" / "run"), *args]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    commands: tuple[str, ...]
    run: Callable[[Lab, dict[str, str]], None]
    setup: Callable[[Lab, dict[str, str]], None] | None = None
    plain: bool = False  # recorded by plain `mitmdump -w`, the report made by `ocitrace analyze`
    via_run: bool = False  # recorded by `ocitrace run`, which starts its own proxy
    # The article's table for this story, as (method, step) rows of ocitrace's story.
    article: tuple[tuple[str, str], ...] = ()
    note: str = ""  # what a reader of the article should know about how this story was recorded


def seed(lab: Lab, env: dict[str, str]) -> None:
    layout = write_base_image(lab.work / "base-layout")
    lab.run(["skopeo", "copy", "--all", "--preserve-digests", f"oci:{layout}:latest", f"docker://{BASE}:latest"],
            env, SEED_COMMANDS[0])


def build_and_push(lab: Lab, env: dict[str, str]) -> None:
    context = lab.work / "build-context"
    context.mkdir(exist_ok=True)
    (context / "date.txt").write_text("2024-10-18 14:59:31\n")
    # The article's Dockerfile RUNs `date`; COPY makes the same layer without emulating foreign CPUs.
    (context / "Dockerfile").write_text(f"FROM {BASE}\nCOPY date.txt /tmp/date.txt\n")
    lab.run(lab.buildah("build", "--platform", ",".join(BUILD_PLATFORMS), "--manifest", "hj-test1", str(context)),
            env, BUILD_COMMANDS[0])
    lab.run(lab.buildah("manifest", "push", "--all", "hj-test1", f"docker://{TARGET}:new"), env, BUILD_COMMANDS[1])


def manual_setup(lab: Lab, env: dict[str, str]) -> None:
    """The article assumes image:amd64 and image:arm64 exist: copy them from the buildah push."""
    for platform in BUILD_PLATFORMS:
        arch = platform.split("/")[1]
        run_client(["skopeo", "copy", "--override-os", "linux", "--override-arch", arch,
                    f"docker://{TARGET}:new", f"docker://{MANUAL}:{arch}"], env)


def manual_index(lab: Lab, env: dict[str, str]) -> None:
    lab.run(["docker", "manifest", "create", "--amend", f"{MANUAL}:new", f"{MANUAL}:arm64", f"{MANUAL}:amd64"],
            env, MANUAL_COMMANDS[0])
    for platform, shown in zip(("linux/arm64", "linux/amd64"), MANUAL_COMMANDS[1:3], strict=True):
        os_, arch = platform.split("/")
        lab.run(["docker", "manifest", "annotate", f"{MANUAL}:new", f"{MANUAL}:{arch}", "--os", os_, "--arch", arch],
                env, shown)
    lab.run(["docker", "manifest", "push", "--purge", f"{MANUAL}:new"], env, MANUAL_COMMANDS[3])


def pull_one_platform(lab: Lab, env: dict[str, str]) -> None:
    lab.run(["skopeo", "copy", "--override-os", "linux", "--override-arch", "arm64", f"docker://{TARGET}:new",
             f"oci:{lab.work / 'pulled'}:new"], env, PULL_COMMANDS[0])


def token_auth(lab: Lab, env: dict[str, str]) -> None:
    alice, bob, carol = (f"{user}:{lab.passwords[user]}" for user in ("alice", "bob", "carol"))
    lab.run(["skopeo", "copy", "--dest-creds", alice, f"docker://{TARGET}:new", f"docker://{SECURE}:v1"], env,
            AUTH_COMMANDS[0])
    lab.run(["skopeo", "inspect", "--creds", bob, f"docker://{SECURE}:v1"], env, AUTH_COMMANDS[1])
    lab.run(["skopeo", "copy", "--dest-creds", bob, f"docker://{TARGET}:new", f"docker://{SECURE}:v2"], env,
            AUTH_COMMANDS[2], fails=True)
    lab.run(["docker", "login", SECURE_NAME, "-u", "alice", "--password-stdin"], env, AUTH_COMMANDS[3],
            stdin=lab.passwords["alice"])
    lab.run(["docker", "manifest", "create", f"{OTHER}:v1", f"{SECURE}:v1"], env, AUTH_COMMANDS[4])
    lab.run(["docker", "login", SECURE_NAME, "-u", "carol", "--password-stdin"], env, AUTH_COMMANDS[5],
            stdin=lab.passwords["carol"])
    lab.run(["docker", "manifest", "push", f"{OTHER}:v1"], env, AUTH_COMMANDS[6], fails=True)


def _subject(lab: Lab) -> dict:
    """The linux/amd64 manifest of the pushed image, as a descriptor (asked of the registry directly)."""
    import urllib.request

    accept = {"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"}
    base = f"{lab.registry.upstream}/v2/hj-public/test1/manifests"
    with urllib.request.urlopen(urllib.request.Request(f"{base}/new", headers=accept), timeout=30) as answer:
        index = json.loads(answer.read())
    return next({k: d[k] for k in ("mediaType", "digest", "size")} for d in index["manifests"]
                if d.get("platform", {}).get("architecture") == "amd64")


def referrers(lab: Lab, env: dict[str, str]) -> None:
    subject = _subject(lab)
    work = lab.work / "referrers"
    work.mkdir(exist_ok=True)
    (work / "sbom.spdx.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "hj-test1"}))
    script = ("import oras.client, oras.oci\n"
              f"oras.client.OrasClient(hostname='{REGISTRY_NAME}').push("
              "files=['sbom.spdx.json:application/spdx+json'], "
              f"target='{TARGET}:sbom', subject=oras.oci.Subject(**{subject!r}))\n")
    lab.run([sys.executable, "-c", script], {**env, "REQUESTS_CA_BUNDLE": env["SSL_CERT_FILE"]},
            REFERRERS_COMMANDS[0].replace("SUBJECT", subject["digest"]), cwd=work)
    lab.run([sys.executable, "-m", "ocitrace.referrers_client", REGISTRY_NAME, "hj-public/test1", subject["digest"]],
            env, REFERRERS_COMMANDS[1].replace("SUBJECT", subject["digest"]))


def inspect_with_run(lab: Lab, env: dict[str, str]) -> None:
    """`ocitrace run` starts its own proxy: the lab's is not used, only its registry."""
    lab.run([sys.executable, "-m", "ocitrace", "run", "--quiet", "--out", str(lab.folder), "--map",
             f"{REGISTRY_NAME}={lab.registry.upstream}", "--", "skopeo", "inspect", f"docker://{TARGET}:new"],
            env, RUN_COMMANDS[0])


def inspect_with_plain_mitmdump(lab: Lab, env: dict[str, str]) -> None:
    run_client(["skopeo", "inspect", f"docker://{BASE}:latest"], env)
    run_client(["docker", "manifest", "inspect", f"{BASE}:latest"], env)
    run_client(["skopeo", "copy", "--override-os", "linux", "--override-arch", "arm", "--override-variant", "v7",
                f"docker://{BASE}:latest", f"docker://{REGISTRY_NAME}/hj-public/armv7:latest"], env)


SCENARIOS = (
    Scenario("seed", "Seed: push the base image hj-public/debian (8 platforms + 8 attestations, as buildx makes it)",
             SEED_COMMANDS, seed),
    Scenario("build-push", "1. Build and push a multi-arch image (the article's buildx push)",
             BUILD_COMMANDS, build_and_push,
             note="buildah stands in for `docker buildx` here (there is no docker daemon on this machine): it builds "
                  "and pushes the same index of two platforms, but adds no attestation manifests, where buildx adds "
                  "one per platform (the base image seeded above has them, as buildx makes them).",
             article=(("HEAD", "manifest-exists"), ("GET", "index"), ("GET", "manifest"), ("GET", "blobs"),
                      ("POST", "upload"), ("PUT", "push-index"))),
    Scenario("manual", "2. Create the index by hand with docker manifest",
             MANUAL_COMMANDS, manual_index, manual_setup,
             article=(("HEAD", "manifest-exists"), ("PUT", "push-index"))),
    Scenario("pull", "3. Pull one platform (linux/arm64)", PULL_COMMANDS, pull_one_platform,
             article=(("GET", "index"), ("GET", "manifest"), ("GET", "blobs"))),
    Scenario("auth", "Token auth, as Docker Hub, GHCR and Harbor ask for it: logins, grants and two refusals",
             AUTH_COMMANDS, token_auth,
             note=f"`{SECURE_NAME}` is a second distribution registry with `auth: token`; its token server "
                  f"(`{TOKEN_NAME}`, started by the demo) signs JWTs granting each user what it may do of what was "
                  "asked. The report shows each 401 challenge, each token fetch (what was asked, what was granted, "
                  "for how long; never the token) and the two `insufficient_scope` refusals."),
    Scenario("referrers", "Artifacts attached to an image: an SBOM with oras, and a client that keeps the referrers "
                          "tag", REFERRERS_COMMANDS, referrers,
             note="SUBJECT is the linux/amd64 manifest of hj-public/test1:new. oras (oras-py, a real OCI client) "
                  "pushes an SBOM whose manifest names it as `subject`. Distribution 2.8 has no referrers API and "
                  "sends no `OCI-Subject`, so the spec asks the client to keep the referrers tag (`sha256-<hex>`) "
                  "itself: oras-py does not, and the report says so. The second command is ocitrace's own small "
                  "client (`ocitrace/referrers_client.py`) doing what the spec asks: it pushes an SBOM and a "
                  "signature with the same subject, asks the referrers API (404), then fetches the referrers tag "
                  "(404 the first time), adds each artifact and pushes the index back."),
    Scenario("run", "`ocitrace run`: one command, no set-up (skopeo inspect)", RUN_COMMANDS, inspect_with_run,
             via_run=True),
    Scenario("mitmdump-w", "A capture made without ocitrace: plain mitmdump -w, analysed afterwards",
             (f"mitmdump -w flows.mitm --map-remote '|https://{REGISTRY_NAME}|http://127.0.0.1:PORT'",
              f"skopeo inspect docker://{BASE}:latest", f"docker manifest inspect {BASE}:latest",
              f"skopeo copy --override-arch arm --override-variant v7 docker://{BASE}:latest "
              f"docker://{REGISTRY_NAME}/hj-public/armv7:latest",
              "ocitrace analyze flows.mitm -o report.md"),
             inspect_with_plain_mitmdump, plain=True),
)


def run_scenarios(out: Path, work: Path, scenarios=SCENARIOS, progress=print,
                  passwords: dict[str, str] | None = None) -> dict[str, Path]:
    """Run each scenario behind its own proxy; returns each scenario's capture folder."""
    folders = {}
    with Lab(work, passwords) as lab:
        for scenario in scenarios:
            if scenario.setup is not None:
                with lab.proxy(work / f"{scenario.name}-setup") as env:
                    scenario.setup(lab, env)
            folder = out / scenario.name
            if folder.exists():
                shutil.rmtree(folder)
            lab.journal = []
            lab.folder = folder
            if scenario.via_run:
                scenario.run(lab, dict(os.environ))
            else:
                with lab.proxy(folder, plain=scenario.plain) as env:
                    scenario.run(lab, env)
            if not scenario.plain:
                journal = calls_made(lab.journal, folder / "events.jsonl")
                (folder / COMMANDS_FILE).write_text(json.dumps(journal, indent=2) + "\n", encoding="utf-8")
            write_reports(folder, english=scenario.plain)
            folders[scenario.name] = folder
            progress(f"{scenario.title}: {folder / 'report.md'}")
    return folders


def calls_made(journal: list[dict], events: Path) -> list[dict]:
    """Each command with the calls (first and last, 1-based) whose requests were made while it ran, from the
    recording's events (their time is the request's, on this machine's clock)."""
    times = []
    with open(events, encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            times.append((event["index"], event["timestamp"]))
    made = []
    for entry in journal:
        start, end = entry["span"]
        calls = [index for index, when in times if start <= when <= end]
        made.append({"command": entry["command"], "calls": [min(calls), max(calls)] if calls else [],
                     **{k: v for k, v in entry.items() if k not in ("command", "span")}})
    return made


def write_reports(folder: Path, english: bool) -> None:
    """report.zh.md, and report.md where the proxy did not write it: what `ocitrace analyze` gives."""
    for lang, name in (("en", "report.md"), ("zh", "report.zh.md")):
        if lang == "zh" or english:
            (folder / name).write_text(report_text(folder / "flows.mitm", lang), encoding="utf-8")


def index_text(folders: dict[str, Path]) -> str:
    """captures/demo/README.md: each story's commands and links to what it recorded."""
    lines = ["# ocitrace demo captures", "",
             "Recorded by `make demo` (`ocitrace demo`): Debian's `docker-registry` (CNCF distribution 2.8) on "
             f"loopback, named `{REGISTRY_NAME}` for the clients, behind `ocitrace proxy`; real clients "
             "(buildah, skopeo, the docker CLI). The base image has the article's platforms: "
             + ", ".join(ARTICLE_PLATFORMS) + ".", ""]
    for scenario in SCENARIOS:
        folder = folders.get(scenario.name)
        if folder is None:
            continue
        analysis = analyze(read_captures([folder / "flows.mitm"]).calls)
        verified = sum(1 for item in analysis.calls if item.digest_verified)
        links = [f"[report]({scenario.name}/report.md)", f"[中文报告]({scenario.name}/report.zh.md)"]
        if (folder / "events.jsonl").exists():
            links.append(f"[events]({scenario.name}/events.jsonl)")
        links.append(f"[flows]({scenario.name}/flows.mitm)")
        lines += [f"## {scenario.title}", "", *([scenario.note, ""] if scenario.note else []),
                  "```sh", *scenario.commands, "```", "",
                  f"{len(analysis.calls)} calls, {verified} with a verified digest: " + " · ".join(links), ""]
        lines += _commands_made(folder) + _against_the_article(scenario, analysis)
    lines += ["## How the push differs from the index stitched by hand", "",
              f"`ocitrace diff captures/demo/{DIFF[0]} captures/demo/{DIFF[1]}`: "
              f"[diff](diff-{DIFF[0]}-{DIFF[1]}.md) · [中文](diff-{DIFF[0]}-{DIFF[1]}.zh.md). "
              f"The push as a browser draws it: [{SCREENSHOT}]({SCREENSHOT}). The base image's index in mitmweb, "
              f"with ocitrace's OCI content view: [{MITMWEB_SHOT}]({MITMWEB_SHOT}).", ""]
    return "\n".join(lines)


def _commands_made(folder: Path) -> list[str]:
    journal = folder / COMMANDS_FILE
    if not journal.exists():
        return []
    lines = ["Which command made which calls:", ""]
    for entry in json.loads(journal.read_text(encoding="utf-8")):
        calls = entry["calls"]
        made = f"calls {calls[0]}–{calls[1]}" if calls and calls[0] != calls[1] else (
            f"call {calls[0]}" if calls else "no call (it works on the local list only)")
        if entry.get("refused"):
            made += ", refused by the registry as intended"
        lines.append(f"- `{entry['command']}`: {made}")
    return lines + [""]


def _against_the_article(scenario: Scenario, analysis) -> list[str]:
    """The article's table for this story against the rows of the captured story."""
    if not scenario.article:
        return []
    seen = [(row.items[0].call.method, row.step) for section in sections(analysis) for row in fold(section)]

    def words(rows) -> str:
        return "; ".join(f"{method} ({text(f'step_{step}', 'en')})" for method, step in rows) or "nothing"

    article = set(scenario.article)
    return ["Against the article's table: both have " + words([r for r in scenario.article if r in seen]) + ". "
            + "Only the article: " + words([r for r in scenario.article if r not in seen]) + ". "
            + "Only this capture: " + words(list(dict.fromkeys(r for r in seen if r not in article))) + ".", ""]


def write_index(out: Path, folders: dict[str, Path]) -> Path:
    index = out / "README.md"
    index.write_text(index_text(folders), encoding="utf-8")
    return index


def report_text(flows: Path, lang: str) -> str:
    """The report of a recorded session, as `ocitrace analyze` writes it."""
    return report_of(flows, lang)


DIFF = ("build-push", "manual")
SCREENSHOT = "build-push/push-sequence.png"


def diff_text(out: Path, lang: str) -> str:
    """The demo's comparison of the article's buildx-style push with the index stitched by hand."""
    a, b = (out / name for name in DIFF)
    analyses = [analyze(read_captures([folder / "flows.mitm"]).calls) for folder in (a, b)]
    return render_diff(analyses[0], analyses[1], (DIFF[0], DIFF[1]), lang)


def write_diff(out: Path) -> Path:
    path = out / f"diff-{DIFF[0]}-{DIFF[1]}.md"
    path.write_text(diff_text(out, "en"), encoding="utf-8")
    (out / f"diff-{DIFF[0]}-{DIFF[1]}.zh.md").write_text(diff_text(out, "zh"), encoding="utf-8")
    return path


def write_screenshot(out: Path, progress=print) -> None:
    """The push's sequence diagram as a browser draws it (needs chromium and mermaid.js: `make diagrams`)."""
    from . import mermaid

    report = (out / "build-push" / "report.md").read_text(encoding="utf-8")
    pushes = [d for d in mermaid.diagrams(report) if d.startswith("sequenceDiagram") and "PUT " in d]
    try:
        mermaid.screenshot(pushes[-1], out / SCREENSHOT)
    except mermaid.BrowserMissing as exc:
        progress(f"no screenshot: {exc}")


MITMWEB_SHOT = "mitmdump-w/mitmweb-oci-view.png"


def write_mitmweb_screenshot(out: Path, progress=print) -> None:
    """The base image's index (8 platforms, 8 attestations) as mitmweb's OCI view shows it, drawn by chromium."""
    from . import mermaid, mitmweb

    try:
        mitmweb.screenshot(out / "mitmdump-w" / "flows.mitm", out / MITMWEB_SHOT)
    except (mermaid.BrowserMissing, LabError) as exc:
        progress(f"no mitmweb screenshot: {exc}")


def cmd_demo(args: argparse.Namespace) -> int:
    from .cli import fail

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ocitrace-demo-") as tmp:
        try:
            folders = run_scenarios(args.out.resolve(), Path(tmp))
        except LabError as exc:
            return fail(f"demo: {exc}", 1)
    print(f"Index of the captures: {write_index(args.out, folders)}")
    print(f"build-push compared with manual: {write_diff(args.out)}")
    write_screenshot(args.out)
    write_mitmweb_screenshot(args.out)
    return 0
