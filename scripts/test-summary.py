#!/usr/bin/env python3
"""Sum up the test results of meson build directories.

Reads DIR/meson-logs/testlog.json for each DIR given (DIR:LOGBASE reads
DIR/meson-logs/LOGBASE.json instead: another `meson test --logbase LOGBASE`
run of the same build, such as dev.sh's ThreadSanitizer pass) and counts
individual tests where the runner says how many it ran (criterion's "Synthesis" line,
node --test's "# pass"/"# fail", unittest's "Ran N tests", a shell test's
"N passed, N failed" line); any other suite counts as one test. A suite that
meson saw fail counts at least one failure even if its runner said otherwise
(a crash at exit, a sanitizer report). Prints one line per directory, then
"N passed, N failed" for all of them.
"""
import json
import re
import sys

CRITERION = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
NODE_PASS = re.compile(r"^# pass (\d+)$", re.M)
NODE_FAIL = re.compile(r"^# fail (\d+)$", re.M)
UNITTEST = re.compile(r"^Ran (\d+) tests? in", re.M)
UNITTEST_FAIL = re.compile(r"^FAILED \((?:failures=(\d+))?(?:, )?(?:errors=(\d+))?", re.M)
PLAIN = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed", re.M)


def count(out, ok):
    m = CRITERION.findall(out)
    if m:
        passed = sum(int(x[1]) for x in m)
        failed = sum(int(x[2]) + int(x[3]) for x in m)
    elif NODE_PASS.search(out):
        passed = sum(int(x) for x in NODE_PASS.findall(out))
        failed = sum(int(x) for x in NODE_FAIL.findall(out))
    elif UNITTEST.search(out):
        ran = int(UNITTEST.findall(out)[-1])
        f = UNITTEST_FAIL.search(out)
        failed = sum(int(x) for x in f.groups() if x) if f else 0
        passed = ran - failed
    elif PLAIN.search(out):
        p, f = PLAIN.findall(out)[-1]
        passed, failed = int(p), int(f)
    else:
        passed, failed = (1, 0) if ok else (0, 1)
    if not ok and failed == 0:
        failed = 1
    return passed, failed


def main():
    total_p = total_f = 0
    for d in sys.argv[1:]:
        p = f = skipped = 0
        build, _, logbase = d.partition(":")
        try:
            lines = open(f"{build}/meson-logs/{logbase or 'testlog'}.json").read().splitlines()
        except OSError:
            print(f"{d}: no test log")
            total_f += 1
            continue
        for line in lines:
            r = json.loads(line)
            if r.get("result") == "SKIP":
                skipped += 1
                continue
            out = (r.get("stdout") or "") + (r.get("stderr") or "")
            a, b = count(out, r.get("result") in ("OK", "EXPECTEDFAIL"))
            p += a
            f += b
        print(f"{d}: {p} passed, {f} failed, {skipped} suites skipped")
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
