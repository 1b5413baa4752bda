#!/usr/bin/env python3
"""vfe-frontend exchange refuses bad input before it connects: a frames file
that is missing, not hex, an odd number of digits, a frame under 60 or over
9216 bytes; --rounds outside 1..64; a --gpa-base that is
not a multiple of 1 GiB below 2^39.  Good input gets as far as the (absent)
socket.  No back-end needed."""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("VFE_BUILD_DIR", "build")
FE = os.path.join(BUILD, "tests", "frontend", "vfe-frontend")


def run(work, frames_text, extra=(), frames_name="f.hex"):
    path = os.path.join(work, frames_name)
    if frames_text is not None:
        with open(path, "w") as f:
            f.write(frames_text)
    r = subprocess.run([FE, "--socket", os.path.join(work, "absent.sock"), "--frames", path] + list(extra)
                       + ["exchange"], capture_output=True, text=True, timeout=20)
    return r.returncode, r.stderr


def main():
    good = "ab" * 60 + "\n"
    cases = [
        ("missing file", None, (), 2, "No such file"),
        ("not hex", "zz" * 60 + "\n", (), 2, "not hex at column 1"),
        ("odd digits", "a" * 121 + "\n", (), 2, "60..9216 bytes"),
        ("59 bytes", "00" * 59 + "\n", (), 2, "60..9216 bytes"),
        ("9217 bytes", "00" * 9217 + "\n", (), 2, "60..9216 bytes"),
        ("bad second line", good + "0g" + "00" * 59 + "\n", (), 2, ":2: not hex at column 2"),
        ("rounds 0", good, ("--rounds", "0"), 2, "Usage"),
        ("rounds 65", good, ("--rounds", "65"), 2, "Usage"),
        ("gpa-base not 1 GiB aligned", good, ("--gpa-base", "0x1000"), 2, "Usage"),
        ("gpa-base at 2^39", good, ("--gpa-base", str(1 << 39)), 2, "Usage"),
        ("gpa-base not a number", good, ("--gpa-base", "4G"), 2, "Usage"),
        ("gpa-base 4 GiB", good, ("--gpa-base", "0x100000000"), 1, "absent.sock"),
        # accepted: CRLF, blank lines, upper case; then the socket is what fails
        ("good frames", good.upper().replace("\n", "\r\n") + "\n" + "00" * 9216 + "\n", ("--rounds", "64"), 1,
         "absent.sock"),
    ]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="vfe-fe-exchange-") as work:
        for name, text, extra, want_rc, want_msg in cases:
            rc, err = run(work, text, extra, "missing.hex" if text is None else "f.hex")
            ok = rc == want_rc and want_msg in err
            failed += not ok
            print("%s %s: exit %d%s" % ("ok  " if ok else "FAIL", name, rc,
                                         "" if ok else " (want %d and '%s'); stderr: %s" % (want_rc, want_msg,
                                                                                           err.strip()[:300])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
