import json

from sklearn_noisy import demo


def test_demo_prints_a_comparison(tmp_path, capsys):
    out = tmp_path / "r.json"
    demo.main(["--methods", "ce,glc", "--epochs", "15", "--noise", "pair", "--json", str(out)])
    printed = capsys.readouterr()
    assert "| ce |" in printed.out and "| glc |" in printed.out
    assert "fitting glc" in printed.err  # progress goes to stderr
    report = json.loads(out.read_text())
    res = {r["method"]: r for r in report["results"]}
    assert res["ce"]["time_vs_ce"] == 1.0
    # with 40% pair noise glc corrects labels that ce keeps wrong
    assert res["glc"]["corrected_label_accuracy"] > res["ce"]["corrected_label_accuracy"]
    assert res["glc"]["corrected_label_accuracy"] > report["noisy_label_accuracy"]


def test_demo_early_stopping_flag(tmp_path, capsys):
    """``--early-stopping`` reaches the fits: ce at 60% symmetric noise stops and does better."""
    args = ["--methods", "ce", "--rate", "0.6"]  # 50 epochs: plain ce memorises
    plain = demo.main(args)
    stopped = demo.main([*args, "--early-stopping"])
    table = capsys.readouterr().out
    assert "early stopping" in table and "(best " in table
    (p,), (s,) = plain["results"], stopped["results"]
    assert p["epochs"] == 50 and p["best_epoch"] is None
    assert s["best_epoch"] < s["epochs"] < 50
    assert s["test_accuracy"] > p["test_accuracy"] + 0.05
