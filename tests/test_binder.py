"""binder/: the same pins as pyproject.toml, CPU torch, postBuild/start conventions, the jupyter-server-proxy entry."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_binder_requirements_pin_what_pyproject_pins():
    py = tomllib.loads((REPO / "pyproject.toml").read_text())
    pinned = _pins(py["project"]["dependencies"])
    req = (REPO / "binder" / "requirements.txt").read_text().splitlines()
    binder = _pins(req)
    assert {"torch", "torchvision"} <= set(pinned), pinned
    for name, version in binder.items():  # nothing pinned differently
        assert pinned.get(name) == version, f"binder pins {name}=={version}, pyproject {pinned.get(name)}"
    missing = set(pinned) - set(binder)
    assert not missing, f"pyproject pins {sorted(missing)} that binder/requirements.txt does not"
    assert any("download.pytorch.org/whl/cpu" in line for line in req), "Binder must take CPU torch wheels"
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_scripts():
    start = (REPO / "binder" / "start").read_text().strip().splitlines()
    assert start[0].startswith("#!") and start[-1].strip() == 'exec "$@"'
    post = (REPO / "binder" / "postBuild").read_text()
    assert "set -e" in post and "pip install" in post and "--prepare-static" in post
    assert re.search(r"eoembed demo \S+ .*--no-serve", post)
    for f in ("start", "postBuild"):
        assert (REPO / "binder" / f).stat().st_mode & 0o111, f"binder/{f} is not executable"


def test_server_proxy_entry_serves_the_dashboard(monkeypatch):
    py = tomllib.loads((REPO / "pyproject.toml").read_text())
    eps = py["project"]["entry-points"]["jupyter_serverproxy_servers"]
    assert eps == {"eoembed-dashboard": "widgets.proxy:setup_dashboard"}
    from widgets.proxy import setup_dashboard
    monkeypatch.setenv("EOEMBED_RESULTS", "/some/results")
    spec = setup_dashboard()
    cmd = spec["command"]
    assert cmd[1:5] == ["-m", "eoembed.cli", "serve", "/some/results"] and "{port}" in cmd
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1" and "--no-show" in cmd
    assert spec["absolute_url"] is False  # the app is reached under the proxy's prefix with relative URLs
    assert spec["launcher_entry"]["path_info"] == "eoembed-dashboard/dashboard"
