"""``python -m textopia.serving [serve] [--host H] [--port P] [--models DIR ...]``.

The container's entry point. SageMaker starts a container as ``docker run IMAGE serve``, so a
leading ``serve`` is accepted and ignored; host and port default to ``TEXTOPIA_HOST`` and
``TEXTOPIA_PORT`` (0.0.0.0 and 8080 in the image).
"""

from __future__ import annotations

import argparse
import sys

from textopia.errors import TextopiaError
from textopia.serving.app import run_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textopia.serving", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve"], default="serve")
    parser.add_argument("--host", default=None, help="address (default: TEXTOPIA_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: TEXTOPIA_PORT)")
    parser.add_argument("--models", nargs="*", default=[], metavar="DIR",
                        help="checkpoint dirs or model names to load besides the default")
    args = parser.parse_args(argv)
    try:
        run_server(args.host, args.port, args.models)
    except TextopiaError as e:  # a taken port, a model that does not load: one line, as `textopia serve`
        sys.exit(f"textopia: error: {e}")


if __name__ == "__main__":
    main()
