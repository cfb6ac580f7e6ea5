"""Benchmark `digest serve` against a bare Starlette app serving the same bytes.

    python bench/web.py                 # 5 alternating rounds of 300 requests per case
    python bench/web.py --rounds 9 --requests 500
    python bench/web.py --same-headers  # the floor also sends digest's other header lines

A store gets one synthetic snapshot (a 121-paper digest); `digest serve`
runs on it under uvicorn on 127.0.0.1. Every benchmarked URL is fetched once from it, and
those exact bytes (and ETags) are served by a bare Starlette app under the same uvicorn
settings in its own process: the floor for answering that request over HTTP in Python.
With --same-headers the floor also sends the other header lines digest sent (security
headers, Cache-Control, Last-Modified): what is left is the app's own work.
One keep-alive client then alternates between the two, round after round, and the
medians of requests per second are compared (the ratio is digest's rate / the floor's).

Targets (issue 12): feeds >= 0.5x (200) and >= 0.8x (304); the 121-paper digest page
>= 0.5x; the archive and a paper page >= 0.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ingest import synth_snapshot  # noqa: E402

BARE_APP = r'''
import json, sys
from urllib.parse import unquote
from pathlib import Path
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn

manifest = json.loads(Path(sys.argv[1]).read_text())
answers = {unquote(path): (Path(entry["file"]).read_bytes(), entry["type"], entry["etag"],
                           entry["extra"], entry["extra_304"])
           for path, entry in manifest.items()}

async def serve(request):
    body, media, etag, extra, extra_304 = answers[request.scope["path"]]
    headers = {"ETag": etag} if etag else {}
    if etag and request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={**headers, **extra_304})
    return Response(body, media_type=media, headers={**headers, **extra})

app = Starlette(routes=[Route("/{any:path}", serve)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_up(base: str, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {base}{path}")


def rate(client: httpx.Client, url: str, n: int, etag: str | None) -> float:
    headers = {"If-None-Match": etag} if etag else {}
    expected = 304 if etag else 200
    start = time.perf_counter()
    for _ in range(n):
        answer = client.get(url, headers=headers)
        if answer.status_code != expected:
            raise SystemExit(f"{url}: {answer.status_code}, expected {expected}")
    return n / (time.perf_counter() - start)


_OWN = {"date", "server", "content-length", "content-type", "etag", "set-cookie"}


def _extra(headers: httpx.Headers) -> dict[str, str]:
    """The header lines an answer carries beyond what the floor sends of its own."""
    return {name: value for name, value in headers.items() if name.lower() not in _OWN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--same-headers", action="store_true",
                        help="the floor sends digest's other header lines too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    env = {**os.environ, "DIGEST_SECRET": "bench-" + "s" * 40}
    digest = str(Path(sys.executable).with_name("digest"))
    synth_snapshot(work / "2026-03-13.txt", 121, seed=2)
    subprocess.run([digest, "ingest", "2026-03-13.txt"], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    port, bare_port = free_port(), free_port()
    app = subprocess.Popen([digest, "serve", "--port", str(port)], cwd=work, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = None
    try:
        base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
        wait_up(base, "/feed.xml")
        page = httpx.get(base + "/digests/2026-03-13").text
        paper = re.search(r'href="(/papers/[^"#]+)"', page)
        paths = ["/feed.xml", "/atom.xml", "/digests/2026-03-13", "/"]
        paths += [paper.group(1)] if paper else []
        manifest: dict[str, dict[str, Any]] = {}
        for index, path in enumerate(paths):
            answer = httpx.get(base + path)
            answer.raise_for_status()
            file = work / f"answer-{index}"
            file.write_bytes(answer.content)
            etag = answer.headers.get("etag")
            again = httpx.get(base + path, headers={"If-None-Match": etag}) if etag else None
            manifest[path] = {"file": str(file), "type": answer.headers["content-type"],
                              "etag": etag, "extra": {}, "extra_304": {}}
            if args.same_headers:
                manifest[path]["extra"] = _extra(answer.headers)
                manifest[path]["extra_304"] = _extra(again.headers) if again else {}
        (work / "manifest.json").write_text(json.dumps(manifest))
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(work / "manifest.json"),
                                 str(bare_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_up(bare_base, "/feed.xml")
        label = {"/": "archive /", "/digests/2026-03-13": "121-paper digest page"}
        if paper:
            label[paper.group(1)] = "paper page"
        cases = [(f"{label.get(path, path)} 200", path, None) for path in paths]
        cases += [(f"{path} 304", path, manifest[path]["etag"])
                  for path in ("/feed.xml", "/atom.xml") if manifest[path]["etag"]]
        results = {}
        with httpx.Client(base_url=base) as ours, httpx.Client(base_url=bare_base) as floor:
            for label, path, etag in cases:
                rate(ours, path, 20, etag), rate(floor, path, 20, etag)  # warm up
                mine, theirs = [], []
                for _ in range(args.rounds):
                    mine.append(rate(ours, path, args.requests, etag))
                    theirs.append(rate(floor, path, args.requests, etag))
                results[label] = {"digest_rps": round(statistics.median(mine)),
                                  "bare_rps": round(statistics.median(theirs)),
                                  "ratio": round(statistics.median(mine) / statistics.median(theirs), 2)}
        print(json.dumps({"rounds": args.rounds, "requests": args.requests,
                          "same_headers": args.same_headers, "results": results}, indent=2))
    finally:
        app.terminate()
        if bare:
            bare.terminate()


if __name__ == "__main__":
    main()
