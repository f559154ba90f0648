"""`tagger.v1` (tag spans) and `joint.v1` (classify the text and tag its spans, one encoder, two heads).

PyText's joint intent/slot model: characters and their hashed n-grams, a BiGRU or CNN encoder (or a
BERT-style encoder from a local checkpoint, `encoder = "transformer"`, `path = DIR`), a tag head (CRF or
softmax over BIO/BIOES tags) and, for joint.v1, a class head (attention pooling plus the n-gram bag). The task losses are weighted (`tag_weight`, `class_weight`); an example trains the heads it is
annotated for, so one joint model can learn from a tagging corpus and a classification corpus at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..data.example import Example, LabelSet
from ..errors import ConfigError, DataError
from ..eval.probs import softmax
from ..registry import models
from ..tagging.decode import Crf, decode
from ..tagging.features import CharFeatures, pad_features
from ..tagging.spans import OUTSIDE, Entity, spans_to_tags, split_tag
from .base import Classifier, EvalSet, ProgressHook, check_fitted

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "weights.safetensors"
TAGS_FILE = "tagger.json"
CRF_FILE = "crf.safetensors"
TRANSFORMER_LR = 5e-5  # encoder = "transformer" (BERT's fine-tuning range is 2e-5 to 5e-5; a tag head learns from scratch)


class TaggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    encoder: Literal["bigru", "cnn", "transformer"] = "bigru"
    # encoder = "transformer": a local Hugging Face checkpoint (BERT, RoBERTa, ERNIE ...; nothing is downloaded),
    # read one character per token. embed_dim, ngrams, hidden_size, num_layers and kernel_size do not apply.
    path: str | None = None
    head: Literal["crf", "softmax"] = "crf"
    scheme: Literal["bio", "bioes"] = "bio"  # the tags the head predicts (data in either scheme is read as spans)
    lowercase: bool = True
    max_len: int = Field(512, ge=1)  # characters read from the start of each text; entities past it are not found
    min_freq: int = Field(1, ge=1)
    max_vocab: int = Field(50_000, ge=10)
    embed_dim: int = Field(128, gt=0)
    ngrams: int = Field(2, ge=1, le=4)  # character n-grams of 2..ngrams covering each character, hashed (1: none)
    buckets: int = Field(200_000, ge=0)
    gram_dim: int = Field(64, ge=0)
    # GRU units per direction. MSRA NER (benchmarks/results/joint.md): 64 units gave dev entity F1 89.08 and
    # test 88.78 against 88.91 and 88.38 at 128, and its bundle runs in 0.65x the time (one text, 1 thread).
    hidden_size: int = Field(64, gt=0)
    num_layers: int = Field(1, ge=1)
    kernel_size: int = Field(3, ge=1)  # encoder = "cnn"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"{value} is even; an odd kernel keeps one output per character (3, 5, ...)")
        return value

    @model_validator(mode="after")
    def _checkpoint(self) -> "TaggerParams":
        if (self.encoder == "transformer") != (self.path is not None):
            raise ValueError("path (a local Hugging Face checkpoint) goes with encoder = \"transformer\", and only with it")
        return self


class JointParams(TaggerParams):
    hidden_size: int = Field(128, gt=0)  # the class head shares the encoder; 64 units are measured for tagging only
    tag_weight: float = Field(1.0, ge=0.0)  # weight of the tagging loss
    class_weight: float = Field(1.0, ge=0.0)  # weight of the classification loss
    # Dimensions of a bag of the text's characters and n-grams that only the class head reads (0: none): the
    # private half of a shared-private model, which the tagging loss never moves, so sharing the encoder
    # costs the class head less. On MSRA + online_shopping cat (benchmarks/results/joint.md, MSRA weight 2)
    # 64 raised the joint model's dev scores from 87.70 entity F1 / 87.61 cat accuracy to 88.31 / 88.80 and
    # the classifier's alone from 88.92 to 89.10, for twice the fp32 bundle (a row per n-gram bucket).
    # Unset: 64, and none with encoder = "transformer", which reads no n-grams (see class_bag).
    class_bag_dim: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bag_needs_ids(self) -> "JointParams":
        if self.class_bag_dim and self.encoder == "transformer":
            raise ValueError("class_bag_dim goes with the bigru and cnn encoders (a transformer reads no n-grams); set it to 0")
        return self

    @property
    def class_bag(self) -> int:
        """The class head's own bag as built: class_bag_dim, 64 where unset, 0 with a transformer."""
        if self.encoder == "transformer":
            return 0
        return 64 if self.class_bag_dim is None else self.class_bag_dim


@models.register("joint.v1", params=JointParams)
class JointModel(Classifier):
    name = "joint.v1"
    params_type: type[BaseModel] = JointParams
    default_lr = 2e-3
    tags_spans = True  # predict_spans; trained and evaluated on entities as well (training/run.py)
    classifies = True

    @classmethod
    def tiny_params(cls, work_dir, texts, labels):
        return {"embed_dim": 16, "hidden_size": 16, "buckets": 1000, "gram_dim": 8}

    @classmethod
    def saved_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        # runs saved before class_bag_dim existed have no such bag
        return {"class_bag_dim": 0, **params} if "class_bag_dim" in cls.params_type.model_fields else params

    # -- fitting ---------------------------------------------------------------------------------
    def fit(
        self, texts: Sequence[str], labels: Sequence[str | None], *, entities: Sequence[Sequence[Entity] | None] | None = None,
        eval_set: EvalSet | None = None, work_dir: str | Path | None = None, progress: ProgressHook | None = None,
    ) -> "JointModel":
        """`entities`: per text its entities, or None where the text is not annotated for tagging."""
        ents = list(entities) if entities is not None else [None] * len(texts)
        train = [Example(t, lab, entities=None if e is None else tuple(e)) for t, lab, e in zip(texts, labels, ents)]
        # eval_set: (texts, labels) or (texts, labels, entities)
        dev = [Example(t, lab, entities=None if e is None else tuple(e)) for t, lab, e in zip(*_with_entities(eval_set))] if eval_set else None
        return self.fit_examples([train], dev, progress=progress, work_dir=work_dir)

    def fit_examples(self, groups: Sequence[Sequence[Example]], dev: Sequence[Example] | None = None, *, weights: Sequence[float] | None = None,
                     progress: ProgressHook | None = None, work_dir: str | Path | None = None,
                     soft: Sequence[Sequence[np.ndarray | None] | None] | None = None, teacher_tags: Sequence[str] | None = None,
                     alpha: float = 0.5, temperature: float = 1.0, warm_start: bool = False) -> "JointModel":
        """Train on one or more datasets (`groups`, each batch from one, in proportion to `weights`) and keep
        the weights of the best dev evaluation. `work_dir`: checkpoints, and the resume of a killed fit.
        Distillation: `soft`, per group (None: none) per example, a teacher's tag probabilities [T, K] over
        `teacher_tags` (tagging/decode.py tag_marginals); the student's tag set takes in the teacher's types,
        and `alpha`, `temperature` weigh the soft loss (tag_training.batch_losses). `warm_start`: go on from
        this fitted model's weights, features and tag set (recovery after pruning, zhcls compress); the
        data's labels and entity types must be among the model's."""
        import torch

        from .tag_training import fit_joint
        from .trainer import fingerprint_of

        every = [e for g in groups for e in g]
        if not every or len(weights or [1.0] * len(groups)) != len(groups):
            raise DataError(f"{self.name}: no training examples, or not one weight per dataset")
        labels = sorted({e.label for e in every if e.label is not None}) if self.classifies else []
        types = sorted({x.type for e in every for x in (e.entities or ())} | {split_tag(t)[1] for t in teacher_tags or () if t != OUTSIDE})
        if self.classifies and len(labels) < 2:
            raise DataError(f"{self.name}: the training data has {len(labels)} label(s); the class head needs at least two",
                            hint="use tagger.v1 for tagging alone, or add labeled examples")
        if not self.classifies and not any(e.entities is not None for e in every):
            raise DataError(f"{self.name}: no training example has entities", hint="give the data an `entities` field or use format = \"conll\"")
        p = self.params
        tags = [OUTSIDE] + [f"{pre}-{t}" for t in types for pre in (("B", "I") if p.scheme == "bio" else ("B", "I", "E", "S"))]
        torch.manual_seed(self.training.seed)
        start = None
        if warm_start:
            check_fitted(self, "module_")
            if not set(labels) <= set(self.labels_.labels) or not set(tags) <= set(self.tags_.labels):
                raise DataError(f"{self.name}: the data has labels or entity types the model was not trained on",
                                hint="go on training only on data of the model's own labels and types")
            start = _digest([[v.detach().cpu().float().numpy() for v in self.module_.state_dict().values()]])  # resume: these very weights
        else:
            self.labels_, self.tags_ = LabelSet(labels), LabelSet(tags)
            if getattr(p, "class_bag_dim", 0) is None:  # saved as built, so a later default cannot change the run
                self.params = p = p.model_copy(update={"class_bag_dim": p.class_bag})
            if p.encoder == "transformer":
                self.module_ = self._pretrained_module([e.text for e in every])
            else:
                self.features_ = CharFeatures.fit([e.text for e in every], lowercase=p.lowercase, max_len=p.max_len, ngrams=p.ngrams,
                                                  buckets=p.buckets, min_freq=p.min_freq, max_vocab=p.max_vocab)
                self.module_ = self._build_module()
        rows = [self._rows(g, w) for g, w in zip(groups, weights or [1.0] * len(groups))]
        for r, probs in zip(rows, soft or []):
            r.soft = None if probs is None else self._student_columns(probs, teacher_tags or ())
        dev = [e for e in dev or [] if e.text]
        evaluate = (lambda: self._dev_scores(dev)) if dev else None
        # As the classifiers' fingerprint (neural.py): not the device, so a run resumes on another one
        fingerprint = fingerprint_of(
            self.name, p.model_dump(), self.training.model_dump(exclude={"device"}), list(weights or []),
            [[_annotation(e) for e in g] for g in groups], [_annotation(e) for e in dev],
            _digest(soft), list(teacher_tags or []), alpha if soft else None, temperature if soft else None, start,
        )
        # a pretrained encoder is fine-tuned as transformer.v1 is: a small rate, BERT's warmup and linear decay
        pretrained = p.encoder == "transformer"
        result = fit_joint(self.module_, rows, self.training, lr=self.training.lr or (TRANSFORMER_LR if pretrained else self.default_lr),
                           schedule=self.training.schedule or ("linear" if pretrained else "constant"),
                           warmup_ratio=self.training.warmup_ratio if self.training.warmup_ratio is not None else (0.1 if pretrained else 0.0),
                           evaluate=evaluate, progress=progress,
                           tag_weight=getattr(p, "tag_weight", 1.0), class_weight=getattr(p, "class_weight", 0.0),
                           work_dir=Path(work_dir) if work_dir is not None else None, fingerprint=fingerprint,
                           alpha=alpha if soft else 0.0, temperature=temperature)
        self.module_.load_state_dict(result.best_state)
        self.module_.to("cpu").eval()
        self.fit_result_ = result
        return self

    def prune(self, width: float, max_vocab: int | None = None, *, texts: Sequence[str], labels: Sequence[str] | None = None,
              vocab_by: str = "frequency") -> "JointModel":
        """A copy with `width` of the encoder's units and n-gram dimensions, at most `max_vocab` characters
        (zhcls compress; models/tag_pruning.py)."""
        from .tag_pruning import prune_joint

        check_fitted(self, "module_")
        return prune_joint(self, width, max_vocab, texts, vocab_by)  # type: ignore[arg-type]

    def _student_columns(self, probs: Sequence[np.ndarray | None], teacher_tags: Sequence[str]) -> list[np.ndarray | None]:
        """The teacher's tag probabilities in this model's tag order. The tag sets must be the same: the
        student takes in the teacher's entity types, so a difference is a scheme mismatch (BIO vs BIOES)."""
        if set(teacher_tags) != set(self.tags_.labels):
            raise ConfigError(
                f"{self.name}: the teacher tags with {', '.join(teacher_tags)}; this model with {', '.join(self.tags_.labels)}",
                hint="give the student the teacher's [model] scheme",
            )
        order = [list(teacher_tags).index(t) for t in self.tags_.labels]
        return [None if a is None else np.asarray(a, dtype=np.float32)[:, order] for a in probs]

    def _build_module(self, backbone=None):
        """The net and CRF, initialized at random (the caller loads weights), or around a pretrained `backbone`."""
        from torchcrf import CRF

        from .tagnets import JointNet, TaggerModule

        p, f = self.params, self.features_
        if p.encoder == "transformer" and backbone is None:  # loading a saved run: the architecture from tagger.json, the weights after
            import torch

            from .transformer import transformers_module

            t = transformers_module()
            model = t.AutoModel.from_config(t.AutoConfig.for_model(**self.encoder_["config"]))
            backbone = self._char_bert(model, torch.zeros(f.num_ids, dtype=torch.long))
        net = JointNet(
            f.num_ids, f.gram_rows, f.n_grams, len(self.tags_), len(self.labels_), embed_dim=p.embed_dim, gram_dim=p.gram_dim,
            hidden_size=p.hidden_size, num_layers=p.num_layers, encoder=p.encoder, kernel_size=p.kernel_size, dropout=p.dropout,
            backbone=backbone, class_bag_dim=getattr(p, "class_bag", 0),
        )
        return TaggerModule(net, CRF(len(self.tags_), batch_first=True) if p.head == "crf" else None)

    def _pretrained_module(self, texts: Sequence[str]):
        """encoder = "transformer": the features (one id per character, no n-grams; the vocabulary is the
        training text's characters and every single-character token of the checkpoint, so a character first
        seen at prediction time still reaches its pretrained embedding) and the module around the checkpoint."""
        import torch

        from ..tagging.features import char_token
        from ..text.vocab import Vocab
        from .transformer import checkpoint_dir, transformers_module

        p, t = self.params, transformers_module()
        path = checkpoint_dir(p.path)
        tokenizer = t.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = t.AutoModel.from_pretrained(str(path), local_files_only=True)
        pieces = tokenizer.get_vocab()
        ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
        if None in ids.values():
            raise ConfigError(f"model.path: the tokenizer of {path} lacks one of [CLS], [SEP], [PAD], [UNK], which the tagger's input needs",
                              hint="use a BERT-style checkpoint (BERT, RoBERTa-wwm, ERNIE, MacBERT)")
        seen = Vocab.build(([char_token(c, p.lowercase) for c in text] for text in texts), min_freq=p.min_freq)
        known = set(seen.tokens)
        extra = sorted(tok for tok in pieces if len(tok) == 1 and char_token(tok, p.lowercase) == tok and tok not in known)
        # BERT's positions: [CLS], the characters, [SEP]
        max_len = min(p.max_len, int(getattr(model.config, "max_position_embeddings", p.max_len + 2)) - 2)
        self.features_ = CharFeatures(Vocab(seen.tokens + extra), lowercase=p.lowercase, max_len=max_len, ngrams=1, buckets=0)
        tokens = self.features_.vocab.tokens
        id_map = [ids["pad"], ids["unk"]] + [pieces.get(tok, pieces.get(tok.lower(), ids["unk"])) for tok in tokens[2:]]
        self.encoder_ = {"config": model.config.to_dict(), **{k: int(v) for k, v in ids.items()}}
        return self._build_module(self._char_bert(model, torch.as_tensor(id_map, dtype=torch.long)))

    def _char_bert(self, model, id_map):
        from .tagnets import CharBert

        e = self.encoder_
        return CharBert(model, id_map, e["cls"], e["sep"], e["pad"])

    def _rows(self, examples: Sequence[Example], weight: float):
        from .tag_training import Rows

        f, scheme = self.features_, self.params.scheme
        tags = []
        for e in examples:
            if e.entities is None:
                tags.append(None)
                continue
            n = min(len(e.text), f.max_len) or 1
            kept = [x for x in e.entities if x.end <= n]  # an entity cut by max_len is left out, not tagged in part
            tags.append(np.asarray([self.tags_.index(t) for t in spans_to_tags(kept, n, scheme)], dtype=np.int64))
        y = np.asarray([self.labels_.index(e.label) if e.label is not None and e.label in self.labels_ else -1 for e in examples], dtype=np.int64)
        return Rows(f.encode_batch([e.text for e in examples]), tags, y, weight)

    def _dev_scores(self, dev: Sequence[Example]) -> dict[str, Any]:
        """score: the mean of the entity micro F1 (texts annotated with entities) and training.metric (texts
        with a label), each where dev has such texts; heads: each of the two alone (early stopping waits for
        both)."""
        from ..eval.metrics import classification_metrics
        from ..tagging.metrics import entity_metrics

        out: dict[str, float] = {}
        tagged = [e for e in dev if e.entities is not None]
        if tagged:
            pred = self.predict_spans([e.text for e in tagged])
            m = entity_metrics([e.entities for e in tagged], [[x for x, _ in p] for p in pred], [len(e.text) for e in tagged])
            out["dev_entity_f1"] = m["micro_f1"]
        labeled = [e for e in dev if e.label is not None] if self.classifies else []
        if labeled:
            m = classification_metrics([e.label for e in labeled], self.predict([e.text for e in labeled]), self.labels_.labels)
            out["dev_accuracy"], out["dev_macro_f1"] = m["accuracy"], m["macro_f1"]
        heads = {"entities": out["dev_entity_f1"]} if tagged else {}
        heads.update({"classes": out[f"dev_{self.training.metric}"]} if labeled else {})
        out["score"] = float(np.mean(list(heads.values()))) if heads else 0.0
        out["heads"] = heads
        return out

    # -- prediction ------------------------------------------------------------------------------
    def outputs(self, texts: Sequence[str]) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """(class logits [n, C] or None for tagger.v1, per text its emissions [T_i, K]), computed in batches
        of similar length."""
        import torch

        check_fitted(self, "module_")
        net = self.module_.net
        device = next(net.parameters()).device
        encoded = self.features_.encode_batch(texts)
        logits = np.zeros((len(texts), len(self.labels_)), dtype=np.float32) if net.out is not None else None
        emissions: list[np.ndarray] = [np.empty(0)] * len(texts)
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for start in range(0, len(order), 256):
                idx = order[start : start + 256]
                ids, grams, lengths = (torch.from_numpy(a).to(device) for a in pad_features([encoded[i] for i in idx]))
                out = net(ids, grams, lengths)
                em = (out[0] if logits is not None else out).float().cpu().numpy()
                if logits is not None:
                    logits[idx] = out[1].float().cpu().numpy()
                for k, i in enumerate(idx):
                    emissions[i] = em[k, : int(lengths[k])]
        net.train(was_training)
        return logits, emissions

    def crf_scores(self) -> Crf | None:
        crf = self.module_.crf
        if crf is None:
            return None
        arr = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return Crf(arr(crf.start_transitions), arr(crf.end_transitions), arr(crf.transitions))

    def predict_spans(self, texts: Sequence[str]) -> list[list[tuple[Entity, float]]]:
        """Per text its entities with their scores (tagging/decode.py), offsets into the text as given."""
        _, emissions = self.outputs(texts)
        crf, tags = self.crf_scores(), self.tags_.labels
        return [list(zip(*decode(em, tags, crf, len(text)))) for text, em in zip(texts, emissions)]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        logits, _ = self.outputs(texts) if self.classifies else (None, None)
        if logits is None:
            raise ConfigError(f"{self.name} has no class head, so no class probabilities", hint="use predict_spans, or train joint.v1")
        return softmax(logits)

    def fit_report(self) -> dict[str, Any]:
        r = getattr(self, "fit_result_", None)
        if r is None:
            return {}
        return {"best_step": r.best_step, "steps": r.steps, "resumed_from": r.resumed_from, "stopped": r.stopped, "epochs": r.epochs, "device": r.device,
                "tags": list(self.tags_.labels)}

    def fit_history(self) -> list[dict[str, Any]]:
        r = getattr(self, "fit_result_", None)
        return list(r.history) if r is not None else []

    def last_model(self) -> "JointModel":
        import copy

        r = getattr(self, "fit_result_", None)
        if r is None:
            return self
        other = copy.copy(self)
        other.module_ = copy.deepcopy(self.module_)
        other.module_.load_state_dict(r.last_state)
        return other

    # -- files -----------------------------------------------------------------------------------
    def _tagger_json(self) -> dict[str, Any]:
        out = {"tags": list(self.tags_.labels), "head": self.params.head, "scheme": self.params.scheme}
        if self.params.encoder == "transformer":  # the checkpoint's architecture and special ids: a saved run needs no checkpoint
            out["encoder"] = self.encoder_
        return out

    def _save_files(self, path: Path) -> None:
        from safetensors.torch import save_file

        from ..artifact import write_json

        check_fitted(self, "module_")
        write_json(path / TOKENIZER_FILE, self.features_.to_json())
        write_json(path / TAGS_FILE, self._tagger_json())
        save_file({k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}, str(path / WEIGHTS_FILE))

    def _load_files(self, path: Path) -> None:
        from safetensors.torch import load_file

        from ..artifact import read_json

        self.features_ = CharFeatures.from_json(read_json(path / TOKENIZER_FILE))
        spec = read_json(path / TAGS_FILE)
        self.tags_ = LabelSet(spec["tags"])
        self.encoder_ = spec.get("encoder")
        self.module_ = self._build_module()
        self.module_.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        self.module_.eval()

    def export_serving(self, out: Path, export_part) -> dict[str, Any]:
        from safetensors.numpy import save_file

        from ..artifact import write_json
        from .tagnets import export_onnx

        check_fitted(self, "module_")
        self.module_.to("cpu").eval()
        outputs = export_onnx(self.module_.net, out / "model.onnx", self.features_.n_grams)
        write_json(out / TOKENIZER_FILE, self.features_.to_json())
        write_json(out / TAGS_FILE, self._tagger_json())
        crf = self.crf_scores()
        if crf is not None:
            save_file({"start": crf.start, "end": crf.end, "transitions": crf.transitions}, str(out / CRF_FILE))
        return {
            "backend": "joint",
            "input": {
                "ids": {"dtype": "int64", "shape": ["batch", "time"], "padding_id": 0},
                "grams": {"dtype": "int64", "shape": ["batch", "time", self.features_.n_grams], "padding_id": 0},
                "lengths": {"dtype": "int64", "shape": ["batch"]},
                "outputs": outputs, "max_length": self.features_.max_len, "tags": len(self.tags_), "head": self.params.head,
            },
        }


@models.register("tagger.v1", params=TaggerParams)
class TaggerModel(JointModel):
    """Tagging alone: the joint model without a class head."""

    name = "tagger.v1"
    params_type = TaggerParams
    classifies = False

    def fit(self, texts, labels=None, *, entities=None, eval_set=None, work_dir=None, progress=None) -> "TaggerModel":
        if entities is None:
            raise DataError("tagger.v1 learns from entities: fit(texts, entities=[[Entity, ...], ...])", hint="for labels alone use a classifier")
        return super().fit(texts, [None] * len(texts), entities=entities, eval_set=eval_set, work_dir=work_dir, progress=progress)

    def predict(self, texts: Sequence[str]) -> list[str]:
        raise ConfigError("tagger.v1 has no class head, so no labels to predict", hint="use predict_spans, or train joint.v1")


def _with_entities(eval_set) -> tuple:
    texts, labels, *rest = eval_set
    return texts, labels, rest[0] if rest else [None] * len(texts)


def _annotation(e: Example) -> tuple:
    """What a fingerprint needs of an example: its text, label and entity spans."""
    return e.text, e.label, None if e.entities is None else [(x.start, x.end, x.type) for x in e.entities]


def _digest(soft) -> str | None:
    """sha256 of the soft targets (for the resume fingerprint): a changed teacher is another run."""
    if not soft:
        return None
    import hashlib

    h = hashlib.sha256()
    for group in soft:
        for a in group or []:
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()
