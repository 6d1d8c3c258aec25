"""The layout ARCHITECTURE.md promises: no import circle in src/ (between top-level modules, nor
between the files of one folder); scripts/module_cycles.py finds them."""
import subprocess
import sys

from conftest import ROOT

CHECK = ROOT / "scripts" / "module_cycles.py"


def test_src_has_no_import_circle():
    r = subprocess.run([sys.executable, str(CHECK), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("0 import circles"), r.stdout


def test_the_check_finds_a_circle(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "lib.rs").write_text("pub mod a;\npub mod b;\n")
    (src / "a" / "mod.rs").write_text("mod x;\nmod y;\n")
    (src / "a" / "x.rs").write_text("use super::y::Y;\npub struct X;\n")
    (src / "a" / "y.rs").write_text("pub struct Y(super::x::X);\nfn f() -> crate::b::B { todo!() }\n")
    (src / "b.rs").write_text("pub struct B;\nfn g() -> crate::a::A { todo!() }\n")
    r = subprocess.run([sys.executable, str(CHECK), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "top level: a <-> b" in r.stdout, r.stdout
    assert "in a/: a/x <-> a/y" in r.stdout, r.stdout
