"""`ensemble.v1`: trained runs of any models combined into one, the combination fitted on the dev set.

    [model]
    name = "ensemble.v1"
    members = ["runs/tfidf", "runs/textcnn", "runs/fasttext"]
    method = "auto"           # or "weights", "loglinear", "stacking"

- "weights": p = sum_i w_i p_i, the weights on the simplex that minimize the dev log-loss. Few parameters,
  so a few hundred dev texts fit them without overfitting; the usual winner on small data.
- "loglinear": p = softmax(sum_i w_i log p_i), w_i >= 0 minimizing the dev log-loss (a product of experts).
  Each w_i also acts as the member's inverse temperature, so a member whose probabilities are too flat
  (a regularized TF-IDF logistic regression over 15 classes) still gets its vote; a mean of probabilities
  lets the sharpest member decide. Measured on TNEWS few_all: cross-fitted dev 41.9 against 38.2.
- "stacking": a logistic regression over the members' log-probabilities (Wolpert's stacked
  generalization), also fitted on dev: it can learn that one member is good at some classes only.
- "auto" (the default): "weights" or "loglinear", whichever has the better cross-fitted dev score (then
  the lower cross-fitted log-loss); both scores are in the fit report.

The members were trained on train and selected on dev, so dev is the only held-out data they share;
the combiner is fitted there. Its own dev score is measured by cross-fitting (fit on k-1 folds of dev,
score the remaining fold), so no dev row is ever scored by a combiner that saw it; that is the score
`zhcls build` selects on. The model directory holds a copy of every member: it does not depend on the
member runs after fitting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..artifact import read_json, write_json
from ..data.example import LabelSet
from ..errors import ConfigError, DataError
from ..eval.probs import softmax
from ..registry import models
from .base import Classifier, EvalSet, PartExporter, ProgressHook, check_fitted, load_model, resolve_model_dir

COMBINER_FILE = "ensemble.json"
EPS = 1e-7  # probabilities are clipped here before a log: a member that is sure and wrong must not give -inf


class EnsembleParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    members: tuple[str, ...] = Field(..., min_length=1)  # trained run or model directories
    method: Literal["auto", "weights", "loglinear", "stacking"] = "auto"
    folds: int = Field(5, ge=2)  # cross-fitting folds on dev for the ensemble's own dev score
    C: float = Field(1.0, gt=0)  # stacking: inverse L2 strength of the logistic regression


@models.register("ensemble.v1", params=EnsembleParams)
class Ensemble(Classifier):
    name = "ensemble.v1"
    params_type = EnsembleParams

    @classmethod
    def tiny_params(cls, work_dir: Path, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """Two members of different kinds (a linear and a neural model), trained here."""
        from ..config import TrainingConfig
        from .base import build_model

        paths = []
        for name in ("tfidf.v1", "fasttext.v1"):
            entry = models.get(name).factory
            member = build_model(name, entry.tiny_params(work_dir, texts, labels), TrainingConfig(epochs=15, batch_size=8, lr=1e-2, patience=0))
            paths.append(str(member.fit(texts, labels).save(work_dir / f"member-{name}")))
        return {"members": paths, "folds": 2}

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        eval_set: EvalSet | None = None,
        work_dir: str | Path | None = None,
        progress: ProgressHook | None = None,
    ) -> "Ensemble":
        """`texts`/`labels` (train) are not used: the members are trained already. The combiner needs `eval_set`."""
        if eval_set is None or not len(eval_set[0]):
            raise DataError("ensemble.v1 fits its weights on the dev set, and this run has none", hint="set [data] dev")
        self.members_ = [load_model(_member_dir(p)) for p in self.params.members]
        self.labels_ = _shared_labels(self.members_, self.params.members)
        known = [i for i, label in enumerate(eval_set[1]) if label in self.labels_]
        if len(known) < self.params.folds:
            raise DataError(f"ensemble.v1 needs at least {self.params.folds} dev texts with known labels (got {len(known)})")
        dev_texts = [eval_set[0][i] for i in known]
        y = np.asarray(self.labels_.encode([eval_set[1][i] for i in known]))
        stack = self._member_probs(dev_texts)  # [m, n, k]
        if progress:
            progress("step", {"step": 1, "total": 2, "loss": 0.0, "epoch": 0})
        self.method_, oof, tried = choose_method(stack, y, self.params, seed=self.training.seed, metric=self.training.metric)
        self.weights_, self.coef_, self.intercept_ = fit_combiner(stack, y, self.params.model_copy(update={"method": self.method_}))
        self.dev_report_ = _scores(oof, y)
        if tried:
            self.dev_report_["methods"] = tried
        self.dev_report_["members"] = [_scores(p, y) for p in stack]
        self.history_ = [{"step": 1, "epoch": 0, **{f"dev_{k}": v for k, v in self.dev_report_.items() if k != "members"}}]
        if progress:
            progress("step", {"step": 2, "total": 2, "loss": 0.0, "epoch": 0})
        return self

    def _member_probs(self, texts: Sequence[str]) -> np.ndarray:
        """[members, texts, classes], each member's columns in the ensemble's class order."""
        out = np.empty((len(self.members_), len(texts), len(self.labels_)), dtype=np.float64)
        for i, member in enumerate(self.members_):
            out[i] = member.predict_proba(texts)[:, self.columns(i)]
        return out

    def columns(self, i: int) -> list[int]:
        """For member i, the column of each ensemble class in that member's predict_proba."""
        own = self.members_[i].labels_
        return [own.index(label) for label in self.labels_.labels]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        check_fitted(self, "weights_")
        return combine(self._member_probs(texts), self.weights_, self.coef_, self.intercept_)

    def fit_report(self) -> dict[str, Any]:
        if not hasattr(self, "weights_"):
            return {}
        method = getattr(self, "method_", self.params.method)
        report: dict[str, Any] = {"method": method, "members": [m.name for m in self.members_]}
        if method in ("weights", "loglinear"):
            report["weights"] = [round(float(w), 4) for w in self.weights_]
        if hasattr(self, "dev_report_"):
            report["dev_cross_fitted"] = self.dev_report_
        return report

    def fit_history(self) -> list[dict[str, Any]]:
        return list(getattr(self, "history_", []))

    # -- files ----------------------------------------------------------------------------------
    def _save_files(self, path: Path) -> None:
        from safetensors.numpy import save_file

        check_fitted(self, "weights_")
        for i, member in enumerate(self.members_):
            member.save(path / "members" / str(i))
        write_json(path / COMBINER_FILE, {"members": [m.name for m in self.members_], "method": getattr(self, "method_", self.params.method),
                                          "dev_report": getattr(self, "dev_report_", None)})
        save_file(self._arrays(), str(path / "weights.safetensors"))

    def _load_files(self, path: Path) -> None:
        from safetensors.numpy import load_file

        self.members_ = [load_model(path / "members" / str(i)) for i in range(len(self.params.members))]
        combiner = read_json(path / COMBINER_FILE)
        self.method_ = combiner.get("method", self.params.method)  # directories written before "auto" have no method
        report = combiner.get("dev_report")
        if report:
            self.dev_report_ = report
        arrays = load_file(str(path / "weights.safetensors"))
        self.weights_ = arrays["weights"].astype(np.float64)
        self.coef_ = arrays["coef"].astype(np.float64) if "coef" in arrays else None
        self.intercept_ = arrays["intercept"].astype(np.float64) if "intercept" in arrays else None

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"weights": np.asarray(self.weights_, dtype=np.float64)}
        if self.coef_ is not None:
            arrays.update(coef=np.asarray(self.coef_, dtype=np.float64), intercept=np.asarray(self.intercept_, dtype=np.float64))
        return arrays

    def export_serving(self, out: Path, export_part: PartExporter) -> dict[str, Any]:
        """One bundle: every member as a complete sub-bundle under members/i/, and the combiner arrays. The
        Predictor runs the members and combines their probabilities as predict_proba does."""
        from safetensors.numpy import save_file

        check_fitted(self, "weights_")
        parts = []
        for i, member in enumerate(self.members_):
            sub = out / "members" / str(i)
            sub.mkdir(parents=True)
            manifest = export_part(member, sub)
            parts.append({"dir": f"members/{i}", "model": member.name, "backend": manifest["backend"], "columns": self.columns(i)})
        save_file({k: v.astype(np.float32) for k, v in self._arrays().items()}, str(out / "ensemble.safetensors"))
        write_json(out / "tokenizer.json", {"kind": "ensemble", "members": parts})
        return {"backend": "ensemble", "input": {"text": "str", "method": getattr(self, "method_", self.params.method), "members": parts}}


def _member_dir(path: str) -> Path:
    from ..config import expand_path

    try:
        return resolve_model_dir(expand_path(path))
    except DataError as exc:
        raise ConfigError(f"model.members: {exc.message}", hint="list run directories trained with `zhcls train`") from None


def _shared_labels(members: list[Classifier], paths: Sequence[str]) -> LabelSet:
    first = set(members[0].labels_.labels)
    for member, path in zip(members[1:], paths[1:]):
        if set(member.labels_.labels) != first:
            other = set(member.labels_.labels)
            diff = sorted((first - other) | (other - first))
            raise DataError(f"model.members: {path} was trained on other labels than {paths[0]} (differ: {', '.join(diff[:10])})",
                            hint="an ensemble combines models of the same task")
    return members[0].labels_


def combine(stack: np.ndarray, weights: np.ndarray, coef: np.ndarray | None, intercept: np.ndarray | None) -> np.ndarray:
    """The ensemble's probabilities from its members' [m, n, k]: a weighted mean, or the stacking regression."""
    if coef is None:
        return np.tensordot(weights, stack, axes=1)
    return softmax(stack_features(stack) @ coef.T + intercept)


def stack_features(stack: np.ndarray) -> np.ndarray:
    """[m, n, k] -> [n, m * k]: each member's log-probabilities side by side."""
    m, n, k = stack.shape
    return np.log(np.clip(stack, EPS, 1.0)).transpose(1, 0, 2).reshape(n, m * k)


def choose_method(stack: np.ndarray, y: np.ndarray, params: EnsembleParams, *, seed: int, metric: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(method, its out-of-fold dev probabilities, {method: cross-fitted scores} when "auto" compared two)."""
    if params.method != "auto":
        return params.method, cross_fit(stack, y, params, seed=seed), {}
    from ..eval.metrics import score_from_proba

    tried, oofs = {}, {}
    for method in ("weights", "loglinear"):
        oofs[method] = cross_fit(stack, y, params.model_copy(update={"method": method}), seed=seed)
        tried[method] = _scores(oofs[method], y)
    key = metric if metric in ("accuracy", "macro_f1") else "accuracy"
    best = max(tried, key=lambda m: (round(score_from_proba(oofs[m], y, key), 9), -tried[m]["log_loss"]))
    return best, oofs[best], tried


def fit_combiner(stack: np.ndarray, y: np.ndarray, params: EnsembleParams) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(weights, coef, intercept); coef and intercept are None for "weights". "loglinear" is served as the
    stacking regression it is a special case of: coef holds w_i on the diagonal of member i's block."""
    if params.method == "weights":
        return fit_weights(stack, y), None, None
    if params.method == "loglinear":
        w = fit_loglinear(stack, y)
        k = stack.shape[2]
        return w, np.hstack([wi * np.eye(k) for wi in w]), np.zeros(k)
    from sklearn.linear_model import LogisticRegression

    k = stack.shape[2]
    lr = LogisticRegression(C=params.C, max_iter=2000).fit(stack_features(stack), y)
    coef = np.zeros((k, lr.coef_.shape[1]))
    intercept = np.zeros(k)
    if lr.coef_.shape[0] == 1:  # binary: one row for class 1, i.e. the softmax over (0, w)
        rows = [lr.classes_[1]]
        coef[rows], intercept[rows] = lr.coef_, lr.intercept_
    else:
        coef[lr.classes_], intercept[lr.classes_] = lr.coef_, lr.intercept_
    missing = sorted(set(range(k)) - set(lr.classes_.tolist()))
    intercept[missing] = -30.0  # a class dev never shows: the regression has no evidence for it
    return np.full(stack.shape[0], 1.0 / stack.shape[0]), coef, intercept


def fit_weights(stack: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Simplex weights minimizing -mean log(sum_i w_i p_i[y]), w = softmax(theta), by L-BFGS (scipy, which
    scikit-learn brings). The loss is convex in w, so the start does not matter; equal weights it is."""
    from scipy.optimize import minimize

    a = np.clip(stack[:, np.arange(len(y)), y].T, EPS, 1.0)  # [n, m]: each member's probability of the truth

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = softmax(theta[None, :])[0]
        p = a @ w
        g = -(a / p[:, None]).mean(axis=0)  # d loss / d w
        return float(-np.log(p).mean()), w * (g - w @ g)

    theta = minimize(loss, np.zeros(stack.shape[0]), jac=True, method="L-BFGS-B").x
    return softmax(theta[None, :])[0]


def fit_loglinear(stack: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w >= 0 minimizing -mean log softmax(sum_i w_i log p_i)[y], by L-BFGS-B: the log-loss of a softmax over
    a linear function of w, so convex; it starts from equal weights summing to 1 (the geometric mean)."""
    from scipy.optimize import minimize

    logp = np.log(np.clip(stack, EPS, 1.0))  # [m, n, k]
    rows = np.arange(len(y))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.tensordot(w, logp, axes=1)  # [n, k]
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        p = np.exp(z - lse[:, None])
        g = -(logp[:, rows, y] - (p[None] * logp).sum(axis=2)).mean(axis=1)  # d loss / d w_i
        return float(-(z[rows, y] - lse).mean()), g

    m = stack.shape[0]
    return minimize(loss, np.full(m, 1.0 / m), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * m).x


def cross_fit(stack: np.ndarray, y: np.ndarray, params: EnsembleParams, *, seed: int) -> np.ndarray:
    """Out-of-fold ensemble probabilities on dev: each fold scored by a combiner fitted on the others."""
    from ..eval.selection import dev_folds

    out = np.empty(stack.shape[1:])
    for fit_rows, score_rows in dev_folds(y, params.folds, seed):
        w, coef, intercept = fit_combiner(stack[:, fit_rows], y[fit_rows], params)
        out[score_rows] = combine(stack[:, score_rows], w, coef, intercept)
    return out


def _scores(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from ..eval.metrics import score_from_proba

    return {
        "accuracy": round(float((proba.argmax(1) == y).mean()), 6),
        "macro_f1": round(score_from_proba(proba, y, "macro_f1"), 6),
        "log_loss": round(float(-np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1.0)).mean()), 6),
    }
