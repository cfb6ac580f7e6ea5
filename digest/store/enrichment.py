"""The store's side of arXiv enrichment: which papers still need a look-up, the look-up cache,
and giving a paper the id and authors that a hit found. The paper keeps its key."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from digest.store import schema as t
from digest.store.ingest import among, with_title
from digest.store.times import naive_utc

MISS_RETRY = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the arXiv API answered for one normalised title: an id and authors, or a miss."""

    title_key: str
    arxiv_id: str | None
    authors: tuple[str, ...] = ()


class Enrichment:
    """The arXiv look-up cache within one transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def to_look_up(self, now: datetime, keys: Sequence[str] | None = None,
                   limit: int = 10_000) -> list[tuple[str, str]]:
        """(title_key, title) of published papers with no arXiv id that were never looked up,
        or missed more than a week ago; only those with `keys` when given. Newest first."""
        papers, cache = t.papers, t.arxiv_lookups
        query = (
            select(papers.c.title_key, papers.c.title)
            .outerjoin(cache, cache.c.title_key == papers.c.title_key)
            .where(papers.c.arxiv_id.is_(None), papers.c.digest_id.is_not(None),
                   or_(cache.c.title_key.is_(None),
                       and_(cache.c.arxiv_id.is_(None),
                            cache.c.looked_up_at < naive_utc(now - MISS_RETRY))))
            .order_by(papers.c.first_seen_at.desc(), papers.c.digest_position)
            .limit(limit)
        )
        if keys is not None:
            query = query.where(among(self.conn, papers.c.key_hash, [t.key_hash(k) for k in keys]),
                                papers.c.key.in_(list(keys)))
        rows = self.conn.execute(query).all()
        return list(dict.fromkeys((row.title_key, row.title) for row in rows))

    def cached(self) -> list[Lookup]:
        """Every answer in the look-up cache, by title key."""
        rows = self.conn.execute(select(t.arxiv_lookups).order_by(t.arxiv_lookups.c.title_key))
        return [Lookup(row.title_key, row.arxiv_id,
                       tuple(row.authors.split("\n")) if row.authors else ())
                for row in rows]

    def record(self, lookups: Iterable[Lookup], now: datetime) -> int:
        """Cache the answers and give each hit's papers their id and authors. Returns how
        many papers gained an id. An id another paper already holds is cached only."""
        gained = 0
        conn = self.conn
        for found in lookups:
            conn.execute(delete(t.arxiv_lookups)
                         .where(t.arxiv_lookups.c.title_key == found.title_key))
            conn.execute(insert(t.arxiv_lookups).values(
                title_key=found.title_key, arxiv_id=found.arxiv_id,
                authors="\n".join(found.authors), looked_up_at=naive_utc(now)))
            if found.arxiv_id is None:
                continue
            if conn.scalar(select(t.papers.c.id).where(t.papers.c.arxiv_id == found.arxiv_id)):
                continue
            values: dict[str, object] = {"arxiv_id": found.arxiv_id}
            if found.authors:
                values.update(authors="\n".join(found.authors), author_count=len(found.authors))
            # A title shared by several papers (rare): the id goes to the first, as it can only once.
            paper_id = conn.scalar(select(func.min(t.papers.c.id)).where(
                with_title(found.title_key), t.papers.c.arxiv_id.is_(None)))
            if paper_id is not None:
                conn.execute(update(t.papers).where(t.papers.c.id == paper_id).values(**values))
                gained += 1
        return gained
