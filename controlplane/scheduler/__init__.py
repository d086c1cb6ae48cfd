"""The scheduler (leader-only): pure filters/rankers (filters, scores, nodeinfo, algorithm)
and the binding loop that applies their decisions through the API (scheduler)."""
