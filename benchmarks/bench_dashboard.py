"""Load on the dashboard: N concurrent browser sessions (Debian Chromium, playwright) on one `eoembed serve`.

    python benchmarks/bench_dashboard.py [RESULTS] [--sessions 10] [--port 8830]

RESULTS defaults to out/demo (`make demo DEMO_ARGS=--no-serve`); without it a small results folder is built
(40 samples, presto tiny, 2-epoch compressor). Measures: the server's RSS before any session, after a first
session (imports and caches warm) and with all sessions open (RSS delta per session), the time until every
session rendered, console errors and requests leaving localhost. Writes benchmarks/results/dashboard.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:http://127.0.0.1", "about:")


def _results(path: str | None) -> Path:
    if path and Path(path).is_dir():
        return Path(path)
    if (REPO / "out" / "demo" / "demo_summary.json").is_file() and not path:
        return REPO / "out" / "demo"
    sys.path.insert(0, str(REPO / "tests"))
    from eoembed.data import sample
    from test_browser_dashboard import make_results
    tmp = Path(tempfile.mkdtemp(prefix="eoembed-bench-dash-"))
    root = sample(tmp / "s", n=40, seed=0, size=32, progress=False)
    return make_results(tmp / "results", root)


def _rss_mb(pid: int) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=None)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--port", type=int, default=8830)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dashboard.json"))
    a = ap.parse_args()
    results = _results(a.results)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "EOEMBED_TILES": "0"}
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "eoembed.cli", "serve", str(results), "--port", str(a.port),
                             "--no-show"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{a.port}/dashboard"
    from playwright.sync_api import sync_playwright
    out: dict = {"sessions": a.sessions, "results": str(results), "machine": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count()}
    try:
        t0 = time.time()
        import socket
        while socket.socket().connect_ex(("127.0.0.1", a.port)) != 0:  # listening?
            if proc.poll() is not None or time.time() - t0 > 300:
                raise RuntimeError(f"server did not start; log {log.name}")
            time.sleep(0.5)
        urllib.request.urlopen(url, timeout=600).read()  # one first page (never retried: retries pile up sessions)
        out["server_start_s"] = round(time.time() - t0, 1)
        time.sleep(16)  # the probing GET's session expires (unused sessions live 15 s)
        out["rss_idle_mb"] = round(_rss_mb(proc.pid), 1)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium")
            pages, errors, external = [], [], []

            def open_page():
                ctx = b.new_context(viewport={"width": 1200, "height": 900})
                pg = ctx.new_page()
                pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                pg.on("pageerror", lambda e: errors.append(str(e)))
                pg.on("request", lambda r: external.append(r.url) if not r.url.startswith(LOCAL) else None)
                pg.goto(url)
                pages.append((ctx, pg))
                return pg

            def rendered(pg):
                pg.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=300_000)
                pg.wait_for_selector("path.leaflet-interactive", timeout=300_000)
                pg.wait_for_selector(".bk-Canvas", timeout=300_000)

            t = time.time()
            rendered(open_page())
            out["first_session_s"] = round(time.time() - t, 1)
            out["rss_one_session_mb"] = round(_rss_mb(proc.pid), 1)
            t = time.time()
            more = [open_page() for _ in range(a.sessions - 1)]  # all loading at once
            for pg in more:
                rendered(pg)
            out["all_sessions_rendered_s"] = round(time.time() - t, 1)
            time.sleep(2)
            out["rss_all_sessions_mb"] = round(_rss_mb(proc.pid), 1)
            out["rss_per_session_mb"] = round((out["rss_all_sessions_mb"] - out["rss_one_session_mb"])
                                              / max(a.sessions - 1, 1), 1)
            out["console_errors"] = errors
            out["external_requests"] = external
            out["sessions_rendered"] = len(pages)
            for ctx, _ in pages:
                ctx.close()
            b.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    out["ok"] = not out.get("console_errors") and not out.get("external_requests") and \
        out.get("sessions_rendered") == a.sessions
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
