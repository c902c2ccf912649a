"""``shoprec health …``: the marketplace-health commands of the command line (registered on ``cli.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli import _error, _load_shop, _plain, app, console

health_app = typer.Typer(no_args_is_help=True, help="Marketplace health: abnormal prices, bot visits, "
                                                      "fake reviews, consumer protection.")
app.add_typer(health_app, name="health")


def _print_table(title: str, columns: tuple[str, ...], rows, right: tuple[str, ...] = ()) -> None:
    """A rich table of ``rows`` (tuples of text) under ``columns``, the ``right`` ones right-aligned."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left")
    for r in rows:
        t.add_row(*r)
    console.print(t)


def _write_flags(flags, out: Path) -> None:
    """Every flag to ``out``: JSON Lines by the suffix .jsonl, else CSV."""
    if out.suffix.lower() == ".jsonl":
        out.write_text("".join(json.dumps(r) + "\n" for r in flags.frame.to_dict("records")))
    else:
        flags.frame.to_csv(out, index=False)
    _plain(f"wrote {len(flags):,} flags to {out}")


@health_app.command("prices")
def health_prices(
    data: Annotated[Optional[str], typer.Option("--data", help="FORMAT:PATH (default: the demo shop).")] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Flags to list (the most recent first).")] = 20,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write every flag (CSV, or JSON Lines by the "
                                                "suffix .jsonl).")] = None,
) -> None:
    """Scan every item's price series for spikes, drops, subsidised cuts and creeping rises."""
    import time

    import pandas as pd

    from .health.prices import PriceSupervisor, price_series

    try:
        shop = _load_shop(data)
        ev = shop.events
        if "price" not in ev.columns or ev["price"].notna().sum() == 0:
            raise ValueError(f"{data or 'the demo shop'}: its events carry no prices to supervise")
        frame = pd.DataFrame({"item_id": shop.items.to_external(ev["item_idx"].to_numpy()),
                              "timestamp": ev["timestamp"], "price": ev["price"],
                              "quantity": ev["quantity"] if "quantity" in ev.columns else 1.0})
        t0 = time.perf_counter()
        series, counts = price_series(frame, source=data or "the demo shop")
        flags = PriceSupervisor().scan(series)
        seconds = time.perf_counter() - t0
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    skipped = {k.removeprefix("skipped_"): v for k, v in counts.items() if k.startswith("skipped_") and v}
    _plain(f"{counts['rows_kept']:,} of {counts['rows_read']:,} priced rows → {counts.get('observations', 0):,} daily "
           f"prices of {counts.get('items', 0):,} items" + (f"; skipped {skipped}" if skipped else "")
           + f"; scanned in {seconds:.1f} s")
    _plain(flags.summary())
    if top and len(flags):
        f = flags.frame.sort_values("at", ascending=False).head(top)
        _print_table(f"the {min(top, len(flags))} most recent price flags", ("item", "kind", "day", "price", "usual", "reason"),
                     [(str(r.key), r.kind, time.strftime("%Y-%m-%d", time.gmtime(r.at)), f"{r.value:.2f}",
                       f"{r.expected:.2f}", r.reason) for r in f.itertuples()], right=("price", "usual"))
    if out is not None:
        _write_flags(flags, out)


@health_app.command("bots")
def health_bots(
    data: Annotated[Optional[str], typer.Option("--data", help="FORMAT:PATH (default: the demo shop).")] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Flagged visits to list (the largest first).")] = 20,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write every flag (CSV, or JSON Lines by the "
                                                "suffix .jsonl).")] = None,
) -> None:
    """Find the crawler, cart-stuffer and click-farm visits of a shop's events (what the bots training
    filter leaves out)."""
    import time

    import numpy as np
    import pandas as pd

    from .health.bots import BotDetector

    try:
        shop = _load_shop(data)
        ev = shop.events
        sess = ev["session_idx"].to_numpy().astype(np.int64)
        user = ev["user_idx"].to_numpy().astype(np.int64)
        sess_ids = np.asarray(shop.sessions.external_ids, dtype=object) if shop.sessions is not None else None
        user_ids = np.asarray(shop.users.external_ids, dtype=object)
        visit = [f"session {sess_ids[s]}" if s >= 0 and sess_ids is not None else f"user {user_ids[u]}"
                 for s, u in zip(sess.tolist(), user.tolist())]
        frame = pd.DataFrame({"visit": visit, "item": ev["item_idx"].to_numpy(), "behaviour": ev["behaviour"].to_numpy(),
                              "timestamp": ev["timestamp"].to_numpy(np.float64)})
        t0 = time.perf_counter()
        flags = BotDetector().flags(frame)
        seconds = time.perf_counter() - t0
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    _plain(f"{flags.checked['events']:,} events in {flags.checked['visits']:,} visits; scored in {seconds:.1f} s")
    _plain(flags.summary())
    if top and len(flags):
        f = flags.frame.sort_values("value", ascending=False).head(top)
        _print_table(f"the {min(top, len(flags))} largest flagged visits", ("visit", "kind", "events", "reason"),
                     [(str(r.key), r.kind, f"{int(r.value):,}", r.reason) for r in f.itertuples()], right=("events",))
    if out is not None:
        _write_flags(flags, out)


@health_app.command("protection")
def health_protection(
    data: Annotated[Optional[str], typer.Option("--data", help="FORMAT:PATH (default: the demo shop).")] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Flagged items to list (the most returned, late or "
                                     "poorly reviewed first).")] = 20,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write every flagged item (CSV).")] = None,
) -> None:
    """Items often returned, poorly reviewed, delivered late, or at counterfeit risk (the
    ``consumer_protection`` rule's flags, on the whole data)."""
    import numpy as np

    from types import SimpleNamespace

    from .health.protection import ProtectionReRanker
    from .scenarios.facts import ItemFacts

    try:
        shop = _load_shop(data)
        # the stage reads only the facts of its environment
        stage = ProtectionReRanker().fit(shop, SimpleNamespace(facts=ItemFacts.from_data(shop)))
        cur = stage.current()
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    cur.insert(0, "item_id", [str(x) for x in shop.items.to_external(cur["item_idx"].to_numpy())] if len(cur) else [])
    counts = cur["kinds"].str.split(",").explode().value_counts().to_dict() if len(cur) else {}
    _plain(f"{len(cur):,} of {shop.n_items:,} items flagged" + (f" ({counts})" if counts else ""))
    if top and len(cur):
        worst = cur.assign(w=np.nanmax(cur[["return_rate", "poor_review_rate", "late_rate"]].to_numpy(), 1))
        _print_table(f"{min(top, len(cur))} flagged items", ("item", "flags", "returned", "1–2 stars", "late", "reason"),
                     [(r.item_id, r.kinds, f"{r.return_rate:.0%}", f"{r.poor_review_rate:.0%}", f"{r.late_rate:.0%}",
                       r.reason) for r in worst.sort_values("w", ascending=False).head(top).itertuples()])
    if out is not None:
        cur.drop(columns="item_idx").to_csv(out, index=False)
        _plain(f"wrote {len(cur):,} flagged items to {out}")


@health_app.command("reviews")
def health_reviews(
    folder: Annotated[Path, typer.Option("--olist", help="A folder of Olist CSV files (reviews, orders, "
                                         "items, customers).")],
    top: Annotated[int, typer.Option("--top", min=0, help="Flags to list.")] = 20,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write every flag (CSV, or JSON Lines by the "
                                                "suffix .jsonl).")] = None,
) -> None:
    """Fake reviews (bursts, copied texts, top ratings against late deliveries) and poorly reviewed or
    late sellers, from an Olist folder."""
    import pandas as pd

    from .health.reviews import ReviewDetector, olist_deliveries, olist_reviews, poor_seller_flags, seller_review_stats

    try:
        sample = next((p.parent for p in sorted(folder.rglob("olist_order_reviews_dataset.csv"))), folder)
        reviews, counts = olist_reviews(sample)
        flags = ReviewDetector().flags(reviews)
        orders = olist_deliveries(sample)[0] if (sample / "olist_orders_dataset.csv").exists() else None
        sellers = poor_seller_flags(seller_review_stats(reviews, orders, exclude=flags))
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    skipped = {k.removeprefix("skipped_"): v for k, v in counts.items() if k.startswith("skipped_") and v}
    _plain(f"{counts['reviews']:,} reviews of {counts['rows_read']:,} rows" + (f"; skipped {skipped}" if skipped else "")
           + f"; {counts.get('reviews_with_order', 0):,} found their order, {counts.get('reviews_with_items', 0):,} "
           "their product and seller")
    _plain("fake reviews: " + flags.summary())
    _plain("sellers: " + sellers.summary())
    both = flags.frame if not len(sellers) else pd.concat([flags.frame, sellers.frame])
    if top and len(both):
        _print_table(f"{min(top, len(both))} flags", ("subject", "key", "kind", "reason"),
                     [(r.subject, str(r.key), r.kind, r.reason) for r in both.head(top).itertuples()])
    if out is not None:
        from .health.flags import Flags

        _write_flags(Flags(both.reset_index(drop=True)), out)
