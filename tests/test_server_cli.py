"""`oko server ...` commands: keys printed once, users, errors as one line with exit 2."""

from __future__ import annotations

import httpx
import pytest

from conftest import assert_user_error
from server_helpers import ServerProcess, crossing, oko_cli


@pytest.mark.slow
def test_add_node_and_user_then_use_them(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    add = oko_cli("add-node", "gate-7", "--db", db)
    assert add.returncode == 0, add.stderr
    key = add.stdout.strip()
    assert key.startswith("oko_") and len(key) == 47 and "\n" not in key
    user = oko_cli("add-user", "ops", "--role", "admin", "--password-stdin", "--db", db,
                   stdin="long-enough-pw\n")
    assert user.returncode == 0, user.stderr
    server = ServerProcess(db, tmp_path / "data").start()
    try:
        r = httpx.post(server.url + "/api/v1/ingest/events", json={"events": [crossing(1)]},
                       headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        token = httpx.post(server.url + "/api/v1/auth/token",
                           json={"username": "ops", "password": "long-enough-pw"}).json()["token"]
        events = httpx.get(server.url + "/api/v1/events",
                           headers={"Authorization": f"Bearer {token}"}).json()["events"]
        assert [e["node"] for e in events] == ["gate-7"]
        rotated = oko_cli("rotate-key", "gate-7", "--db", db)
        assert rotated.returncode == 0 and rotated.stdout.strip() != key
        assert oko_cli("disable-node", "gate-7", "--db", db).returncode == 0
        listing = oko_cli("nodes", "--db", db)
        assert "gate-7" in listing.stdout and "disabled" in listing.stdout
    finally:
        server.stop()


@pytest.mark.parametrize(("args", "stdin", "needle"), [
    (["add-node", "../etc", "--db", "DB"], None, "not a valid name"),
    (["add-user", "bob", "--role", "root", "--db", "DB"], None, "--role 'root'"),
    (["add-user", "bob", "--password-stdin", "--db", "DB"], "short\n", "8 to 1024"),
    (["rotate-key", "ghost", "--db", "DB"], None, "no node 'ghost'"),
    (["migrate", "--db", "mysql://u@h/db"], None, "unsupported database"),
    (["migrate", "--db", "postgresql://u:secret@127.0.0.1:9/db"], None, "cannot connect"),
    (["set-password", "ghost", "--password-stdin", "--db", "DB"], "long-enough-pw\n",
     "no user 'ghost'"),
])
def test_user_errors_are_one_line(tmp_path, args, stdin, needle):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    proc = oko_cli(*[db if a == "DB" else a for a in args], stdin=stdin)
    assert_user_error(proc, needle)
    assert "secret" not in proc.stderr  # database passwords are not printed


def test_duplicate_node_is_an_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert oko_cli("add-node", "n1", "--db", db).returncode == 0
    assert_user_error(oko_cli("add-node", "n1", "--db", db), "already exists")
