"""The quiet cycle (issue 12): a `digest run` that can prove it has nothing to do records
itself as the full cycle would, without loading the store layer, an HTTP client or a renderer.

A full cycle that leaves nothing to do (`pipeline.run_cycle`) writes a *seal* with its
cycle record: the settings' fingerprint, the schema version, what "unchanged" means for
each source (the validators of an http source's last ingested fetch; each file's stat and
hash) and the stat of the outputs a steady cycle checks. Every other transaction deletes
it (Store.transaction). The next `digest run` checks the seal against the world (files
stat'd, then hashed if their stat moved; one conditional GET per http source, only a 304
counting), and when all holds records the cycle (digest.store.quiet) and prints what the
full path prints. Anything else, or any doubt, and the full path runs: same store rows and
same output, or the full path.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from digest import __version__, config_file
from digest.errors import DigestError
from digest.report import CycleReport, Summary
from digest.sources import USER_AGENT, expand_paths
from digest.store import DEFAULT_URL
from digest.store.lock import lock_path, sqlite_lock
from digest.store.quiet import SCHEMA_VERSION, NotModified, cycle_row, read_seal, record
from digest.store.times import naive_utc
from digest.text import plural

if TYPE_CHECKING:
    from digest.config import Settings
    from digest.store.transaction import Transaction

READ_TIMEOUT = 30.0  # as sources.fetch: one read; the configured deadline bounds it too
# httpx goes through a proxy named by these (trust_env): with any set, the full path's
# request is not the one this module would make, so it is left to the full path.
_PROXIES = ("http_proxy", "https_proxy", "all_proxy")
_SQLITE = ("sqlite:///", "sqlite+pysqlite:///")
_WAITING = ("pending", "sending", "unknown")  # deliveries a later cycle would still act on
_SECRETS = ("SECRET", "PASSWORD")  # DIGEST_* variables whose values never reach the seal


def settings_fingerprint(config: str | None, db: str | None, out: str | None, templates: str | None,
                env: Mapping[str, str], cwd: Path) -> str:
    """What the settings are made of, hashed: the package version, the working folder, the
    settings file (its path and bytes), the command's options and every DIGEST_* variable.
    Of a secret (DIGEST_SECRET, DIGEST_EMAIL_SMTP_PASSWORD) only whether it is set counts:
    its value changes nothing a steady cycle does (it signs and sends email, and a sealed
    store has nothing to send), and a hash of it in the store would let a copy of the store
    test guesses of it offline."""
    path, _ = config_file(config, env)
    try:
        raw: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raw = None
    facts = [__version__, str(cwd), str(path), raw, db, out, templates,
             sorted((k, bool(v) if k.endswith(_SECRETS) else v)
                    for k, v in env.items() if k.startswith("DIGEST_"))]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def store_url(db: str | None, config: str | None, env: Mapping[str, str]) -> str | None:
    """The store's URL as the settings resolve it (`--db`, DIGEST_DB, DIGEST_STORE_URL,
    `[store] url` in the settings file, the default), read without the settings module,
    whose imports would cost a quiet run a sixth of its time; None where the file cannot be
    read or holds something else there (the full path then says what). A wrong answer could
    not seal a wrong cycle: a seal holds only for the fingerprint of the settings it was
    made with, and the store is resolved from those (tests/test_quiet.py checks this
    against config.load_settings)."""
    if db:
        return db
    for name in ("DIGEST_DB", "DIGEST_STORE_URL"):
        if env.get(name):
            return env[name]
    path, explicit = config_file(config, env)
    if not explicit and not path.is_file():
        return DEFAULT_URL
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("store", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(table, dict):
        return None
    url = table.get("url")
    return url if isinstance(url, str) and url else DEFAULT_URL if url in (None, "") else None


def quiet_lines(report: CycleReport) -> list[str]:
    """What `digest run` prints for a quiet cycle: each source's count, then the cycle line."""
    return [*(f"{name}: {plural(count, 'new snapshot')}" for name, count in report.fetched.items()),
            report.line()]


def sqlite_database(url: str) -> str | None:
    """The database path of a plain SQLite file URL, as SQLAlchemy reads it; None for any
    other URL (PostgreSQL, memory, query options), which always takes the full path."""
    for prefix in _SQLITE:
        if url.startswith(prefix):
            database = url[len(prefix):]
            plain = database and database != ":memory:" and not set("?%~") & set(database)
            return database if plain else None
    return None


# -- the seal, written by the full path ----------------------------------------------------


def _stat(path: Path) -> list[Any]:
    """A file's path, size, mtime, ctime and inode: equal, and its bytes are taken as
    unchanged. The ctime and inode catch what keeps size and mtime (`touch -d`, `cp -p`,
    `rsync -t` of other bytes of the same length): no user can set a ctime."""
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None, None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _templates(folder: str | None) -> list[Any] | None:
    """The override templates' names, sizes and times (as outputs.rendered_with sees them);
    a folder that is not there differs from an empty one (the full path refuses it)."""
    if not folder:
        return None
    root = Path(folder)
    if not root.is_dir():
        return ["no such folder"]
    return sorted([str(path.relative_to(root)), *_stat(path)[1:]]
                  for path in root.rglob("*") if path.is_file())


def make_seal(tx: Transaction, settings: Settings, fingerprint: str) -> str | None:
    """The seal for the store and out/ as they are, or None when a later cycle could still
    have work: a delivery waiting (pending or deferred, claimed, unknown), an http source
    whose last fetch was not ingested or carries no validator, a file not ingested.

    Runs inside the transaction that records the cycle's end (cycle_log.finish), holding the
    write lock: nothing can change the store between these reads and the seal. The caller
    checked the rest first (the cycle ok, the outputs current and intact)."""
    counts = tx.deliveries.status_counts()
    if any(counts.get(status) for status in _WAITING):
        return None
    from digest.config import is_url

    sources: list[dict[str, Any]] = []
    for source in settings.sources:
        if is_url(source.location):
            last = tx.fetches.last(source.name)
            if last is None or not last.ingested or not (last.etag or last.last_modified):
                return None
            sources.append({"name": source.name, "url": source.location, "etag": last.etag,
                            "last_modified": last.last_modified})
            continue
        try:
            found = expand_paths([source.location]) if Path(source.location).exists() else []
        except (DigestError, OSError):  # no seal: the next run takes the full path
            return None
        files = []
        for path in found:
            stat = _stat(path)  # before the hash: a change while hashing moves the stat
            try:
                sha = _sha256(path)
            except OSError:
                return None
            if tx.papers.find_snapshot(sha) is None:
                return None
            files.append([*stat, sha])
        if not files:
            return None
        sources.append({"name": source.name, "location": source.location, "files": files})
    from digest.outputs import steady_files

    digests = tx.papers.digests()
    seal = {"fingerprint": fingerprint, "schema": SCHEMA_VERSION,
            "deadline": settings.fetch.deadline, "sources": sources,
            "templates": [settings.templates, _templates(settings.templates)],
            "outputs": [_stat(path) for path in
                        steady_files(settings, digests[0].name if digests else None)]}
    return json.dumps(seal)


# -- the quiet path ------------------------------------------------------------------------


def quiet_cycle(config: str | None, db: str | None, out: str | None, templates: str | None,
                env: Mapping[str, str] | None = None) -> CycleReport | None:
    """Run `digest run` quietly if the seal holds: the cycle recorded as the full path would
    record it, and its report; None (nothing written) when the full path must run."""
    started = time.monotonic()
    now = datetime.now(UTC)
    env = os.environ if env is None else env
    if any(value for name, value in env.items() if name.lower() in _PROXIES):
        return None
    url = store_url(db, config, env)
    database = sqlite_database(url) if url is not None else None
    if database is None:
        return None
    seal = read_seal(Path(database))
    if seal is None or seal.schema != SCHEMA_VERSION:
        return None
    try:
        return _quiet(seal.text, json.loads(seal.text), database, started, now,
                      settings_fingerprint(config, db, out, templates, env, Path.cwd()))
    except (ValueError, KeyError, TypeError, IndexError):  # a seal this code cannot read
        return None
    except OSError:  # a source or output it cannot read: the full path says what, in a line
        return None


def _quiet(text: str, data: dict[str, Any], database: str, started: float, now: datetime,
           fingerprint: str) -> CycleReport | None:
    """Check the sealed sources and outputs; record the cycle if they all hold."""
    if (data["schema"] != SCHEMA_VERSION
            or data["fingerprint"] != fingerprint
            or data["templates"][1] != _templates(data["templates"][0])
            or any(_stat(Path(sealed[0])) != sealed for sealed in data["outputs"])):
        return None
    not_modified: list[NotModified] = []
    for source in data["sources"]:
        if "url" in source:
            if not _not_modified(source["url"], source["etag"], source["last_modified"],
                                 float(data["deadline"])):
                return None
            not_modified.append(NotModified(source["name"], source["url"], source["etag"],
                                            source["last_modified"]))
        elif not _files_unchanged(source["location"], source["files"]):
            return None
    names = [source["name"] for source in data["sources"]]
    report = CycleReport(fetched=dict.fromkeys(names, 0), sent=Summary())
    try:
        with sqlite_lock(lock_path(database), wait=0):
            report.seconds = time.monotonic() - started
            cycle = cycle_row(report.ok, fetched=0, new=0, sent=0, failed=0, report={
                "failures": [], "succeeded": report.succeeded, "notices": [],
                "seconds": round(report.seconds, 2)})
            if not record(Path(database), text, naive_utc(now), cycle, not_modified):
                return None
    except DigestError:  # another cycle holds the lock: the full path waits for it
        return None
    return report


def _files_unchanged(location: str, files: Sequence[list[Any]]) -> bool:
    """The same files as sealed, each with the same stat, or else the same bytes."""
    try:
        found = expand_paths([location]) if Path(location).exists() else []
    except DigestError:
        return False
    if [str(path) for path in found] != [path for path, *_ in files]:
        return False
    for *sealed, sha in files:
        if _stat(Path(sealed[0])) != sealed:
            try:
                if _sha256(Path(sealed[0])) != sha:
                    return False
            except OSError:
                return False
    return True


def _tls_context(ssl: Any) -> Any:
    """The certificates httpx trusts (its own rule): SSL_CERT_FILE, else SSL_CERT_DIR, else
    certifi's bundle, so that both paths accept and refuse the same servers."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _not_modified(url: str, etag: str | None, last_modified: str | None,
                  deadline: float) -> bool:
    """True when one conditional GET with the sealed validators is answered 304. Anything
    else (another status, a redirect, a timeout, a refused connection, TLS trouble, a URL
    httpx would have to encode) is False: the connection is closed without reading a body
    and the full path fetches.

    Only the status line is read, over a plain socket: `http.client` parses headers with
    the email package, whose import costs about as much as the rest of a quiet run, and a
    304 needs nothing but its status."""
    import socket

    parts = urlsplit(url)
    secure = parts.scheme.lower() == "https"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    except ValueError:  # a port out of range
        return False
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
             f"User-Agent: {USER_AGENT}", "Accept-Encoding: gzip, deflate"]
    lines += [f"If-None-Match: {etag}"] if etag else []
    lines += [f"If-Modified-Since: {last_modified}"] if last_modified else []
    request = "\r\n".join([*lines, "Connection: close", "", ""])
    if (not host or "@" in parts.netloc or not request.isascii()
            or any(c.isspace() or c < "!" for c in target)):
        return False
    until = time.monotonic() + deadline
    try:
        with socket.create_connection((host, port), timeout=min(READ_TIMEOUT, deadline)) as raw:
            sock = raw
            if secure:
                import ssl

                sock = _tls_context(ssl).wrap_socket(raw, server_hostname=host)
            try:  # the TLS socket owns the connection now: closed on every way out
                sock.sendall(request.encode("ascii"))
                head = b""
                while b"\r\n" not in head and len(head) < 8192:
                    left = until - time.monotonic()
                    if left <= 0:
                        return False
                    sock.settimeout(min(READ_TIMEOUT, left))
                    chunk = sock.recv(8192)
                    if not chunk:
                        break
                    head += chunk
            finally:
                sock.close()
    except (OSError, ValueError):  # refused, timed out, TLS refused, a bad host name
        return False
    status = head.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[0].startswith(b"HTTP/1.") and status[1] == b"304"
