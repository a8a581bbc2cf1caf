"""JupyterLab in Debian's Chromium (playwright, no `playwright install`): the widgets render offline and stream.

One notebook is run with "Run All Cells": the SampleMap must render (``.leaflet-container``) with its Natural
Earth outlines when cached, a marker click must select the sample (marker turns orange, the callback's print shows
under the map), the LiveHistory monitor must show its curves *growing while the training cell runs*, and at the
end every epoch must be present in order. No console error, no request leaving localhost. Screenshots go to
tests/artifacts/ (gitignored).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
PORTS = range(8800, 8820)  # this test's port range
EPOCHS = 12

CELLS = [
    # 0: imports + a tiny sample (generated: no data needed)
    "import time, tempfile\nfrom pathlib import Path\nimport numpy as np, xarray as xr\n"
    "from eoembed.data import sample\nfrom eoembed.compress import train_compressor\n"
    "from widgets import LiveHistory, SampleMap, Selection\n"
    "root = sample(Path(tempfile.mkdtemp()) / 's', n=16, size=16, seed=1, progress=False)\n"
    "sel = Selection()",
    # 1: the map, with the selection callback printing under it
    "smap = SampleMap.from_results(root, selection=sel)\n"
    "smap.on_select(lambda ids: print('selected:', len(ids), 'sample(s)'))\nsmap",
    # 2: a real training with the live monitor; a slow callback stands in for a bigger model
    "rng = np.random.default_rng(0)\n"
    "fused = xr.DataArray(rng.normal(size=(48, 24)).astype('float32'), dims=('sample', 'feature'),\n"
    "                     coords={'sample': [f's{i}' for i in range(48)]},\n"
    "                     attrs={'slices': {'a': (0, 12), 'b': (12, 24)}})\n"
    "live = LiveHistory()\ndisplay(live)\n"
    f"res = train_compressor(fused, None, epochs={EPOCHS}, eval_every=1, hidden=16, out_dim=4, batch_size=8,\n"
    "                       callbacks=[live, lambda row: time.sleep(0.6)], progress=False)\n"
    "print('TRAINING DONE', list(res.history['epoch']))",
]


def _free_port() -> int:
    for p in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    pytest.skip(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def _notebook(path: Path) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium) to run the "
                    "browser tests; never `playwright install`")
    pytest.importorskip("playwright.sync_api")
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        pytest.skip(f"no jupyter next to {sys.executable}")
    tmp = tmp_path_factory.mktemp("lab")
    (tmp / "root").mkdir()
    _notebook(tmp / "root" / "t.ipynb")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), EOEMBED_TILES="off")
    cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp / 'root'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.port_retries=0"]
    log = open(tmp / "lab.log", "w")
    srv = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if srv.poll() is not None:
                pytest.fail(f"jupyter lab exited: {(tmp / 'lab.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield url
    finally:
        srv.terminate()
        try:
            srv.wait(15)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()


def _monitor_state(page) -> dict:
    return page.evaluate("""() => {
        const svg = document.querySelector('svg.eoembed-history');
        if (!svg) return {n: 0, epochs: [], done: false};
        const pts = [...svg.querySelectorAll('circle[data-series="val_mse"]')].map(c => +c.dataset.epoch);
        const done = [...document.querySelectorAll('.jp-OutputArea-output pre')]
            .some(p => p.textContent.includes('TRAINING DONE'));
        return {n: pts.length, epochs: pts, attr: svg.dataset.epochs, done: done};
    }""")


def test_lab_map_click_and_live_monitor(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    host = lab.split("//")[1]
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def check(req):
            u = req.url
            if not (u.startswith(("data:", "blob:", "about:")) or u.split("//", 1)[-1].startswith(host)):
                outside.append(u)
        page.on("request", check)
        try:
            page.goto(f"{lab}/lab/tree/t.ipynb")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')"
                                   " && document.body.innerText.includes('| Idle')", timeout=90_000)
            for _attempt in range(3):  # a click while the kernel session settles can be lost: check it started
                page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
                page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()
                try:
                    page.wait_for_function("() => [...document.querySelectorAll('.jp-InputPrompt')]"
                                           ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))", timeout=15_000)
                    break
                except Exception:  # noqa: BLE001
                    continue

            page.wait_for_selector(".leaflet-container", timeout=90_000)
            # mid-run: the monitor must grow while the training cell is still running
            page.wait_for_function("() => document.querySelectorAll("
                                   "'svg.eoembed-history circle[data-series=\"val_mse\"]').length >= 2",
                                   timeout=90_000)
            first = _monitor_state(page)
            page.screenshot(path=str(ARTIFACTS / "lab_monitor_midrun.png"), full_page=True)
            time.sleep(2.0)
            second = _monitor_state(page)
            assert not first["done"] and not second["done"], (first, second)
            assert 2 <= first["n"] < second["n"] < EPOCHS, (first, second)  # streamed, not dumped at the end
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output pre')]"
                                   ".some(p => p.textContent.includes('TRAINING DONE'))", timeout=90_000)
            end = _monitor_state(page)
            assert end["epochs"] == list(range(1, EPOCHS + 1)), end  # every epoch, in order
            assert end["attr"] == ",".join(str(e) for e in range(1, EPOCHS + 1))

            # the map: outlines (when cached) under the markers, a click selects the sample
            page.locator(".leaflet-container").first.scroll_into_view_if_needed()
            marker = page.locator('.leaflet-container path.leaflet-interactive[stroke="#1f77b4"]').first
            marker.wait_for(timeout=20_000)
            marker.click(force=True)
            page.wait_for_selector('.leaflet-container path.leaflet-interactive[stroke="#ff7f0e"]', timeout=20_000)
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                                   ".some(o => o.textContent.includes('selected: 1 sample(s)'))", timeout=20_000)
            status = page.locator(".eoembed-samplemap").first.inner_text()
            assert "1 selected" in status, status
            page.screenshot(path=str(ARTIFACTS / "lab_widgets.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab_failure.png"), full_page=True)
            raise
        finally:
            (ARTIFACTS / "lab_requests.json").write_text(json.dumps({"errors": errors, "outside": outside},
                                                                    indent=1))
            browser.close()
    assert not outside, f"requests left localhost: {outside[:10]}"
    assert not errors, f"browser console errors: {errors[:10]}"


PANEL_APP = '''
import threading, time
import panel as pn
from widgets import LiveHistory
live = LiveHistory()
def train():  # a training thread feeding the monitor, rows out of order within each pair
    time.sleep(1.5)
    for e in [2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]:
        time.sleep(0.3)
        live({"epoch": e, "val_mse": 1.0 / e, "q_select": 0.1 * e, "q_report": 0.09 * e, "q_select/a": 0.5})
threading.Thread(target=train, daemon=True).start()
live.__panel__().servable()
'''


def test_panel_serve_monitor_fed_from_a_thread(tmp_path):
    """`panel serve`: the monitor follows a training thread live and ends with all 16 epochs in order."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright
    panel_bin = Path(sys.executable).with_name("panel")
    (tmp_path / "app.py").write_text(PANEL_APP)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    srv = subprocess.Popen([str(panel_bin), "serve", "app.py", "--port", str(port), "--address", "127.0.0.1",
                            "--allow-websocket-origin", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, errors, outside = [], [], []
    js = """() => { const f = (r) => { const s = r.querySelector('svg.eoembed-history'); if (s) return s;
        for (const el of r.querySelectorAll('*')) if (el.shadowRoot) { const t = f(el.shadowRoot); if (t) return t; }
        return null; }; const s = f(document); return s ? s.dataset.epochs : null; }"""
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: None if r.url.startswith((f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}",
                                                                   "data:", "blob:")) else outside.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/app")
            for _ in range(200):
                ep = page.evaluate(js)
                if ep is not None and (not seen or seen[-1] != ep):
                    seen.append(ep)
                if ep and ep.count(",") == 15:
                    break
                time.sleep(0.1)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "panel_monitor.png"), full_page=True)
            browser.close()
    finally:
        srv.terminate()
        srv.wait(15)
    states = [[int(x) for x in s.split(",") if x] for s in seen]
    assert states and states[-1] == list(range(1, 17)), seen  # every epoch, sorted
    assert len([s for s in states if 0 < len(s) < 16]) >= 2, seen  # seen growing mid-run, not only at the end
    assert all(s == sorted(s) for s in states)
    assert not outside and not errors, (outside, errors)
