"""What `pip install ocitrace` puts on a machine: one import package, `ocitrace`, and its data."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_installs_only_the_ocitrace_import_package(tmp_path):
    source = tmp_path / "source"  # a build writes build/ and egg-info beside the sources: not in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("addons", "analyzers", "ocitrace"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("ocitrace-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"ocitrace", wheel.name.split("-py")[0] + ".dist-info"}
    for needed in ("ocitrace/analyzers/endpoints.yaml", "ocitrace/analyzers/strings.yaml",
                   "ocitrace/addons/registry_trace.py", "ocitrace/addons/script.py", "ocitrace/cli.py"):
        assert needed in names
