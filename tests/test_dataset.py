import dataclasses
import json

import pytest

from corefix.cli import main
from corefix.config import read_yaml
from corefix.data.corpus import Article
from corefix.data.dataset import REAL_ARTICLE, build_dataset, damage_stats, format_stats
from corefix.data.parses import ParseCache
from corefix.data.records import SPLITS, read_jsonl, split_of
from corefix.data.settings import SimulatorSettings
from corefix.data.simulate import DATELINES, undo

from .conftest import BBC


def test_split_is_stable_and_roughly_80_10_10():
    ids = [f"art-{i}" for i in range(3000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in SPLITS}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["validation"] < 0.13 and 0.07 < share["test"] < 0.13


def test_build_writes_disjoint_splits(tmp_path, simulator, articles):
    arts = [Article(f"{i}-{a}", t) for i in range(8) for a, t in articles]
    counts = build_dataset(arts, tmp_path, simulator, samples_per_article=2, progress=False)
    assert sum(counts.values()) == 2 * len(arts)
    seen = {}
    for s in SPLITS:
        for r in read_jsonl(tmp_path / f"{s}.jsonl"):
            base = r["id"].split("#")[0]
            assert seen.setdefault(base, s) == s, "an article is in two splits"
            assert undo(r["text"], r["spans"]) == r["original"]
            assert set(r) >= {"id", "original", "text", "spans", "words", "tags"}
    assert json.loads((tmp_path / "simulate.json").read_text())["seed"] == simulator.settings.seed


def test_stats_measure_the_table(tmp_path):
    rec = {"text": "a b X Y c\n Z", "original": "a b d c", "spans": [
        {"start": 4, "end": 7, "label": "DUP", "overwritten": "d", "restore": ""},
        {"start": 9, "end": 12, "label": "DUP", "overwritten": "", "restore": ""}]}
    st = damage_stats([rec])
    assert st["spans per 100 words"] == pytest.approx(100 * 2 / 6)
    assert st["inserted words %"] == pytest.approx(100 * 3 / 6)
    assert st["DUP share of spans %"] == 100
    assert st["mean span length (words)"] == 1.5
    assert st["overflow tail mentions per tailed article"] == 1
    table = format_stats({"test": st})
    assert "real article" in table and f"{REAL_ARTICLE['spans per 100 words']:.2f}" in table


def test_settings_yaml_and_unknown_keys(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("simulate:\n  seed: 5\n  profiles:\n    seed:\n      drift: {max: 2}\n")
    s = SimulatorSettings.from_yaml(f)
    assert s.seed == 5 and s.profiles["seed"].drift.max == 2 and s.profiles["seed"].drift.punct > 0
    f.write_text("simulate:\n  profiles:\n    seed:\n      drift: {maxx: 2}\n")
    with pytest.raises(ValueError, match="drift.maxx"):
        SimulatorSettings.from_yaml(f)
    with pytest.raises(ValueError, match="unknown profile"):
        SimulatorSettings.from_dict({"mixture": {"nope": 1.0}})


def test_a_config_with_a_base_lays_its_settings_over_the_bases(tmp_path):
    (tmp_path / "a.yaml").write_text("simulate:\n  seed: 5\n  mixture: {seed: 0.5, resolvers: 0.5}\n"
                                     "  ranges:\n    random:\n      drift.max: [1, 8]\n      drift.left: [0.0, 0.3]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nsimulate:\n  mixture: {seed: 1.0, resolvers: 0.0}\n"
                                             "  ranges:\n    random:\n      drift.left: [0.0, 1.0]\n")
    assert read_yaml(tmp_path / "sub" / "b.yaml") == {"simulate": {
        "seed": 5, "mixture": {"seed": 1.0, "resolvers": 0.0},
        "ranges": {"random": {"drift.max": [1, 8], "drift.left": [0.0, 1.0]}}}}  # lists replace, maps merge
    s = SimulatorSettings.from_yaml(tmp_path / "sub" / "b.yaml")
    assert s.seed == 5 and s.mixture == {"seed": 1.0, "resolvers": 0.0}
    assert s.ranges["random"] == {"drift.max": [1, 8], "drift.left": [0.0, 1.0]}
    (tmp_path / "d.yaml").write_text("base: sub/b.yaml\nsimulate:\n  ranges:\n    random:\n      drift.max+: [10]\n")
    assert read_yaml(tmp_path / "d.yaml")["simulate"]["ranges"]["random"]["drift.max"] == [1, 8, 10]  # KEY+ appends
    (tmp_path / "e.yaml").write_text("base: a.yaml\nsimulate:\n  seed+: [6]\n")
    with pytest.raises(ValueError, match=r"seed\+ appends a list to the base's list seed"):
        read_yaml(tmp_path / "e.yaml")
    (tmp_path / "f.yaml").write_text("base: a.yaml\nsimulate:\n  mixture-: [resolvers]\n  mixture: {seed: 0.9, clean: 0.1}\n")
    assert list(read_yaml(tmp_path / "f.yaml")["simulate"]["mixture"].items()) == [("seed", 0.9), ("clean", 0.1)]
    (tmp_path / "g.yaml").write_text("base: a.yaml\nsimulate:\n  mixture-: [resolver]\n")  # a misspelt name
    with pytest.raises(ValueError, match=r"mixture-: removes keys that the base's mapping mixture has"):
        read_yaml(tmp_path / "g.yaml")
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="leads back to itself"):
        read_yaml(tmp_path / "loop.yaml")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    with pytest.raises(ValueError, match="not found"):
        read_yaml(tmp_path / "c.yaml")


def test_the_wide_configs_are_their_bases_with_what_they_name_changed():
    from pathlib import Path

    from corefix.model.train import TrainConfig

    configs = Path(__file__).resolve().parents[1] / "configs"
    wide, random = (SimulatorSettings.from_yaml(configs / n).to_dict() for n in ("simulate-wide.yaml", "simulate-random.yaml"))
    changed = {k for k in wide["ranges"]["random"] if wide["ranges"]["random"][k] != random["ranges"]["random"][k]}
    assert changed == {"drift.left", "drift.max", "representative.last_word"}
    assert wide["profiles"] == random["profiles"] and wide["seed"] != random["seed"]
    loo = read_yaml(configs / "simulate-random-loo.yaml")["simulate"]  # the random mixture less three families
    assert loo["mixture"] == {"seed": 0.35, "random": 0.6, "clean": 0.05} and "resolvers" not in loo["profiles"]
    assert loo["ranges"]["random"]["drift.max"] == [1, 8] and loo["ranges"]["random"]["drift.left"] == [0.0, 0.0]
    stage = lambda name: dataclasses.asdict(TrainConfig.from_yaml(configs / name))  # noqa: E731
    # each stage: its config, the stage it carries on, the data it adds, the settings it changes
    always = {"data_dir", "run_dir", "seed"}  # every stage adds data and has its own run directory and seed
    stages = [("wide-finetune.yaml", "two-generators-clean-finetune.yaml", ["data/bbc-wide", "data/us-wide"], always),
              ("wide-resolvers-finetune.yaml", "wide-finetune.yaml", ["data/bbc-resolvers-labelled"], always | {"model"}),
              ("wide-us-resolvers-finetune.yaml", "wide-resolvers-finetune.yaml", ["data/us-resolvers-labelled"],
               always | {"model"}),
              ("bbc-resolvers-second-finetune.yaml", "wide-us-resolvers-finetune.yaml",
               ["data/bbc-resolvers-labelled-2"], always | {"model"}),
              ("clean-resolvers-finetune.yaml", "bbc-resolvers-second-finetune.yaml",
               ["data/bbc-clean-train-2", "data/us-clean-train-2"], always),
              ("insert-clean-resolvers-finetune.yaml", "clean-resolvers-finetune.yaml", ["data/bbc-insert-labelled"],
               always | {"model"}),
              ("insert-clean-resolvers-finetune-2.yaml", "insert-clean-resolvers-finetune.yaml", [], {"run_dir", "seed"})]
    for name, base_name, added, keys in stages:
        new, base = stage(name), stage(base_name)
        assert {k for k in base if base[k] != new[k]} == keys, name
        assert new["data_dir"] == [*base["data_dir"], *added], name
    # stages 8 and 9 both carry on stage 7's average, the shipped model
    assert stage("bbc-resolvers-second-finetune.yaml")["model"] == "runs/wide3-soup/best"
    assert stage("clean-resolvers-finetune.yaml")["model"] == "runs/wide3-soup/best"
    # stage 10 carries on the shipped model as packed in corefix (scripts/next_stage.sh, on a machine with no runs/)
    assert stage("insert-clean-resolvers-finetune.yaml")["model"] == "default"
    assert stage("insert-clean-resolvers-finetune-2.yaml")["model"] == "default"  # stage 11: stage 10, a new seed


def test_default_config_file_matches_builtin_defaults():
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[1] / "configs" / "simulate.yaml"
    assert SimulatorSettings.from_yaml(cfg).to_dict() == SimulatorSettings().to_dict()


@pytest.mark.skipif(not BBC.exists(), reason="shared BBC corpus not present")
def test_cli_builds_dataset_from_first_50_bbc_articles(tmp_path, capsys):
    main(["make-dataset", "--corpus", str(BBC), "--out", str(tmp_path), "--limit", "50"])
    out = capsys.readouterr().out
    counts = json.loads(out.splitlines()[0])
    assert sum(counts.values()) == 50 and counts["train"] > 30
    records = [r for s in SPLITS for r in read_jsonl(tmp_path / f"{s}.jsonl")]
    for r in records:
        assert undo(r["text"], r["spans"]) == r["original"]
    st = damage_stats(records)
    assert 2.0 < st["spans per 100 words"] < 7.0
    main(["make-dataset", "--stats", str(tmp_path)])
    assert "spans per 100 words" in capsys.readouterr().out


def test_building_only_the_test_split_damages_exactly_its_articles(tmp_path, simulator, articles):
    arts = [Article(f"{i}-{a}", t) for i in range(20) for a, t in articles]
    counts = build_dataset(arts, tmp_path, simulator, progress=False, splits=("test",))
    assert set(counts) == {"test"} and not (tmp_path / "train.jsonl").exists()
    ids = [r["id"] for r in read_jsonl(tmp_path / "test.jsonl")]
    assert ids == [a.id for a in arts if split_of(a.id) == "test"] and ids


def test_a_parse_cache_gives_the_same_records_and_parses_each_text_once(tmp_path, simulator, articles):
    arts = [Article(f"{i}-{a}", t) for i in range(8) for a, t in articles]  # 24 articles, 3 distinct texts

    def build(out, cache=None):
        build_dataset(arts, tmp_path / out, simulator, samples_per_article=2, progress=False, parse_cache=cache)
        return {s: (tmp_path / out / f"{s}.jsonl").read_text(encoding="utf-8") for s in SPLITS}

    plain = build("plain")
    originals = [r["original"] for s in SPLITS for r in read_jsonl(tmp_path / "plain" / f"{s}.jsonl")]
    assert any(o.startswith(tuple(DATELINES)) for o in originals)  # the dateline path joins a parse to another
    cache = tmp_path / "parses"
    assert build("cold", cache) == plain
    kept = sorted(cache.rglob("*.doc"))
    assert len(kept) == len(articles)  # one file per distinct text
    parses = ParseCache(cache, simulator.nlp)
    assert len(list(parses.pipe(a.text for a in arts))) == len(arts) and (parses.hits, parses.misses) == (24, 0)
    assert build("warm", cache) == plain
    kept[0].write_bytes(b"not a parse")  # a damaged file is parsed again and rewritten
    assert build("mended", cache) == plain
    list(parses.pipe(a.text for a in arts))
    assert (parses.hits, parses.misses) == (24, 0)
    assert not list(cache.rglob("*.tmp"))


def _external(tmp_path, records, name="external.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_damage_made_by_other_code_gets_words_tags_and_splits(tmp_path, capsys):
    # what an independent generator writes: text, original and character spans, nothing else
    text = "Ana sold Ana car to Ben. Ben Ana paid."
    rec = {"original": "Ana sold her car to Ben. Ben paid.", "text": text,
           "spans": [{"start": 29, "end": 32, "label": "DUP"}, {"start": 9, "end": 12, "label": "SUB"}]}
    ids = [f"ext-{i}" for i in range(40)]
    path = _external(tmp_path, [{"id": i, **rec} for i in ids])
    (got,) = read_jsonl(_external(tmp_path, [{"id": "x", **rec}], "one.jsonl"))
    assert got["words"] == ["Ana", "sold", "Ana", "car", "to", "Ben", ".", "Ben", "Ana", "paid", "."]
    assert got["tags"] == ["O", "O", "B-SUB", "O", "O", "O", "O", "O", "B-DUP", "O", "O"]
    assert [s["start"] for s in got["spans"]] == [9, 29] and all(s["overwritten"] == "" for s in got["spans"])

    main(["make-dataset", "--labelled", str(path), "--out", str(tmp_path / "ext"), "--profile", "gen_x"])
    for split in SPLITS:
        written = read_jsonl(tmp_path / "ext" / f"{split}.jsonl")
        assert sorted(r["id"] for r in written) == sorted(i for i in ids if split_of(i) == split)
        assert all(r["profile"] == "gen_x" and r["tags"][8] == "B-DUP" for r in written)
    assert "spans per 100 words" in capsys.readouterr().out


@pytest.mark.parametrize("span, message", [
    ({"start": 12, "end": 99, "label": "DUP"}, "not a stretch of the text (17 characters)"),
    ({"start": 2, "end": 5, "label": "DUP"}, "overlaps"),
    ({"start": 9, "end": 12, "label": "COPY"}, "not one of SUB, DUP"),
    ({"start": 9, "label": "DUP"}, "span 9-None is not a stretch of the text"),
])
def test_bad_labelled_damage_is_a_one_line_error(tmp_path, capsys, span, message):
    rec = {"id": "a", "original": "Ana sold her car.", "text": "Ana sold Ana car.",
           "spans": [{"start": 0, "end": 3, "label": "SUB"}, span]}
    with pytest.raises(SystemExit) as exit_:
        main(["make-dataset", "--labelled", str(_external(tmp_path, [rec])), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "external.jsonl:1" in err


def test_a_profile_without_labelled_records_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["make-dataset", "--corpus", "x.jsonl", "--out", str(tmp_path), "--profile", "mine"])
    assert exit_.value.code == 2 and "--profile names the damage of --labelled" in capsys.readouterr().err
