"""Every local link of README.md and the manual (docs/) resolves: the file exists, the anchor names a
heading (GitHub's rule). scripts/check_doc_links.py does the checking."""
import subprocess
import sys

from conftest import ROOT


def test_every_local_link_of_the_manual_resolves():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_doc_links.py"), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 broken" in r.stdout, r.stdout


def test_the_check_finds_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Top\n\n[ok](#top) [gone](docs/nope.md) [bad](#nowhere)\n")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_doc_links.py"), str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "README.md:3: docs/nope.md: no such file" in r.stdout, r.stdout
    assert "no heading with anchor #nowhere" in r.stdout, r.stdout
