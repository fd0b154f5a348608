"""The shipped tables read the same with libyaml's loader as with PyYAML's own."""

from pathlib import Path

import pytest
import yaml
from ocitrace.analyzers import tables

SHIPPED = sorted(Path(tables.__file__).parent.glob("*.yaml"))


def test_every_table_is_found():
    assert {p.name for p in SHIPPED} >= {"endpoints.yaml", "rules.yaml", "strings.yaml", "artifacts.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_table_reads_as_the_safe_loader_reads_it(path):
    text = path.read_text(encoding="utf-8")
    assert tables.load(text) == yaml.safe_load(text)


def test_no_tags_that_build_objects():
    with pytest.raises(yaml.YAMLError):
        tables.load("!!python/object/apply:os.system ['true']")
