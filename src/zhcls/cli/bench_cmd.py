"""zhcls bench BUNDLE [--run RUN] [--data FILE] [--json OUT]: latency and throughput, ONNX fp32/int8 vs PyTorch eager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    bundle: Path = typer.Argument(..., help="Bundle directory (from `zhcls export`)."),
    run: Optional[Path] = typer.Option(
        None,
        "--run",
        help="The run or model directory the bundle was exported from: adds PyTorch eager and the other precision (exported to a temp dir).",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Texts to time (default: the dev set the model was trained with)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full results as JSON to this file."),
    latency_texts: int = typer.Option(1000, "--latency-texts", min=1, help="Texts timed one at a time, per round."),
    throughput_texts: int = typer.Option(2048, "--throughput-texts", min=1, help="Texts per throughput pass."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Latency rounds (alternating variant order) and throughput passes (median)."),
    fmt: str = _common.FormatOption,
    text_field: Optional[str] = _common.TextFieldOption,
) -> None:
    """Time a bundle's latency and throughput.

    Single-text latency (p50/p99, 1 thread, tokenization included) and throughput at batch 1/32/256
    with 1 and 2 threads; prints a table with speed-ups over PyTorch eager."""
    from ..data.readers import ReadOptions, read_examples
    from ..export.bench import BenchSettings, format_table, table_legend
    from ..export.bench import bench as run_bench

    _common.setup_logging()
    examples = read_examples(data, ReadOptions(fmt, text_field, None)) if data is not None else None
    settings = BenchSettings(latency_texts=latency_texts, throughput_texts=throughput_texts, rounds=rounds)
    with _common.step_progress("bench") as hook:
        result = run_bench(bundle, run=run, data=examples, settings=settings, progress=hook)
    machine = result["machine"]
    print(
        f"{result['model']} bundle {bundle} ({result['precision']}), {result['texts']['n']} texts (mean {result['texts']['mean_chars']} chars)"
    )
    busy = machine["other_processes_cores"]
    print(
        f"machine: {machine['cpu_count']} cores, load average {machine['loadavg']}"
        + (
            ""
            if busy is None
            else f", other processes used {busy:.2f} cores while measuring" + (" (timings are inflated)" if busy > 0.25 else "")
        )
    )
    print(table_legend(result))
    print()
    print(format_table(result))
    if json_out is not None:
        from ..artifact import write_text

        write_text(json_out, json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        print(f"results: {json_out}")
