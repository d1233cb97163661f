"""The image's entry point, as SageMaker runs it for training and processing jobs and endpoints.

SageMaker runs the image as ``docker run IMAGE train`` for a training job, ``docker run IMAGE
serve`` for an endpoint or a batch transform, and with the job's own arguments for a processing
job. ``python -m textopia.sagemaker`` (the image's entry point) takes all three::

    train                      the training job (``textopia train --sagemaker``)
    serve [--port ...]         the HTTP service (``python -m textopia.serving``); also with no
                               command, or flags only
    prepare SRC --out DIR ...  any other ``textopia`` command, e.g. a processing job's preprocessing

The training job's contract (its folders, hyperparameters and failure file) is
:mod:`textopia.training.sagemaker`, below the CLI that runs it.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from textopia.errors import TextopiaError
from textopia.training.sagemaker import SageMakerPaths, describe_failure, write_failure


def _run_command(argv: list[str], failure: Path) -> int:
    """Run ``textopia <argv>``; on failure write the reason to ``failure`` too. Returns the exit code."""
    from textopia import cli

    args = cli.build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cli.COMMANDS[args.command](args)
    except TextopiaError as exc:
        write_failure(failure, describe_failure(exc))
        print(f"textopia: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        write_failure(failure, describe_failure(exc))
        traceback.print_exc()
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """The image's entry point: ``train``, ``serve`` (the default) or any ``textopia`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "serve"
    paths = SageMakerPaths.from_env()
    if command == "serve" or command.startswith("-"):  # `docker run IMAGE --port 9000` serves, as it always did
        from textopia.serving.__main__ import main as serve

        serve(argv)
        return 0
    if command == "train":
        # SageMaker passes nothing after "train"; anything else given is the CLI's own flags.
        return _run_command(["train", "--sagemaker", "--no-progress", *argv[1:]], paths.failure)
    return _run_command(argv, paths.message)


if __name__ == "__main__":
    sys.exit(main())
