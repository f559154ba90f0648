"""zhcls config init | show | validate"""

from __future__ import annotations

from pathlib import Path

import typer

from . import _common

app = typer.Typer(help="Write, show and validate run configs.", no_args_is_help=True)

STARTER = """\
# zhcls run config. Paths may use ${{ZHCLS_DATA_DIR}} (default ../shared/data); relative paths start
# from the current directory. Every key below can be overridden: zhcls train c.toml --set training.lr=3e-4
schema_version = 1

[data]
train = "data/train.json"        # JSON lines, text<TAB>label, CSV with a header, or a PaddleNLP directory
dev = "data/dev.json"            # used for early stopping and model selection
# test = "data/test.json"        # evaluated once at the end
format = "auto"                  # auto | jsonl | tsv | csv | paddle | lines
# text_field = "sentence"        # detected when not set: text, sentence, content, review, ...
# label_field = "label_desc"     # detected when not set: label_desc, label_des, label, ...

[model]
{model}

[training]
{training}

# Optional: also log each finished run to MLflow (pip install 'zhcls[track]'); see docs/reports.md.
# [track]
# mlflow = true
# experiment = "zhcls"
"""


@app.command("init")
def init(model: str = typer.Option("textcnn.v1", "--model", help="Registered model name.")) -> None:
    """Print a commented starter config for MODEL.

    Every setting is spelled out with its default, lr included."""
    import tomli_w

    from ..config import MODEL_TRAINING_DEFAULTS, TrainingConfig, resolved_training
    from ..registry import models

    entry = models.get(model)
    params = entry.params().model_dump(mode="json", exclude_none=True)
    model_toml = tomli_w.dumps({"name": model, **params}).strip()
    training = resolved_training(TrainingConfig(), model)
    lines = tomli_w.dumps(training).strip().splitlines()
    # lr (and epochs, patience where the model has its own) are per-model defaults: say so, so that a changed
    # [model] name is not left with this model's values.
    own = ("lr = ", *(f"{key} = " for key, attr in MODEL_TRAINING_DEFAULTS.items() if getattr(entry.factory, attr, None) is not None))
    lines = [f"{line}  # {model}'s default; delete the line to use the model's own" if line.startswith(own) else line for line in lines]
    if "lr" not in training:
        lines.append(f"# lr: not used by {model}")
    print(STARTER.format(model=model_toml, training="\n".join(lines)))


@app.command("show")
def show(config: Path, set_: list[str] = _common.SetOption) -> None:
    """Print CONFIG resolved: defaults filled in, overrides applied."""
    from ..config import dump_config, load_config

    print(dump_config(load_config(config, set_)), end="")


@app.command("validate")
def validate(config: Path, set_: list[str] = _common.SetOption) -> None:
    """Check CONFIG without reading data or training.

    Sections, keys, types and the model name are checked."""
    from ..config import load_config

    cfg = load_config(config, set_)
    print(f"{config}: ok ({cfg.model.name})")


@app.command("models")
def list_models() -> None:
    """List the registered models and their settings."""
    from ..registry import models

    for name in models.names():
        fields = models.get(name).params.model_fields
        print(f"{name}: {', '.join(fields)}")
