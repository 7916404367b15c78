"""Where a report goes besides its folder: the sweep's Aim experiment (a real Aim repo), and the
HTML as a browser shows it (headless Chromium; skipped when Debian's `chromium` is not installed)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from report_helpers import tricky_rows, write_sweep

from sweeper.report import data as rd
from sweeper.aim.repo import ensure_repo
from sweeper.report.report import make_report

ROOT = Path(__file__).resolve().parents[3]


def _sweep_with_aim(tmp_path) -> rd.Sweep:
    d = write_sweep(tmp_path, "tricky", tricky_rows())
    record = json.loads((d / "sweep.json").read_text())
    record["aim_repo"] = str(ensure_repo(tmp_path / "aim"))
    (d / "sweep.json").write_text(json.dumps(record))
    return rd.load("tricky", str(tmp_path))


def test_report_is_attached_to_the_sweeps_aim_experiment(tmp_path):
    import aim

    sweep = _sweep_with_aim(tmp_path)
    first = make_report(sweep, tmp_path / "out", ["md"])
    again = make_report(sweep, tmp_path / "out", ["md"])  # a second report adds a step to the same run
    assert first["aim_run"] == again["aim_run"]
    run = aim.Repo.from_path(str(tmp_path / "aim")).get_run(first["aim_run"])
    assert run.experiment == "tricky" and run.name == "tricky/report" and "report" in run.tags
    assert run["report"]["metric"] == "eval/exact_acc" and run["report"]["configs"][0]["config_id"] == "cfg-aaaa"
    assert run["report_count"] == 2
    from aim.storage.context import Context

    steps, values = run.get_text_sequence("report", Context({})).data.items_list()
    assert list(steps) == [0, 1] and "| 1 | cfg-aaaa |" in values[0][-1].data
    for key in ("per_seed", "curves", "cost"):
        steps, values = run.get_image_sequence(f"plot/{key}", Context({})).data.items_list()
        assert list(steps) == [0, 1] and values[0][-1].to_pil_image().size[0] > 300
    from sweeper.aim.repo import query_runs

    assert query_runs(tmp_path / "aim", "tricky") == []  # the report run is not mistaken for a trial


def _check_html():
    spec = importlib.util.spec_from_file_location("check_html", ROOT / "tools" / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                                    reason="Debian's chromium is not installed (apt-get install -y chromium)")


@needs_chromium
def test_html_opens_in_chromium_without_errors_and_images_load(tmp_path):
    sweep = rd.load(str(write_sweep(tmp_path, "tricky", tricky_rows())))
    out = make_report(sweep, tmp_path / "out", ["html"], aim=False)
    result = _check_html().check(out["docs"]["html"])
    assert not any(result[k] for k in ("console", "exceptions", "log", "failed_loads", "broken_images")), result
    assert len(result["images"]) == 3 and all(i["width"] > 300 and i["height"] > 200 for i in result["images"])


@needs_chromium
def test_the_chromium_check_catches_errors_and_broken_images(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><title>x</title></head><body><img src="missing.png" alt="gone">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    result = _check_html().check(page)
    assert result["console"] == ["boom"] and result["exceptions"] and result["broken_images"] == ["gone"]
    assert result["failed_loads"]
