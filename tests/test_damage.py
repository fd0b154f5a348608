"""A real capture cut or corrupted anywhere: ocitrace reads what it can and never raises anything else."""

import random
from pathlib import Path

import pytest
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.manifests import decode_manifest
from ocitrace.analyzers.report import render

CAPTURE = Path(__file__).resolve().parent.parent / "captures" / "demo" / "pull" / "flows.mitm"


@pytest.fixture(scope="module")
def data():
    return CAPTURE.read_bytes()


def test_a_capture_cut_anywhere_yields_the_flows_before_the_cut(tmp_path, data):
    whole = len(read_captures([CAPTURE]).calls)
    path, seen = tmp_path / "cut.mitm", []
    for offset in range(0, len(data), max(1, len(data) // 400)):
        path.write_bytes(data[:offset])
        result = read_captures([path])
        assert len(result.errors) <= 1 and len(result.calls) <= whole
        render(analyze(result.calls), "markdown")
        seen.append(len(result.calls))
    assert seen == sorted(seen) and seen[-1] >= whole - 1


def test_corrupt_bytes_anywhere_end_in_a_capture_error_at_worst(tmp_path, data):
    rng = random.Random(7)
    path = tmp_path / "corrupt.mitm"
    whole = len(read_captures([CAPTURE]).calls)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        result = read_captures([path])
        assert len(result.calls) <= whole and len(result.errors) <= 1
        assert all(str(path) in str(error) for error in result.errors)
        assert render(analyze(result.calls), "json").startswith("{")


def test_garbage_manifest_bodies_decode_to_failures_not_exceptions():
    rng = random.Random(11)
    body = (Path(__file__).with_name("data") / "article-index.json").read_bytes()
    for _ in range(500):
        damaged = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.choice(b'{}[]":,0 1aZ\xff')
        decoded = decode_manifest(bytes(damaged), None)
        assert decoded.kind in ("index", "undecodable")
        if decoded.kind == "undecodable":
            assert decoded.finding.code.startswith("decode-")
