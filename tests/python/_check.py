"""Tiny assertion helper shared by the client-library scripts.

Every check is counted; a mismatch is printed with what was expected and
what came back, and the script exits non-zero at the end (or at once on an
unexpected exception, which Python reports with a traceback).
"""

import sys
import time


class Checker:
    def __init__(self, name):
        self.name = name
        self.count = 0
        self.failures = []

    def eq(self, what, got, want):
        self.count += 1
        if got != want:
            msg = f"{what}: expected {want!r:.200}, got {got!r:.200}"
            self.failures.append(msg)
            print(f"MISMATCH {msg}", flush=True)

    def true(self, what, cond, detail=""):
        self.count += 1
        if not cond:
            msg = f"{what}: condition failed {detail}"
            self.failures.append(msg)
            print(f"MISMATCH {msg}", flush=True)

    def raises(self, what, exc_types, fn):
        """fn() must raise one of exc_types; returns the exception."""
        self.count += 1
        try:
            got = fn()
        except exc_types as e:
            return e
        msg = f"{what}: expected {exc_types}, call returned {got!r:.200}"
        self.failures.append(msg)
        print(f"MISMATCH {msg}", flush=True)
        return None

    def finish(self):
        if self.failures:
            print(f"{self.name}: {len(self.failures)} of {self.count} checks FAILED")
            sys.exit(1)
        print(f"{self.name}: all {self.count} checks ok")
        sys.exit(0)


def wait_until(pred, timeout, step=0.05):
    """Polls pred() until true; returns the seconds it took, or None."""
    start = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)


def port_from_argv():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} PORT", file=sys.stderr)
        sys.exit(2)
    return int(sys.argv[1])


# Values every client must carry byte for byte: all 256 byte values, protocol
# look-alikes inside a value, CR/LF at the edges, an empty value.
BINARY_VALUES = {
    b"bin:all": bytes(range(256)) * 4,
    b"bin:crlf": b"\r\n\r\nEND\r\nVALUE x 0 1\r\nx\r\n",
    b"bin:edge": b"\n" + b"\x00" * 10 + b"\r",
    b"bin:empty": b"",
    b"bin:utf8": "h\u00e9llo w\u00f6rld \u2603".encode(),
}
