"""The layout ARCHITECTURE.md promises: no import circle in src/ (between top-level modules, nor
between the files of one folder), which scripts/module_cycles.py finds; no file over 600 lines, no
function over 80 and at most 6 files directly in src/ besides main.rs and lib.rs, which
scripts/sizes.py finds."""
import subprocess
import sys

from conftest import ROOT

CHECK = ROOT / "scripts" / "module_cycles.py"
SIZES = ROOT / "scripts" / "sizes.py"


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


def test_src_is_within_the_sizes():
    r = subprocess.run([sys.executable, str(SIZES), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "0 over the limits", r.stdout


def test_the_sizes_check_finds_each_excess(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "lib.rs").write_text("pub mod big;\n")
    body = "\n".join(f"    let x{i} = {i};" for i in range(85))
    tests = "\n".join("// test line" for _ in range(700))
    (src / "big.rs").write_text(f"pub fn long() {{\n{body}\n}}\n#[cfg(test)]\nmod tests {{\n{tests}\n}}\n")
    for i in range(7):
        (src / f"f{i}.rs").write_text("fn short() {}\n")
    r = subprocess.run([sys.executable, str(SIZES), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "src/big.rs:1: fn long is 87 lines (at most 80)" in r.stdout, r.stdout
    assert "big.rs: " not in r.stdout.replace("src/big.rs:1:", ""), r.stdout  # its tests are not counted
    assert "src/: 8 .rs files beside main.rs and lib.rs (at most 6)" in r.stdout, r.stdout
    assert r.stdout.strip().endswith("\n2 over the limits"), r.stdout
