"""``shoprec erase`` and ``shoprec privacy …``: erasure and pseudonym keys from the command line
(registered on ``cli.app``). With the service running, erase through it (``DELETE /v1/users/{id}``):
only the running service can forget the user's live state; this command is for a stopped service,
or a store and models folder kept offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import _error, _load_shop, _plain, app, console

privacy_app = typer.Typer(no_args_is_help=True, help="Pseudonymised user ids and erasure (shoprec.privacy).")
app.add_typer(privacy_app, name="privacy")


@app.command("erase")
def erase(
    user: Annotated[str, typer.Option("--user", help="The user id to erase, as the shop knows it.")],
    store: Annotated[str, typer.Option("--store", help="Event store URL.")] = "sqlite:///shoprec-data/events.db",
    models: Annotated[Optional[Path], typer.Option("--models", help="Models folder: refit without the user "
                                                                    "(with --refit) and delete older versions.")]
    = None,
    refit: Annotated[bool, typer.Option("--refit/--no-refit", help="Fit the models again now, without the user "
                                                                   "(needs --models and --data).")] = False,
    data: Annotated[Optional[str], typer.Option("--data", help="The shop's training data, FORMAT:PATH or demo.")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the audit record as JSON.")] = False,
) -> None:
    """Erase a user: their events, impressions and policy traces from the store, a suppression token so
    the shop's files do not bring them back, an audit record without the id; with --refit, new models
    fitted without them (older versions deleted). User ids are pseudonymised with SHOPREC_ID_KEY when set."""
    from .exceptions import ShoprecError
    from .privacy import Pseudonymizer
    from .service.erasure import UnknownUser, erase_from_store, keep_record, stored_id
    from .service.store import open_store

    if refit and (models is None or data is None):
        _error("--refit needs --models DIR and --data FORMAT:PATH (the shop's training data)")
        raise typer.Exit(2)
    try:
        pz = Pseudonymizer.from_env()
        st = open_store(store)
        try:
            known = False
            if models is not None:
                from .scenarios.artifact import read_manifest, read_user_ids
                from .service.app import resolve_model

                path = resolve_model(models)
                known = bool(read_user_ids(path).to_index([stored_id(user, pz)], missing=-1)[0] >= 0)
                trained = read_manifest(path).get("meta", {}).get("id_key")
                if trained != (pz.key_id if pz else None):
                    _error(f"the models in {models} were trained under another id key (or none) than "
                           "SHOPREC_ID_KEY's: set the service's key")
                    raise typer.Exit(2)
            record, _, _ = erase_from_store(user, st, pz, known_to_model=known)
            if refit:
                from .service.training import train

                shop = _load_shop(data)
                target = train(shop, models, store=st, pseudonymizer=pz)
                record.models = f"refit: {target.name} fitted without the user; older versions deleted"
            elif models is not None:
                record.models = ("stale: factors and counts of the user stay in the model files until the next "
                                 "`shoprec train --store …` (which leaves them out and deletes older versions)")
            keep_record(st, record)
        finally:
            st.close()
    except UnknownUser as e:
        _error(e)
        raise typer.Exit(1) from None
    except (ShoprecError, OSError) as e:
        _error(e)
        raise typer.Exit(2) from None
    if json_out:
        console.print_json(json.dumps(record.as_dict()))
        return
    _plain(f"erased: {record.events:,} events, {record.impressions:,} impressions, {record.sessions:,} sessions, "
           f"{record.policy_snapshots} policy snapshots; models: {record.models}")
    _plain(f"audit record {record.erasure_id} kept (no id in it)", style="dim")


@privacy_app.command("pseudonym")
def pseudonym(user: Annotated[str, typer.Argument(help="A user id.")]) -> None:
    """Print the pseudonym SHOPREC_ID_KEY gives a user id (what the store, logs and models hold)."""
    from .privacy import Pseudonymizer

    pz = Pseudonymizer.from_env()
    if pz is None:
        _error("SHOPREC_ID_KEY is not set: ids are stored as given")
        raise typer.Exit(2)
    console.print(pz.pseudo(user))


@privacy_app.command("erasures")
def erasures(store: Annotated[str, typer.Option("--store", help="Event store URL.")]
             = "sqlite:///shoprec-data/events.db") -> None:
    """The audit records of the erasures (no ids)."""
    from .service.erasure import AUDIT_KIND
    from .service.store import open_store

    with open_store(store) as st:
        rows = [body for _, body, _ in st.iter_documents(AUDIT_KIND)]
    console.print_json(json.dumps(rows))


@privacy_app.command("rekey")
def rekey(
    ids: Annotated[Path, typer.Option("--ids", help="The shop's raw user ids: a text or CSV file, the first "
                                                    "column (a header line named user_id / customer_id is skipped).")],
    store: Annotated[str, typer.Option("--store", help="Event store URL.")] = "sqlite:///shoprec-data/events.db",
) -> None:
    """Rotate the id key: every stored event and impression of the listed users moves from the pseudonym
    under SHOPREC_ID_KEY (the old key) to the one under SHOPREC_ID_KEY_NEW; erased users' suppression
    tokens move too. Then set SHOPREC_ID_KEY to the new key, retrain, restart."""
    import os

    from .exceptions import ShoprecError
    from .privacy import Pseudonymizer
    from .service.erasure import SUPPRESSION_KIND, suppression_tokens
    from .service.store import open_store

    old = Pseudonymizer.from_env()
    new_key = os.environ.get("SHOPREC_ID_KEY_NEW")
    if old is None or not new_key:
        _error("set SHOPREC_ID_KEY (the old key) and SHOPREC_ID_KEY_NEW (the new one)")
        raise typer.Exit(2)
    try:
        new = Pseudonymizer(new_key)
        if new.key_id == old.key_id:
            _error("SHOPREC_ID_KEY_NEW is the same key as SHOPREC_ID_KEY")
            raise typer.Exit(2)
        try:
            lines = [ln.split(",")[0].strip().strip('"') for ln in ids.read_text().splitlines()]
        except OSError as e:
            _error(f"{ids}: cannot read the id list ({e.strerror or e})")
            raise typer.Exit(2) from None
        raw = [x for x in lines if x and x.lower() not in ("user_id", "customer_id", "id")]
        if not raw:
            _error(f"{ids}: no user ids in the file (one per line, or the first column of a CSV)")
            raise typer.Exit(2)
        mapping = {old.pseudo(u): new.pseudo(u) for u in dict.fromkeys(raw)}
        with open_store(store) as st:
            got = st.rename_users(mapping)
            tokens = suppression_tokens(st)
            moved = 0
            for o, n in mapping.items():
                if old.token(o) in tokens:
                    st.put_document(SUPPRESSION_KIND, new.token(n), {"at": 0.0, "rekeyed": True})
                    st.delete_document(SUPPRESSION_KIND, old.token(o))
                    moved += 1
    except ShoprecError as e:
        _error(e)
        raise typer.Exit(2) from None
    _plain(f"rekeyed {len(mapping):,} users: {got['events']:,} events, {got['impressions']:,} impressions, "
           f"{moved} suppression token(s); now set SHOPREC_ID_KEY to the new key, retrain "
           f"(shoprec train --store …) and restart (key {old.key_id} → {new.key_id})")
