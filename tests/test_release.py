"""The release rule of `corefix package-model`: a released model is replaced only by one better on every test set
it was scored on, span F1 on damaged sets and the share of articles flagged on clean ones."""
import json

import pytest

from corefix.model.release import NotBetter, check_better, test_scores as read_test_scores


def _metrics(folder, name, f1, support, clean_rate=0.0, clean_articles=0):
    spans = {"micro": {"precision": f1, "recall": f1, "f1": f1, "f0.5": f1, "support": support}}
    model = {"spans": spans, "words": {"f1": f1}, "first_mention_flag_rate": 0.0, "wer": 0.1,
             "clean_flag_rate": clean_rate, "clean_articles": clean_articles}
    out = folder / name
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"data": f"data/{name}.jsonl", "articles": 10, "model": model,
                                                  "input": {"wer": 0.2}, "oracle": {"wer": 0.0}}))


def test_scores_are_read_from_several_folders_and_a_clean_set_records_its_flagged_share(tmp_path):
    _metrics(tmp_path / "eval", "seed-test", 0.9, 100, clean_rate=0.5, clean_articles=2)  # a few clean among damaged
    _metrics(tmp_path / "families", "clean-test", 0.0, 0, clean_rate=0.57, clean_articles=100)
    scores = read_test_scores([tmp_path / "eval", tmp_path / "families"])
    assert set(scores) == {"seed-test", "clean-test"}
    assert scores["clean-test"]["clean_articles_flagged"] == 0.57
    assert "clean_articles_flagged" not in scores["seed-test"]  # judged by span F1 there
    assert read_test_scores(tmp_path / "eval").keys() == {"seed-test"}  # one folder, as before
    _metrics(tmp_path / "again", "seed-test", 0.8, 100)
    with pytest.raises(ValueError, match="two evaluations of the test set 'seed-test'"):
        read_test_scores([tmp_path / "eval", tmp_path / "again"])


def test_a_model_must_be_better_on_every_set_clean_ones_included():
    old = {"seed": {"span_f1": 0.90}, "clean": {"span_f1": 0.0, "clean_articles_flagged": 0.57}}
    check_better({"seed": {"span_f1": 0.91}, "clean": {"span_f1": 0.0, "clean_articles_flagged": 0.50}}, old)
    check_better({"seed": {"span_f1": 0.91}, "clean": {"span_f1": 0.0, "clean_articles_flagged": 0.57}}, old)
    with pytest.raises(NotBetter, match="clean: clean articles flagged 0.67 against 0.57"):
        check_better({"seed": {"span_f1": 0.91}, "clean": {"span_f1": 0.0, "clean_articles_flagged": 0.67}}, old)
    with pytest.raises(NotBetter, match="seed: span F1 0.9000 against 0.9000"):
        check_better({"seed": {"span_f1": 0.90}, "clean": {"span_f1": 0.0, "clean_articles_flagged": 0.5}}, old)
    with pytest.raises(NotBetter, match="clean: not evaluated"):
        check_better({"seed": {"span_f1": 0.95}}, old)
    check_better({"anything": {"span_f1": 0.1}}, {})  # nothing released yet: nothing to beat


def test_a_set_scored_on_other_articles_is_not_compared():
    old = {"clean": {"articles": 100, "span_f1": 0.0, "clean_articles_flagged": 0.79}}
    with pytest.raises(NotBetter, match="clean: scored on 689 articles against 100"):
        check_better({"clean": {"articles": 689, "span_f1": 0.0, "clean_articles_flagged": 0.10}}, old)
    check_better({"clean": {"articles": 100, "span_f1": 0.0, "clean_articles_flagged": 0.78}}, old)


def test_next_stage_carries_on_only_the_shipped_model():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = lambda *a: subprocess.run(["bash", "scripts/next_stage.sh", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    usage = run()
    assert usage.returncode == 64 and "next_stage.sh CONFIG RUN" in usage.stderr
    other = run("configs/clean-resolvers-finetune.yaml", "runs/nothing")  # stage 9 began from runs/wide3-soup/best
    assert other.returncode == 64 and "model is runs/wide3-soup/best" in other.stderr
    assert not (root / "runs" / "nothing").exists()


def _release_steps(call: str, **env: str) -> list[str]:
    """The commands scripts/release_steps.sh's ``call`` runs, each printed by a stubbed ``python`` (nothing runs),
    in an environment holding only PATH and ``env``."""
    import subprocess
    from pathlib import Path

    script = f'python() {{ echo "python $*"; }}; source scripts/release_steps.sh; {call}'
    return subprocess.run(["bash", "-c", script], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **env}, check=True).stdout.splitlines()


def test_finish_passes_the_preferred_threshold_to_calibration_only_when_set():
    """scripts/release_steps.sh's ``finish`` (every stage's finishing): ``PREFER_THRESHOLD=T`` adds
    ``--prefer-threshold T`` to its first calibration and nothing else; unset, the commands are as before."""
    plain, preferred = _release_steps("finish runs/x/best"), _release_steps("finish runs/x/best", PREFER_THRESHOLD="0.7")
    assert plain[0] == "python scripts/calibrate.py --model runs/x/best --limit 800"
    assert preferred[0] == plain[0] + " --prefer-threshold 0.7"
    assert preferred[1:] == plain[1:] and len(plain) == 4 and not any("prefer" in c for c in plain)


def test_carry_on_resumes_a_stage_stopped_while_finishing(tmp_path):
    """scripts/release_steps.sh's ``carry_on``, run again: trains, averages and finishes from nothing; only
    finishes an average whose finishing was stopped (no span heads yet: an unfinished model is never evaluated as
    finished); does nothing once the span heads, finishing's last step, are written."""
    average = tmp_path / "soup" / "best"
    steps = lambda: [c.split()[1] for c in _release_steps(f"carry_on {tmp_path}/ft shipped {average} configs/x.yaml")]  # noqa: E731
    finishing = ["scripts/calibrate.py", "-c", "scripts/calibrate.py", "scripts/fit_heads.py"]
    assert steps() == ["scripts/train.py", "scripts/average.py", *finishing]  # nothing there yet
    average.mkdir(parents=True)
    (average / "model.safetensors").write_bytes(b"")  # averaged, stopped while finishing
    assert steps() == finishing
    (average / "heads.safetensors").write_bytes(b"")  # finished
    assert steps() == []


def test_soup_averages_then_finishes_and_resumes(tmp_path):
    """scripts/release_steps.sh's ``soup`` (a stage that trains nothing, scripts/soup_stage.sh): averages every
    model given into AVERAGE and finishes it; run again, only finishes an unfinished average; then nothing."""
    average = tmp_path / "soup" / "best"
    calls = lambda: _release_steps(f"soup {average} a/best b/best c")  # noqa: E731
    first = calls()
    assert first[0] == f"python scripts/average.py --models a/best b/best c --out {average}"
    assert [c.split()[1] for c in first[1:]] == ["scripts/calibrate.py", "-c", "scripts/calibrate.py",
                                                  "scripts/fit_heads.py"]
    average.mkdir(parents=True)
    (average / "model.safetensors").write_bytes(b"")
    assert calls() == first[1:]
    (average / "heads.safetensors").write_bytes(b"")
    assert calls() == []


def test_mean_averages_without_finishing_and_only_once(tmp_path):
    """scripts/release_steps.sh's ``mean`` (an average that only goes into another, scripts/make_default_model.sh's
    stages 10-13): averages, never calibrates or fits heads, and skips an AVERAGE that holds a model."""
    average = tmp_path / "wide6-soup" / "best"
    calls = lambda: _release_steps(f"mean {average} runs/wide6-ft/best runs/wide3-soup/packed")  # noqa: E731
    assert calls() == [f"python scripts/average.py --models runs/wide6-ft/best runs/wide3-soup/packed --out {average}"]
    average.mkdir(parents=True)
    (average / "model.safetensors").write_bytes(b"")
    assert calls() == []


def test_offer_release_evaluates_then_asks_package_model_with_the_command():
    calls = _release_steps('offer_release runs/r "bash scripts/soup_stage.sh runs/r a b" --config c.yaml')
    assert [c.split()[1] for c in calls[:-1]] == ["scripts/package_model.py"] + ["scripts/evaluate.py"] * 5
    assert calls[-1] == ("python scripts/package_model.py --model runs/r/best --out src/corefix/default_model "
                         "--eval runs/r/eval runs/r/eval-insert runs/r/eval-families runs/r/eval-clean "
                         "runs/r/eval-independent --config c.yaml --command bash scripts/soup_stage.sh runs/r a b")


def test_soup_stage_refuses_what_is_not_a_trained_model(tmp_path):
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = lambda *a: subprocess.run(["bash", "scripts/soup_stage.sh", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    usage = run(str(tmp_path / "r"), "one-model")
    assert usage.returncode == 64 and "soup_stage.sh RUN MODEL MODEL" in usage.stderr
    missing = run(str(tmp_path / "r"), str(tmp_path), str(tmp_path))
    assert missing.returncode == 66 and "not a trained corefix model" in missing.stderr
    assert not (tmp_path / "r").exists()
