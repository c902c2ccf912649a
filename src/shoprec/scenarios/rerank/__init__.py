"""Re-rankers: the stages after fusion (hard rules as a mask before candidates, re-ordering after).
Shipped: :mod:`.rules` (stock, basket, history, price ratio, complements, search match) and :mod:`.mmr`
(diversity). See :mod:`shoprec.scenarios.stages` for the protocol."""
