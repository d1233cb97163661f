"""``textopia serve``: the web page and the JSON API, or the front of an inference endpoint."""

from __future__ import annotations

from textopia.errors import TextopiaError


def add_serve(sub) -> None:
    """Add the ``serve`` sub-parser to ``sub`` (argparse's sub-parsers action)."""
    p = sub.add_parser("serve", help="serve the web page and the JSON API")
    p.add_argument("--host", default=None, help="address to listen on (default: TEXTOPIA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: TEXTOPIA_PORT or 8000)")
    p.add_argument("--models", nargs="*", default=[], help="checkpoint directories to load beside the default")
    e = p.add_argument_group("the front of an inference endpoint (no model loaded; see serving.endpoint_client)")
    e.add_argument("--endpoint", metavar="URL",
                   help="send generations to this endpoint's POST /invocations: another `textopia serve`, a "
                        "SageMaker endpoint's URL, or an API Gateway URL in front of the Lambda")
    e.add_argument("--endpoint-timeout", type=float, default=60.0, help="seconds one endpoint call may take")
    e.add_argument("--endpoint-retries", type=int, default=3, help="retries after a 503, with doubling backoff")


def _check_serve(args) -> None:
    """What ``serve`` needs, checked before uvicorn starts: the ``serve`` extra, valid
    ``TEXTOPIA_*`` settings, and every model to load (found, and a readable checkpoint config)."""
    from textopia.checks import require_packages

    require_packages(["fastapi", "uvicorn", "pydantic", "pydantic_settings"], "textopia serve")
    from pydantic import ValidationError

    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import check_checkpoint
    from textopia.serving.settings import ServingSettings

    try:
        settings = ServingSettings()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "settings"
        raise TextopiaError(f"invalid TEXTOPIA_{where.upper()}: {first.get('msg', 'invalid value')}") from None
    for model in [*settings.models, *(args.models or [])]:
        check_checkpoint(resolve_model(model))


def cmd_serve(args) -> None:
    """``textopia serve``: check what serving needs, then run the server until it is stopped."""
    _check_serve(args)
    from textopia.serving.app import run_server

    endpoint = None
    if args.endpoint:
        from textopia.serving.endpoint_client import EndpointClient

        if args.models:
            raise TextopiaError("--endpoint serves no model of its own: drop --models")
        try:
            endpoint = EndpointClient(args.endpoint, timeout_s=args.endpoint_timeout, retries=args.endpoint_retries)
        except ValueError as e:
            raise TextopiaError(str(e)) from None
    run_server(args.host, args.port, args.models, endpoint=endpoint)
