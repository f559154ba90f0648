"""The `zhcls` command: a thin typer layer over library functions.

Exit codes: 0 ok; 1 unexpected failure (traceback with --debug), or `data check` found data errors;
2 usage, config or data error (unusable input).
"""

from __future__ import annotations

import sys
import traceback

import typer

try:  # recent typer vendors its own click; older releases use the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from ..errors import ZhclsError
from . import _common

# Which install extra brings a missing package (a serving install has no torch or scikit-learn).
EXTRAS = {"torch": "train", "sklearn": "train", "gensim": "train", "jieba": "jieba", "onnx": "export",
          "onnxruntime": "serve", "fastapi": "serve", "uvicorn": "serve", "snownlp": "demo", "matplotlib": "report",
          "cleanlab": "labels", "mlflow": "track", "transformers": "teacher", "pypinyin": "augment",
          "model_signing": "sign", "OpenSSL": "sign", "cryptography": "sign"}

app = typer.Typer(
    name="zhcls",
    help="Chinese text classification: check data, train, evaluate, predict.\n\n--debug and --quiet work anywhere on the line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _global_flags(
    debug: bool = typer.Option(False, "--debug", help="On an error, also print the traceback."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or info lines; results and warnings still print."),
) -> None:
    # main() takes both flags off the line before parsing, wherever they are, so these stay False here;
    # declaring them lists them under Options in `zhcls --help`.
    pass


def _register() -> None:
    from . import (
        augment_cmd,
        bench_cmd,
        build_cmd,
        compress_cmd,
        config_cmd,
        data_cmd,
        embeddings_cmd,
        evaluate_cmd,
        export_cmd,
        labels_cmd,
        predict_cmd,
        quickstart_cmd,
        registry_cmd,
        report_cmd,
        runs_cmd,
        serve_cmd,
        teacher_cmd,
        train_cmd,
    )

    for module in (quickstart_cmd, build_cmd, train_cmd, compress_cmd, evaluate_cmd, predict_cmd, export_cmd, serve_cmd, bench_cmd, report_cmd, runs_cmd, registry_cmd, augment_cmd):
        module.register(app)
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(embeddings_cmd.app, name="embeddings")
    app.add_typer(labels_cmd.app, name="labels")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(teacher_cmd.app, name="teacher")


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if code:
            _common.record_exit(code)  # a rank under `zhcls train --nproc` (docs/scale.md)
        raise


def _main(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # Global flags are accepted anywhere on the line, so `zhcls train c.toml --debug` works too.
    _common.STATE.debug = "--debug" in args
    _common.STATE.quiet = "--quiet" in args
    _common.console = _common.make_console(stderr=True)  # this call's stderr (a test's capture, a pipe)
    args = [a for a in args if a not in ("--debug", "--quiet")]
    try:
        command = typer.main.get_command(app)
        # Outside standalone mode, `raise typer.Exit(n)` in a command comes back as the return value.
        code = command.main(args=args, prog_name="zhcls", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ClickException as exc:
        exc.show()
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        _common.err("interrupted")
        sys.exit(130)
    except ZhclsError as exc:
        if _common.STATE.debug:
            traceback.print_exc()
        _common.err(f"error: {exc.message}")
        if exc.hint:
            _common.err(f"hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        if _common.STATE.debug:
            raise
        package = (exc.name or "").split(".")[0]
        extra = EXTRAS.get(package, "dev")
        _common.err(f"error: this command needs the Python package {package!r}, which is not installed")
        _common.err(f"hint: pip install 'zhcls[{extra}]'")
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints a short message
        if _common.STATE.debug:
            raise
        _common.err(f"error: unexpected {type(exc).__name__}: {exc}")
        _common.err("hint: run again with --debug for the traceback, and report it if it looks like a bug")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
