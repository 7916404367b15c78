"""The real command line: bad specs exit 2 with one line and no traceback; shipped specs pass --dry-run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import check_dry_run, good, write_spec

from sweeper.cli import main
from sweeper.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


REPORT_RAY = ("import atexit, runpy, sys\n"
              "atexit.register(lambda: print('ray was imported' if 'ray' in sys.modules else 'ray was not imported'))\n"
              "runpy.run_module('sweeper', run_name='__main__', alter_sys=True)\n")
"""`python -m sweeper ...` that says at exit whether Ray was imported."""


def _cli(*args, cwd=ROOT, ray_free=False):
    """`python -m sweeper ARGS` in a fresh interpreter. `ray_free`: also assert that Ray was never
    imported, so never started nor joined: "refused before Ray starts", whatever the machine's load."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}
    how = ["-c", REPORT_RAY] if ray_free else ["-m", "sweeper"]
    proc = subprocess.run([sys.executable, *how, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if ray_free:
        assert proc.stdout.rstrip().endswith("ray was not imported"), (proc.stdout[-500:], proc.stderr[-500:])
    return proc


def _bad(tmp_path, name, mutate):
    raw = good()
    mutate(raw)
    return write_spec(tmp_path / f"{name}.yaml", raw)


CASES = [
    ("typo_top", lambda r: r.update(schedular={"type": "asha"}), "typo_top.yaml: schedular: is not a spec key", "did you mean 'scheduler'"),
    ("log_zero", lambda r: r["space"].update({"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}),
     "log_zero.yaml: space[optim.lr].low: must be > 0 when log is true", "low=0"),
    ("not_config", lambda r: r["space"].update({"model.hiden_size": {"type": "int", "low": 8, "high": 16}}),
     "not_config.yaml: space[model.hiden_size]: is not a key of the trainer config", "did you mean 'model.hidden_size'"),
]


@pytest.mark.parametrize("name,mutate,start,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_with_one_line(tmp_path, name, mutate, start, hint, one_line_error):
    one_line_error(_cli("run", _bad(tmp_path, name, mutate), "--dry-run"), start, hint)


def test_unsatisfiable_resources_exit_2_before_any_trial(tmp_path, one_line_error):
    # 64 GPUs per trial: no machine here has them; `run` must refuse before starting Ray.
    spec = _bad(tmp_path, "gpus", lambda r: r["resources"].update(gpu=64))
    proc = _cli("run", spec, "--set", f"storage={tmp_path}/s", "--set", f"aim.repo={tmp_path}/aim", cwd=tmp_path,
                ray_free=True)
    one_line_error(proc, "resources.gpu: the cluster can never run a trial: a trial needs 64 GPU")


def test_bad_flag_and_unknown_sweep_are_one_line(tmp_path, one_line_error):
    assert main.__module__ == "sweeper.cli"
    one_line_error(_cli("run", "--bogus"), "python -m sweeper run")
    one_line_error(_cli("resume", "no-such-sweep", "--storage", str(tmp_path)), "no sweep 'no-such-sweep'")


def test_shipped_specs_dry_run(capsys):
    for spec in sorted((ROOT / "search_spaces").glob("*.yaml")):
        assert main(["run", str(spec), "--dry-run"]) == 0
        check_dry_run(capsys.readouterr().out, load_spec(str(spec)))


def test_quickstart_dry_run_subprocess():
    proc = _cli("run", "search_spaces/quickstart.yaml", "--dry-run", "--set", "search.num_samples=10")
    assert proc.returncode == 0, proc.stderr
    assert "10 configurations x 1 seeds [0] = 10 trials" in proc.stdout
    assert "concurrency on this machine" in proc.stdout


def test_ls_with_no_sweeps(tmp_path, capsys):
    assert main(["ls", "--storage", str(tmp_path)]) == 0
    assert "no sweeps under" in capsys.readouterr().out


# ---- issue 16 (4-6) and issue 13: bad paths, names, addresses and --set forms, through the real CLI ----


def _tiny_spec(tmp_path, **update):
    raw = good()
    raw.update({"storage": str(tmp_path / "sweeps"), "aim": {"repo": str(tmp_path / "aim")}, **update})
    return write_spec(tmp_path / "s.yaml", raw)


def test_storage_or_aim_repo_naming_a_file_exits_2_before_ray(tmp_path, one_line_error):
    spec = _tiny_spec(tmp_path)
    f = tmp_path / "a_file"
    f.write_text("keep me\n")  # refused before Ray (today's traceback came after 18 s of its start):
    one_line_error(_cli("run", spec, "--set", f"storage={f}", cwd=tmp_path, ray_free=True), "storage", str(f), "is a file")
    one_line_error(_cli("run", spec, "--set", f"aim.repo={f}", cwd=tmp_path, ray_free=True), "aim.repo", str(f), "is a file")
    one_line_error(_cli("run", spec, "--set", f"storage={f}/sub", cwd=tmp_path, ray_free=True), "storage", "cannot")
    assert f.read_text() == "keep me\n" and not (tmp_path / "sweeps").exists()


def test_unwritable_storage_exits_2(tmp_path, one_line_error):
    spec = _tiny_spec(tmp_path)
    one_line_error(_cli("run", spec, "--set", "storage=/proc/x", cwd=tmp_path), "storage", "/proc/x")


def test_spec_that_is_not_utf8_exits_2(tmp_path, one_line_error):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    one_line_error(_cli("run", str(bad), "--dry-run", cwd=tmp_path), str(bad), "UTF-8")


def test_name_with_separators_or_leading_dot_exits_2(tmp_path, cli_error, one_line_error):
    spec = _tiny_spec(tmp_path)
    line = one_line_error(_cli("run", spec, "--name", "../escaped", cwd=tmp_path), "--name", "letters, digits", "'../escaped'")
    for name in ["a/b", ".hidden", "", "x" * 300, "sp ace", "..", "-dash"]:  # same code path, in-process
        assert "--name: a sweep name must be" in cli_error(main, ["run", spec, f"--name={name}"]), name
    assert not any(tmp_path.rglob("sweep.json")) and not (tmp_path.parent / "escaped").exists(), line


def test_unreachable_address_fails_fast_naming_it(tmp_path, one_line_error):
    spec = _tiny_spec(tmp_path)  # refused by our own probe of the address (5 s at most), before Ray's retries
    one_line_error(_cli("run", spec, "--address", "127.0.0.1:1", cwd=tmp_path, ray_free=True), "127.0.0.1:1",
                   "ray start --head")
    one_line_error(_cli("run", spec, "--address", "127.0.0.1:1", "--dry-run", cwd=tmp_path), "127.0.0.1:1")
    one_line_error(_cli("resume", "--address", "not an address", cwd=tmp_path), "--address")


def test_set_takes_several_values_after_one_flag_in_both_clis(tmp_path, one_line_error):
    spec = _tiny_spec(tmp_path)
    one = _cli("run", spec, "--dry-run", "--set", "search.num_samples=3", "seeds=[0,1]", "train.steps=30")
    many = _cli("run", spec, "--dry-run", "--set", "search.num_samples=3", "--set", "seeds=[0,1]", "--set", "train.steps=30")
    assert one.returncode == many.returncode == 0, one.stderr + many.stderr
    assert "3 configurations x 2 seeds [0, 1] = 6 trials" in one.stdout and one.stdout == many.stdout
    assert "steps: 30" in one.stdout
    # a value without '=' is named, with the hint (a positional swallowed by --set)
    one_line_error(_cli("run", "--set", "a=1", spec), "--set takes KEY=VALUE", "positional arguments go before --set")


def test_resume_without_a_name_and_nothing_to_resume(tmp_path, one_line_error):
    one_line_error(_cli("resume", "--storage", str(tmp_path)), "no interrupted sweep under")


# ---- issue 26: what a new user hit on a fresh clone, through the real CLI (no Ray needed) ----


def _gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_gpu_here(), reason="the GPU problem exists only on a machine without a GPU")
def test_gpu_spec_on_a_cpu_machine_names_every_problem_and_claims_nothing(tmp_path, one_line_error):
    """Item 1: the headline GPU spec on a CPU: resources and data reported at once, the CPU spec to run
    instead, the complete data command; no sweep directory is claimed."""
    proc = _cli("run", "search_spaces/wta.yaml", "--set", f"storage={tmp_path}/sweeps", f"aim.repo={tmp_path}/aim",
                f"data.path={tmp_path}/nope")
    line = one_line_error(proc, "search_spaces/wta.yaml: the sweep cannot start, 2 problems: (1) resources.gpu:",
                            "on a machine without a GPU run: python -m sweeper run search_spaces/wta_cpu.yaml",
                            f"(2) base.overrides.data.path: {tmp_path}/nope does not exist; build it with:")
    assert ("python -m trm_core data build sudoku-extreme --csv data/sudoku-extreme/train.csv --test-csv"
            f" data/sudoku-extreme/test.csv --subsample 1000 --seed 0 --out {tmp_path}/nope") in line, line
    assert not (tmp_path / "sweeps").exists()
    dry = _cli("run", "search_spaces/wta.yaml", "--dry-run", "--set", f"data.path={tmp_path}/nope")
    assert dry.returncode == 0 and dry.stdout.count("\ncannot start here: ") == 2, dry.stdout
    assert "or run search_spaces/wta_cpu.yaml" in dry.stdout


def test_missing_generated_data_names_its_complete_build_command(tmp_path, one_line_error):
    spec = _tiny_spec(tmp_path, **{"base": {**good()["base"], "overrides": {**good()["base"]["overrides"],
                                                                          "data.path": str(tmp_path / "d4")}}})
    one_line_error(_cli("run", spec, cwd=tmp_path), f"base.overrides.data.path: {tmp_path}/d4 does not exist",
                     f"python -m trm_core data build sudoku --size 4 --train 200 --test 50 --seed 0 --out {tmp_path}/d4")
    built = subprocess.run([sys.executable, "-m", "trm_core", "data", "build", "sudoku", "--size", "6", "--train", "10",
                            "--test", "5", "--seed", "0", "--out", str(tmp_path / "d6")], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert built.returncode == 0, built.stderr
    one_line_error(_cli("run", spec, "--set", f"data.path={tmp_path}/d6", cwd=tmp_path),
                     f"{tmp_path}/d6 holds 6x6 sudoku puzzles, but data.board_size is 4: set data.board_size=6")
    assert not (tmp_path / "sweeps").exists()


def test_a_mistyped_metric_is_refused_before_ray(tmp_path, one_line_error):
    """Item 2: one line, exit 2, a "did you mean", before Ray starts or a directory is claimed."""
    spec = _tiny_spec(tmp_path)
    one_line_error(_cli("run", spec, "--set", "metric=eval/exact_accuracy", cwd=tmp_path, ray_free=True),
                     "s.yaml: metric: must be a metric key the trainer reports", "but got 'eval/exact_accuracy'",
                     "(did you mean 'eval/exact_acc'?)")
    one_line_error(_cli("run", spec, "--set", "metric=eval/exact_accuracy", "--dry-run", cwd=tmp_path), "did you mean")
    one_line_error(_cli("run", spec, "--set", "metric=train/win_rate/3", cwd=tmp_path, ray_free=True),
                   "train/win_rate/3 is reported only by trials with recursion.chains >= 4, but this sweep's trials have at most 1")
    assert not (tmp_path / "sweeps").exists()


def test_a_metric_of_a_rule_that_does_not_exist_is_refused(tmp_path, one_line_error):
    from trm_core.infer.selection import SELECTION_RULES

    rule = SELECTION_RULES.names()[0]
    spec = _tiny_spec(tmp_path, scheduler="none", final_eval={"depth": 2, "select": [rule]})
    one_line_error(_cli("run", spec, "--dry-run", "--set", f"metric=eval_tts/{rule}x/exact_acc"),
                     f"names selection rule '{rule}x', which does not exist", f"did you mean '{rule}'")
    one_line_error(_cli("run", spec, "--dry-run", "--set", f"final_eval.select=[{rule}x]"),
                     "final_eval.select[0]: must be a selection rule", f"did you mean '{rule}'")
    ok = _cli("run", spec, "--dry-run", "--set", f"metric=eval_tts/{rule}/exact_acc")
    assert ok.returncode == 0, ok.stderr


def test_negative_train_steps_names_train_steps(tmp_path, one_line_error):
    """Item 5: the key the user set, not the scheduler.max_t it implies."""
    line = one_line_error(_cli("run", _tiny_spec(tmp_path), "--dry-run", "--set", "train.steps=-5"),
                            "train.steps > 0 must hold, but got train.steps=-5")
    assert "max_t" not in line


def _fake_sweep(tmp_path, name: str, status: str, results: bool = True) -> Path:
    """A sweep directory as the runner leaves it (sweep.json, and results.csv unless `results` is off)."""
    spec = _tiny_spec(tmp_path)
    d = tmp_path / "sweeps" / name
    d.mkdir(parents=True)
    import yaml

    record = {"format": "sweeper.sweep/1", "name": name, "spec_file": spec, "spec": yaml.safe_load(Path(spec).read_text()),
              "storage": str(tmp_path / "sweeps"), "aim_repo": str(tmp_path / "aim"), "metric": "eval/exact_acc",
              "mode": "max", "total_trials": 2, "status": status, "pid": 1 << 22, "created_at": time.time()}
    (d / "sweep.json").write_text(json.dumps(record))
    if results:
        (d / "results.csv").write_text("trial_id,config_id,seed,status,step,eval/exact_acc\n"
                                       "t1,cfg-1,0,done,20,0.5\nt2,cfg-2,0,done,20,0.25\n")
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_taken_name_is_refused_the_specs_own_name_is_time_stamped(tmp_path, one_line_error):
    """Item 3: --name (or --set name=) that a sweep has is refused, naming `resume` and the directory;
    the spec's own name gets a time stamp; --dry-run shows the directory the run will use."""
    d = _fake_sweep(tmp_path, "unit", "finished")
    before = _snapshot(d)
    spec = str(tmp_path / "s.yaml")
    for args in (["--name", "unit"], ["--set", "name=unit"]):
        flag = args[0] if args[0] == "--name" else "--set name"
        for extra in ([], ["--dry-run"]):
            one_line_error(_cli("run", spec, *args, *extra, cwd=tmp_path), f"{flag} unit: a sweep of that name exists"
                             f" (finished, {d}): `python -m sweeper resume unit --storage {tmp_path / 'sweeps'}` continues it")
    dry = _cli("run", spec, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and re.search(rf"sweep directory: {d}-\d{{8}}-\d{{6}} \(unit is taken", dry.stdout), dry.stdout
    assert _snapshot(d) == before


def test_a_sweep_that_never_started_a_trial_does_not_keep_its_name(tmp_path, one_line_error):
    d = _fake_sweep(tmp_path, "unit", "failed", results=False)
    dry = _cli("run", str(tmp_path / "s.yaml"), "--name", "unit", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and f"sweep directory: {d}\n" in dry.stdout, dry.stdout + dry.stderr
    one_line_error(_cli("resume", "unit", "--storage", str(tmp_path / "sweeps")), "stopped before its first trial",
                     "nothing to resume", "--name unit` (a sweep that never started a trial does not keep its name)")


def test_name_names_the_aim_experiment_unless_one_is_set(tmp_path):
    spec = _tiny_spec(tmp_path, aim={"repo": str(tmp_path / "aim"), "experiment": "unit"})  # = the spec's name
    out = _cli("run", spec, "--dry-run", "--name", "mine").stdout
    assert f"sweep directory: {tmp_path / 'sweeps' / 'mine'}" in out and "experiment mine" in out, out
    assert "experiment chosen" in _cli("run", spec, "--dry-run", "--name", "mine", "--set", "aim.experiment=chosen").stdout
    other = _tiny_spec(tmp_path, aim={"repo": str(tmp_path / "aim"), "experiment": "shared"})
    assert "experiment shared" in _cli("run", other, "--dry-run", "--name", "mine").stdout


def test_resume_of_a_finished_sweep_changes_nothing(tmp_path):
    """Item 4: says so (with its trials), starts no Ray, writes nothing."""
    d = _fake_sweep(tmp_path, "done1", "finished")
    before = _snapshot(d)
    proc = _cli("resume", "done1", "--storage", str(tmp_path / "sweeps"))
    assert proc.returncode == 0, proc.stderr
    assert "sweep done1 already finished with 2 trials (2 done)" in proc.stdout and "nothing to resume" in proc.stdout
    assert _snapshot(d) == before and not (d / "tune").exists()


def test_every_flag_of_resume_and_replicate_has_help_and_both_clis_share_flags():
    """Item 9: `resume --help` had no text for --address and --verbose; replicate takes --set."""
    for command in ("run", "resume", "replicate"):
        text = " ".join(_cli(command, "--help").stdout.split())
        for flag, words in (("--address", "an existing Ray cluster"), ("--verbose", "show the trials' own output"),
                            ("--progress-every SECONDS", "print a progress line this often")):
            options = text.split("options:", 1)[1]  # the flags' help, not the usage line
            assert f"{flag} " in options and words in options.split(flag, 1)[1][:200], (command, flag, text)
    assert "--set KEY=VALUE" in _cli("replicate", "--help").stdout
    train = subprocess.run([sys.executable, "-m", "trm_core", "train", "--help"], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "--progress-every SECONDS" in train.stdout and "--set KEY=VALUE" in train.stdout


def test_replicate_set_refuses_what_would_be_a_new_sweep(tmp_path, one_line_error):
    one_line_error(_cli("replicate", "any", "--top", "1", "--seeds", "0", "--set", "metric=eval/cell_acc"),
                     "replicate --set metric: a replicate phase takes resources.cpu, resources.gpu,"
                     " search.max_concurrent, failure.max_retries or trainer config keys",
                     "python -m sweeper run SPEC --set metric=eval/cell_acc")


@pytest.mark.parametrize("args, words", [
    (["--grace", "0"], ["--grace must be a number of seconds > 0", "got 0"]),
    (["--grace", "soon"], ["--grace", "soon"]),
    (["--node-id", "nope"], ["--node-id must be a Ray node running on this machine", "'nope'"]),
])
def test_preempt_node_refuses_bad_flags_in_one_line(args, words, one_line_error):
    one_line_error(_cli("preempt-node", *args), *words)
