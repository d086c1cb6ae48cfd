"""The committed *_pb2 stubs must be what proto/ generates (no hand edits, no stale files)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_generated_stubs_are_current():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "proto", "generate.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
