"""`ocitrace run -- COMMAND`: the command's environment, terminal, signals and exit status, and its story."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from ocitrace.lab import REGISTRY_NAME, Registry
from ocitrace.layout import write_base_image
from ocitrace.run import daemon_warning, environment, loopback_hint

OCITRACE = [sys.executable, "-m", "ocitrace", "run"]


def test_the_environment_sends_every_common_client_through_the_proxy_and_trusts_it(tmp_path):
    bundle = tmp_path / "ca-bundle.pem"
    env = environment({"NO_PROXY": "registry.test,intranet.example,*", "PATH": "/bin"}, 4321, bundle,
                      ["registry.test=http://127.0.0.1:5000"])
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        assert env[name] == "http://127.0.0.1:4321"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert env[name] == str(bundle)
    assert env["NO_PROXY"] == "intranet.example" and env["PATH"] == "/bin"


@pytest.mark.parametrize("entry,bypasses", [
    ("registry.test", True), ("REGISTRY.TEST", True), ("registry.test:443", True), ("test", True), (".test", True),
    ("*.test", True), ("*", True), ("ry.test", False), ("registry.test.corp", False), ("other.test", False),
    ("10.0.0.0/8", False), ("[::1]:5000", False),
])
def test_no_proxy_entries_that_would_send_a_mapped_name_around_the_proxy_are_left_out(tmp_path, entry, bypasses):
    """Go reads `test`, `.test` and `*.test` as the domain and everything in it, curl and Python match suffixes, and
    an entry with a port still names the host: each would send registry.test straight to a name only the proxy
    maps (the command then fails to resolve it)."""
    for mapped in ("registry.test", "registry.test:5000"):  # a map may name the port it is asked on
        env = environment({"NO_PROXY": f"{entry},intranet.example"}, 4321, tmp_path / "b.pem",
                          [f"{mapped}=http://127.0.0.1:5000"])
        assert env["NO_PROXY"] == ("intranet.example" if bypasses else f"{entry},intranet.example")


@pytest.mark.parametrize("command,warned", [
    (["docker", "pull", "alpine"], True), (["/usr/bin/docker", "push", "x"], True),
    (["docker", "buildx", "build", "--push", "."], True), (["docker", "manifest", "inspect", "x"], False),
    (["docker", "login", "x"], False), (["skopeo", "copy", "a", "b"], False)])
def test_a_command_whose_calls_a_daemon_makes_is_said_at_the_start(command, warned):
    assert (daemon_warning(command, "en") is not None) is warned


@pytest.mark.parametrize("arg,address", [("docker://localhost:5000/app:v1", "localhost:5000"),
                                         ("127.0.0.1:5000/app", "127.0.0.1:5000"),
                                         ("docker://[::1]:5000/app", "[::1]:5000")])
def test_a_registry_on_loopback_gets_the_map_explained_in_one_sentence(arg, address):
    hint = loopback_hint(["skopeo", "inspect", arg], [], "en")
    assert hint is not None and f"--map registry.test=http://{address}" in hint
    assert loopback_hint(["skopeo", "inspect", "docker://registry.test/app"], [], "en") is None


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("run-registry")
    with Registry(work / "registry") as registry:
        layout = write_base_image(work / "layout")
        yield registry, layout


def run(tmp_path, registry, *command, **kwargs):
    args = [*OCITRACE, "--out", str(tmp_path / "out"), "--map", f"{REGISTRY_NAME}={registry[0].upstream}", "--",
            *command]
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300, **kwargs)


def calls(tmp_path):
    return [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]


@pytest.mark.e2e
def test_skopeo_copy_through_run_is_told_and_leaves_nothing_outside_out(tmp_path, registry):
    done = run(tmp_path, registry, "skopeo", "copy", "--all", f"oci:{registry[1]}:latest",
               f"docker://{REGISTRY_NAME}/lib/app:v1")
    assert done.returncode == 0, done.stderr
    assert "### 1. Push lib/app:v1" in done.stderr and "calls recorded; report:" in done.stderr
    recorded = calls(tmp_path)
    assert recorded and all(c["endpoint"] for c in recorded) and recorded[-1]["step"] == "push-index"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "report.md").read_text().startswith("# ocitrace report")


@pytest.mark.e2e
def test_the_command_output_is_untouched_and_its_failure_returned(tmp_path, registry):
    run(tmp_path, registry, "skopeo", "copy", "--all", f"oci:{registry[1]}:latest",
        f"docker://{REGISTRY_NAME}/lib/inspected:v1")
    done = run(tmp_path, registry, "skopeo", "inspect", f"docker://{REGISTRY_NAME}/lib/inspected:v1")
    assert done.returncode == 0 and json.loads(done.stdout)["Name"] == f"{REGISTRY_NAME}/lib/inspected"
    missing = run(tmp_path, registry, "skopeo", "inspect", "--retry-times", "0",
                  f"docker://{REGISTRY_NAME}/lib/nothing:v1")
    assert missing.returncode != 0 and missing.stdout == ""
    assert any(c["registry_errors"] for c in calls(tmp_path))
    assert run(tmp_path, registry, "sh", "-c", "exit 7").returncode == 7


@pytest.mark.e2e
@pytest.mark.parametrize("command", [
    ["docker", "manifest", "inspect", f"{REGISTRY_NAME}/lib/app:v1"],
    ["curl", "-sf", f"https://{REGISTRY_NAME}/v2/lib/app/tags/list"],
])
def test_other_clients_through_run(tmp_path, registry, command):
    run(tmp_path, registry, "skopeo", "copy", "--all", f"oci:{registry[1]}:latest",
        f"docker://{REGISTRY_NAME}/lib/app:v1")
    done = run(tmp_path, registry, *command)
    assert done.returncode == 0, done.stderr
    recorded = calls(tmp_path)
    assert recorded and {c["host"] for c in recorded} == {REGISTRY_NAME} and all(c["endpoint"] for c in recorded)


@pytest.mark.e2e
def test_ctrl_c_reaches_the_command_and_the_recording_goes_on(tmp_path, registry):
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    args = [*OCITRACE, "--out", str(tmp_path / "out"), "--", sys.executable, "-c", script]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True)  # its own process group: a terminal's Ctrl-C, by killpg
    assert process.stdout.readline().strip() == "ready"
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 42
    assert (tmp_path / "out" / "report.md").exists()


@pytest.mark.e2e
def test_a_daemon_command_is_warned_before_it_runs(tmp_path, registry):
    done = run(tmp_path, registry, "docker", "pull", f"{REGISTRY_NAME}/lib/app:v1")
    assert "carried out by the docker daemon" in done.stderr and done.returncode != 0


def test_no_command_is_one_sentence(tmp_path):
    done = subprocess.run([*OCITRACE, "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("ocitrace: run: give the command after --")
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_a_python_client_through_run(tmp_path, registry):
    """oras from PyPI, a real OCI client on requests: it reads HTTPS_PROXY and REQUESTS_CA_BUNDLE."""
    (tmp_path / "sbom.json").write_text('{"sbom": true}')
    script = ("import oras.client\n"
              f"oras.client.OrasClient(hostname='{REGISTRY_NAME}').push(files=['sbom.json'], "
              f"target='{REGISTRY_NAME}/lib/sbom:v1')\n")
    done = run(tmp_path, registry, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    recorded = calls(tmp_path)
    assert recorded[-1]["step"] == "push-manifest" and recorded[-1]["digest_verified"] is True
    assert all(c["digest_verified"] is not False for c in recorded)
    assert (tmp_path / "sbom.json").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "sbom.json"]


def test_the_calls_that_end_as_the_command_exits_are_said_too(tmp_path, registry):
    """Calls are recorded up to a quarter of a second after they end: the last ones' lines come as the proxy stops."""
    script = ("import urllib.request\n"
              "for _ in range(3):\n"
              f"    urllib.request.urlopen('https://{REGISTRY_NAME}/v2/').read()\n")
    done = run(tmp_path, registry, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("ocitrace: GET /v2/ 200")]
    assert len(said) == 3, done.stderr
    assert f"ocitrace: report: {tmp_path / 'out' / 'report.md'}" not in done.stderr.splitlines()  # run says it


@pytest.mark.e2e
def test_podman_pulls_one_platform_through_run(tmp_path, registry):
    """The article's third story with a pulling client: the index, that platform's manifest, its blobs."""
    run(tmp_path, registry, "skopeo", "copy", "--all", f"oci:{registry[1]}:latest",
        f"docker://{REGISTRY_NAME}/lib/app:v1")
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="ocp") as storage:  # podman wants a short runroot
        done = run(tmp_path, registry, "podman", "--root", f"{storage}/root", "--runroot", f"{storage}/run",
                   "--storage-driver", "vfs", "pull", "--arch", "arm64", f"{REGISTRY_NAME}/lib/app:v1")
    assert done.returncode == 0, done.stderr
    assert "### 1. Pull lib/app:v1 for linux/arm64" in done.stderr
    assert [c["step"] for c in calls(tmp_path)] == ["ping", "index", "manifest", "config", "layer"]


@pytest.mark.e2e
def test_ctrl_backslash_reaches_the_command_and_nothing_is_left_running(tmp_path):
    args = [*OCITRACE, "--out", str(tmp_path / "out"), "--", sys.executable, "-c",
            "import time; print('ready', flush=True); time.sleep(60)"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True)
    assert process.stdout.readline().strip() == "ready"
    os.killpg(process.pid, signal.SIGQUIT)
    assert process.wait(timeout=60) == 128 + signal.SIGQUIT
    left = subprocess.run(["pgrep", "-f", f"--out {tmp_path / 'out'}"], capture_output=True, text=True)
    assert left.stdout.strip() == "" and (tmp_path / "out" / "report.md").exists()


def test_a_reader_that_leaves_early_costs_no_traceback_and_no_status(tmp_path):
    done = subprocess.run(["bash", "-c", "set -o pipefail; " + " ".join(OCITRACE) +
                           f" --report --out {tmp_path / 'out'} -- true | true"], capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_http2_chunk_of_unknown_length_reaches_the_registry_whole(tmp_path, registry):
    """curl speaks HTTP/2 to the proxy; the registry HTTP/1.1: the body needs framing on the way."""
    (tmp_path / "blob").write_bytes(os.urandom(3_000_000))
    script = (f"loc=$(curl -s --http2 -o /dev/null -X POST https://{REGISTRY_NAME}/v2/lib/h2/blobs/uploads/ -D - "
              "| tr -d '\\r' | awk 'tolower($1) == \"location:\" {print $2}'); "
              "curl -sf --http2 -o /dev/null -X PATCH -T - \"$loc\" < blob")
    done = run(tmp_path, registry, "bash", "-c", script)
    assert done.returncode == 0, done.stderr
    patch = calls(tmp_path)[-1]
    assert (patch["method"], patch["status"], patch["request_bytes"]) == ("PATCH", 202, 3_000_000)
    assert dict(patch["response_headers"])["Range"] == "0-2999999" and patch["findings"] == []


def test_a_command_that_does_not_exist_fails_before_the_earlier_session_is_touched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "flows.mitm").write_bytes(b"earlier")
    done = subprocess.run([*OCITRACE, "--out", str(out), "--", "no-such-command-xyz"], capture_output=True, text=True)
    assert done.returncode == 127 and done.stderr.count("\n") == 1 and "no-such-command-xyz" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["flows.mitm"] and (out / "flows.mitm").read_bytes() == b"earlier"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [["run", "--", "true"], ["proxy", "--port"]], ids=["run", "proxy"])
def test_a_folder_another_run_records_into_is_refused_in_one_sentence_and_left_as_it_is(tmp_path, command):
    """Two runs into one folder would move each other's files away and swap their reports."""
    from ocitrace.addons.recording import lock_folder

    if command[0] == "proxy":
        command = [*command, str(free_port())]
    out = tmp_path / "out"
    out.mkdir()
    (out / "flows.mitm").write_bytes(b"being recorded")
    held = lock_folder(out)  # as a running proxy holds it
    try:
        done = subprocess.run([sys.executable, "-m", "ocitrace", command[0], "--out", str(out), *command[1:]],
                              capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"process {os.getpid()}" in done.stderr and str(out) in done.stderr
    assert (out / "flows.mitm").read_bytes() == b"being recorded" and not (out / "earlier").exists()


def test_a_folder_is_free_again_once_its_run_has_ended_and_its_lock_file_gone(tmp_path):
    from ocitrace.addons.recording import LOCK, folder_in_use, lock_folder

    lock_folder(tmp_path).release()
    assert folder_in_use(tmp_path) is None and not (tmp_path / LOCK).exists()
    os.close(os.open(tmp_path / LOCK, os.O_CREAT | os.O_WRONLY, 0o600))  # left by a run that was killed
    assert folder_in_use(tmp_path) is None
    lock_folder(tmp_path).release()


@pytest.mark.parametrize("kind", ["symbolic link", "FIFO"])
def test_a_lock_file_that_is_no_regular_file_is_one_sentence_and_nothing_is_touched(tmp_path, kind):
    """Whoever can write into the folder could otherwise have a run truncate any file it can write (a link), or
    wait for ever (a FIFO)."""
    from ocitrace.addons.recording import LOCK

    (tmp_path / "precious").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    if kind == "FIFO":
        os.mkfifo(out / LOCK)
    else:
        (out / LOCK).symlink_to(tmp_path / "precious")
    for command in (["run", "--", "true"], ["proxy", "--port", str(free_port())]):
        done = subprocess.run([sys.executable, "-m", "ocitrace", command[0], "--out", str(out), *command[1:]],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and str(out) in done.stderr
    assert (tmp_path / "precious").read_text() == "precious"


RACE = '''
import os
if os.environ.get("RACE_OUT"):
    import pathlib, subprocess, sys
    import ocitrace.addons.registry_trace as rt
    running = rt.RegistryTrace.running
    def lost_the_folder(self):  # another run takes the new folder between this one's configure and its running
        other = subprocess.Popen([sys.executable, "-c", (
            "import sys, pathlib; from ocitrace.addons.recording import lock_folder; "
            "out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True); held = lock_folder(out); "
            "print('held', flush=True); sys.stdin.read()"), os.environ["RACE_OUT"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        other.stdout.readline()  # it holds the folder until this proxy has gone (its stdin closes)
        return running(self)
    rt.RegistryTrace.running = lost_the_folder
'''


def test_a_run_that_loses_a_new_folder_to_another_as_it_starts_does_not_run_its_command(tmp_path):
    """A folder that is not there yet is taken once the proxy runs, after it listens: run waits for its proxy to
    hold the folder before it runs the command, or says why it cannot."""
    (tmp_path / "sitecustomize.py").write_text(RACE)
    out = tmp_path / "out"
    env = {**os.environ, "RACE_OUT": str(out), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([*OCITRACE, "--out", str(out), "--", "echo", "COMMAND-RAN"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2 and "COMMAND-RAN" not in done.stdout
    assert "another ocitrace" in done.stderr and "0 calls recorded" not in done.stderr


def test_a_run_taking_its_folder_waits_out_another_s_check_of_it(tmp_path):
    """A check (`folder_in_use`: another run's before it starts, or `ocitrace run` waiting for its proxy) holds the
    lock shared for a moment: a run taking the folder then is not told that another run records there."""
    import fcntl
    import threading

    from ocitrace.addons.recording import LOCK, folder_in_use, lock_folder

    (tmp_path / LOCK).touch()
    checking = os.open(tmp_path / LOCK, os.O_RDONLY)
    fcntl.flock(checking, fcntl.LOCK_SH)
    threading.Timer(0.02, os.close, [checking]).start()
    lock = lock_folder(tmp_path)
    try:
        assert folder_in_use(tmp_path) == str(os.getpid())
    finally:
        lock.release()
