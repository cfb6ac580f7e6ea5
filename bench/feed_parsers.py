"""Compare feed parsers through `digest.sources.feeds.parse_feed`: the same `Listing`s or not.

    pip install feedparser feedparser-rs fastfeedparser    # whichever are to be compared
    python bench/feed_parsers.py            # every feed, every parser: differences, then timings
    python bench/feed_parsers.py --verbose  # also every field of every difference

Each parser is put in place of the one `parse_feed` imports (a small adapter module), then every
feed we have goes through `parse_feed`: the tests' fixtures, `../shared/formats/*.xml`, the
benchmark's 2,000-item feed, and hostile documents written here (HTML in titles, entities, bad
XML, wrong encodings, entity expansion, external entities, a body that is a URL). The
reference is feedparser, the parser the project was written against; "digest" is parse_feed as
shipped (feedparser-rs, with feedparser for what feedparser-rs refuses); "feedparser-rs" and
"fastfeedparser" are those libraries with their defaults in feedparser's place.
"""

from __future__ import annotations

import argparse
import calendar
import importlib
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digest.errors import ParseError  # noqa: E402
from digest.sources import feeds  # noqa: E402


class Hits(BaseHTTPRequestHandler):
    """Counts requests: a parser that fetches a URL found in a feed body is caught here."""
    count = 0

    def do_GET(self) -> None:  # noqa: N802
        Hits.count += 1
        body = b'<rss version="2.0"><channel><item><title>Fetched!</title></item></channel></rss>'
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def rss(items: str, head: str = '<?xml version="1.0" encoding="UTF-8"?>', ns: str = "") -> bytes:
    return (f'{head}<rss version="2.0"{ns}><channel><title>T</title><link>https://j.example/</link>'
            f"<description>d</description>{items}</channel></rss>").encode()


def atom(entries: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>T</title><id>urn:t</id><updated>2026-03-01T00:00:00Z</updated>{entries}</feed>"
            ).encode()


def item(title: str, extra: str = "", desc: str = "An abstract.") -> str:
    return (f"<item><title>{title}</title><link>https://doi.org/10.1/x.{abs(hash(title)) % 999}</link>"
            f"<description>{desc}</description><pubDate>Thu, 12 Mar 2026 10:00:00 +0000</pubDate>"
            f"{extra}</item>")


def entry(title: str, extra: str = "", ident: str = "urn:e:1") -> str:
    return (f"<entry><id>{ident}</id>{title}<updated>2026-03-02T10:00:00Z</updated>"
            f"<summary>Sum.</summary>{extra}</entry>")


def hostile(url: str) -> dict[str, bytes]:
    """Documents a feed source may serve: each names what it checks."""
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    many_authors = "".join(f"<author><name>Author {i}</name></author>" for i in range(40))
    return {
        "rss title escaped tags kept as text": rss(item("Tidal &lt;Estuaries&gt; &amp; Deltas")),
        "rss title escaped html": rss(item("A &lt;b&gt;bold&lt;/b&gt; claim")),
        "rss title escaped html entity": rss(item("Caf&amp;eacute; &amp;amp; tea")),
        "rss title cdata html": rss(item("<![CDATA[Cdata <i>italic</i> title]]>")),
        "rss title cdata lone lt": rss(item("<![CDATA[x < y for all y]]>")),
        "rss title numeric entity": rss(item("Caf&#233; &#x2014; na&#xEF;ve")),
        "rss title undefined entity": rss(item("Caf&eacute; society")),
        "rss title math": rss(item("Bounds for $O(n^2)$ and a &lt; b &lt; c")),
        "rss title blank": rss(item("   ") + item("Second")),
        "rss description script": rss(item("S", desc="&lt;p&gt;Text&lt;/p&gt;&lt;script&gt;alert(1)"
                                                   "&lt;/script&gt;&lt;style&gt;p{}&lt;/style&gt; after")),
        "rss description plain with lt": rss(item("P", desc="x &lt; y and y &gt; z")),
        "rss description cdata": rss(item("C", desc="<![CDATA[<p>One <a href='/rel'>link</a></p>]]>")),
        "rss description links": rss(item("L", desc="See https://github.com/a/b and doi 10.1/abc.")),
        "rss no guid no link": rss("<item><title>Only a title</title></item>"),
        "rss guid only": rss("<item><title>G</title><guid>tag:x,2026:1</guid></item>"),
        "rss relative link": rss("<item><title>R</title><link>/articles/1</link></item>"),
        "rss dates": rss(item("D1") + "<item><title>D2</title><pubDate>2026-03-04</pubDate></item>"
                         "<item><title>D3</title><pubDate>not a date</pubDate></item>"
                         "<item><title>D4</title><pubDate>Mon, 30 Feb 2026 00:00:00 GMT</pubDate></item>"
                         "<item><title>D5</title><pubDate>Fri, 13 Mar 2026 23:30:00 -0400</pubDate>"
                         "</item><item><title>D6</title><dc:date>2026-03-05T01:00:00+09:00</dc:date>"
                         "</item>", ns=' xmlns:dc="http://purl.org/dc/elements/1.1/"'),
        "rss authors": rss("<item><title>A1</title><author>ada@example.org (Ada L)</author></item>"
                           "<item><title>A0</title><author>ada@example.org</author></item>"
                           "<item><title>A4</title><author>Ada L &lt;ada@example.org&gt;</author></item>"
                           "<item><title>A2</title><dc:creator>Ada Fold, Ben Crease</dc:creator></item>"
                           "<item><title>A3</title><dc:creator>Ada</dc:creator><dc:creator>Ben</dc:creator>"
                           "</item>", ns=' xmlns:dc="http://purl.org/dc/elements/1.1/"'),
        "rss arxiv announce": rss(
            "<item><title>X</title><link>https://arxiv.org/abs/2603.00001</link>"
            "<description>arXiv:2603.00001v2 Announce Type: replace-cross Abstract: Text.</description>"
            "<guid>oai:arXiv.org:2603.00001v2</guid><arxiv:announce_type>replace-cross"
            "</arxiv:announce_type></item>", ns=' xmlns:arxiv="http://arxiv.org/schemas/atom"'),
        "atom title types": atom(entry('<title type="html">A &lt;b&gt;bold&lt;/b&gt; &amp;amp; x</title>')
                                 + entry('<title type="text">Tidal &lt;Estuaries&gt;</title>', ident="e2")
                                 + entry('<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                                         "X<b>h</b>tml</div></title>", ident="e3")
                                 + entry("<title>Untyped &lt;i&gt;x&lt;/i&gt;</title>", ident="e4")),
        "atom 40 authors": atom(entry("<title>Big</title>", many_authors)),
        "atom content no summary": atom("<entry><id>c1</id><title>C</title><content type=\"html\">"
                                        "&lt;p&gt;Body&lt;/p&gt;</content></entry>"),
        "atom published and updated": atom(entry("<title>P</title>", "<published>2026-01-02T23:00:00-05:00"
                                                 "</published>")),
        "rdf rss 1.0": (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
                        b' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                        b'<channel rdf:about="x"><title>R</title><link>https://r.example/</link></channel>'
                        b'<item rdf:about="https://r.example/1"><title>Rdf one</title>'
                        b"<link>https://r.example/1</link><dc:date>2026-03-01</dc:date></item></rdf:RDF>"),
        "latin-1 declared and used": rss(item("Caf\u00e9"), head='<?xml version="1.0" encoding="ISO-8859-1"?>'
                                         ).decode().encode("latin-1"),
        "latin-1 bytes declared utf-8": rss(item("Caf\u00e9 cr\u00e8me")).decode().encode("latin-1"),
        "windows-1252 quotes undeclared": rss(item("\u201cQuoted\u201d"), head="").decode().encode("cp1252"),
        "utf-16 with bom": rss(item("Wide \u00e9"), head='<?xml version="1.0" encoding="UTF-16"?>'
                               ).decode().encode("utf-16"),
        "utf-8 bom": b"\xef\xbb\xbf" + rss(item("Bom")),
        "truncated": rss(item("One") + item("Two"))[:-60],
        "unclosed tag": rss(item("Open <b>tag") + item("Next")),
        "mismatched tags": rss("<item><title>M</title><link>https://m.example</item></link>"),
        "bare ampersand": rss(item("Salt & pepper")),
        "nul byte": rss(item("Nul\x00byte")),
        "control chars": rss(item("Bell\x07 ring")),
        "not xml (html)": b"<!doctype html><html><body><p>Hello</p></body></html>",
        "not xml (text)": b"just some text",
        "json feed": b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": '
                     b'[{"id": "1", "title": "Json item", "url": "https://j.example/1"}]}',
        "empty": b"",
        "internal entity": rss(item("&t; title"), head='<?xml version="1.0"?><!DOCTYPE rss ['
                               '<!ENTITY t "Defined">]>'),
        "billion laughs": rss(item("&l9;"), head=f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">'
                              f"{laughs}]>"),
        "external entity file": rss(item("&x;"), head='<?xml version="1.0"?><!DOCTYPE rss ['
                                    '<!ENTITY x SYSTEM "file:///etc/hostname">]>'),
        "external entity http": rss(item("&x;"), head=f'<?xml version="1.0"?><!DOCTYPE rss ['
                                    f'<!ENTITY x SYSTEM "{url}">]>'),
        "external dtd": rss(item("Dtd"), head=f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{url}">'),
        "body is a url": url.encode(),
        "deep nesting": rss(item("Deep", extra="<x>" * 5000 + "</x>" * 5000)),
    }


def corpus(url: str, items: int) -> Iterator[tuple[str, bytes]]:
    for path in sorted((ROOT / "tests" / "fixtures" / "sources").glob("*")):
        if path.suffix in (".xml", ".rss"):
            yield f"fixture {path.name}", path.read_bytes()
    for path in sorted((ROOT.parent / "shared" / "formats").glob("*.xml")):
        yield f"shared {path.name}", path.read_bytes()
    from feed_to_email import write_feed
    with tempfile.TemporaryDirectory() as folder:
        write_feed(Path(folder) / "feed.xml", items)
        yield f"bench {items} items", (Path(folder) / "feed.xml").read_bytes()
    many = "".join(item(f"Item {i}") for i in range(12_000))
    yield "rss 12000 items", rss(many)
    yield from hostile(url).items()


REFERENCE = importlib.import_module("feedparser")
FAST = feeds._fast


def adapter(name: str) -> types.ModuleType:
    """A stand-in for the `feedparser` module that `parse_feed` imports."""
    module = types.ModuleType("feedparser")
    if name == "feedparser":
        return REFERENCE
    if name == "feedparser-rs":
        import feedparser_rs

        def parse_rs(data: bytes | str, **_: Any) -> Any:
            return feedparser_rs.parse(data)  # its defaults, none of parse_feed's adaptations
        module.parse = parse_rs  # type: ignore[attr-defined]
    elif name == "fastfeedparser":
        import fastfeedparser

        def parse_fast(data: bytes | str, **_: Any) -> Any:
            """Its entries renamed to feedparser's: description -> summary, ISO dates ->
            struct_time (UTC, as feedparser's), titles typed as feedparser types RSS ones."""
            try:
                parsed = fastfeedparser.parse(data)
            except Exception as error:  # it raises where feedparser sets bozo
                return {"bozo": True, "bozo_exception": error, "entries": [], "feed": {}}
            entries = []
            for e in parsed.entries:
                out = dict(e)
                out["summary"] = e.get("description") or ""
                out["summary_detail"] = {"type": "text/html"}
                out["title_detail"] = {"type": "text/plain"}
                for key in ("published", "updated"):
                    if e.get(key):
                        when = datetime.fromisoformat(e[key])
                        out[f"{key}_parsed"] = time.gmtime(calendar.timegm(when.utctimetuple()))
                entries.append(out)
            return types.SimpleNamespace(bozo=False, entries=entries, get=lambda k: parsed.get(k))
        module.parse = parse_fast  # type: ignore[attr-defined]
    else:
        raise SystemExit(f"unknown parser {name}")
    return module


def run(name: str, data: bytes) -> tuple[Any, float]:
    """`name` "digest" is parse_feed as it is (feedparser-rs, feedparser for what it refuses);
    any other is that parser in feedparser's place, with feedparser-rs's path shut."""
    sys.modules["feedparser"] = REFERENCE if name == "digest" else adapter(name)
    feeds._fast = FAST if name == "digest" else (lambda data: None)  # type: ignore[attr-defined]
    start = time.perf_counter()
    try:
        result: Any = [asdict(listing) for listing in feeds.parse_feed(data, "compare", [])]
    except ParseError:
        result = "ParseError"
    except Exception as error:  # a crash is a difference too
        result = f"crash {type(error).__name__}: {str(error)[:120]}"
    return result, time.perf_counter() - start


def diff(ours: Any, theirs: Any) -> list[str]:
    if isinstance(ours, str) or isinstance(theirs, str):
        return [] if ours == theirs else [f"result: {_short(ours)} | {_short(theirs)}"]
    lines = []
    if len(ours) != len(theirs):
        lines.append(f"count: {len(ours)} | {len(theirs)}")
    for a, b in zip(ours, theirs, strict=False):
        for key in sorted(set(a) | set(b)):
            if key == "paper":
                for field in a["paper"]:
                    if a["paper"][field] != b["paper"].get(field):
                        lines.append(f"rank {a['rank']} {field}: {a['paper'][field]!r} | "
                                     f"{b['paper'].get(field)!r}")
            elif a.get(key) != b.get(key):
                lines.append(f"rank {a.get('rank')} {key}: {a.get(key)!r} | {b.get(key)!r}")
    return lines


def _short(value: Any) -> str:
    return value if isinstance(value, str) else f"{len(value)} listings"


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parsers", nargs="*", default=["digest", "feedparser-rs", "fastfeedparser"])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/entity"
    differing = 0
    timings: dict[str, float] = {}
    try:
        for where, data in corpus(url, args.items):
            before = Hits.count
            reference, seconds = run("feedparser", data)
            fetched = {"feedparser": Hits.count - before}
            timings["feedparser"] = timings.get("feedparser", 0.0) + seconds
            for name in args.parsers:
                before = Hits.count
                result, seconds = run(name, data)
                fetched[name] = Hits.count - before
                timings[name] = timings.get(name, 0.0) + seconds
                lines = diff(reference, result)
                if fetched[name] != fetched["feedparser"]:
                    lines.append(f"fetched {fetched['feedparser']} | {fetched[name]} URLs")
                if lines:
                    differing += 1
                    out(f"DIFF {name} on {where}: {len(lines)} field(s) (feedparser | {name})")
                    for line in lines if args.verbose else lines[:4]:
                        out(f"    {line}")
    finally:
        server.shutdown()
        sys.modules["feedparser"] = REFERENCE
        feeds._fast = FAST  # type: ignore[attr-defined]
    out("total parse_feed seconds over the corpus: "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items()))
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
