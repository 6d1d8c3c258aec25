"""Every markdown link to a local file or anchor in README.md, docs/*.md (and the other .md files that
link into them) resolves. GitHub's anchor rule: the heading's text, lowercase, punctuation dropped
except '-' and '_', spaces -> '-', a repeated heading gets -1, -2, ..."""
import pathlib, re, sys, collections

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "ARCHITECTURE.md", ROOT / "deploy" / "README.md"]

def prose(text):
    """The text with fenced code blocks blanked (line numbers kept) and inline code spans removed."""
    out, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            out.append("")
            continue
        if m:
            fence = m.group(1)
            out.append("")
            continue
        out.append(line)
    return "\n".join(out)

def slug(heading):
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    t = t.replace("`", "").replace("*", "")
    t = re.sub(r"[^\w\- ]", "", t.strip().lower())
    return t.replace(" ", "-")

def anchors(path):
    seen, out = collections.Counter(), set()
    for line in prose(path.read_text()).split("\n"):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(2))
            out.add(s if not seen[s] else f"{s}-{seen[s]}")
            seen[s] += 1
    return out

LINK = re.compile(r"(?<!\!)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", re.S)
bad, checked = [], 0
for f in FILES:
    if not f.exists():
        continue
    text = prose(f.read_text())
    text = re.sub(r"`[^`\n]*`", lambda m: " " * len(m.group(0)), text)
    for m in LINK.finditer(text):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        line = text.count("\n", 0, m.start()) + 1
        where = f"{f.relative_to(ROOT)}:{line}"
        path, _, anchor = target.partition("#")
        dest = (f.parent / path).resolve() if path else f
        checked += 1
        if not dest.exists():
            bad.append(f"{where}: {target}: no such file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix != ".md":
                bad.append(f"{where}: {target}: an anchor into a non-markdown target")
            elif anchor not in anchors(dest):
                bad.append(f"{where}: {target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
print(f"{checked} local links checked in {sum(f.exists() for f in FILES)} files; {len(bad)} broken")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
