"""The dashboard (`eoembed serve`) in Debian's Chromium driven by Python playwright (marker ``browser``).

A small results folder (the session sample, one tiny model, a 2-epoch compressor) is served on 127.0.0.1; the tests
check that every view renders with no console error and no request leaving localhost, that a map click reaches the
shared selection (and the UMAP view when it exists, both ways), that the prefix slider changes the scores (when the
prefix view exists), that a training started from the dashboard plots its epochs while it runs and all of them,
in order, at the end, that three sessions at once work, and that the static report opens from disk offline.
Screenshots go to ``screenshots/`` (git-ignored).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "screenshots"
PORT = int(os.environ.get("EOEMBED_TEST_PORT", "8821"))

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (`make install` does it with apt-get) to run the "
                "browser tests", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="python playwright is not installed (dev extra)")
pytest.importorskip("panel", reason="the UI extra (panel) is not installed")
from widgets.dashboard import TRAIN_EPOCHS as RUN_EPOCHS  # noqa: E402  (epochs of a dashboard training run)

# The epochs of every curve of the run monitor (under `.eoembed-training-monitor`), in drawing order: SVG points
# carrying data-epoch/data-series (the SVG monitor), else Bokeh ColumnDataSources with an `epoch` column.
JS_CURVES = """() => { const out = {};
  const roots = []; const find = (n) => { if (n.shadowRoot) find(n.shadowRoot);
    for (const c of n.children || []) { if (c.classList && c.classList.contains('eoembed-training-monitor')) roots.push(c);
      find(c); } };
  find(document.body);
  const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) { if (c.dataset && c.dataset.epoch !== undefined && c.dataset.series !== undefined) {
        const s = c.dataset.series; (out[s] = out[s] || []).push(Number(c.dataset.epoch)); }
      walk(c); } };
  for (const r of roots) walk(r);
  if (Object.keys(out).length) return out;
  for (const d of Bokeh.documents) for (const m of d._all_models.values())
    if (m.data !== undefined && m.data.epoch !== undefined && m.data.val_mse !== undefined) out[m.id] = Array.from(m.data.epoch);
  return out; }"""


# All text of the page (or of one element), shadow roots included (Bokeh 3 renders inside shadow DOM).
JS_TEXT = """(root) => { const parts = [];
  const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) { if (c.nodeType === 3) parts.push(c.textContent);
      else if (c.nodeType === 1 && c.tagName !== 'SCRIPT' && c.tagName !== 'STYLE') walk(c); } };
  walk(root || document.body); return parts.join(' '); }"""


def make_results(out: Path, sample_root: Path) -> Path:
    """A demo-like results folder: sample/, emb.zarr (presto, tiny, random), compress/ (2-epoch Matryoshka
    compressor, prefixes 8 and 16 of 32), embeddings.csv, and 2-D layouts (PCA: no UMAP compilation in tests)
    when eoembed.projection is there."""
    from eoembed.compress import train_compressor
    from eoembed.data import open_cube, read_labels
    from eoembed.extract import extract

    shutil.copytree(sample_root, out / "sample")
    extract(open_cube(out / "sample"), models=["presto"], out=out / "emb.zarr", size="tiny", weights=None,
            progress=False)
    run = train_compressor(out / "emb.zarr", read_labels(out / "sample" / "labels"), epochs=2, eval_every=1,
                           out=out / "compress", out_dim=32, q_mode="ridge", q_folds=3, progress=False,
                           prefixes=(8, 16))
    run.export(out / "embeddings.csv")
    from eoembed.compress import prefix_scores  # as `eoembed demo` writes it (the prefix view reads it)
    prefix_scores(run.embeddings, read_labels(out / "sample" / "labels"), prefixes=(8, 16, 32), baselines=(),
                  folds=3).to_csv(out / "prefix_scores.csv", index=False)
    from eoembed.bench import evaluate  # the ablation view's scores (as `eoembed demo` writes them)
    for name, emb in (("presto", out / "emb.zarr"), ("fused_ae", out / "embeddings.csv")):
        if name == "presto":
            from eoembed.extract import open_embeddings
            emb = open_embeddings(out / "emb.zarr")["presto"]
        evaluate(emb, read_labels(out / "sample" / "labels"), folds=3, mode="ridge", out=out / "bench" / "ridge" / name,
                 progress=False)
    if importlib.util.find_spec("eoembed.projection") is not None:
        import inspect

        from eoembed.projection import layouts
        extra = {"prefixes": (8, 16)} if "prefixes" in inspect.signature(layouts).parameters else {}
        layouts(out, method="pca", progress=False, **extra)
    return out


@pytest.fixture(scope="module")
def results(sample_root, tmp_path_factory) -> Path:
    if os.environ.get("EOEMBED_TEST_RESULTS"):  # developer shortcut: reuse a folder made by make_results
        return Path(os.environ["EOEMBED_TEST_RESULTS"])
    return make_results(tmp_path_factory.mktemp("dash") / "results", sample_root)


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def server(results):
    """`eoembed serve RESULTS --port PORT --no-show` in a subprocess; yields the dashboard URL, then stops it."""
    if not _free(PORT):
        pytest.skip(f"port {PORT} is taken; set EOEMBED_TEST_PORT to a free port")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "EOEMBED_TILES": "0"}
    log = open(results.parent / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "eoembed.cli", "serve", str(results), "--port", str(PORT),
                             "--no-show"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{PORT}/dashboard"
    deadline = time.time() + 300  # generous: imports and the first page are slow on a loaded 2-core machine
    while _free(PORT):  # wait until the port accepts connections
        if proc.poll() is not None:
            raise RuntimeError(f"eoembed serve exited: {(results.parent / 'serve.log').read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError("eoembed serve did not listen within 300 s")
        time.sleep(0.5)
    try:  # one first page (builds every view once: warms imports and caches); never retried, which would pile up
        urllib.request.urlopen(url, timeout=max(60.0, deadline - time.time() + 120)).read()
    except OSError as e:
        proc.kill()
        raise RuntimeError(f"eoembed serve did not answer {url}: {e}") from e
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


class Page:
    """A page with its requests and console errors recorded."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1600):
        self.ctx = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.ctx.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(url, timeout=240_000)  # the first page builds the app: slow on a loaded machine

    def wait_rendered(self, timeout: float = 180_000) -> None:
        self.page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=timeout)
        self.page.wait_for_selector(".leaflet-container", timeout=timeout)
        self.page.wait_for_selector(".bk-Canvas", timeout=timeout)
        self.page.wait_for_selector("path.leaflet-interactive", timeout=timeout)  # markers (in shadow DOM)

    def external(self, local: tuple[str, ...]) -> list[str]:
        return [u for u in self.requests if not u.startswith(local)]

    def text(self) -> str:
        return " ".join(self.page.evaluate(JS_TEXT).split())

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture()
def page(browser, server):
    SHOTS.mkdir(exist_ok=True)
    pg = Page(browser, server)
    yield pg
    pg.close()


LOCAL = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:", "blob:http://127.0.0.1",
         "about:")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_every_view_renders_offline(page):
    page.wait_rendered()
    page.page.wait_for_timeout(1500)
    body = page.text()
    assert "eoembed dashboard" in body
    for title in ("Map", "Sample viewer", "UMAP", "Prefixes", "Training monitor", "Ablation"):
        assert title in body, title
    for module, title in (("widgets.umap", "UMAP"), ("widgets.prefix", "Prefixes"),
                          ("widgets.ablation", "Ablation"), ("widgets.viewer", "Sample viewer")):
        if not _available(module):  # a view not merged yet is named, never silently dropped
            assert f"{title} not available" in body
    # the map is not squeezed
    box = page.page.locator(".leaflet-container").first.bounding_box()
    assert box["width"] >= 380 and box["height"] >= 300, box
    page.page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    assert page.external(LOCAL) == [], "requests left localhost"
    assert page.errors == [], page.errors


def test_map_click_sets_the_shared_selection(page):
    from playwright.sync_api import expect

    page.wait_rendered()
    # sample markers (not the basemap's outline paths): blue until selected, then orange
    markers = page.page.locator('.leaflet-container path.leaflet-interactive[stroke="#1f77b4"]')
    markers.first.click(force=True)
    sel = page.page.locator(".eoembed-selection")  # playwright's CSS pierces Bokeh's shadow DOM
    expect(sel).to_contain_text("1 sample(s)", timeout=20_000)
    expect(sel).to_contain_text("(from map)")
    page.page.wait_for_selector('.leaflet-container path.leaflet-interactive[stroke="#ff7f0e"]', timeout=20_000)
    markers.first.click(force=True)  # the first still-unselected (blue) marker, now another sample
    expect(sel).to_contain_text("2 sample(s)", timeout=20_000)
    if _available("widgets.umap"):
        # the UMAP view follows the map (its status line counts the selected points) ...
        expect(page.page.locator(".eoembed-umap").first).to_contain_text("2 selected", timeout=20_000)
        # ... and back: a selection made in the UMAP plot (its points' data source, as a box/lasso does) reaches
        # the shared selection and the map (exactly one orange marker)
        page.page.evaluate("""() => { for (const d of Bokeh.documents) for (const m of d._all_models.values())
            if (m.data !== undefined && m.data.x !== undefined && m.data.y !== undefined && m.data.id !== undefined
                && m.selected !== undefined) { m.selected.indices = [0]; return; } }""")
        expect(sel).to_contain_text("1 sample(s)", timeout=20_000)
        expect(page.page.locator('.leaflet-container path.leaflet-interactive[stroke="#ff7f0e"]')).to_have_count(
            1, timeout=20_000)
    assert page.errors == [], page.errors


@pytest.mark.skipif(not _available("widgets.prefix"), reason="widgets.prefix.PrefixExplorer is not merged yet "
                    "(ui-explore); the dashboard shows it as not available")
def test_prefix_slider_changes_the_scores(page):
    from playwright.sync_api import expect

    page.wait_rendered()
    card = page.page.locator(".eoembed-view-prefixexplorer")
    before = card.inner_text()
    handle = card.locator(".noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowLeft")
    expect(card).not_to_have_text(before, timeout=20_000)
    assert page.errors == [], page.errors


def test_training_from_dashboard_plots_every_epoch_live(page):
    page.wait_rendered()
    before = set(page.page.evaluate(JS_CURVES))
    page.page.get_by_role("button", name="Train compressor").click()
    seen: list[int] = []
    mid_shots = 0
    deadline = time.time() + 300
    status = ""
    while time.time() < deadline:
        curves = {k: v for k, v in page.page.evaluate(JS_CURVES).items() if k not in before}
        n = max((len(v) for v in curves.values()), default=0)
        if n and (not seen or n != seen[-1]):
            seen.append(n)
            if 0 < n < RUN_EPOCHS and mid_shots < 2:
                page.page.screenshot(path=str(SHOTS / f"training_mid_{n}.png"), full_page=True)
                mid_shots += 1
        status = page.page.locator(".eoembed-train-status").evaluate(JS_TEXT)
        if "done" in status or "failed" in status:
            break
        page.page.wait_for_timeout(250)
    assert "done" in status, status
    page.page.wait_for_timeout(500)
    curves = {k: v for k, v in page.page.evaluate(JS_CURVES).items() if k not in before}
    page.page.screenshot(path=str(SHOTS / "training_done.png"), full_page=True)
    assert curves, "no monitor curves appeared"
    for epochs in curves.values():  # every curve of the run: every epoch, in order
        assert epochs == list(range(1, RUN_EPOCHS + 1)), epochs
    assert len(seen) >= 2 and seen[0] < RUN_EPOCHS, f"curves did not grow while training: {seen}"
    assert seen == sorted(seen)
    assert f"epochs {list(range(1, RUN_EPOCHS + 1))}" in status
    assert page.errors == [], page.errors


def test_three_sessions_at_once(browser, server):
    pages = [Page(browser, server, 1200, 900) for _ in range(3)]
    try:
        for pg in pages:
            pg.wait_rendered()
        for pg in pages:
            assert pg.errors == [] and pg.external(LOCAL) == []
    finally:
        for pg in pages:
            pg.close()


def test_report_opens_from_disk_offline(browser, results, tmp_path):
    from widgets.report import report
    html = report(results, out=tmp_path / "report.html")
    pg = Page(browser, html.resolve().as_uri())
    try:
        pg.page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
        pg.page.wait_for_selector(".bk-Canvas", timeout=60_000)
        body = pg.text()
        assert "eoembed report" in body and "validation MSE" in body
        assert pg.external(("file://", "data:", "about:", "blob:")) == []
        assert pg.errors == [], pg.errors
    finally:
        pg.close()
