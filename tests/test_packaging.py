"""The project as a package: the sdist and wheel that `python -m build` makes install into a fresh
virtual environment and run. (The linter runs as `make lint`, before the tests in CI.)"""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import vidcls

ROOT = Path(__file__).resolve().parents[1]


def _source_tree(destination: Path) -> Path:
    """The files git would commit (tracked, plus new files not ignored), copied: the build sees what a clone has."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    source = _source_tree(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    # Without isolation the build uses this environment's setuptools (declared in the test extra)
    # instead of downloading one; `build` makes the sdist first and the wheel from the sdist.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                   capture_output=True, check=True)
    return out


def test_build_makes_an_sdist_and_a_wheel_with_the_license_and_type_marker(dist):
    wheel, = dist.glob(f"vidcls-{vidcls.__version__}-py3-none-any.whl")
    sdist, = dist.glob(f"vidcls-{vidcls.__version__}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "vidcls/py.typed" in names and "vidcls/cli/__init__.py" in names
    assert f"vidcls-{vidcls.__version__}.dist-info/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"vidcls-{vidcls.__version__}.dist-info/METADATA").decode()
    assert "Requires-Dist: tensorflow<2.22,>=2.21" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
    members = set(tarfile.open(sdist).getnames())
    prefix = f"vidcls-{vidcls.__version__}/"
    for expected in ("LICENSE", "CHANGELOG.md", "README.md", "configs/fight_surveillance.yaml", "vidcls/py.typed"):
        assert prefix + expected in members, expected


def test_the_wheel_installs_in_a_fresh_venv_and_runs(dist, tmp_path):
    wheel, = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    # The dependencies (TensorFlow and the rest, ~1 GB) come from this environment's site-packages,
    # appended after the venv's own: the installed wheel, not this checkout, is what gets imported.
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    version = subprocess.run([str(venv / "bin" / "vidcls"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"vidcls {vidcls.__version__}"
    where = subprocess.run([str(python), "-c", "import vidcls; print(vidcls.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(fresh_site), where
    # Every dependency the wheel declares is satisfied by what is installed.
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert "vidcls" not in check.stdout, check.stdout

