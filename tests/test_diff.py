"""`ocitrace diff`: two captures compared by operation, call shape, endpoint, platform and blob outcome."""

from conftest import make_flow, sha256, write_flows
from ocitrace.analyzers.diff import Diff, render_diff, shape
from ocitrace.analyzers.manifests import OCI_INDEX, OCI_MANIFEST
from test_operations import INDEX, MANIFEST, SKOPEO, get, head, put_manifest, run, upload

from ocitrace.cli import main

BLOB = b"the blob" * 30


def uploading(repo):
    return [get("/v2/"), head(f"/v2/{repo}/blobs/{sha256(BLOB)}", 404), *upload(repo, f"s-{repo}", BLOB),
            put_manifest(repo, "v1", INDEX, OCI_INDEX)]


def mounting(repo):
    return [get("/v2/"), head(f"/v2/{repo}/blobs/{sha256(BLOB)}", 404),
            make_flow("POST", f"https://registry.test/v2/{repo}/blobs/uploads/?mount={sha256(BLOB)}&from=base", 201,
                      req_headers=SKOPEO),
            put_manifest(repo, sha256(MANIFEST), MANIFEST, OCI_MANIFEST), put_manifest(repo, "v1", INDEX, OCI_INDEX)]


def test_calls_compare_by_shape_not_by_repository_name():
    a, b = run(*uploading("one")), run(*uploading("two"))
    assert [shape(i) for i in a.calls] == [shape(i) for i in b.calls]
    assert Diff(a, b).calls() == [] and Diff(a, b).blobs() == []
    assert shape(a.calls[3]) == ("PATCH", "/v2/<name>/blobs/uploads/<session>", "upload", "202")


def test_a_blob_uploaded_in_one_and_mounted_in_the_other_is_named():
    diff = Diff(run(*uploading("app")), run(*mounting("app")))
    assert diff.blobs() == [(sha256(BLOB), "uploaded", "mounted")]
    only_a = {(method, step) for (method, _, step, _), na, nb in diff.calls() if nb == 0}
    only_b = {(method, step) for (method, _, step, _), na, nb in diff.calls() if na == 0}
    assert only_a == {("POST", "upload"), ("PATCH", "upload"), ("PUT", "upload")}
    assert only_b == {("POST", "mount"), ("PUT", "push-manifest")}


def test_the_diff_reads_in_both_languages(tmp_path, capsys):
    a = write_flows(tmp_path / "a.mitm", uploading("app"))
    b = write_flows(tmp_path / "b.mitm", mounting("app"))
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("# ocitrace diff: ")
    assert first.index("a.mitm") < first.index(" and ") < first.index("b.mitm")
    assert "| uploaded " in out and "| mounted " in out
    assert main(["diff", str(a), str(b), "--lang", "zh"]) == 0
    assert "## 调用 (按调用类型归并" in capsys.readouterr().out
    assert render_diff(run(*uploading("app")), run(*uploading("app")), ("a", "b")).count("The same calls") == 1


def test_a_missing_capture_is_one_sentence(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "nope"), str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"ocitrace: {tmp_path / 'nope'}: no such capture file or folder"
