"""`tfidf.v1`: TF-IDF over character n-grams + logistic regression (scikit-learn), saved without pickle.

Fitting uses scikit-learn; the fitted state is only a vocabulary, IDF weights and a weight matrix,
so it is stored as JSON + safetensors, and prediction recomputes TF-IDF from those arrays with numpy
(text/charngrams.py), which also serves the model without scikit-learn.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..artifact import read_json, write_json
from ..data.example import LabelSet
from ..eval.probs import softmax
from ..registry import models
from ..text.charngrams import CharNgramTfidf
from ..text.normalize import normalize
from .base import Classifier, EvalSet, ProgressHook, check_fit_input, check_fitted

C_GRID = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SVM_C_GRID = (0.1, 0.2, 0.5, 1.0, 2.0)


class TfidfParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ngram_min: int = Field(1, ge=1)
    ngram_max: int = Field(3, ge=1)
    max_features: int | None = Field(300_000, ge=1)
    min_df: int = Field(1, ge=1)
    sublinear_tf: bool = True
    lowercase: bool = True
    C: float | Literal["auto"] = "auto"  # "auto": chosen on the dev set from C_GRID / SVM_C_GRID (10 / 0.5 without one)
    # "log": logistic regression; "hinge": a linear SVM (LinearSVC), its decision values turned into
    # probabilities by one temperature fitted on dev; "auto": both C grids, the better dev score wins
    # (logistic regression without a dev set: confident learning and ensembles need its probabilities).
    loss: Literal["auto", "log", "hinge"] = "auto"
    class_weight: Literal["none", "balanced"] = "none"
    max_iter: int = Field(2000, ge=10)
    # Logistic regression's solver; both minimize the same loss. On 8,000 reviews x 300,000 n-grams x 10
    # classes lbfgs spent ~60 s per fit, most of it in L-BFGS-B's own updates of the 3M weights; newton-cg
    # (Hessian-vector products over the sparse rows) reached the same accuracy in ~4 s. It also gets closer
    # to the optimum: warm-started lbfgs stops early at its tolerance, which moved dev scores and so the
    # chosen C (EPRSTMT train_0, C=20: dev 62.5 with lbfgs, 65.6 with newton-cg). TNEWS few_all, the whole
    # grid of both losses: 5.9 s against 31.8 s, the same choice and test score.
    solver: Literal["lbfgs", "newton-cg"] = "newton-cg"
    # The solver stops when the largest gradient entry is <= tol. scikit-learn averages the loss over
    # the rows, so gradients shrink with n: on 50,213 reviews at its default 1e-4, the warm start from the
    # previous C already counted as converged, and C = 10, 20, 50 returned C = 5's weights (online_shopping
    # cat, 0 iterations each): the grid searched nothing above 5. At 1e-6 every C of the grid gives the
    # same dev and test predictions as at 1e-8 (benchmarks/results/tfidf_tol.md).
    tol: float = Field(1e-6, gt=0)


@models.register("tfidf.v1", params=TfidfParams)
class Tfidf(Classifier):
    name = "tfidf.v1"
    params_type = TfidfParams

    def _preprocess(self, text: str) -> str:
        return normalize(text, lowercase=self.params.lowercase)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        eval_set: EvalSet | None = None,
        work_dir: str | Path | None = None,
        progress: ProgressHook | None = None,
    ) -> "Tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        check_fit_input(texts, labels)
        p = self.params
        self.labels_ = LabelSet.from_labels(labels)
        y = np.asarray(self.labels_.encode(labels))
        vec = TfidfVectorizer(
            analyzer="char", ngram_range=(p.ngram_min, p.ngram_max), preprocessor=self._preprocess, lowercase=False,
            max_features=p.max_features, min_df=p.min_df, sublinear_tf=p.sublinear_tf, dtype=np.float32,
        )
        x = vec.fit_transform(texts)
        self.vocab_ = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        self.idf_ = vec.idf_.astype(np.float32)
        dev = None
        if eval_set is not None and len(eval_set[0]):
            dev = (vec.transform(eval_set[0]), np.asarray([self.labels_.index(l) if l in self.labels_ else -1 for l in eval_set[1]]))
        plan = self._plan(dev is not None)
        self.history_, self._dev_preds = [], []
        total = sum(len(grid) for grid in plan.values())
        best, done = None, 0
        for loss, grid in plan.items():
            fitted = self._fit_grid(loss, grid, x, y, dev, progress, (done, total))
            done += len(grid)
            if best is None or fitted[0] > best[0]:  # a tie keeps logistic regression (first): its probabilities
                best = fitted
        _, self.C_, self.loss_, coef, intercept = best
        if dev is not None:  # the grid's choice, scored honestly (zhcls.eval.selection); settings in the order ties go
            from ..eval.selection import cross_fitted_choice  # here: serving installs import this module without scikit-learn

            self.dev_cross_fitted_ = cross_fitted_choice(np.asarray(self._dev_preds), dev[1], self.training.metric, seed=self.training.seed)
        del self._dev_preds
        if self.loss_ == "hinge":
            self.temperature_ = fit_temperature(_decision(dev[0], coef, intercept), dev[1]) if dev is not None else 1.0
            coef, intercept = coef / self.temperature_, intercept / self.temperature_
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept_ = np.asarray(intercept, dtype=np.float32)
        return self

    def _plan(self, has_dev: bool) -> dict[str, Sequence[float]]:
        """{loss: the C values to try}: both losses and both grids with a dev set, one fit without."""
        p = self.params
        losses = [p.loss] if p.loss != "auto" else ["log", "hinge"] if has_dev else ["log"]
        if p.C != "auto":
            return {loss: [p.C] for loss in losses}
        return {loss: (C_GRID if loss == "log" else SVM_C_GRID) if has_dev else [10.0 if loss == "log" else 0.5] for loss in losses}

    def _fit_grid(self, loss: str, grid: Sequence[float], x, y, dev, progress: ProgressHook | None, steps: tuple[int, int]) -> tuple[float, float, str, np.ndarray, np.ndarray]:
        """(dev score, C, loss, coef [k, V], intercept [k]) of the best C of the grid on dev (the only C
        without dev). Binary models' one row w is stored as the two rows (0, w): every k is then the same
        softmax over k rows."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        from ..eval.metrics import score_from_proba

        weight = None if self.params.class_weight == "none" else "balanced"
        # Logistic regression: ascending C with warm start, each fit starts from the previous (more
        # regularized) solution, which lbfgs refines in far fewer iterations than from zero. Measured on
        # the 7-value grid: 3.5x faster on TNEWS few_all, 2.5x on 2,000 online_shopping reviews, the same C
        # chosen (benchmarks/results/tfidf_warm_start.md). liblinear's LinearSVC has no warm start.
        est = LogisticRegression(max_iter=self.params.max_iter, class_weight=weight, warm_start=True, solver=self.params.solver, tol=self.params.tol) if loss == "log" else LinearSVC(C=1.0, class_weight=weight)
        best = None
        for i, c in enumerate(sorted(grid)):
            with warnings.catch_warnings():
                # Near the optimum on float32 features newton-cg's line search can find no further
                # decrease; scikit-learn then stops at that point and says so twice per class.
                warnings.filterwarnings("ignore", message="Line Search failed")
                warnings.filterwarnings("ignore", message=".*line search", category=RuntimeWarning)
                est.set_params(C=c).fit(x, y)
            coef, intercept = _full_rows(est.coef_, est.intercept_, len(self.labels_))
            score = 0.0
            if dev is not None:
                decision = _decision(dev[0], coef, intercept)
                score = score_from_proba(softmax(decision), dev[1], self.training.metric)
                self._dev_preds.append(decision.argmax(axis=1))
                self.history_.append({"loss": loss, "C": c, f"dev_{self.training.metric}": score})
            if progress:
                progress("step", {"step": steps[0] + i + 1, "total": steps[1], "epoch": 0, "status": f"{loss} C={c:g}"})
            if best is None or score > best[0]:
                best = (score, c, loss, coef.copy(), intercept.copy())
        return best

    def features(self) -> CharNgramTfidf:
        check_fitted(self, "coef_")
        if not hasattr(self, "_features"):
            self._features = CharNgramTfidf.from_json(self._tokenizer_json(), self.idf_)
        return self._features

    def _tokenizer_json(self) -> dict[str, Any]:
        return CharNgramTfidf.to_json(self.vocab_, self.params.model_dump())

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.features().logits(texts, self.coef_, self.intercept_)
        return softmax(logits.astype(np.float64)).astype(np.float32)

    def fit_report(self) -> dict[str, Any]:
        if not hasattr(self, "C_"):
            return {}
        report = {"C": self.C_, "loss": getattr(self, "loss_", "log")}
        if hasattr(self, "temperature_"):
            report["temperature"] = round(float(self.temperature_), 4)
        if getattr(self, "dev_cross_fitted_", None):
            report["dev_cross_fitted"] = self.dev_cross_fitted_
        return report

    def fit_history(self) -> list[dict[str, Any]]:
        return list(getattr(self, "history_", []))  # one record per C tried on dev

    def export_serving(self, out: Path, export_part) -> dict[str, Any]:
        from safetensors.numpy import save_file

        check_fitted(self, "coef_")
        save_file({"idf": self.idf_, "coef": self.coef_, "intercept": self.intercept_}, str(out / "linear.safetensors"))
        write_json(out / "tokenizer.json", self._tokenizer_json())
        return {"backend": "linear", "input": {"text": "str", "features": "char n-gram TF-IDF computed from tokenizer.json"}}

    def _save_files(self, path: Path) -> None:
        from safetensors.numpy import save_file

        check_fitted(self, "coef_")
        write_json(path / "tokenizer.json", self._tokenizer_json())  # the bundle's tokenizer.json, byte for byte
        arrays = {"idf": self.idf_, "coef": self.coef_, "intercept": self.intercept_, "C": np.asarray([self.C_], dtype=np.float64)}
        if hasattr(self, "temperature_"):  # a linear SVM's; its absence says logistic regression
            arrays["temperature"] = np.asarray([self.temperature_], dtype=np.float64)
        save_file(arrays, str(path / "weights.safetensors"))
        if getattr(self, "dev_cross_fitted_", None):
            write_json(path / "selection.json", {"dev_cross_fitted": self.dev_cross_fitted_})

    def _load_files(self, path: Path) -> None:
        from safetensors.numpy import load_file

        data = read_json(path / "tokenizer.json")
        arrays = load_file(str(path / "weights.safetensors"))
        self.vocab_ = data["vocab"]
        # model directories before the shared schema wrote {"kind": "tfidf", "vocab", "C"}; the n-gram
        # settings were in params then as now
        self.C_ = data["C"] if data.get("kind") == "tfidf" else float(arrays["C"][0])
        self.idf_, self.coef_, self.intercept_ = arrays["idf"], arrays["coef"], arrays["intercept"]
        self.loss_ = "hinge" if "temperature" in arrays else "log"
        if "temperature" in arrays:
            self.temperature_ = float(arrays["temperature"][0])
        if (path / "selection.json").is_file():
            self.dev_cross_fitted_ = read_json(path / "selection.json")["dev_cross_fitted"]


def _full_rows(coef: np.ndarray, intercept: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary linear model's one row w as the two rows (0, w), so every k is a softmax over k rows."""
    if k == 2 and coef.shape[0] == 1:
        return np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return coef, intercept


def _decision(x, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return np.asarray(x @ coef.T, dtype=np.float64) + intercept


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """T > 0 minimizing the mean log-loss of softmax(logits / T) over the rows with a known label (y >= 0):
    one parameter, so a few hundred dev rows fit it (Guo et al. 2017, temperature scaling)."""
    from scipy.optimize import minimize_scalar

    keep = y >= 0
    z, t = logits[keep], y[keep]
    if not len(t):
        return 1.0

    def loss(log_t: float) -> float:
        q = z / np.exp(log_t)
        q = q - q.max(axis=1, keepdims=True)
        return float((np.log(np.exp(q).sum(axis=1)) - q[np.arange(len(t)), t]).mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-6.0, 6.0), method="bounded").x))
