"""The ``textopia`` command: prepare | train | eval | compare | generate | reconstruct | interpolate |
variations | export | serve.

User errors (bad input, missing files, unknown models, a path the system cannot write) print one
line, ``textopia: error: ...``, and exit with status 2; no traceback.

The parser, the logging setup and the error handling are here; each command group has its module,
which adds its sub-parsers and holds its command functions: ``build`` (prepare, train, export),
``measure`` (eval, compare), ``write`` (generate, reconstruct, interpolate, variations) and
``serve``. Heavy modules (torch, transformers, the generators, the evaluation) are imported inside
the command functions, so that ``textopia --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from textopia.cli import build, measure, serve, write
from textopia.errors import TextopiaError

DESCRIPTION = ("Write detailed, relevant, varied prompts for Stable Diffusion and its kin from a short idea,\n"
               "and train, measure and serve the text generators that write them.")
#: ``textopia --help``'s examples: (command line, what it does).
EXAMPLES = (
    ('textopia generate "woman portrait" -n 4', "four prompts from the embedded default model"),
    ('textopia generate "a red fox" --model latent -n 4', "the same from the latent diffusion pair"),
    ('textopia variations "a cute cat wearing a hat, digital art" -n 5', ""),
    ('textopia interpolate "a red fox in the snow" "a castle on a hill at sunset" --steps 5', ""),
)
EPILOG = "examples:\n" + "\n".join(f"  {line:<55} {what}".rstrip() for line, what in EXAMPLES) + \
    "\n  " + f"{'textopia <command> --help':<55} a command's own options"

COMMANDS = {
    "prepare": build.cmd_prepare, "train": build.cmd_train, "eval": measure.cmd_eval,
    "compare": measure.cmd_compare, "generate": write.cmd_generate, "reconstruct": write.cmd_reconstruct,
    "interpolate": write.cmd_interpolate, "variations": write.cmd_variations, "export": build.cmd_export,
    "serve": serve.cmd_serve, "fit-keep": build.cmd_fit_keep,
}

# The order of ``textopia --help``'s list of commands.
_ADD_PARSERS = (build.add_prepare, build.add_train, measure.add_eval, measure.add_compare, write.add_generate,
                write.add_latent, build.add_export, build.add_fit_keep, serve.add_serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``textopia`` parser: ``--version``, ``-v`` and one sub-parser per command in :data:`COMMANDS`."""
    from textopia import __version__

    parser = argparse.ArgumentParser(
        prog="textopia", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"textopia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _ADD_PARSERS:
        add(sub)
    return parser


def _one_line(message: str, limit: int = 1000) -> str:
    """A message on one line of at most ``limit`` characters (whatever an error carried along)."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[:limit] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run ``textopia <argv>`` (default: ``sys.argv[1:]``). Returns the exit status: 0, 2 for a
    user error (printed on one line) or 130 when interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Read by transformers when (and only if) a command imports it: writing prompts never does, and
    # importing it here cost a cold `textopia generate` 0.6 s. Its "Loading weights" bars would
    # clutter one-line-per-prompt output.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    previous = _unwind_on_sigterm()
    try:
        COMMANDS[args.command](args)
    except _Terminated:
        print("textopia: terminated", file=sys.stderr)
        return 143
    except TextopiaError as e:
        print(f"textopia: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("textopia: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout has gone (`| head`): nothing more to say
        return 0
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: a fault of ours, with its traceback
            raise
        print(f"textopia: error: {_one_line(f'{e.filename}: {e.strerror or e}')}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


class _Terminated(BaseException):
    """SIGTERM, raised where the command is, so that what it was writing is removed as on Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def _unwind_on_sigterm():
    """Make SIGTERM (``kill``, a scheduler's stop) unwind the command as Ctrl-C does: a folder or
    file being written atomically is removed, not left hidden beside its target. Returns the
    handler it replaced (None where it cannot be set: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def entry() -> None:
    """The ``textopia`` console script: :func:`main`, then a quick exit.

    Everything a command writes is complete when it returns (files are written atomically,
    output is flushed here, log handlers are closed), so the interpreter's teardown is skipped:
    finalising torch's modules took 0.4 s of a 2 s cold ``textopia generate``.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    logging.shutdown()
    os._exit(code)


__all__ = ["COMMANDS", "build_parser", "entry", "main"]
