"""Input formats and ways of reading them. Every format yields the same `Listing` records
(a `Paper` at a rank, with the page's counts)."""
