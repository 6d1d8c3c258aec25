"""Files in src/ over 600 lines and functions over 80 (tests aside: a file's `#[cfg(test)] mod tests`
is not counted), and more than 6 .rs files directly in src/ besides main.rs and lib.rs, as
ARCHITECTURE.md promises; exit 1 if there is one."""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
FILE_MAX, FN_MAX, TOP_MAX = 600, 80, 6
FN = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:const\s+)?(?:unsafe\s+)?fn\s+(\w+)")

bad = []
for path in sorted((ROOT / "src").rglob("*.rs")):
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^#\[cfg\(test\)\]", line) and i + 1 < len(lines) and lines[i + 1].startswith("mod tests"):
            lines = lines[:i]
            break
    rel = path.relative_to(ROOT)
    if len(lines) > FILE_MAX:
        bad.append(f"{rel}: {len(lines)} lines (at most {FILE_MAX}, tests aside)")
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if m and not lines[i].rstrip().endswith(";"):
            indent = m.group(1)
            j = i + 1
            while j < len(lines) and not re.match("^" + indent + r"\}", lines[j]):
                j += 1
            if j - i + 1 > FN_MAX:
                bad.append(f"{rel}:{i + 1}: fn {m.group(2)} is {j - i + 1} lines (at most {FN_MAX})")
            i = j
        i += 1
top = sorted(p.name for p in (ROOT / "src").glob("*.rs") if p.name not in ("main.rs", "lib.rs"))
if len(top) > TOP_MAX:
    bad.append(f"src/: {len(top)} .rs files beside main.rs and lib.rs (at most {TOP_MAX}): {', '.join(top)}")
for b in bad:
    print(b)
print(f"{len(bad)} over the limits")
sys.exit(1 if bad else 0)
