"""Randomised damage (issue #22): knobs drawn per article, new damage families, clean articles."""

import random
import statistics
from pathlib import Path

import pytest

from corefix.data.dataset import damage_stats
from corefix.data.mentions import find_clusters
from corefix.data.settings import MentionSettings, SimulatorSettings, draw_profile, range_covers, seed_profile
from corefix.data.simulate import Simulator

from .test_simulate import CORRUPTION_STYLE, check_record

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _sim(simulator, **data):
    return Simulator(SimulatorSettings.from_dict(data), nlp=simulator.nlp)


def _forced(simulator, **profile):
    base = {"tail": {"prob": 0.0}, "surface": {"dateline": 0.0}, "replace": {"pronoun": 1.0, "name": 1.0}}
    for key, value in profile.items():
        base[key] = {**base.get(key, {}), **value}
    return _sim(simulator, profiles={"seed": base})


def test_ranges_draw_each_article_its_own_knobs_inside_the_ranges():
    settings = SimulatorSettings.from_dict({"ranges": {"random": {"drift.max": [1, 8], "variants.insert": [0.1, 0.4],
                                                                  "drift.enabled": 0.5}}})
    base = settings.profiles["random"]
    drawn = [draw_profile(base, settings.ranges["random"], random.Random(k)) for k in range(200)]
    maxes = [p.drift.max for p in drawn]
    inserts = [p.variants.insert for p in drawn]
    assert set(maxes) == set(range(1, 9))
    assert all(0.1 <= v <= 0.4 for v in inserts) and statistics.pstdev(inserts) > 0.05
    assert 60 < sum(p.drift.enabled for p in drawn) < 140
    assert base.drift.max == 4  # the base profile is not changed by drawing


@pytest.mark.parametrize("ranges, message", [
    ({"drift.nope": [0, 1]}, "unknown knob"),
    ({"drift": [0, 1]}, "unknown knob"),
    ({"drift.max": [5, 1]}, "low <= high"),
    ({"variants.insert": [0.2, 1.5]}, "rate lies in"),
    ({"drift.enabled": [0.1, 0.2]}, "one chance"),
    ({"drift.max": ["a", "b"]}, "expected numbers"),
])
def test_bad_ranges_get_a_one_line_error(ranges, message):
    with pytest.raises(ValueError, match=message):
        SimulatorSettings.from_dict({"ranges": {"random": ranges}})


def test_the_seed_profile_lies_inside_the_shipped_ranges():
    for name in ("simulate-random.yaml", "simulate-random-loo.yaml", "simulate-wide.yaml"):
        settings = SimulatorSettings.from_yaml(CONFIGS / name)
        assert range_covers(settings.ranges["random"], seed_profile()) == [], name
    # and the check can fail: a range that leaves the seed's drift out is named
    assert range_covers({"drift.max": [5, 8]}, seed_profile()) == ["drift.max=4 outside [5, 8]"]


def test_the_seeds_measured_rates_lie_inside_what_the_ranges_produce(simulator):
    """Per article, the damage rates of the seed profile fall inside the spread of the random profile's."""
    random_sim = Simulator(SimulatorSettings.from_yaml(CONFIGS / "simulate-random.yaml"), nlp=simulator.nlp)
    random_sim.settings.mixture = {"random": 1.0}
    seed_sim = Simulator(SimulatorSettings.from_yaml(CONFIGS / "simulate.yaml"), nlp=simulator.nlp)
    doc = simulator.nlp(CORRUPTION_STYLE)
    keys = ["spans per 100 words", "inserted words %", "DUP share of spans %"]
    rand = [damage_stats([random_sim.damage("x", CORRUPTION_STYLE, sample=k, doc=doc).to_record()]) for k in range(40)]
    seed = [damage_stats([seed_sim.damage("x", CORRUPTION_STYLE, sample=k, doc=doc).to_record()]) for k in range(10)]
    for key in keys:
        low, high = min(r[key] for r in rand), max(r[key] for r in rand)
        assert high > low, key  # the ranges do vary the damage
        assert low <= statistics.median(s[key] for s in seed) <= high, key


def test_clean_articles_are_left_untouched_but_keep_their_surface_style(simulator):
    sim = _sim(simulator, mixture={"clean": 1.0}, profiles={"clean": {"surface": {"dateline": 1.0}}})
    for k in range(5):
        d = sim.damage("c", CORRUPTION_STYLE, sample=k)
        assert d.spans == [] and d.text == d.original and d.profile == "clean"
        assert "  —  " in d.text or " — " in d.text  # the surface style still applies


def test_inserted_copies_overwrite_nothing(simulator):
    sim = _forced(simulator, drift={"punct": 1.0, "max": 3}, variants={"insert": 1.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    inserted = [s for s in d.spans if s["label"] == "DUP" and s["drift"]]
    assert inserted and all(s["overwritten"] == "" for s in inserted)
    # every word of the original is still in the damaged text, in order: nothing was overwritten
    words = iter(d.text.split())
    assert all(w in words for w in d.original.split())


def test_left_drift_puts_copies_before_their_mention(simulator):
    sim = _forced(simulator, drift={"punct": 1.0, "max": 3, "left": 1.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    drifts = [s["drift"] for s in d.spans if s["label"] == "DUP" and s["drift"] is not None]
    assert drifts and all(x < 0 for x in drifts)


def test_one_word_and_title_representatives(simulator):
    sim = _forced(simulator, drift={"enabled": False},
                  representative={"longest": 0.0, "shortest": 0.0, "last_word": 1.0, "overlong": 0.0, "swallow_dateline": 0.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    inserted = [d.text[s["start"]:s["end"]] for s in d.spans]
    assert "Okafor" in inserted and all(len(t.split()) == 1 for t in inserted if t in ("Okafor", "Lopez"))
    assert "Mr. Okafor" not in inserted
    sim = _forced(simulator, drift={"enabled": False},
                  representative={"longest": 0.0, "shortest": 0.0, "title_alone": 1.0, "overlong": 0.0, "swallow_dateline": 0.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    assert {"President", "Mr."} & {d.text[s["start"]:s["end"]] for s in d.spans}


def test_possessive_representative_and_recasing(simulator):
    sim = _forced(simulator, drift={"enabled": False}, representative={"possessive": 1.0, "overlong": 0.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    assert d.spans and all(d.text[s["start"]:s["end"]].endswith(("'s", "'")) for s in d.spans)
    sim = _forced(simulator, drift={"enabled": False}, variants={"recase": 1.0})
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    for s in d.spans:  # a copy that opens a sentence is capitalised
        before = d.text[:s["start"]].rstrip()
        if before.endswith("."):
            assert d.text[s["start"]].isupper() or not d.text[s["start"]].isalpha()


def test_mention_finder_knobs(simulator):
    doc = simulator.nlp(CORRUPTION_STYLE)
    default = find_clusters(doc)
    texts = {m.text for c in default for m in c.mentions}
    assert "Mr. Okafor" in texts and any(m.kind == "nominal" for c in default for m in c.mentions)
    no_titles = find_clusters(doc, MentionSettings(titles=0.0, nominals=0.0))
    texts = {m.text for c in no_titles for m in c.mentions}
    assert "Mr. Okafor" not in texts and "Okafor" in texts
    assert not any(m.kind == "nominal" for c in no_titles for m in c.mentions)
    exact = find_clusters(doc, MentionSettings(exact_names=1.0))
    assert len(exact) > len(default)  # "President Kwame K. Okafor" and "Okafor" no longer one cluster
    salient = find_clusters(doc, MentionSettings(salient=1.0), random.Random(0))
    pron = lambda cls: {(m.start, id(c)) for c in cls for m in c.mentions if m.kind == "pronoun"}
    assert len(pron(salient)) >= 1


def test_random_mixture_round_trips_and_is_deterministic(simulator, articles):
    settings = SimulatorSettings.from_yaml(CONFIGS / "simulate-random.yaml")
    a, b = Simulator(settings, nlp=simulator.nlp), Simulator(settings, nlp=simulator.nlp)
    profiles = set()
    for art_id, text in articles:
        for k in range(12):
            d = a.damage(art_id, text, sample=k)
            check_record(d)
            profiles.add(d.profile)
            assert b.damage(art_id, text, sample=k).text == d.text
    assert {"seed", "random"} <= profiles
