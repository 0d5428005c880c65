#!/usr/bin/python3
"""config_table.py - the README's configuration table, from `gru-serve --help` (one source).

    tools/config_table.py build/server/gru-serve            # prints the Markdown table
    tools/config_table.py build/server/gru-serve --check README.md   # exit 1 if README differs
"""
import re
import subprocess
import sys


def table(exe):
    text = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    rows = []
    for m in re.finditer(r"^  (--[a-z-]+)[^\n]*\n((?:      [^\n]*\n)+)", text, re.M):
        flag, body = m.group(1), m.group(2)
        lines = [l.strip() for l in body.splitlines()]
        d = re.search(r"default: (.*?)\s+env: (\S+)", body)
        if not d:
            continue
        what = " ".join(l for l in lines if not l.startswith("default:") and not l.startswith("also:"))
        rows.append("| `%s` | `%s` | %s | %s |" % (flag, d.group(2), d.group(1).strip(), what.replace("|", "\\|")))
    return "| flag | environment | default | what |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"


def main():
    t = table(sys.argv[1])
    if len(sys.argv) > 3 and sys.argv[2] == "--check":
        readme = open(sys.argv[3], encoding="utf-8").read()
        if t not in readme:
            print("README.md's configuration table differs from `gru-serve --help`; regenerate it with:\n"
                  "  tools/config_table.py build/server/gru-serve")
            print("0 passed, 1 failed")
            return 1
        print("README.md's configuration table matches `gru-serve --help`")
        print("1 passed, 0 failed")
        return 0
    sys.stdout.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
