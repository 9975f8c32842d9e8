"""The teacher: backends (registry.py) behind one interface (base.py) and one SQLite response cache (cache.py),
with the client-side rate limiter (ratelimit.py), the dollar budget (budget.py) and structured output
(structured.py)."""
