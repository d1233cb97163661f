"""Property-based API fuzzing with schemathesis against the OpenAPI spec, in process (ASGI).

Every documented operation gets generated requests, valid and invalid; every answer must be
documented (status, content type, body schema) and none may be a 5xx. The default test runs a
few hundred cases in seconds; the long one (marked ``fuzz``) runs at least 1,000 cases (the
count is checked) and, with the shared ``tiny_checkpoint`` fixture, the generate operations
against a real tiny GPT (also marked ``slow``). ``-m "not fuzz"`` leaves both out.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from textopia.serving.app import create_app  # noqa: E402
from tests.fakes import FakeGenerator, FakeLatentGenerator  # noqa: E402
from textopia.serving.settings import ServingSettings  # noqa: E402

logger = logging.getLogger(__name__)

FULL_RUN_MIN_CASES = 1000
POST_OPERATIONS = {"POST /v1/generate", "POST /invocations", "POST /v1/reconstruct", "POST /v1/interpolate",
                   "POST /v1/variations"}

app = create_app(
    ServingSettings(load_default=False, clip_tokens=False),
    {"fake": FakeGenerator(), "fake-vae": FakeLatentGenerator()},
    clip_counter=lambda text: len(text.split()),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
_counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
_common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def case_counts() -> Iterator[dict[str, collections.Counter[str]]]:
    """Counts the cases run per test and operation; checks the full run's total at the end."""
    yield _counts
    for name, counts in _counts.items():
        logger.info("%s: %d cases %s", name, sum(counts.values()), dict(counts))
    full = _counts.get("full")
    if full and POST_OPERATIONS <= set(full):
        total = sum(full.values())
        assert total >= FULL_RUN_MIN_CASES, f"only {total} schemathesis cases ran"


@schema.parametrize()
@settings(max_examples=15, derandomize=True, **_common)
def test_api_fuzz_quick(case: schemathesis.Case) -> None:
    _counts["quick"][case.operation.label] += 1
    case.call_and_validate()


@pytest.mark.fuzz
@schema.parametrize()
@settings(max_examples=150, **_common)
def test_api_fuzz_full(case: schemathesis.Case, request: pytest.FixtureRequest) -> None:
    _counts["full"][case.operation.label] += 1
    case.call_and_validate()


real_settings = ServingSettings(load_default=False, clip_tokens=False)
real_app = create_app(real_settings, {})
#: The client waits as long as the service may take to answer (its request timeout, then 504), not
#: schemathesis' 10 s: a valid heavy request (37 prompts, near-greedy top_p, so four rounds of 296
#: rows) is slow on a 2-core machine, and its answer is what the test judges.
REAL_TIMEOUT_S = real_settings.request_timeout_s + 10
real_schema = schemathesis.openapi.from_asgi("/openapi.json", real_app).include(
    path_regex="^/(v1/generate|invocations)$"
)


@pytest.fixture(scope="module")
def serve_tiny_checkpoint(request: pytest.FixtureRequest) -> None:
    """Serve the shared tiny checkpoint (a real GPT) from ``real_app``."""
    import textopia
    from textopia.serving.models import ModelStore

    tiny_checkpoint = request.getfixturevalue("tiny_checkpoint")
    real_app.state.textopia.store = ModelStore({"tiny": textopia.load(str(tiny_checkpoint))})


@pytest.mark.fuzz
@pytest.mark.slow
@real_schema.parametrize()
@settings(max_examples=40, **_common)
def test_api_fuzz_real_model(case: schemathesis.Case, serve_tiny_checkpoint: None) -> None:
    """The generate operations against a real (tiny) GPT: decoding never answers 5xx. An idea the
    schema allows can still be longer than the model reads (128 positions; a character outside
    the BMP is four byte tokens): its documented one-line 422 is the right answer, not a valid
    request rejected."""
    from schemathesis.checks import positive_data_acceptance

    _counts["real"][case.operation.label] += 1
    response = case.call(timeout=REAL_TIMEOUT_S)
    too_long = response.status_code == 422 and "the text is too long" in response.text
    case.validate_response(response, excluded_checks=[positive_data_acceptance] if too_long else None)
