"""Cross-fitted dev scores of choices made on dev (zhcls.eval.selection), and the models that report them."""

from __future__ import annotations

import numpy as np

from conftest import make_corpus
from zhcls.config import TrainingConfig
from zhcls.eval.metrics import score_predictions
from zhcls.eval.selection import cross_fitted_choice, dev_folds, paired_lead
from zhcls.models.base import build_model, load_model


def test_picking_the_best_of_many_noise_settings_is_not_credited():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    preds = rng.integers(0, 2, size=(60, 200))  # 60 settings, every one a coin toss
    best_of_60 = max(score_predictions(p, y, "accuracy") for p in preds)
    honest = cross_fitted_choice(preds, y, "accuracy", seed=1)
    assert best_of_60 >= 0.575  # the maximum looks like skill
    assert abs(honest["accuracy"] - 0.5) < 0.03


def test_a_setting_best_everywhere_keeps_its_score():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=200)
    good = np.where(rng.random(200) < 0.9, y, (y + 1) % 3)
    preds = np.stack([rng.integers(0, 3, size=200), good, (good + 1) % 3])
    honest = cross_fitted_choice(preds, y, "macro_f1", seed=0)
    assert honest["chosen"] == [1] * 5
    assert honest["accuracy"] == round(score_predictions(good, y, "accuracy"), 6)
    assert honest["macro_f1"] == round(score_predictions(good, y, "macro_f1"), 6)


def test_each_fold_is_scored_by_the_choice_of_the_other_folds_first_best_on_ties():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=60)
    preds = rng.integers(0, 2, size=(6, 60))
    preds[4] = preds[2]  # a tie: the earlier setting wins, as it does in the models
    honest = cross_fitted_choice(preds, y, "accuracy", folds=5, seed=3)
    expect = np.empty(60, dtype=preds.dtype)
    for (fit_rows, score_rows), chosen in zip(dev_folds(y, 5, 3), honest["chosen"]):
        scores = [(p[fit_rows] == y[fit_rows]).mean() for p in preds]
        assert chosen == scores.index(max(scores)) and chosen != 4
        expect[score_rows] = preds[chosen, score_rows]
    assert honest["accuracy"] == round(float((expect == y).mean()), 6)


def test_nothing_to_correct_without_a_choice_or_rows():
    y = np.array([0, 1, 0, 1, 0, 1])
    assert cross_fitted_choice(np.array([[0, 1, 0, 1, 0, 1]]), y, "accuracy") is None  # one setting
    assert cross_fitted_choice(np.zeros((3, 3), dtype=int), y[:3], "accuracy") is None  # fewer rows than folds
    # labels the model never saw (-1) and classes too rare to stratify still split
    honest = cross_fitted_choice(np.array([[0, 1, 0, 1, 0, 1, 2], [0, 0, 0, 0, 0, 0, 0]]), np.array([0, 1, 0, 1, 0, 1, -1]), "accuracy")
    assert honest is not None and 0.0 <= honest["accuracy"] <= 1.0


def test_the_paired_error_counts_only_the_texts_two_models_disagree_on():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, size=600)
    a = np.where(rng.random(600) < 0.6, y, (y + 1) % 4)
    close = a.copy()
    flip = rng.choice(600, 30, replace=False)  # b differs from a on 30 texts only
    close[flip] = (close[flip] + 2) % 4
    far = np.where(rng.random(600) < 0.6, y, (y + 3) % 4)  # as accurate as a, independently so
    near, apart = paired_lead(a, close, y, "accuracy"), paired_lead(a, far, y, "accuracy")
    diff = (a == y).astype(float) - (close == y)
    assert near["lead"] == round(diff.mean(), 6) and near["se"] == round(diff.std(ddof=1) / np.sqrt(600), 6)
    assert near["disagree"] == 30 and near["n"] == 600
    alone = np.sqrt(0.6 * 0.4 / 600)  # the error of one score by itself
    assert near["se"] < 0.5 * alone < apart["se"]  # few disagreements: a small lead is already telling
    assert paired_lead(a, a, y, "accuracy") == {"lead": 0.0, "se": 0.0, "n": 600, "disagree": 0}


def test_the_macro_f1_lead_has_a_seeded_bootstrap_error():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, size=300)
    a = np.where(rng.random(300) < 0.8, y, (y + 1) % 3)
    b = np.where(rng.random(300) < 0.6, y, (y + 2) % 3)
    first = paired_lead(a, b, y, "macro_f1", resamples=200, seed=7)
    assert first == paired_lead(a, b, y, "macro_f1", resamples=200, seed=7)
    assert first["lead"] == round(score_predictions(a, y, "macro_f1") - score_predictions(b, y, "macro_f1"), 6)
    accuracy_se = paired_lead(a, b, y, "accuracy")["se"]
    assert 0.5 * accuracy_se < first["se"] < 2 * accuracy_se  # the same order as the exact error of accuracy


def _data():
    train, dev = make_corpus(24, seed=1), make_corpus(10, seed=2)
    return train, (dev.texts, dev.labels)


def test_tfidf_reports_the_cross_fitted_score_of_its_grid_and_keeps_it_on_disk(tmp_path):
    train, dev = _data()
    model = build_model("tfidf.v1", {}, TrainingConfig(metric="accuracy")).fit(train.texts, train.labels, eval_set=dev)
    report = model.fit_report()["dev_cross_fitted"]
    assert report["settings"] == len(model.fit_history()) == 12
    assert report["accuracy"] <= max(r["dev_accuracy"] for r in model.fit_history())
    model.save(tmp_path / "m")
    assert load_model(tmp_path / "m").fit_report() == model.fit_report()
    no_dev = build_model("tfidf.v1", {}, TrainingConfig()).fit(train.texts, train.labels)
    assert "dev_cross_fitted" not in no_dev.fit_report()


def test_a_neural_model_reports_the_cross_fitted_score_of_its_kept_evaluation(tmp_path):
    train, dev = _data()
    cfg = TrainingConfig(epochs=4, patience=0, batch_size=16, metric="accuracy")
    model = build_model("fasttext.v1", {"embed_dim": 8, "buckets": 500}, cfg)
    model.fit(train.texts, train.labels, eval_set=dev, work_dir=tmp_path / "w")
    history = model.fit_history()
    report = model.fit_report()["dev_cross_fitted"]
    assert report["settings"] == len(history) == 4
    assert report["accuracy"] <= max(r["dev_accuracy"] for r in history)
    # a rerun into the same work dir resumes from the checkpoint, predictions of past evaluations included
    again = build_model("fasttext.v1", {"embed_dim": 8, "buckets": 500}, cfg)
    again.fit(train.texts, train.labels, eval_set=dev, work_dir=tmp_path / "w")
    assert again.fit_report()["dev_cross_fitted"] == report
