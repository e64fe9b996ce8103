"""After publication: acceptances, declines, lapses, refills and appeals (see refill)."""
