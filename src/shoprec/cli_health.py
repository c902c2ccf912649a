"""``shoprec health …``: the marketplace-health commands of the command line (registered on ``cli.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli import _error, _load_shop, _plain, app, console

health_app = typer.Typer(no_args_is_help=True, help="Marketplace health: abnormal prices, bot visits.")
app.add_typer(health_app, name="health")


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
        t = Table(title=f"the {min(top, len(flags))} most recent price flags")
        for col in ("item", "kind", "day", "price", "usual", "reason"):
            t.add_column(col, justify="right" if col in ("price", "usual") else "left")
        f = flags.frame.sort_values("at", ascending=False).head(top)
        for r in f.itertuples():
            t.add_row(str(r.key), r.kind, time.strftime("%Y-%m-%d", time.gmtime(r.at)), f"{r.value:.2f}",
                      f"{r.expected:.2f}", r.reason)
        console.print(t)
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
        t = Table(title=f"the {min(top, len(flags))} largest flagged visits")
        for col in ("visit", "kind", "events", "reason"):
            t.add_column(col, justify="right" if col == "events" else "left")
        for r in flags.frame.sort_values("value", ascending=False).head(top).itertuples():
            t.add_row(str(r.key), r.kind, f"{int(r.value):,}", r.reason)
        console.print(t)
    if out is not None:
        _write_flags(flags, out)
