"""One database transaction with the store's areas as attributes, so callers compose work
that must be atomic: `with store.transaction() as tx: tx.fetches.record(...);
tx.papers.ingest(...)` commits both or neither."""

from __future__ import annotations

from sqlalchemy import Connection

from digest.store.cycle_log import Cycles
from digest.store.deliveries import Deliveries
from digest.store.enrichment import Enrichment
from digest.store.fetches import Fetches
from digest.store.papers import Papers
from digest.store.subscribers import Subscribers


class Transaction:
    """The areas of the store, all on one connection (one transaction)."""

    __slots__ = ("conn", "cycles", "deliveries", "enrichment", "fetches", "papers", "subscribers")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.papers = Papers(conn)  # snapshots, papers, sightings, digests
        self.subscribers = Subscribers(conn)
        self.deliveries = Deliveries(conn)
        self.cycles = Cycles(conn)  # cycles and the alerts about failing sources
        self.fetches = Fetches(conn)
        self.enrichment = Enrichment(conn)  # the arXiv look-up cache
