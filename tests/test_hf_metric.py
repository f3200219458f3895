"""corefix's scores load as a Hugging Face evaluate metric, offline, and agree with corefix evaluate."""
import evaluate

from corefix.hf_metric import METRIC_PATH
from corefix.model.evaluate import score_system


def test_metric_loads_offline_and_gives_corefix_scores(simulator, articles):
    records = [simulator.damage(a, t, sample=k).to_record() for a, t in articles for k in range(3)]
    pred = [["O"] * len(r["tags"]) for r in records]
    pred[0] = records[0]["tags"]  # one article right, the rest missed
    metric = evaluate.load(str(METRIC_PATH))
    got = metric.compute(predictions=pred, references=[r["tags"] for r in records])
    want = score_system(records, pred)
    assert got["spans"] == want["spans"] and got["words"] == want["words"]
    assert 0 < got["spans"]["micro"]["recall"] < 1 and got["spans"]["micro"]["precision"] == 1.0
