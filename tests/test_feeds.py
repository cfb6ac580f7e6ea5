"""Feeds a reader would subscribe to (issue 11 §5): Atom author/self/categories, RSS channel
link and dc:creator, absolute entry links, and topic feeds in the web app and in out/topics/."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from conftest import EXAMPLES
from starlette.testclient import TestClient

from digest.config import EmailSettings, Settings
from digest.models import Paper, StoredPaper
from digest.pipeline import ingest, prepare
from digest.publish.feeds import build_feeds, topic_slug, topics_from_slug
from digest.publish.site import Site
from digest.store import open_store
from digest.web.app import create_app

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def _papers() -> list[StoredPaper]:
    seen = datetime(2026, 3, 13, tzinfo=UTC)
    return [
        StoredPaper(key="arxiv:2603.01234", first_seen=seen, digest="2026-03-13", position=1,
                    source="hf-daily", paper=Paper(
                        title="Counting Sheep", abstract="We count.", arxiv_id="2603.01234",
                        authors=("Mira Okafor", "Tomás Lindqvist"))),
        StoredPaper(key="title:no id", first_seen=seen, digest="2026-03-13", position=2,
                    source="hf-daily", paper=Paper(title="No Id Here", abstract="None.")),
    ]


@pytest.mark.parametrize("base_url", [None, "https://papers.example.org"])
def test_atom_and_rss_carry_what_readers_need(base_url: str | None) -> None:
    rss, atom = build_feeds(Site(base_url=base_url), _papers())
    feed = ET.fromstring(atom)
    assert feed.find(f"{ATOM}author/{ATOM}name").text == "Daily Papers"  # type: ignore[union-attr]
    selfs = [link.get("href") for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert selfs == (["https://papers.example.org/atom.xml"] if base_url else [])
    entry = feed.find(f"{ATOM}entry")
    assert entry is not None
    assert [a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author")] == ["Mira Okafor",
                                                                                  "Tomás Lindqvist"]
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == ["hf-daily"]
    parsed = feedparser.parse(rss)
    assert not parsed.bozo
    # The channel link is the site (not the feed); entries name their authors (dc:creator).
    assert parsed.feed.link == (f"{base_url}/" if base_url else "https://huggingface.co/papers")
    assert b"<dc:creator>Mira Okafor</dc:creator>" in rss
    assert '<a href="https://arxiv.org/pdf/2603.01234">PDF</a>' in parsed.entries[0].summary
    # Every entry link absolute, with or without a base URL.
    assert [e.link for e in parsed.entries] == ["https://huggingface.co/papers/2603.01234",
                                                "https://arxiv.org/search/?query=No+Id+Here&searchtype=title"]
    # A title search says so, as on the web page and in the email; the paper's own link does not.
    assert "arXiv search (no arXiv id known)</a>" in parsed.entries[1].summary
    assert "arXiv search" not in parsed.entries[0].summary


def test_topic_slugs_round_trip() -> None:
    assert topic_slug(("reasoning", "diffusion models")) == "reasoning+diffusion-models"
    assert topics_from_slug("reasoning+diffusion-models") == ("reasoning", "diffusion models")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'w.sqlite3'}", out_dir=tmp_path / "out",
                        site=Site(topic_feeds=("attention", "speech recognition, counting")),
                        email=EmailSettings(secret="feeds-test-secret-0123456789abcdef",
                                            from_address="papers@example.org"))
    store = open_store(settings.db_url)
    list(ingest(store, settings, prepare([EXAMPLES], None, NOW), NOW))
    with TestClient(create_app(store, settings), base_url="https://testserver") as running:
        yield running
    store.close()


def test_topic_feeds_are_served_and_written(client: TestClient, tmp_path: Path) -> None:
    answer = client.get("/topics/attention.xml")
    assert answer.status_code == 200 and "application/rss+xml" in answer.headers["content-type"]
    parsed = feedparser.parse(answer.content)
    titles = [e.title for e in parsed.entries]
    assert titles and all("attention" in (e.title + e.summary).lower() for e in parsed.entries)
    assert len(titles) < len(feedparser.parse(client.get("/feed.xml").content).entries)
    assert parsed.feed.title == "Daily Papers: attention"
    again = client.get("/topics/attention.xml", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    atom = client.get("/topics/attention.atom")
    assert atom.status_code == 200 and b'rel="self"' in atom.content
    assert b"https://testserver/topics/attention.atom" in atom.content
    # The archive's form leads to the feed of the topics typed in.
    assert 'id="topic-feed"' in client.get("/").text
    moved = client.get("/topics", params={"topics": "Speech recognition, counting"},
                       follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == "/topics/speech-recognition+counting.atom"
    # site.topic_feeds: written to out/topics/ with the digests.
    out = tmp_path / "out" / "topics"
    assert sorted(p.name for p in out.iterdir()) == [
        "attention.atom", "attention.xml",
        "speech-recognition+counting.atom", "speech-recognition+counting.xml"]
    written = feedparser.parse((out / "attention.xml").read_bytes())
    assert [e.title for e in written.entries] == titles
