"""shoprec: recommendations for every page of an online shop.

The main entry points: :class:`shoprec.scenarios.Recommender` (fit a shop's scenarios, answer
requests with reasons), :mod:`shoprec.strategies` (the candidate strategies), :mod:`shoprec.evaluation`
(full-ranking evaluation), the ``shoprec`` command line.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Recommender", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import shoprec` stays cheap
    if name == "Recommender":
        from .scenarios import Recommender

        return Recommender
    raise AttributeError(name)
