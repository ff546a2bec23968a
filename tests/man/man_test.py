#!/usr/bin/env python3
"""man_test.py - the manual pages against the programs they describe.

    man_test.py render PAGE...           man --warnings -l: no warning at all
    man_test.py keys ROOMD ROOMS_INI_5 CONF
        every key the loader accepts (ROOMD --list-keys) is documented in
        rooms.ini(5) (an entry '.BI "KEY = " ...' under its section's '.SS'
        heading) and listed in the shipped config CONF (set in its section,
        or, for [room:NAME] keys, in the comment that lists them), and the
        page documents no key the loader refuses
    man_test.py options PROGRAM PAGE
        every option PROGRAM --help lists is in PAGE's OPTIONS, and back

Each failure names the key or option and the file it is missing from.
Standard library only; exit 0 on success, 1 with the list of differences.
"""

import os
import re
import subprocess
import sys


def fail(problems):
    for p in problems:
        print("FAIL: " + p)
    print("%d difference%s" % (len(problems), "" if len(problems) == 1 else "s"))
    return 1


# ---- render ----------------------------------------------------------------

def render(pages):
    problems = []
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MANPAGER="cat", PAGER="cat")
    for page in pages:
        p = subprocess.run(["man", "--warnings", "-l", page], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=60)
        lines = p.stdout.decode("utf-8", "replace").count("\n")
        if p.returncode != 0 or p.stderr.strip():
            problems.append("man --warnings -l %s: exit %d:\n%s" % (page, p.returncode,
                                                                   p.stderr.decode("utf-8", "replace")))
        elif lines < 20:
            problems.append("man -l %s rendered only %d lines" % (page, lines))
        else:
            print("%s: %d lines, no warning" % (os.path.basename(page), lines))
    return fail(problems) if problems else 0


# ---- keys ------------------------------------------------------------------

def loader_keys(roomd):
    out = subprocess.run([roomd, "--list-keys"], stdout=subprocess.PIPE, check=True,
                         timeout=30).stdout.decode()
    keys = set()
    for line in out.splitlines():
        section, key = line.split()
        keys.add((section, key))
    if not keys:
        raise SystemExit("FAIL: %s --list-keys printed no key" % roomd)
    return keys


def section_of(heading):
    """'.SS "[limits]"' -> 'limits'; '.SS "[room:\\fINAME\\fP]"' -> 'room'."""
    h = re.sub(r"\\f[BIRP]", "", heading)
    m = re.search(r"\[([a-z]+)(:|\])", h)
    return m.group(1) if m else None


def man_keys(page):
    keys, section = {}, None
    with open(page) as f:
        for n, line in enumerate(f, 1):
            if line.startswith(".SS"):
                section = section_of(line)
            elif line.startswith(".SH"):
                section = None
            m = re.match(r'\.BI "([a-z_]+) = "', line)
            if m:
                keys[(section, m.group(1))] = n
    return keys


def conf_keys(conf):
    """Keys set in [server]/[limits]/[features]/[metrics]/[tls]/[cluster], and the room keys the
    comment before the room sections lists (';   KEY   text')."""
    keys, section = set(), None
    with open(conf) as f:
        for line in f:
            s = line.strip()
            m = re.match(r"\[([a-z]+)(:|\])", s)
            if m:
                section = m.group(1)
                continue
            m = re.match(r";   ([a-z_]+)\s", line)
            if m:
                keys.add(("room", m.group(1)))
                continue
            m = re.match(r"([a-z_]+)\s*=", s)
            if m and section in ("server", "limits", "features", "metrics", "tls", "cluster"):
                keys.add((section, m.group(1)))
    return keys


def keys(roomd, page, conf):
    loader = loader_keys(roomd)
    documented = man_keys(page)
    listed = conf_keys(conf)
    problems = []
    # Named as in the source tree, wherever ctest runs from.
    pname, cname = "man/" + os.path.basename(page), "conf/" + os.path.basename(conf)
    for section, key in sorted(loader):
        where = "[room:NAME]" if section == "room" else "[%s]" % section
        if (section, key) not in documented:
            problems.append('key %s %s: the loader accepts it (roomd --list-keys) but %s does not '
                            'document it: add \'.TP\' and \'.BI "%s = " VALUE\' with its default and '
                            'range under .SS "%s"' % (where, key, pname, key, where))
        if (section, key) not in listed:
            problems.append("key %s %s: the loader accepts it but %s does not list it in %s"
                            % (where, key, cname, where))
    for (section, key), line in sorted(documented.items(), key=lambda kv: kv[1]):
        if (section, key) not in loader:
            problems.append("key [%s] %s: %s:%d documents it but the loader does not accept it "
                            "(not in roomd --list-keys)" % (section, key, pname, line))
    if problems:
        return fail(problems)
    print("%d keys: the loader's, rooms.ini(5)'s and %s's are the same" % (len(loader), cname))
    return 0


# ---- options ---------------------------------------------------------------

OPT_RE = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])(?![\w-])")


def help_options(program):
    out = subprocess.run([program, "--help"], stdout=subprocess.PIPE, check=True,
                         timeout=30).stdout.decode()
    opts = set()
    for line in out.splitlines():
        # The option table: "  -p, --port PORT   text": the options are
        # what comes before the first gap of two spaces.
        m = re.match(r"\s+(-\S.*?)(\s{2,}|$)", line)
        if m:
            opts.update(OPT_RE.findall(m.group(1)))
    return opts


def man_options(page):
    text, inside, opts = open(page).read().splitlines(), False, set()
    for i, line in enumerate(text):
        if line.startswith(".SH"):
            inside = line.strip() == ".SH OPTIONS"
        elif inside and line.startswith(".TP") and i + 1 < len(text):
            tag = re.sub(r"\\f[BIRP]", "", text[i + 1]).replace("\\-", "-")
            opts.update(OPT_RE.findall(tag))
    return opts


def options(program, page):
    in_help, in_man = help_options(program), man_options(page)
    name = os.path.basename(program)
    problems = ["option %s: %s --help lists it but %s's OPTIONS does not" % (o, name, "man/" + os.path.basename(page))
                for o in sorted(in_help - in_man)]
    problems += ["option %s: %s's OPTIONS documents it but %s --help does not list it"
                 % (o, "man/" + os.path.basename(page), name) for o in sorted(in_man - in_help)]
    if problems:
        return fail(problems)
    print("%s: %d options, the same in --help and %s" % (name, len(in_help), os.path.basename(page)))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "render":
        return render(argv[1:])
    if len(argv) == 4 and argv[0] == "keys":
        return keys(*argv[1:])
    if len(argv) == 3 and argv[0] == "options":
        return options(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
