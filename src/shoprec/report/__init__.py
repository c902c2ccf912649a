"""``shoprec report``: one self-contained HTML page with plots of the benchmark results.

Reads the JSON files a benchmark run leaves in a results folder and renders them into a single HTML
file a person can open offline and send around: every plot is an inline base64 PNG drawn by
matplotlib's Agg canvas, the style sheet is inline, and there is no JavaScript and no network access.

Two kinds of files are read, everything else in the folder is ignored:

``accuracy-*.json``
    one dataset, a list of single strategies under ``results`` (written by ``benchmarks/``).
``scenarios-*.json``
    one shop scenario (cart, product page, …), a list of ``rows`` each of kind ``single``, ``fusion``
    or ``pipeline`` with a ``metrics`` mapping and, optionally, timings, the share of recommended
    slots each strategy ``contribution`` made, and ``exposure_by_popularity_decile``.

Only ``label``, ``kind`` and ``metrics`` of a scenario row are required; a plot whose data is absent
is skipped with a sentence saying so. A missing folder, a folder without result files, or a file
that is not valid JSON or lacks a required key is an error that names the file and the key.

The popularity curve is the Lorenz curve of exposure over items sorted by popularity, the usual
picture of popularity bias in recommender systems (Abdollahpouri et al., "Managing Popularity Bias
in Recommender Systems with Personalized Re-ranking", FLAIRS 2019).
"""

from .page import build_report
from .results import KINDS, AccuracyResult, AccuracyRow, ScenarioResult, ScenarioRow, lift, load_results  # noqa: F401

__all__ = ["AccuracyResult", "AccuracyRow", "KINDS", "ScenarioResult", "ScenarioRow", "build_report", "lift",
           "load_results"]
