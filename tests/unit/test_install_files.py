"""The installer's one file writer (compare first) and the unit runner's reading of units
and environment files (skiff/install/apply.py, runner.py)."""

import os

import pytest

from skiff.install import apply, join
from skiff.install.runner import UnitError, parse_env_file, parse_unit


def test_write_file_compares_first(tmp_path):
    path = str(tmp_path / "sub" / "f.yaml")
    assert apply.write_file(path, "a: 1\n", 0o600) is True
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600 and open(path).read() == "a: 1\n"
    assert apply.write_file(path, "a: 1\n", 0o600) is False
    again = os.stat(path)
    assert (again.st_ino, again.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)     # not touched
    assert apply.write_file(path, "a: 1\n", 0o644) is True                       # mode only: chmod
    assert os.stat(path).st_ino == st.st_ino and os.stat(path).st_mode & 0o777 == 0o644
    assert apply.write_file(path, "a: 2\n", 0o644) is True
    assert open(path).read() == "a: 2\n"
    assert [n for n in os.listdir(tmp_path / "sub")] == ["f.yaml"]               # no temp file left


UNIT = """[Unit]
Description=x
[Service]
Type=exec
EnvironmentFile=-/nonexistent/env
Environment="A=1 2" B=3
ExecStart=/usr/bin/python3 -m x --config '/etc/a b.yaml'
KillMode=process
[Install]
WantedBy=multi-user.target
"""


def test_parse_unit_and_exec_spec():
    from skiff.install.runner import exec_spec
    unit = parse_unit(UNIT)
    argv, env, cwd = exec_spec(unit)
    assert argv == ["/usr/bin/python3", "-m", "x", "--config", "/etc/a b.yaml"]
    assert env["A"] == "1 2" and env["B"] == "3" and cwd is None


@pytest.mark.parametrize("text,needle", [
    (UNIT.replace("KillMode=process", "User=nobody"), "User"),
    (UNIT.replace("ExecStart=", "ExecStartPre=/bin/true\nExecStart="), "ExecStartPre"),
    (UNIT + "[Service]\nExecStart=/bin/true\n", "exactly one ExecStart"),
    ("ExecStart=/bin/true\n", "not a key=value line in a section"),
])
def test_runner_refuses_what_it_would_not_honour(text, needle):
    with pytest.raises(UnitError, match=needle):
        parse_unit(text)


def test_required_environment_file_missing_is_an_error():
    from skiff.install.runner import exec_spec
    with pytest.raises(UnitError, match="EnvironmentFile"):
        exec_spec(parse_unit(UNIT.replace("=-/nonexistent/env", "=/nonexistent/env")))


def test_parse_env_file():
    assert parse_env_file("# c\nA=1\nB='x y'\nC=\n\nD=\"q\"\n") == {"A": "1", "B": "x y", "C": "", "D": "q"}


def test_raft_password_is_created_once_in_the_join_dir(tmp_path):
    d = str(tmp_path / "join")
    first = join.raft_password(d, str(tmp_path / "none"), create=True)
    assert len(first) == 48 and os.stat(os.path.join(d, "raft-password")).st_mode & 0o777 == 0o600
    assert join.raft_password(d, str(tmp_path / "none"), create=True) == first     # a second replica
    assert join.raft_password(str(tmp_path / "other"), str(tmp_path / "none"), create=False) == ""
