"""The engine learning from its own traffic: off-policy estimators, reward models, logged feedback,
Thompson sampling (and, as they land: rewards joined from impressions, adaptive mix policies,
experiments, the shop simulator). Sits beside ``scenarios``/``service``; imports ``data`` and
``scenarios`` only, never ``service`` or ``cli``."""
