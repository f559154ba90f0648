"""zhcls teacher label TEACHER... DATA... -o soft.jsonl [--shard K/N]: a teacher's soft targets for the transfer set."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common

app = typer.Typer(help="Teachers for distillation.\n\nLabel a transfer set with soft targets.", no_args_is_help=True)


@app.command("label")
def label(
    paths: list[Path] = typer.Argument(..., help="Teacher run/model directories (several: an ensemble), then data files."),
    output: Path = typer.Option(..., "-o", "--output", help="Soft-target JSON lines file to write."),
    weights: str = typer.Option("equal", "--weights", help="Ensemble weights: equal; dev (each run's recorded dev score); fit (best on --dev)."),
    dev: Optional[Path] = typer.Option(None, "--dev", help="Labeled dev file for --weights fit."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Texts per teacher call (and per fsynced chunk)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Soft-target cache (default $ZHCLS_CACHE_DIR or ~/.cache/zhcls)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor fill the cache; resume from OUTPUT.partial."),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="Label only shard K of N (K from 0), e.g. in a job array; the last shard to finish merges OUTPUT. "
        "Under torchrun each rank takes its own shard."),
    device: str = typer.Option("auto", "--device", help="Where the teacher runs: auto (CUDA if there is one), cpu, cuda, cuda:N."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
) -> None:
    """Write a teacher's soft targets for every text of DATA.

    Probabilities, and logits where the teacher has them.

    Rerunning after an interruption continues where it stopped; a second run with the same teacher and
    texts is served from the cache without running the teacher. With --shard K/N (or under torchrun)
    each process labels its shard and the shards merge into the file one process writes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..data.readers import ReadOptions, read_examples
    from ..distill import label_texts, load_teacher
    from ..distill.shards import label_shard, parse_shard
    from ..errors import ConfigError
    from ..scale.device import resolve_device
    from ..scale.world import from_env

    if weights not in ("equal", "dev", "fit"):
        raise ConfigError(f"--weights {weights!r} is not a weighting", hint="choose equal, dev or fit")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"{missing[0]}: no such file or directory", hint="teachers are run or model directories; data are files")
    teachers = [p for p in paths if p.is_dir()]
    data = [p for p in paths if not p.is_dir()]
    if not teachers or not data:
        raise ConfigError(
            f"need at least one teacher directory and one data file (got {len(teachers)} directories, {len(data)} files)",
            hint="zhcls teacher label runs/teacher train.json unlabeled.json -o soft.jsonl",
        )
    _common.setup_logging()
    dev_set = None
    if dev is not None:
        dev_ex = read_examples(dev, ReadOptions(fmt, text_field, None))
        dev_set = ([e.text for e in dev_ex], [e.label for e in dev_ex])
    world = from_env()
    part = parse_shard(shard) if shard is not None else (world.rank, world.size) if world.distributed else None
    teacher = load_teacher(teachers, weights, dev=dev_set)  # type: ignore[arg-type]
    teacher.to(resolve_device(device, world.local_rank if world.distributed else None))
    texts = [e.text for path in data for e in read_examples(path, ReadOptions(fmt, text_field, None))]
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=_common.console, disable=_common.STATE.quiet) as bar:
        task = bar.add_task("teacher" if part is None else f"teacher, shard {part[0]}/{part[1]}", total=len(texts))
        options = dict(
            out=output, cache_dir=cache_dir, use_cache=not no_cache, batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        outcome = label_shard(teacher, texts, part, **options) if part is not None else None  # type: ignore[arg-type]
        result = label_texts(teacher, texts, **options) if outcome is None else outcome.merged  # type: ignore[arg-type]
    if result is None:  # this shard is done, others are still labelling: the last of them merges
        done = f", resumed after {outcome.resumed_rows} rows" if outcome.resumed_rows else ""
        _common.console.print(
            f"shard {part[0]}/{part[1]}: {outcome.rows} texts labelled{done}; shards {', '.join(map(str, outcome.pending))} "
            f"still running, the last to finish writes {output}"
        )
        return
    resumed = outcome.resumed_rows if outcome is not None else result.resumed_rows
    source = "cache (teacher not run)" if result.cached else (f"teacher, resumed after {resumed} rows" if resumed else "teacher")
    if outcome is not None:
        source += f"; {part[1]} shards merged"
    print(f"{len(result.texts)} texts, {len(result.labels)} labels, logits: {'yes' if result.logits is not None else 'no'}; from {source}")
    print(f"soft targets: {output}")
