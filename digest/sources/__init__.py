"""Input formats and ways of reading them. Every format yields the same `Paper` records."""
