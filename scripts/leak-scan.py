#!/usr/bin/env python3
"""Scans what a test run left behind for the plaintext values it used.

Run the tests with AGYN_TEST_ARTIFACTS=<dir>; the harness then records every
value sent in a JSON "value" field (values-<pid>.txt), every API response
body except resolve's (responses-<pid>.log), and per server its trace-level
log, /metrics, and its SQLite files or a PostgreSQL dump (servers/). This
script looks for every recorded value, as is and as JSON or Rust debug
formatting would escape it, in all of those files, and fails listing each
place where it finds one.

Usage: scripts/leak-scan.py <dir>     (exit 0: clean, 1: leaks, 2: no input)

Values shorter than MIN_LEN bytes are skipped: they would match by chance.
Webhook answers of `env` delivery (the patch) and resolve answers carry values
by design and are not collected; every other webhook answer is collected with
its patch decoded, and scanned.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile

MIN_LEN = 8
CONTEXT = 40


def debug_escape(value):
    """The value as Rust's `{:?}` writes it inside quotes."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def forms(value):
    """Byte strings whose presence means the value leaked: as is, escaped as
    JSON or Rust debug formatting would, and base64-encoded as a Kubernetes
    Secret's data carries it."""
    found = {value.encode()}
    found.add(base64.b64encode(value.encode()))
    found.add(json.dumps(value, ensure_ascii=False)[1:-1].encode())
    found.add(json.dumps(value, ensure_ascii=True)[1:-1].encode())
    found.add(debug_escape(value).encode())
    return found


def load_values(root):
    values = set()
    for name in os.listdir(root):
        if not (name.startswith("values-") and name.endswith(".txt")):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    values.add(json.loads(line))
    return values


def scanned_files(root):
    for folder, _, files in os.walk(root):
        for name in files:
            if folder == root and name.startswith("values-"):
                continue
            yield os.path.join(folder, name)


def longest_piece(needle):
    """The longest run without a newline or NUL: what grep can look for."""
    pieces = needle.replace(b"\0", b"\n").split(b"\n")
    return max(pieces, key=len)


def show(data, at, length):
    start = max(0, at - CONTEXT)
    end = min(len(data), at + length + CONTEXT)
    return data[start:end].decode("utf-8", "replace").encode("unicode_escape").decode()


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0])
        print("usage: scripts/leak-scan.py <artifacts dir>")
        return 2
    root = sys.argv[1]
    if not os.path.isdir(root):
        print(f"leak-scan: {root} is not a directory")
        return 2
    values = {v for v in load_values(root) if len(v.encode()) >= MIN_LEN}
    files = list(scanned_files(root))
    if not values:
        print(f"leak-scan: no values recorded under {root}; was AGYN_TEST_ARTIFACTS set for the tests?")
        return 2
    total = sum(os.path.getsize(f) for f in files)
    print(f"leak-scan: {len(values)} values, {len(files)} files, {total / 1e6:.1f} MB")

    # needle -> value, and grep's search key -> needles
    needles = {}
    for value in values:
        for needle in forms(value):
            needles[needle] = value
    by_key = {}
    for needle in needles:
        key = longest_piece(needle)
        if len(key) < MIN_LEN:
            key = None
        by_key.setdefault(key, []).append(needle)

    # Candidate files: grep -F (Aho-Corasick) finds them fast; each
    # candidate is then read and every needle checked exactly.
    candidates = set()
    keys = [k for k in by_key if k is not None]
    if keys:
        with tempfile.NamedTemporaryFile(delete=False) as patterns:
            patterns.write(b"\n".join(keys) + b"\n")
        try:
            result = subprocess.run(
                ["grep", "-r", "-a", "-l", "-F", "-f", patterns.name, "--", root],
                stdout=subprocess.PIPE,
                check=False,
            )
        finally:
            os.unlink(patterns.name)
        if result.returncode > 1:
            print("leak-scan: grep failed")
            return 2
        known = set(files)
        candidates.update(p for p in result.stdout.decode().splitlines() if p in known)
    unkeyed = by_key.get(None, [])
    if unkeyed:
        candidates.update(files)

    leaks = []
    for path in sorted(candidates):
        with open(path, "rb") as f:
            data = f.read()
        for needle, value in needles.items():
            at = data.find(needle)
            if at >= 0:
                leaks.append((path, at, value, show(data, at, len(needle))))
    if leaks:
        print(f"leak-scan: {len(leaks)} leak(s) found")
        for path, at, value, context in leaks:
            shown = value if len(value) <= 60 else value[:60] + "…"
            print(f"  {os.path.relpath(path, root)} at byte {at}: {shown!r}")
            print(f"      …{context}…")
        return 1
    print("leak-scan: no value found in any log, response, metrics page or database")
    return 0


if __name__ == "__main__":
    sys.exit(main())
