"""The report as one self-contained HTML page (sections, tables, contents, no script):
:func:`build_report`. Part of :mod:`shoprec.report`."""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .. import progress
from .plots import (KIND_COLOURS, _accuracy_chart, _contribution_chart, _coverage_chart, _exposure_chart,
                    _scenario_chart, _style)
from .results import (AccuracyResult, ScenarioResult, _fmt_lift, _fmt_seconds, _fmt_value, _lower_is_better, _main_k,
                      _metric_sort_key, _pretty, _split_metric, lift, load_results)

# -------------------------------------------------------------------------------------------- html
_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa;margin:0}
main{max-width:980px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 0 1px #eee}
h1{font-size:28px;margin:8px 0 4px} h2{font-size:21px;margin:40px 0 6px;border-bottom:2px solid #eee;
padding-bottom:4px} h3{font-size:16px;margin:26px 0 6px;color:#333}
.meta{color:#555;margin:0 0 14px;font-size:14px} .muted{color:#666;font-size:13.5px}
.howto{background:#f3f7fb;border-left:4px solid #56B4E9;padding:8px 16px;margin:14px 0;font-size:14px}
.howto ul{margin:4px 0;padding-left:20px} nav ol{margin:4px 0;padding-left:22px} nav li{margin:1px 0}
nav{font-size:14px} .callout{background:#eaf6f1;border-left:4px solid #009E73;padding:6px 14px;
margin:10px 0;font-size:14.5px} .skip{color:#8a6d00;background:#fff8e1;padding:4px 10px;font-size:13.5px;
border-left:4px solid #E69F00} figure{margin:10px 0} figure img{max-width:100%;height:auto}
.tablewrap{overflow-x:auto} table{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px;
font-variant-numeric:tabular-nums} th,td{padding:3px 8px;text-align:right;white-space:nowrap}
th{border-bottom:1px solid #bbb;font-weight:600;color:#333} td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#f7f7f7} td b{color:#000}
.kind{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px}
code{background:#f2f2f2;padding:0 3px;border-radius:3px;font-size:90%}
footer{margin-top:40px;color:#777;font-size:12.5px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


class _Ids:
    """Unique, stable anchors from names."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "section"
        slug, i = base, 2
        while slug in self.seen:
            slug, i = f"{base}-{i}", i + 1
        self.seen.add(slug)
        return slug


def _table(label_header: str, labels: Sequence[str], columns: Sequence[str],
           values: Sequence[Mapping[str, float | None]], headers: Mapping[str, str],
           prefix_cells: Sequence[str] | None = None, prefix_header: str | None = None) -> str:
    """A numeric table, the best value of each column in bold (lowest for times, memory, Gini)."""
    best: dict[str, float] = {}
    for c in columns:
        col = [v[c] for v in values if v.get(c) is not None and not math.isnan(v[c])]
        if len(col) > 1 and min(col) != max(col):  # a column of equal values has no best
            best[c] = min(col) if _lower_is_better(c) else max(col)
    head = [f"<th>{_e(label_header)}</th>"]
    if prefix_header is not None:
        head.append(f"<th>{_e(prefix_header)}</th>")
    head += [f'<th title="{_e(c)}">{_e(headers.get(c, c))}</th>' for c in columns]
    body = []
    for i, (label, vals) in enumerate(zip(labels, values)):
        cells = [f"<td>{_e(label)}</td>"]
        if prefix_cells is not None:
            cells.append(f"<td>{prefix_cells[i]}</td>")
        for c in columns:
            v = vals.get(c)
            text = _e(_fmt_value(c, v))
            cells.append(f"<td><b>{text}</b></td>" if c in best and v == best[c] else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<div class="tablewrap"><table><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


def _skip(text: str) -> str:
    return f'<p class="skip">{_e(text)}</p>'


def _meta_line(parts: Sequence[tuple[str, Any]]) -> str:
    shown = [f"{_e(k)} {_e(v)}" for k, v in parts if v not in (None, "", ())]
    return f'<p class="muted">{" · ".join(shown)}</p>' if shown else ""


def _scenario_section(res: ScenarioResult, ids: _Ids, toc: list, name_case: bool = False) -> str:
    sid = ids("scenario", res.scenario)
    where = ", ".join(x for x in (res.dataset, f"case {res.case}" if name_case and res.case else None) if x)
    title = f"Scenario: {res.scenario}" + (f" ({where})" if where else "")
    subs: list[tuple[str, str]] = []
    out = [f'<section id="{sid}"><h2>{_e(title)}</h2>',
           _meta_line([("file", res.path.name), ("queries", f"{res.n_queries:,}" if res.n_queries else None),
                       ("date", res.date), ("protocol", res.protocol)])]
    keys = [k for r in res.rows for k in r.metrics]
    k = _main_k(keys, res.ks) or _main_k(keys, res.ks, family="recall")
    panels = [m for m in (f"ndcg@{k}", f"recall@{k}") if k is not None and any(m in r.metrics for r in res.rows)]

    # 1. accuracy bars + table
    aid = ids(sid, "accuracy")
    subs.append((aid, "Accuracy and lift"))
    out.append(f'<h3 id="{aid}">Accuracy: single strategies, fusion methods, pipeline</h3>')
    if panels:
        img, captions = _scenario_chart(res, panels)
        headline = lift(res.rows, panels[0])
        if headline:
            for p, value, best in headline:
                out.append(f'<p class="callout"><b>{_e(p.label)}</b> reaches {_e(_pretty(panels[0]))} '
                           f'{p.metrics[panels[0]]:.4f}: <b>{_e(_fmt_lift(value))} over {_e(best.label)}</b>, '
                           f'the best single strategy ({best.metrics[panels[0]]:.4f}).</p>')
        elif not any(r.kind == "pipeline" for r in res.rows):
            out.append(_skip("No pipeline row in this file, so no lift over the best single strategy."))
        else:
            out.append(_skip(f"No single-strategy row with {_pretty(panels[0])}, so no lift to report."))
        out.append(f"<figure>{img}</figure>")
    else:
        out.append(_skip("Chart skipped: no row has NDCG@k or Recall@k."))
    columns = sorted({c for r in res.rows for c in r.metrics}, key=_metric_sort_key)
    columns += [c for c in ("fit_seconds", "recommend_seconds")
                if any(getattr(r, c) is not None for r in res.rows)]
    values = [dict(r.metrics, fit_seconds=r.fit_seconds, recommend_seconds=r.recommend_seconds) for r in res.rows]
    headers = {c: _pretty(c) for c in columns} | {"fit_seconds": "fit s", "recommend_seconds": "rank s"}
    kinds = [f'<span class="kind" style="background:{KIND_COLOURS[r.kind]}"></span>{_e(r.kind)}' for r in res.rows]
    out.append(_table("row", [r.label for r in res.rows], columns, values, headers,
                      prefix_cells=kinds, prefix_header="kind"))

    # 2. contributions
    cid = ids(sid, "contribution")
    subs.append((cid, "What each strategy contributes"))
    out.append(f'<h3 id="{cid}">What each strategy contributes</h3>')
    if any(r.contribution for r in res.rows):
        out.append('<p class="muted">Share of the recommended slots that each candidate strategy '
                   'proposed, per fusion method and pipeline.</p>')
        out.append(f"<figure>{_contribution_chart(res)}</figure>")
        sums = [(r.label, sum(r.contribution.values())) for r in res.rows if r.contribution]
        off = [f"{lbl} ({100 * s:.0f} %)" for lbl, s in sums if abs(s - 1) > 0.01]
        if off:
            out.append(f'<p class="muted">Shares do not add up to 100 % for {_e(", ".join(off))}: '
                       'slots proposed by several strategies or filled by none.</p>')
    else:
        out.append(_skip("Skipped: no row of this file has a \"contribution\" field."))

    # 3. popularity / coverage
    pid = ids(sid, "popularity")
    subs.append((pid, "Popularity and coverage"))
    out.append(f'<h3 id="{pid}">Popularity bias and catalogue coverage</h3>')
    cov_key = None
    cov_ks = sorted(p[1] for p in map(_split_metric, set(keys)) if p and p[0] == "coverage")
    if cov_ks:
        cov_key = f"coverage@{k}" if k in cov_ks else f"coverage@{cov_ks[-1]}"
    has_exposure = any(r.exposure for r in res.rows)
    if has_exposure:
        out.append('<p class="muted">Each curve sorts the items from most to least popular in training '
                   'and adds up the share of recommended slots they get; the dotted diagonal is an even '
                   'spread. Bar colours below match the curves.</p>')
        out.append(f"<figure>{_exposure_chart(res)}</figure>")
    else:
        out.append(_skip("Exposure curve skipped: no row has \"exposure_by_popularity_decile\"."))
    if has_exposure or cov_key:
        out.append(f"<figure>{_coverage_chart(res, cov_key)}</figure>")
    if not cov_key:
        out.append(_skip("Coverage bars skipped: no row has a coverage@k metric."))
    out.append("</section>")
    toc.append((sid, title, subs))
    return "\n".join(x for x in out if x)


def _accuracy_section(res: AccuracyResult, ids: _Ids, toc: list) -> str:
    sid = ids("accuracy", res.dataset)
    title = f"Accuracy: {res.dataset}"
    keys = [k for r in res.rows for k in r.metrics]
    k = _main_k(keys, res.ks, prefer=min(res.ks) if res.ks else 10)
    if k is None:
        k = _main_k(keys, res.ks, family="recall", prefer=min(res.ks) if res.ks else 10)
    panels = [m for m in (f"ndcg@{k}", f"recall@{k}" if any(f"recall@{k}" in r.metrics for r in res.rows)
                          else f"hr@{k}") if any(m in r.metrics for r in res.rows)] if k else []
    out = [f'<section id="{sid}"><h2>{_e(title)}</h2>',
           _meta_line([("file", res.path.name), ("queries", f"{res.n_queries:,}" if res.n_queries else None),
                       ("users", f"{res.extra['n_users']:,}" if "n_users" in res.extra else None),
                       ("items", f"{res.extra['n_items']:,}" if "n_items" in res.extra else None),
                       ("date", res.date)])]
    if res.protocol:
        out.append(f'<p class="muted">Protocol: {_e(res.protocol)}</p>')
    if panels:
        scored = [r for r in res.rows if panels[0] in r.metrics]
        best = max(scored, key=lambda r: r.metrics[panels[0]])
        out.append(f'<p class="callout">Best {_e(_pretty(panels[0]))} here: <b>{_e(best.strategy)}</b> '
                   f'({best.metrics[panels[0]]:.4f}'
                   + (f", fit in {_e(_fmt_seconds(best.fit_seconds))}" if best.fit_seconds is not None else "")
                   + ").</p>")
        out.append(f"<figure>{_accuracy_chart(res, panels)}</figure>")
    else:
        out.append(_skip("Chart skipped: no strategy has NDCG@k, Recall@k or HR@k."))
    out.append(f'<p class="muted"><b>Published:</b> {_e(res.published)}</p>' if res.published
               else _skip("No published numbers in this file."))
    families = ("ndcg", "recall", "hr", "mrr", "coverage", "gini", "novelty", "ild")
    columns = sorted({c for c in keys if (_split_metric(c) or ("", 0))[0] in families}, key=_metric_sort_key)
    columns += [c for c in ("fit_seconds", "recommend_seconds", "peak_rss_gib")
                if any(getattr(r, c) is not None for r in res.rows)]
    values = [dict(r.metrics, fit_seconds=r.fit_seconds, recommend_seconds=r.recommend_seconds,
                   peak_rss_gib=r.peak_rss_gib) for r in res.rows]
    headers = ({c: _pretty(c) for c in columns}
               | {"fit_seconds": "fit s", "recommend_seconds": "rank s", "peak_rss_gib": "GiB"})
    out.append(_table("strategy", [r.strategy for r in res.rows], columns, values, headers))
    out.append("</section>")
    toc.append((sid, title, []))
    return "\n".join(x for x in out if x)


def _how_to_read(has_scenarios: bool, has_accuracy: bool) -> str:
    items = ["Every number is an offline, full-ranking metric on held-out behaviour; higher is better "
             "unless noted. <b>NDCG@k</b> rewards putting the item the shopper went on to choose near the "
             "top, <b>Recall@k</b> / <b>HR@k</b> only whether it appears in the top k at all, "
             "<b>Coverage@k</b> is the share of the catalogue that is ever recommended."]
    if has_scenarios:
        swatch = "".join(f'<span class="kind" style="background:{c}"></span>{k} ' for k, c in KIND_COLOURS.items())
        items += [
            f"Colours by kind: {swatch}&mdash; one candidate strategy alone, a fusion method merging "
            "several, and the full pipeline (fusion plus filters and re-ranking).",
            "<b>Lift</b> is the pipeline's relative gain over the best single strategy of the same "
            "scenario (dashed line): +14&nbsp;% means 1.14 times its score.",
            "<b>Exposure curves</b>: items are sorted from most to least popular in training; a curve on "
            "the dotted diagonal shares the slots evenly, a curve that shoots up on the left sends most "
            "slots to best-sellers."]
    if has_accuracy:
        items.append("Accuracy sections compare single strategies on public datasets; the best bar is "
                     "dark. Published numbers come from papers with their own protocols, so compare "
                     "with care.")
    items.append("In tables the best value of each column is <b>bold</b> (the lowest for time, memory "
                 "and Gini).")
    return ('<div class="howto"><b>How to read this</b><ul>' + "".join(f"<li>{i}</li>" for i in items)
            + "</ul></div>")


def _span(values: Iterable[str | None]) -> str:
    seen = sorted({v for v in values if v})
    if not seen:
        return "unknown"
    return seen[0] if len(seen) == 1 else f"{seen[0]} to {seen[-1]}"


def build_report(results_dir: Path, out: Path, *, title: str = "shoprec benchmarks") -> Path:
    """Render every result file of a folder into one self-contained HTML page.

    Per scenario file: bars of NDCG@10 and Recall@10 for each single strategy, fusion method and
    pipeline coloured by kind, with the pipeline's lift over the best single strategy written on the
    chart and in a call-out; a table of all metrics (best per column in bold); stacked bars of the
    share of slots each strategy contributed; the Lorenz-style exposure curve over popularity deciles
    and the coverage per row. Per accuracy file: bars of NDCG and Recall at the file's first cut-off
    with the fit time, the published numbers as text and a table. Plots are base64 PNGs drawn with
    matplotlib's Agg canvas; the page has no script, no external style sheet and no network fetch,
    and the same input gives the same bytes.

    Parameters
    ----------
    results_dir
        Folder with ``scenarios-*.json`` and/or ``accuracy-*.json`` (other files are ignored).
    out
        The HTML file to write; its folder is created if needed.
    title
        Page title.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    FileNotFoundError
        ``results_dir`` does not exist or holds no result file.
    DataError (a ValueError)
        A file is malformed; the message names the file and the missing or wrong key.
    """
    scenarios, accuracy = load_results(Path(results_dir))
    ids = _Ids()
    toc: list = []
    sections = []
    with _style(), progress.step(f"drawing the report of {len(scenarios) + len(accuracy)} result files",
                                 total=len(scenarios) + len(accuracy), unit="file") as step:
        # results of one scenario on one dataset (e.g. with and without a rule) are told apart by case
        seen = Counter((r.scenario, r.dataset) for r in scenarios)
        for res in scenarios:
            sections.append(_scenario_section(res, ids, toc, name_case=seen[(res.scenario, res.dataset)] > 1))
            step.advance()
        acc_toc: list = []
        for res in accuracy:
            sections.append(_accuracy_section(res, ids, acc_toc))
            step.advance()
    toc += acc_toc
    sims = sorted(Path(results_dir).glob("online-sim*.json"))
    if sims:   # the shop simulator's regret curves (benchmarks/online.py --parts sim, shoprec simulate --json)
        from .online import simulation_section

        with _style():
            section, entry = simulation_section(sims, "simulator")
        sections.append(section)
        toc.append(entry)
    fair = Path(results_dir) / "marketplace-fairness.json"
    if fair.exists():   # fair exposure's trade-off curves (benchmarks/marketplace.py --parts fairness)
        from .fairness import fairness_section

        with _style():
            section, entry = fairness_section(fair, "fairness")
        sections.append(section)
        toc.append(entry)
    every = [*scenarios, *accuracy]
    dates = _span(r.date for r in every)
    machines = sorted({r.machine for r in every if r.machine})
    counts = []
    if scenarios:
        counts.append(f"{len(scenarios)} scenario file{'s' if len(scenarios) != 1 else ''}")
    if accuracy:
        counts.append(f"{len(accuracy)} accuracy file{'s' if len(accuracy) != 1 else ''}")
    toc_html = ["<nav><b>Contents</b><ol>"]
    for sid, name, subs in toc:
        toc_html.append(f'<li><a href="#{sid}">{_e(name)}</a>')
        if subs:
            toc_html.append("<ul>" + "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in subs) + "</ul>")
        toc_html.append("</li>")
    toc_html.append("</ol></nav>")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">Results dated {_e(dates)} · machine: {_e("; ".join(machines) or "unknown")} · '
        f'{_e(", ".join(counts))} from <code>{_e(Path(results_dir).name or str(results_dir))}</code></p>',
        _how_to_read(bool(scenarios), bool(accuracy)),
        "</header>",
        "\n".join(toc_html),
        *sections,
        "<footer>Generated by <code>shoprec report</code> from: "
        + ", ".join([f"<code>{_e(r.path.name)}</code>" for r in every] + [f"<code>{_e(p.name)}</code>" for p in sims])
        + ".</footer>",
        "</main></body></html>",
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page) + "\n", encoding="utf-8")
    return out
