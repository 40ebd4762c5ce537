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
