"""shoprec erase and shoprec privacy: erasure and key rotation on a store, from the command line."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.privacy import Pseudonymizer
from shoprec.service.store import EventRecord
from shoprec.service.store_sqlite import SQLiteStore

OLD, NEW = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
runner = CliRunner()


def _store(path, pz, users):
    st = SQLiteStore(path)
    st.append_events([EventRecord(event_id=f"e{i}-{u}", item_id="a", behaviour="view", timestamp=1.7e9 + i,
                                  received_at=time.time(), user_id=pz.pseudo(u)) for u in users for i in range(3)])
    return st


def test_erase_from_the_command_line(tmp_path):
    pz = Pseudonymizer(OLD)
    st = _store(tmp_path / "e.db", pz, ["alice", "bob"])
    st.close()
    url = f"sqlite:///{tmp_path / 'e.db'}"
    env = {"SHOPREC_ID_KEY": OLD}
    r = runner.invoke(app, ["erase", "--user", "alice", "--store", url, "--json"], env=env)
    assert r.exit_code == 0, r.output
    record = json.loads(r.output)
    assert record["events"] == 3 and "alice" not in r.output and pz.pseudo("alice") not in r.output
    r = runner.invoke(app, ["erase", "--user", "nobody", "--store", url], env=env)
    assert r.exit_code == 1 and "no such user" in r.output
    r = runner.invoke(app, ["erase", "--user", "bob", "--store", url, "--refit"], env=env)
    assert r.exit_code == 2 and "--refit needs" in r.output
    with SQLiteStore(tmp_path / "e.db") as st:
        assert {e.user_id for b in st.iter_events() for e in b} == {pz.pseudo("bob")}
    r = runner.invoke(app, ["privacy", "erasures", "--store", url], env=env)
    assert r.exit_code == 0 and '"events": 3' in r.output


def test_rekey_moves_the_listed_users_to_the_new_key(tmp_path):
    old, new = Pseudonymizer(OLD), Pseudonymizer(NEW)
    st = _store(tmp_path / "e.db", old, ["alice", "bob", "carol"])
    st.close()
    ids = tmp_path / "customers.csv"
    ids.write_text("customer_id,country\nalice,UK\nbob,FR\n")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    r = runner.invoke(app, ["privacy", "rekey", "--ids", str(ids), "--store", url],
                      env={"SHOPREC_ID_KEY": OLD, "SHOPREC_ID_KEY_NEW": NEW})
    assert r.exit_code == 0, r.output
    assert "rekeyed 2 users: 6 events" in r.output
    with SQLiteStore(tmp_path / "e.db") as st:
        users = {e.user_id for b in st.iter_events() for e in b}
    assert users == {new.pseudo("alice"), new.pseudo("bob"), old.pseudo("carol")}
    r = runner.invoke(app, ["privacy", "rekey", "--ids", str(ids), "--store", url], env={"SHOPREC_ID_KEY": OLD})
    assert r.exit_code == 2 and "SHOPREC_ID_KEY_NEW" in r.output
    r = runner.invoke(app, ["privacy", "pseudonym", "alice"], env={"SHOPREC_ID_KEY": NEW})
    assert r.output.strip() == new.pseudo("alice")
