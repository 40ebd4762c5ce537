"""The benchmark scripts' ``--quick`` modes run and produce complete reports.

Each script runs once per session in a subprocess (as a user would call it);
the tests then read its JSON report.  cleanlab is optional: without it the
accuracy script skips its peers with a note, and the tests expect that note.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_noisy.methods import available_methods

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
HAS_CLEANLAB = importlib.util.find_spec("cleanlab") is not None


def _run(script, tmp_path_factory, *extra):
    out = tmp_path_factory.mktemp(script) / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--quick", "--threads", "1"]
        + ["--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory):
    return _run("accuracy", tmp_path_factory)


@pytest.fixture(scope="module")
def speed(tmp_path_factory):
    return _run("speed", tmp_path_factory)


def test_accuracy_has_every_method_and_peer(accuracy):
    report, table = accuracy
    names = {s["method"] for s in report["summary"]}
    expected = set(available_methods()) | set(report["settings"]["peers"])
    if not HAS_CLEANLAB:
        assert set(report["skipped"]) == {"cleanlab_mlp", "cleanlab_logreg"}
        expected -= set(report["skipped"])
    assert names == expected
    for name in expected:
        assert f"| {name} |" in table


def test_accuracy_rows_are_complete(accuracy):
    report, _ = accuracy
    errors = {s["method"]: s["errors"] for s in report["summary"] if "errors" in s}
    assert not errors
    for s in report["summary"]:
        assert 0.0 <= s["test_accuracy_mean"] <= 1.0
        assert s["test_accuracy_std"] >= 0.0
        for key in ("corrected_label_accuracy", "wrong_labels_fixed", "right_labels_broken"):
            assert 0.0 <= s[key] <= 1.0
        assert s["fit_time_s"] > 0
        assert s["time_vs_ce"] > 0 and math.isfinite(s["time_vs_ce"])
    ce = next(s for s in report["summary"] if s["method"] == "ce")
    assert ce["time_vs_ce"] == pytest.approx(1.0)
    assert ce["acc_minus_ce"] == 0.0


def test_accuracy_report_says_what_was_run(accuracy):
    report, table = accuracy
    assert report["settings"]["quick"] is True
    assert report["settings"]["command"].startswith("python benchmarks/accuracy.py")
    assert report["machine"]["torch"]
    assert "time / ce" in table and "### Goals" in table
    (goal,) = report["goals"]
    assert {"best_library", "best_peer", "best_library_beats_peers"} <= set(goal)
    assert "paper_methods_not_beating_ce" in goal  # rate 0.4


def test_speed_has_every_method_with_positive_ratio(speed):
    report, table = speed
    cpu = [r for r in report["timings"] if r["case"] == "mlp-784-cpu"]
    assert {r["method"] for r in cpu} == set(available_methods())
    for r in cpu:
        assert r["ratio_vs_ce"] > 0 and math.isfinite(r["ratio_vs_ce"])
        assert r["epoch_time_s"] > 0 and r["samples_per_s"] > 0
    assert next(r for r in cpu if r["method"] == "ce")["ratio_vs_ce"] == pytest.approx(1.0)
    assert "time / ce" in table
    assert "no warm-up" in table
    if sys.platform.startswith("linux"):
        assert all(r["peak_host_memory_mb"] > 0 for r in cpu)


def test_speed_can_time_the_default_warm_up(tmp_path_factory):
    """``--warmup default`` times what users get: the methods' own warm-up epochs."""
    report, table = _run(
        "speed", tmp_path_factory, "--warmup", "default", "--methods", "mlc", "--no-memory"
    )
    assert report["cases"]["mlp-784-cpu"]["warmup_epochs"] is None
    assert "default warm-up" in table and "no warm-up" not in table
    assert {r["method"] for r in report["timings"]} == {"ce", "mlc"}


def test_speed_times_the_reuse_virtual_grad_lever(tmp_path_factory):
    """``--reuse-virtual-grad off,on`` gives a row per setting where the method allows it."""
    report, table = _run(
        "speed", tmp_path_factory, "--methods", "mlc,mslg", "--reuse-virtual-grad", "off,on",
        "--no-memory",
    )  # fmt: skip
    rows = {(r["method"], r["reuse_virtual_grad"]) for r in report["timings"]}
    assert rows == {("ce", False), ("mlc", False), ("mlc", True), ("mslg", False), ("mslg", True)}
    assert "| reuse grad |" in table and "| mlc | 1 (default) | on |" in table


def test_speed_times_heavy_noise_with_the_heavy_noise_settings(tmp_path_factory):
    """``--noise 0.8``: mfrw's row is timed with its heavy-noise settings (a meta
    step on every batch, the paper's actual step), and the table says so."""
    report, table = _run(
        "speed", tmp_path_factory, "--noise", "0.8", "--methods", "mfrw", "--no-memory",
        "--no-flops",
    )  # fmt: skip
    assert report["cases"]["mlp-784-cpu"]["noise"] == 0.8
    rows = {r["method"]: r for r in report["timings"]}
    assert rows["mfrw"]["heavy_noise_settings"] and not rows["ce"]["heavy_noise_settings"]
    assert (rows["mfrw"]["meta_every"], rows["mfrw"]["reuse_virtual_grad"]) == (1, False)
    assert "symmetric noise 0.8" in table
    assert "| mfrw | 1 (default), heavy-noise settings | off (default) |" in table


def test_speed_times_the_embeddings_case_on_the_cpu(tmp_path_factory):
    """``--cases embeddings``: the larger case (512 features, 100 classes, batch
    512) on the CPU alone, with the peak host memory of each fit."""
    report, table = _run(
        "speed", tmp_path_factory, "--cases", "embeddings", "--methods", "mslg", "--no-memory",
        "--no-flops",
    )  # fmt: skip
    assert set(report["cases"]) == {"embeddings-200k-cpu"}
    cfg = report["cases"]["embeddings-200k-cpu"]
    assert (cfg["n_features"], cfg["n_classes"], cfg["batch_size"]) == (512, 100, 512)
    rows = {r["method"]: r for r in report["timings"]}
    assert set(rows) == {"ce", "mslg"}
    assert rows["mslg"]["ratio_vs_ce"] > 0 and rows["mslg"]["samples_per_s"] > 0
    if sys.platform.startswith("linux"):
        # mslg keeps a (rows x 100) label table on top of what ce holds
        assert rows["mslg"]["peak_host_memory_mb"] > 0
        assert "| peak host MB |" in table
    assert "100 classes, batch 512" in table


def test_speed_host_peak_counts_what_a_fit_allocates():
    """The host-memory figure is the rise of resident memory above the start,
    freed memory included: a 160 MB array made and dropped reads at least that."""
    mod = _script_module("speed")
    before = mod._reset_host_peak()
    if before is None:
        pytest.skip("no /proc/self/clear_refs here")
    block = np.ones(20_000_000)  # 160 MB, touched
    del block
    rise = mod._host_memory("VmHWM") - before
    assert 150 * 2**20 < rise < 400 * 2**20
    assert mod._host_memory("VmRSS") < before + 100 * 2**20  # the array is gone again


def test_speed_refuses_an_unknown_case():
    with pytest.raises(SystemExit):
        _script_module("speed").main(["--quick", "--cases", "mlp,resnet"])


def test_speed_counts_each_of_glcs_runs_at_its_own_cost():
    """glc trains twice and ``history_`` keeps only the second run: an epoch of
    glc is timed as the sum of the two runs' epochs, each as it ran."""
    mod = _script_module("speed")
    data = mod.synthetic(300, 20, 3)
    cfg = {"epochs": 2, "batch_size": 64, "warmup_epochs": 0}
    _, _, epochs, _ = mod._fit_once("glc", data, cfg, "cpu", None)
    first, second = mod._EPOCH_DURATIONS[:2], mod._EPOCH_DURATIONS[2:]
    assert len(mod._EPOCH_DURATIONS) == 4
    assert epochs == [first[0] + second[0], first[1] + second[1]]
    _, _, epochs, _ = mod._fit_once("mlc", data, cfg, "cpu", None)
    assert epochs == mod._EPOCH_DURATIONS and len(epochs) == 2


def test_speed_skips_the_reuse_lever_where_a_method_refuses_it():
    """mslg with the paper's entropy term cannot reuse the gradient: no "on" row for it."""
    from sklearn_noisy.methods import MSLG

    settings = _script_module("speed")._lever_settings
    assert settings(MSLG(entropy_weight=0.1), [1, 2], [False, True]) == [(1, False), (2, False)]
    assert settings("mslg", [1], [False, True]) == [(1, False), (1, True)]
    assert settings("ce", [1, 2], [False, True]) == [(1, None)]


def test_speed_reports_table_memory(speed):
    report, table = speed
    memory = {m["method"]: m for m in report["memory"]}
    assert set(memory) == set(available_methods())
    for m in memory.values():
        assert m["method_tables_mb"] >= 0
        for shape in m["table_shapes"].values():
            assert shape[0] == 1_000_000
    assert "1M samples x 100 classes" in table


def _script_module(name):
    """``benchmarks/<name>.py`` imported as a module (a script, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _accuracy_module():
    return _script_module("accuracy")


def test_accuracy_peers_without_optional_packages():
    """The oracle forward peer is a GLC whose T is given, and is not registered."""
    mod = _accuracy_module()
    assert "forward_T_oracle" not in available_methods()
    assert mod.ForwardOracle(T=[[1.0]]).get_params()["T"] == [[1.0]]


def test_early_stopped_peer_keeps_its_best_epoch(sym40):
    """``ce_early_stop`` restores the epoch most accurate on its held-out split."""
    mod = _accuracy_module()
    X, y = sym40.X, sym40.y_noisy
    val = slice(0, 150)
    scores = []

    class Recording(mod.EarlyStoppedMLP):
        def _train(self, X, y, epochs, lr, sample_weight, on_epoch=None):
            def record():
                on_epoch()
                with torch.no_grad():
                    pred = self.module_(torch.as_tensor(sym40.X[val], dtype=torch.float32))
                scores.append(float((pred.argmax(1).numpy() == y_val).mean()))

            return super()._train(X, y, epochs, lr, sample_weight, on_epoch=record)

    y_val = y[val]
    clf = Recording(max_epochs=15, random_state=0).fit(X[150:], y[150:], X[val], y_val)
    assert len(scores) == 15
    assert max(scores) > scores[-1]  # the case overfits: the last epoch is not the best
    assert clf.best_epoch_ == int(np.argmax(scores)) + 1
    # the restored weights are the best epoch's, not the last one's
    assert (clf.predict(X[val]) == y_val).mean() == pytest.approx(max(scores))


def _ce_mlc_and_a_peer(tmp_path_factory, *settings):
    """Quick accuracy run of ``ce``, ``mlc`` and the ``ce+trusted`` peer with ``--set``."""
    args = ("--methods", "ce,mlc", "--peers", "ce+trusted")
    for setting in settings:
        args += ("--set", setting)
    report, table = _run("accuracy", tmp_path_factory, *args)
    return report, table, {r["method"]: r for r in report["runs"]}


def test_accuracy_sets_a_parameter_on_library_methods_only(tmp_path_factory):
    """``--set early_stopping=true`` reaches every library fit, and no peer."""
    report, table, runs = _ce_mlc_and_a_peer(tmp_path_factory, "early_stopping=true")
    assert report["settings"]["params"] == {"early_stopping": True}
    assert "Library methods fitted with early_stopping=True" in table
    for name in ("ce", "mlc"):
        assert 1 <= runs[name]["best_epoch"] <= runs[name]["epochs_run"] <= 2
    assert runs["ce+trusted"]["best_epoch"] is None  # a peer: fitted as it always is
    # what the learnable-noise check measured and decided (the paper methods only)
    check = runs["mlc"]["learnable_noise_check"]
    assert 0 <= check["trusted_accuracy"] <= 1 and isinstance(check["corrects_less"], bool)
    assert runs["ce"]["learnable_noise_check"] is None


def test_accuracy_records_the_warm_up_each_library_fit_ran(tmp_path_factory):
    _, _, runs = _ce_mlc_and_a_peer(tmp_path_factory, "warmup_epochs=1", "pretrain_epochs=auto")
    assert runs["mlc"]["warmup_epochs"] == 1  # quick mode: 1 of 2 epochs
    assert runs["ce"]["warmup_epochs"] == 0  # no meta steps, no warm-up
    # and the epochs its model averages: mlc's one meta epoch; ce keeps its last
    assert runs["mlc"]["averaged_epochs"] == 1 and runs["ce"]["averaged_epochs"] == 0
    # and what the pre-training check measured and decided
    for name in ("ce", "mlc"):
        check = runs[name]["pretrain_check"]
        assert 0 < check["trusted_cv_accuracy"] <= 1
        assert runs[name]["pretrain_epochs"] == (200 if check["pretrain"] else 0)
    assert runs["ce+trusted"]["pretrain_check"] is None  # a peer: fitted without --set
    # warmup_epochs given: no fit checks for its warm-up (mslg's default would)
    assert runs["mlc"]["warmup_check"] is None


def test_accuracy_refuses_an_unknown_or_fixed_parameter():
    mod = _accuracy_module()
    for bad in ("early_stoping=true", "max_epochs=3", "early_stopping"):
        with pytest.raises(SystemExit):
            mod.main(["--quick", "--set", bad])


def test_accuracy_refuses_an_unknown_dataset_before_fitting(capsys):
    mod = _accuracy_module()
    with pytest.raises(SystemExit):
        mod.main(["--datasets", "digits,digitz", "--seeds", "1", "--peers", ""])
    err = capsys.readouterr().err
    assert "unknown datasets ['digitz']" in err and "breast_cancer" in err


def _another_seed(report, seed, shift):
    """A copy of ``report`` as if its runs had been fitted on ``seed``, every test
    accuracy moved by ``shift``."""
    other = json.loads(json.dumps(report))
    other["settings"]["seeds"] = [seed]
    for run in other["runs"]:
        run["seed"] = seed
        run["test_accuracy"] += shift
    return other


def _write(tmp_path, name, report):
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_accuracy_merges_reports_of_separate_runs(accuracy, tmp_path, capsys):
    """``--report`` summarises the runs of several reports as one: means over every
    seed, goals judged anew, an overview table per dataset."""
    report, _ = accuracy
    mod = _accuracy_module()
    first = _write(tmp_path, "a.json", report)
    other = _another_seed(report, seed=1, shift=-0.1)
    # a peer one process skipped and the other fitted is no longer "skipped"
    other["skipped"] = {"cleanlab_mlp": "needs cleanlab (pip install cleanlab)"}
    second = _write(tmp_path, "b.json", other)
    out = str(tmp_path / "merged.json")
    merged = mod.main(["--report", first, second, "--json", out])
    table = capsys.readouterr().out
    assert json.loads(Path(out).read_text())["summary"] == merged["summary"]
    assert merged["settings"]["seeds"] == [0, 1]
    assert ("cleanlab_mlp" in merged["skipped"]) is not HAS_CLEANLAB
    assert len(merged["runs"]) == 2 * len(report["runs"])
    single = {s["method"]: s for s in report["summary"]}
    for s in merged["summary"]:
        assert s["n_seeds"] == 2
        expected = single[s["method"]]["test_accuracy_mean"] - 0.05
        assert s["test_accuracy_mean"] == pytest.approx(expected)
        assert s["test_accuracy_std"] == pytest.approx(0.05)
    assert "### digits: test accuracy, mean over 2 seeds" in table
    (goal,) = merged["goals"]
    lib = [s for s in merged["summary"] if s["kind"] == "library"]
    best = max(lib, key=lambda s: s["test_accuracy_mean"])
    assert goal["best_library"] == best["method"]
    assert f"**{best['test_accuracy_mean']:.3f}**" in table  # bold in the overview


@pytest.mark.parametrize(
    "seed, change, message",
    [
        (0, {}, "both fitted"),  # the same runs twice
        (1, {"machine": {"git": "0000000"}}, "library commit"),
        (1, {"settings": {"params": {"weight_decay": 0.0}}}, "params="),
    ],
)
def test_accuracy_refuses_to_merge_runs_that_do_not_belong_together(
    accuracy, tmp_path, capsys, seed, change, message
):
    report, _ = accuracy
    mod = _accuracy_module()
    other = _another_seed(report, seed=seed, shift=0.0)
    for part, values in change.items():
        other[part].update(values)
    paths = [_write(tmp_path, "a.json", report), _write(tmp_path, "b.json", other)]
    with pytest.raises(SystemExit):
        mod.main(["--report", *paths])
    assert message in capsys.readouterr().err


def test_accuracy_starts_the_seeds_where_asked():
    """``--first-seed`` lets separate processes share out the seeds."""
    mod = _accuracy_module()
    args = ["--quick", "--methods", "ce", "--peers", "", "--threads", "1"]
    report = mod.main([*args, "--first-seed", "4"])
    assert report["settings"]["seeds"] == [4]
    assert {r["seed"] for r in report["runs"]} == {4}


@pytest.fixture(scope="module")
def label_dynamics(tmp_path_factory):
    return _run("label_dynamics", tmp_path_factory)


def test_label_dynamics_records_every_epoch_and_the_meta_phase(label_dynamics):
    report, out = label_dynamics
    (run,) = report["runs"]
    epochs = run["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    # mslg warms up before its meta steps: no look-ahead accuracy then, one after
    has_meta = [e["meta_acc"] is not None for e in epochs]
    assert not has_meta[0] and has_meta[-1] and has_meta == sorted(has_meta)
    assert run["first_meta_epoch"] == epochs[has_meta.index(True)]
    # the labels start as given, and the last epoch's corrections are the fitted
    # model's own (mslg's label table; rows read in the wrong order would differ)
    assert epochs[0]["corrected_label_accuracy"] == run["noisy_label_accuracy"]
    assert run["last_epoch"]["corrected_label_accuracy"] == run["corrected_label_accuracy"]
    assert run["corrected_label_accuracy"] != run["noisy_label_accuracy"]
    assert "| digits instance 0.4, mslg | 1 | 0.600 |" in out


def test_label_dynamics_merges_reports(label_dynamics, tmp_path, capsys):
    report, out = label_dynamics
    mod = _script_module("label_dynamics")
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    second = {**report, "runs": [{**report["runs"][0], "seed": 7}]}
    paths[0].write_text(json.dumps(report))
    paths[1].write_text(json.dumps(second))
    merged = mod.main(["--report", *map(str, paths), "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text()) == merged
    assert [run["seed"] for run in merged["runs"]] == [0, 7]
    # one row for the case, over both runs
    assert "| digits instance 0.4, mslg | 2 | 0.600 |" in capsys.readouterr().out


def test_label_dynamics_leaves_the_fit_as_users_get_it():
    """Reading the network every epoch moves no random state: the fit is the plain one."""
    from sklearn_noisy import MetaLabelCorrectionClassifier
    from sklearn_noisy.datasets import make_noisy_case

    mod = _script_module("label_dynamics")
    settings = {"method": "mslg", "epochs": 4, "device": "cpu"}
    run = mod.run_one("digits", "symmetric", 0.4, 1, settings)
    case = make_noisy_case("digits", kind="symmetric", rate=0.4, seed=1)
    clf = MetaLabelCorrectionClassifier(method="mslg", max_epochs=4, random_state=1)
    clf.fit(case.X, case.y_noisy, X_meta=case.X_meta, y_meta=case.y_meta)
    assert run["test_accuracy"] == clf.score(case.X_test, case.y_test)
    assert run["corrected_label_accuracy"] == np.mean(clf.corrected_labels_ == case.y_true)


def test_label_dynamics_finds_the_linear_model_in_instance_noise():
    """Instance noise flips the rows of smallest margin under a logistic regression to
    its most likely other class: where that model is right on fewer rows than are
    kept, every flipped row carries its prediction; where it is right on every row,
    none does."""
    from types import SimpleNamespace

    from sklearn_noisy.noise import make_noisy_labels

    mod = _script_module("label_dynamics")
    rng = np.random.RandomState(0)
    y = np.arange(800) % 4
    scales = 10.0 ** np.arange(-2, 4)  # features of unlike scales: the model standardises
    cases = [
        (rng.normal(size=(800, 6)) * scales, True),
        ((8.0 * np.eye(6)[y] + rng.normal(size=(800, 6))) * scales, False),
    ]
    for X, poor in cases:
        y_noisy, _ = make_noisy_labels(y, kind="instance", rate=0.4, X=X, random_state=0)
        case = SimpleNamespace(X=X, y_true=y, y_noisy=y_noisy)
        linear_acc, given_is_linear = mod.linear_labels(case)
        if poor:  # labels unrelated to X
            assert linear_acc < 0.5
            assert given_is_linear == pytest.approx(0.4 + linear_acc)
        else:  # separable classes
            assert linear_acc == 1.0
            assert given_is_linear == pytest.approx(0.6)


def test_cuda_roundtrip_script_checks_what_it_wrote(tmp_path, capsys):
    """The GPU check's pickle round trip, both halves on CPU: every method loads and
    predicts what it predicted when saved, and a changed prediction is caught."""
    import gzip
    import pickle

    mod = _script_module("cuda_roundtrip")
    path = tmp_path / "models.pkl.gz"
    assert mod.main(["write", str(path), "--device", "cpu"]) == 0
    assert mod.main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    for method in available_methods():
        assert f"{method:<6} fitted on cpu, loaded on ['cpu']" in out
    with gzip.open(path, "rb") as fh:
        saved = pickle.load(fh)
    clf, proba, where = saved["models"]["mlc"]
    saved["models"]["mlc"] = (clf, proba[:, ::-1], where)
    with gzip.open(path, "wb") as fh:
        pickle.dump(saved, fh)
    assert mod.main(["check", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if line.endswith("FAILED")] == ["mlc"]


def test_accuracy_merges_runs_of_commits_with_the_same_library(accuracy, tmp_path, capsys):
    """Two names of one commit (short and full hash) hold the same sklearn_noisy/:
    the runs merge, and the merged report names both."""
    report, _ = accuracy
    mod = _accuracy_module()
    full = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if not full:
        pytest.skip("not a git checkout")
    first = json.loads(json.dumps(report))
    first["machine"]["git"] = full[:7]
    second = _another_seed(report, seed=1, shift=0.0)
    second["machine"]["git"] = full
    paths = [_write(tmp_path, "a.json", first), _write(tmp_path, "b.json", second)]
    merged = mod.main(["--report", *paths])
    assert merged["machine"]["git"] == f"{full[:7]} {full}"
    assert {s["n_seeds"] for s in merged["summary"]} == {2}


def test_accuracy_goals_without_peers_say_so(accuracy, tmp_path, capsys):
    """A run of library methods alone (``--peers ''``) has no peer to beat: its goal
    lines say that, rather than "NOT met"."""
    report, _ = accuracy
    mod = _accuracy_module()
    alone = json.loads(json.dumps(report))
    alone["runs"] = [r for r in alone["runs"] if r["kind"] == "library"]
    alone["settings"]["peers"] = []
    mod.main(["--report", _write(tmp_path, "alone.json", alone)])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("- digits")]
    assert "(no peers run)" in line and "NOT met" not in line and ": met" not in line


def test_accuracy_carries_over_the_entries_a_new_run_did_not_fit(accuracy, tmp_path, capsys):
    """``--earlier``: after a change that moved some entries only, the others come
    from the earlier commit's report, and the tables say so."""
    report, _ = accuracy
    mod = _accuracy_module()
    old = json.loads(json.dumps(report))
    old["machine"]["git"] = "0000000"
    for run in old["runs"]:
        run["test_accuracy"] -= 0.2
    new = json.loads(json.dumps(report))
    new["runs"] = [r for r in new["runs"] if r["method"] == "mlc"]
    new["settings"].update(methods=["mlc"], peers=[])
    new["skipped"] = {}
    paths = [_write(tmp_path, "new.json", new), _write(tmp_path, "old.json", old)]
    merged = mod.main(["--report", paths[0], "--earlier", paths[1]])
    table = capsys.readouterr().out
    before = {s["method"]: s["test_accuracy_mean"] for s in report["summary"]}
    after = {s["method"]: s["test_accuracy_mean"] for s in merged["summary"]}
    assert set(after) == set(before)
    assert after["mlc"] == pytest.approx(before["mlc"])  # the new run's
    for name in set(before) - {"mlc"}:
        assert after[name] == pytest.approx(before[name] - 0.2)  # carried over
    (carried,) = merged["settings"]["carried_over"]
    assert carried["commit"] == "0000000" and "mlc" not in carried["entries"]
    assert set(carried["entries"]) == set(before) - {"mlc"}
    assert merged["machine"]["git"] == report["machine"]["git"]
    assert "Carried over from the runs at 0000000: " in table
    # a later run on top of that merge: each carried entry keeps its own commit
    later = json.loads(json.dumps(new))
    later["runs"] = [{**r, "method": "ce"} for r in later["runs"]]
    later["settings"]["methods"] = ["ce"]
    later["machine"]["git"] = "1111111"
    paths += [_write(tmp_path, "merged.json", merged), _write(tmp_path, "later.json", later)]
    again = mod.main(["--report", paths[3], "--earlier", paths[2]])
    provenance = {c["commit"]: set(c["entries"]) for c in again["settings"]["carried_over"]}
    assert provenance == {
        report["machine"]["git"]: {"mlc"},
        "0000000": set(before) - {"mlc", "ce"},
    }
    by = {s["method"]: s["test_accuracy_mean"] for s in again["summary"]}
    assert by["mlc"] == pytest.approx(before["mlc"])
    assert by["ce"] == pytest.approx(before["mlc"])  # the later run's (mlc's runs, renamed)
    assert by["trusted_only"] == pytest.approx(before["trusted_only"] - 0.2)
    # settings must still agree, and --earlier needs --report
    old["settings"]["epochs"] = 99
    paths[1] = _write(tmp_path, "old.json", old)
    with pytest.raises(SystemExit):
        mod.main(["--report", paths[0], "--earlier", paths[1]])
    assert "epochs=99" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--earlier", paths[1]])


def test_accuracy_sets_a_method_parameter_on_the_methods_that_have_it(tmp_path_factory):
    """``--set method__<param>`` reaches the method objects that take it, no other."""
    args = ("--methods", "ce,mfrw,mlc", "--peers", "", "--set", "method__embed_size=8")
    report, _ = _run("accuracy", tmp_path_factory, *args)
    runs = {r["method"]: r for r in report["runs"]}
    assert runs["mfrw"]["method_params"]["embed_size"] == 8
    assert "embed_size" not in runs["mlc"]["method_params"]
    assert runs["mlc"]["method_params"]["init_diagonal"] == "auto"  # its own default
    assert runs["ce"]["method_params"] == {}


def test_accuracy_refuses_a_method_parameter_no_method_has():
    mod = _accuracy_module()
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--methods", "mlc", "--set", "method__embed_size=8"])


def test_speed_counts_an_epochs_flops_exactly():
    """``ce``'s counted epoch is the MLP's own arithmetic; meta steps add to it."""
    mod = _script_module("speed")
    n, d, c, h = 300, 20, 3, 256  # the fits use the default (256, 256) MLP
    data = mod.synthetic(n, d, c, n_meta_per_class=4)
    cfg = {"batch_size": 128, "epochs": 4, "warmup_epochs": 0}
    ce = mod.fit_flops("ce", data, cfg, 1, None)
    products = d * h + h * h + h * c  # multiply-adds of one row's forward pass
    # forward and weight gradients of every layer, input gradients of the two upper ones
    assert ce == 2 * n * (2 * products + h * h + h * c)
    every = mod.fit_flops("mlc", data, cfg, 1, None)
    second = mod.fit_flops("mlc", data, cfg, 2, None)
    assert ce < second < every
    # a warm-up of 2 of 20 epochs (mlc's default): plain epochs over the noisy and
    # the 12 trusted rows, then meta epochs
    warm = mod.fit_flops("mlc", data, {**cfg, "warmup_epochs": None, "epochs": 20}, 1, None, 2)
    plain = 2 * (n + 12) * (2 * products + h * h + h * c)
    assert warm == (2 * plain + 18 * every) / 20


def test_speed_leaves_the_trusted_set_check_out_of_the_count(monkeypatch):
    """The check runs before the first epoch: ``mlc``'s default, which runs it,
    counts what ``mlc`` with a given start of T (no check) counts."""
    from sklearn_noisy.methods import MLC
    from tests.conftest import watch_trusted_set_check

    mod = _script_module("speed")
    data = mod.synthetic(300, 20, 3, n_meta_per_class=4)
    cfg = {"batch_size": 128, "epochs": 4, "warmup_epochs": 0}
    calls = watch_trusted_set_check(monkeypatch)
    checked = mod.fit_flops("mlc", data, cfg, 1, None)
    assert len(calls) == 1
    assert checked == mod.fit_flops(MLC(init_diagonal=0.5), data, cfg, 1, None) > 0
    assert len(calls) == 1  # a given start runs no check


def test_speed_table_has_the_flops_ratio(speed):
    report, table = speed
    cpu = {r["method"]: r for r in report["timings"] if r["case"] == "mlp-784-cpu"}
    assert cpu["ce"]["flops_ratio_vs_ce"] == 1.0
    for name, row in cpu.items():
        if name != "ce":  # every other method computes more than plain training
            assert row["flops_ratio_vs_ce"] > 1.2
    assert "FLOPs / ce" in table


def test_accuracy_table_without_ce_shows_no_comparison(accuracy, tmp_path, capsys):
    """A run that fitted no ``ce`` (``--methods mfrw``) has nothing to compare
    with: its rows say "-" under "Δ vs ce" and "time / ce", not "nan"."""
    report, _ = accuracy
    mod = _accuracy_module()
    alone = json.loads(json.dumps(report))
    alone["runs"] = [r for r in alone["runs"] if r["method"] == "mfrw"]
    alone["settings"]["methods"] = ["mfrw"]
    alone["settings"]["peers"] = []
    mod.main(["--report", _write(tmp_path, "mfrw.json", alone)])
    out = capsys.readouterr().out
    rows = [x for x in out.splitlines() if x.startswith("| mfrw | library |")]
    assert rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "-" and cells[8] == "-", row
    assert "nan" not in out
    # with ce in the run the comparison is there, and ce's own is zero
    mod.main(["--report", _write(tmp_path, "all.json", report)])
    lines = capsys.readouterr().out.splitlines()
    ce_rows = [x for x in lines if x.startswith("| ce | library |")]
    assert ce_rows and all(x.split("|")[4].strip() == "+0.000" for x in ce_rows)


def test_accuracy_carried_entries_name_the_machine_they_ran_on(accuracy, tmp_path, capsys):
    """Entries carried over from another machine say so, with a word on fit times;
    entries from the same machine do not."""
    report, _ = accuracy
    mod = _accuracy_module()
    old = json.loads(json.dumps(report))
    old["machine"].update(git="0000000", processor="Old CPU")
    new = json.loads(json.dumps(report))
    new["runs"] = [r for r in new["runs"] if r["method"] == "mlc"]
    new["settings"].update(methods=["mlc"], peers=[])
    new["skipped"] = {}
    new["machine"]["processor"] = "New CPU"
    paths = [_write(tmp_path, "new.json", new), _write(tmp_path, "old.json", old)]
    merged = mod.main(["--report", paths[0], "--earlier", paths[1]])
    table = capsys.readouterr().out
    (carried,) = merged["settings"]["carried_over"]
    assert carried["processor"] == "Old CPU"
    assert "fitted on New CPU." in table
    assert "Carried over from the runs at 0000000 on Old CPU: " in table
    assert "Fit times from two machines" in table
    old["machine"]["processor"] = "New CPU"
    _write(tmp_path, "old.json", old)
    mod.main(["--report", paths[0], "--earlier", paths[1]])
    table = capsys.readouterr().out
    assert "Carried over from the runs at 0000000: " in table
    assert "Fit times from two machines" not in table


def _markdown_tables(text):
    """``{heading: rows}``: the rows of the first table under each markdown heading
    (fenced code blocks skipped: their ``#`` lines are shell comments)."""
    tables, heading, fenced = {}, None, False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            continue
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and heading is not None:
            tables.setdefault(heading, []).append(line)
        elif heading in tables:
            heading = None  # the table ended: later ones under it are not compared
    return tables


# README sections (from one "### " heading to the next) and the reference
# reports their accuracy tables were printed from
README_TABLE_SOURCES = {
    "Accuracy: every method and peer, three datasets, 3 seeds": ["accuracy.json"],
    "Every entry refitted at one commit (stop 37)": ["accuracy_refit_s37.json"],
    "Fresh splits: seeds 9-11 (stop 32)": ["accuracy_seeds9-11.json"],
    "Few trusted rows: three per class (stop 34)": [
        "accuracy_digits_3_per_class.json",
        "accuracy_mnist_mnist1d_3_per_class.json",
    ],
    "More trusted rows: 25 per class (stop 35)": ["accuracy_25_per_class.json"],
    "The contested cases on fresh splits: seeds 12-17 (stop 36)": [
        "accuracy_contested_seeds12-17.json"
    ],
    "`mnist1d` instance 0.4 on 30 seeds, with the learnable-noise check (stops 43-45)": [
        "accuracy_mnist1d_instance_30_seeds.json"
    ],
    "Imbalanced classes: the meta loss weighted to the labels' class shares (stop 46)": [
        "accuracy_imbalanced_0.7.json"
    ],
    "Two classes: `breast_cancer`, and parity tasks (stop 47)": ["accuracy_breast_cancer.json"],
    "More rows per epoch: `clusters100`, 100 classes (stop 49)": ["accuracy_clusters100.json"],
}


@pytest.mark.parametrize("section", sorted(README_TABLE_SOURCES))
def test_readme_accuracy_tables_are_the_reference_reports(section):
    """Each accuracy table that ``benchmarks/README.md`` shows is what ``--report``
    prints from the reference report named for it, figure for figure: the
    tables cannot drift from the JSON that the goals are read from."""
    readme = (BENCH / "README.md").read_text()
    start = readme.index(f"\n### {section}\n")
    end = readme.find("\n### ", start + 1)
    shown = _markdown_tables(readme[start : end if end > 0 else None])
    mod = _accuracy_module()
    compared = 0
    for name in README_TABLE_SOURCES[section]:
        report = json.loads((BENCH / "reference" / name).read_text())
        for heading, rows in _markdown_tables(mod.format_table(report)).items():
            per_dataset = ": test accuracy, mean over" in heading
            if per_dataset:  # every dataset's table is shown
                assert heading in shown, f"{section}: no table {heading!r} from {name}"
            if heading in shown:  # and the per-case tables where they are shown
                assert shown[heading] == rows, f"{section}: {heading!r} differs from {name}"
                compared += per_dataset
    assert compared  # at least one dataset's table was compared


def test_readme_label_dynamics_table_is_its_reports():
    """The table of the README's instance-noise section is what
    ``label_dynamics.py --report`` prints from the reports the section names."""
    section = "What the labels are at instance noise, and what the corrections do to them"
    readme = (BENCH / "README.md").read_text()
    start = readme.index(f"\n### {section} (stop 43)\n")
    end = readme.find("\n### ", start + 1)
    (shown,) = _markdown_tables(readme[start:end]).values()
    names = ["mnist1d", "mnist_digits", "mnist1d_methods"]
    runs = []
    for name in names:
        path = BENCH / "reference" / f"label_dynamics_{name}.json"
        assert f"(reference/{path.name})" in readme[start:end]
        runs += json.loads(path.read_text())["runs"]
    assert shown == _script_module("label_dynamics").table(runs).splitlines()


def test_top_readme_method_table_is_the_reference_report():
    """The table of ``README.md``'s "Which method to start with" (each library
    method's test accuracy per dataset, mean over the noise cases of the means
    over seeds) is computed from ``benchmarks/reference/accuracy.json``."""
    rows = _markdown_tables((ROOT / "README.md").read_text())["Which method to start with"]
    methods = [cell.strip(" `") for cell in rows[0].strip("|").split("|")[1:]]
    assert sorted(methods) == available_methods()
    names = {"digits": "digits", "MNIST (5000)": "mnist", "`mnist1d`": "mnist1d"}
    report = json.loads((BENCH / "reference" / "accuracy.json").read_text())
    per_case = {}
    for run in report["runs"]:
        key = (run["dataset"], run["method"], run["noise"], run["rate"])
        per_case.setdefault(key, []).append(run["test_accuracy"])
    shown = 0
    for line in rows[2:]:
        label, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        dataset = names[label]
        for method, cell in zip(methods, cells):
            means = [np.mean(v) for k, v in per_case.items() if k[:2] == (dataset, method)]
            assert len(means) == 7, (dataset, method)
            assert cell == f"{np.mean(means):.3f}", (dataset, method, cell)
            shown += 1
    assert shown == 3 * len(methods)


_SPEED_CELLS = {
    "s / epoch": lambda row: f"{row['epoch_time_s']:.3f}",
    "time / ce": lambda row: f"{row['ratio_vs_ce']:.2f}",
    "FLOPs / ce": lambda row: f"{row['flops_ratio_vs_ce']:.2f}",
    "samples / s": lambda row: f"{row['samples_per_s']:,.0f}",
    "peak host MB": lambda row: f"{row['peak_host_memory_mb']:,.0f}",
}
_TIME_FLOPS = ("s / epoch", "time / ce", "FLOPs / ce")


@pytest.mark.parametrize(
    "anchor, reports, methods",
    [
        # stop 37, runs 8 and 9: two reports side by side
        (
            "Stop 37 timed every method again",
            [("speed_s37_run1.json", _TIME_FLOPS), ("speed_s37_heavy.json", _TIME_FLOPS)],
            None,
        ),
        # stop 38, runs 10 and 11, and run 12 (the embeddings case)
        (
            "Stop 38 timed every method again",
            [("speed_s38_run1.json", _TIME_FLOPS), ("speed_s38_heavy.json", _TIME_FLOPS)],
            None,
        ),
        (
            "Run 12, the embeddings case",
            [("speed_s38_embeddings.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            None,
        ),
        # stop 39, after the denormal flush: run 13 (40%) and run 14 (embeddings)
        ("Stop 39 set denormal numbers to zero", [("speed_s39_run1.json", _TIME_FLOPS)], None),
        (
            "Run 14, the embeddings case again",
            [("speed_s39_embeddings.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            None,
        ),
        (
            "Run 15, `ce` and `mslg` on the embeddings case",
            [("speed_s39_embeddings_mslg.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            ("ce", "mslg"),
        ),
        # stop 40, mfrw without its second advisor pass: run 16 (40%), run 17 (embeddings)
        ("Stop 40 stopped `mfrw` from running", [("speed_s40_run1.json", _TIME_FLOPS)], None),
        ("Run 18, the 40% case again", [("speed_s40_run2.json", _TIME_FLOPS)], None),
        (
            "Run 19, the embeddings case for every method",
            [("speed_s40_embeddings.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            None,
        ),
        (
            "Run 20, the steady state",
            [("speed_s40_steady.json", _TIME_FLOPS)],
            ("ce", "mlc", "mslg", "mfrw"),
        ),
        # stop 41: run 21 (40%)
        ("Run 21, the 40% case at 0dac730", [("speed_s41_run1.json", _TIME_FLOPS)], None),
        # stop 42: runs 22 and 23 (40%), the README section's first table (the
        # runs above are in HISTORY.md since stop 43)
        (
            "Latest: runs 22 and 23",
            [("speed_s42_run1.json", _TIME_FLOPS), ("speed_s42_run2.json", _TIME_FLOPS[:2])],
            None,
        ),
        ("Run 24, heavy noise at a2a1bbf", [("speed_s42_heavy.json", _TIME_FLOPS)], None),
        (
            "Run 25, the embeddings case for every method at a2a1bbf",
            [("speed_s42_embeddings.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            None,
        ),
        # stop 48: runs 26-28 (40%, torch 2.1.0, 2.13.0, 2.14.1), runs 29-31 (2.13.0)
        (
            "Runs 26-28, the 40% case on three torch releases",
            [
                ("speed_s48_torch2.1.json", _TIME_FLOPS[:2]),
                ("speed_s48_torch2.13.json", _TIME_FLOPS[:2]),
                ("speed_s48_torch2.14.json", _TIME_FLOPS[:2]),
            ],
            None,
        ),
        (
            "Runs 29-31 on torch 2.13.0",
            [
                ("speed_s48_torch2.13_heavy.json", _TIME_FLOPS[:2]),
                ("speed_s48_torch2.13_heavy_solo.json", _TIME_FLOPS[:2]),
                ("speed_s48_torch2.13_solo.json", _TIME_FLOPS[:2]),
            ],
            None,
        ),
        (
            "Run 17, `ce` and `mfrw` on the embeddings case",
            [("speed_s40_embeddings_mfrw.json", (*_TIME_FLOPS, "samples / s", "peak host MB"))],
            ("ce", "mfrw"),
        ),
    ],
)
def test_readme_speed_tables_are_their_reports(anchor, reports, methods):
    """The speed tables of ``benchmarks/README.md`` (the latest runs) and of
    ``HISTORY.md`` (runs 1-21, moved there in stop 43) show what their reports
    hold, figure for figure (the first table after ``anchor``), a row for every
    method (or for ``methods``, where a run timed only those)."""
    readme = (BENCH / "README.md").read_text()
    if anchor not in readme:
        readme = (BENCH / "HISTORY.md").read_text()
    start = readme.index(anchor)
    rows = []
    for line in readme[start:].splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    loaded = [
        (json.loads((BENCH / "reference" / name).read_text())["timings"], columns)
        for name, columns in reports
    ]
    for line in rows[2:]:
        method, *cells = (cell.strip().strip("*") for cell in line.strip("|").split("|"))
        expected = []
        for timings, columns in loaded:
            (row,) = [t for t in timings if t["method"] == method]
            expected += [_SPEED_CELLS[column](row) for column in columns]
        assert cells == expected, method
    shown = [line.strip("|").split("|")[0].strip().strip("*") for line in rows[2:]]
    assert shown == list(methods or available_methods())
