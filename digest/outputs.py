"""The files in out/: each digest's Markdown, web page and email bodies (out/digests/), the
feeds and the archive page, and the notes that tell a steady run they are intact.

A new digest's files are staged inside its ingest transaction (pipeline.Staged, through
`digest_outputs`) and installed after the commit; `record_published` notes them last.
Every cycle then rewrites the feeds and archive when a digest came or they are not current
(`publish_site`), and repairs what is missing or changed (`repair_outputs`); `digest
render` rebuilds everything (`render_all`). Rendering and feeds are imported where used: a
steady cycle writes nothing and loads neither."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from digest import __version__
from digest.config import Settings
from digest.models import DigestInfo, StoredPaper
from digest.publish.output import remove_stray_temps, write_atomic, written_sha256
from digest.publish.template_check import template_errors
from digest.store import Store
from digest.topics import parse_topics

if TYPE_CHECKING:
    from digest.publish.render import PaperView


def digest_path(settings: Settings, name: str, suffix: str) -> Path:
    """Where a digest's file of one kind lives: `out/digests/2026-03-13.md`."""
    return settings.out_dir / "digests" / f"{name}{suffix}"


OUTPUT_SUFFIXES = (".md", ".html", ".email.html", ".email.txt")


def digest_outputs(settings: Settings, info: DigestInfo, papers: Sequence[StoredPaper],
                   older: str | None = None, newer: str | None = None
                   ) -> dict[Path, str | Iterator[str]]:
    """A digest's Markdown, web page (linking the `older` and `newer` digests by name) and
    email bodies, by path (the big ones streamed)."""
    from digest.publish.render import paper_view, render_email, render_markdown

    views = [paper_view(p) for p in papers]
    site, templates = settings.site, settings.templates
    with template_errors():
        email = render_email(site, info, views, templates)
        outputs: dict[str, str | Iterator[str]] = {
            ".md": render_markdown(site, info, views, templates),
            ".html": _web_page(settings, info, views, older, newer),
            ".email.html": email.html,
            ".email.txt": email.text,
        }
    return {digest_path(settings, info.name, suffix): content for suffix, content in outputs.items()}


def _web_page(settings: Settings, info: DigestInfo, views: Sequence[PaperView],
              older: str | None, newer: str | None) -> Iterator[str]:
    from digest.publish.render import render_page

    here = f"digests/{info.name}.html"
    return render_page(
        settings.site, info, views, settings.templates,
        older=settings.site.link(f"digests/{older}.html", here) if older else None,
        newer=settings.site.link(f"digests/{newer}.html", here) if newer else None)


def publish_digest(settings: Settings, info: DigestInfo, papers: Sequence[StoredPaper],
                   older: str | None = None, newer: str | None = None) -> list[Path]:
    """Write a digest's Markdown, web page and email bodies (files already right are left)."""
    written = []
    for path, content in digest_outputs(settings, info, papers, older, newer).items():
        with template_errors():  # the streamed ones render as they are written
            write_atomic(path, content)
        written.append(path)
    return written


def neighbours(names: Sequence[str], at: int) -> tuple[str | None, str | None]:
    """The older and the newer digest beside `names[at]` (names newest first)."""
    return (names[at + 1] if at + 1 < len(names) else None, names[at - 1] if at > 0 else None)


def republish(store: Store, settings: Settings, info: DigestInfo) -> None:
    """Rewrite one digest's outputs from the store, linked to its neighbours."""
    names = [d.name for d in store.digests()]  # newest first
    at = names.index(info.name)
    publish_digest(settings, info, store.digest_papers(info.name), *neighbours(names, at))


def repair_outputs(store: Store, settings: Settings) -> list[str]:
    """Rewrite every digest whose outputs are missing, and the newest one if stale; remove
    temp files a killed run left behind. Returns the digests rewritten."""
    for folder in (settings.out_dir, settings.out_dir / "digests"):
        remove_stray_temps(folder)
    repaired = []
    digests = store.digests()  # newest first
    names = [d.name for d in digests]
    for index, info in enumerate(digests):
        missing = any(not digest_path(settings, info.name, s).is_file() for s in OUTPUT_SUFFIXES)
        if missing or (index == 0 and not published_intact(settings, info.name)):
            publish_digest(settings, info, store.digest_papers(info.name),
                           *neighbours(names, index))
            if index == 0:
                record_published(settings, info.name)
            if missing:
                repaired.append(info.name)
    return repaired


def _manifest(settings: Settings) -> Path:
    return settings.out_dir / "digests" / ".published.json"


def record_published(settings: Settings, name: str) -> None:
    """Note the newest digest's outputs as complete (written last, after every step that
    changes them), so the next run can tell them intact without rendering them again."""
    hashes = {suffix: _sha256(digest_path(settings, name, suffix))
              for suffix in OUTPUT_SUFFIXES}
    write_atomic(_manifest(settings), json.dumps(
        {"digest": name, "rendered_with": rendered_with(settings), "sha256": hashes}, indent=1))


def rendered_with(settings: Settings) -> str:
    """A fingerprint of what the outputs are rendered from besides the store: the version
    (the bundled templates), the site settings, the feed size and the override templates
    (their names, sizes and times). Outputs noted with another are stale: changing
    `site.base_url` or a template is picked up by the next cycle, not only by `render`."""
    overrides: list[tuple[str, int, int]] = []
    if settings.templates:
        folder = Path(settings.templates)
        overrides = sorted((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns)
                           for path in folder.rglob("*") if path.is_file()
                           for stat in (path.stat(),))
    facts = [__version__, repr(settings.site), settings.feed_size, str(settings.templates),
             overrides]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def published_intact(settings: Settings, name: str) -> bool:
    """True when the newest digest's files are the ones its last complete publish wrote: a
    run killed before that (or a file changed since) renders them again."""
    try:
        noted = json.loads(_manifest(settings).read_text())
        return bool(
            noted["digest"] == name and noted["rendered_with"] == rendered_with(settings)
            and all(_sha256(digest_path(settings, name, suffix)) == noted["sha256"][suffix]
                    for suffix in OUTPUT_SUFFIXES))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _sha256(path: Path) -> str:
    """The file's SHA-256: as hashed when this process wrote it, if the file is still the one
    it wrote (a publish reads back none of the files it just wrote), else read."""
    if (known := written_sha256(path)) is not None:
        return known
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def publish_site(store: Store, settings: Settings) -> None:
    """Rewrite the feeds and the archive page (left untouched when nothing changed)."""
    from digest.publish.feeds import TOPIC_FEED_WINDOW, FeedPlace, build_feeds, matching, topic_slug
    from digest.publish.render import render_index

    rss, atom = build_feeds(settings.site, store.feed_papers(settings.feed_size))
    write_atomic(settings.out_dir / "feed.xml", rss)
    write_atomic(settings.out_dir / "atom.xml", atom)
    if settings.site.topic_feeds:
        wider = store.feed_papers(settings.feed_size * TOPIC_FEED_WINDOW)
        for entry in settings.site.topic_feeds:
            topics = parse_topics(entry)
            slug = topic_slug(topics)
            rss, atom = build_feeds(settings.site, matching(wider, topics, settings.feed_size),
                                    FeedPlace(f"topics/{slug}.xml", f"topics/{slug}.atom",
                                              f": {', '.join(topics)}"))
            write_atomic(settings.out_dir / "topics" / f"{slug}.xml", rss)
            write_atomic(settings.out_dir / "topics" / f"{slug}.atom", atom)
    digests = store.digests()
    with template_errors():
        index = render_index(settings.site, digests, settings.templates)
    write_atomic(settings.out_dir / "index.html", index)
    write_atomic(_site_marker(settings), _site_note(settings, digests))


def _site_note(settings: Settings, digests: Sequence[DigestInfo]) -> str:
    return json.dumps({"digest": digests[0].name if digests else "",
                       "rendered_with": rendered_with(settings)})


def _site_marker(settings: Settings) -> Path:
    return settings.out_dir / ".site-published"


def site_current(store: Store, settings: Settings) -> bool:
    """True when the feeds and the archive were last written with the store's newest digest
    and the same settings and templates (and are there): a cycle that ingests nothing then
    leaves them alone, without building a feed to find it unchanged. A cycle killed before
    writing them leaves the marker behind."""
    try:
        marked = _site_marker(settings).read_text()
    except OSError:
        return False
    return (marked == _site_note(settings, store.digests())
            and all((settings.out_dir / name).is_file() for name in ("index.html", "feed.xml",
                                                                      "atom.xml")))


def steady_files(settings: Settings, newest: str | None) -> list[Path]:
    """What a cycle with nothing new checks in out/ (site_current, published_intact,
    repair_outputs), and the two folders, whose times change when a file is added or
    removed: the quiet seal holds their stat (digest.quiet)."""
    files = [settings.out_dir / name for name in ("index.html", "feed.xml", "atom.xml")]
    files += [_site_marker(settings), _manifest(settings)]
    if newest is not None:
        files += [digest_path(settings, newest, suffix) for suffix in OUTPUT_SUFFIXES]
    return [*files, settings.out_dir, settings.out_dir / "digests"]


def render_all(store: Store, settings: Settings) -> list[DigestInfo]:
    """Rebuild every output from the store (and remove temp files a killed run left)."""
    for folder in (settings.out_dir, settings.out_dir / "digests"):
        remove_stray_temps(folder)
    digests = store.digests()  # newest first
    names = [d.name for d in digests]
    for at, info in enumerate(digests):
        publish_digest(settings, info, store.digest_papers(info.name), *neighbours(names, at))
    if digests:
        record_published(settings, digests[0].name)
    publish_site(store, settings)
    return digests
