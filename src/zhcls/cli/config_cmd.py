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
    """Print a commented starter config for MODEL with every default spelled out."""
    import tomli_w

    from ..config import TrainingConfig
    from ..registry import models

    entry = models.get(model)
    params = entry.params().model_dump(mode="json", exclude_none=True)
    model_toml = tomli_w.dumps({"name": model, **params}).strip()
    training_toml = tomli_w.dumps(TrainingConfig().model_dump(mode="json", exclude_none=True)).strip()
    print(STARTER.format(model=model_toml, training=training_toml))


@app.command("show")
def show(config: Path, set_: list[str] = _common.SetOption) -> None:
    """Print CONFIG resolved: defaults filled in, overrides applied."""
    from ..config import dump_config, load_config

    print(dump_config(load_config(config, set_)), end="")


@app.command("validate")
def validate(config: Path, set_: list[str] = _common.SetOption) -> None:
    """Check CONFIG (sections, keys, types, model name) without reading data or training."""
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
