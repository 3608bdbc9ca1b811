"""The HTTP API against its own OpenAPI schema: Schemathesis generates valid and invalid requests
for every operation and runs every check (no server error, responses that match the schema and
declare their status codes and content types, schema-valid requests accepted, invalid ones
refused, undeclared methods answered 405 with ``Allow``, …).

The examples are derandomised (the same requests on every run) and bounded for ``make test``;
``SEGUE_FUZZ_EXAMPLES=1000`` runs the large campaign whose figures are in
``benchmarks/RESULTS.md`` ("Robustness").
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from segue.serve.app import LOOPBACK_HOSTS, create_app  # noqa: E402
from segue.serve.service import Service  # noqa: E402

EXAMPLES = int(os.environ.get("SEGUE_FUZZ_EXAMPLES", "40"))
OPERATIONS = {
    "POST /v1/recommendations",
    "GET /v1/tracks",
    "GET /v1/tracks/{uri}/similar",
    "POST /v1/playlists",
    "GET /v1/models",
    "GET /healthz",
}


@pytest.fixture(scope="module")
def api_schema(planted, tmp_path_factory):
    models = [planted["models"][name] for name in ("popular", "itemknn", "title")]
    service = Service.load(models, state_dir=tmp_path_factory.mktemp("state"))
    # The ASGI test client names itself "testserver" in the Host header.
    app = create_app(service, allowed_hosts=(*LOOPBACK_HOSTS, "testserver"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_passes_every_check(api_schema, mode):
    """Each operation, ``EXAMPLES`` generated requests of the mode (valid, or invalid in one
    part), every response checked by all of Schemathesis's checks."""
    sent: Counter = Counter()
    for result in api_schema.get_all_operations():
        try:
            _campaign(result.ok(), mode, sent)()
        except Unsatisfiable:  # an operation without inputs has no invalid request to send
            assert mode == "negative" and result.ok().path in ("/v1/models", "/healthz")
    # The campaign reached every operation (an empty one would prove nothing).
    expected = OPERATIONS if mode == "positive" else OPERATIONS - {"GET /v1/models", "GET /healthz"}
    assert set(sent) == expected, sent
    with_inputs = OPERATIONS - {"GET /v1/models", "GET /healthz"}  # those run once
    assert min(sent[name] for name in with_inputs) >= min(EXAMPLES, 5), sent
    print(f"{mode}: {sum(sent.values())} requests, {dict(sent)}")


def _campaign(operation, mode: str, sent: Counter):
    """A Hypothesis test of one operation: generated cases, each called and fully checked."""
    name = f"{operation.method.upper()} {operation.path}"
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        sent[name] += 1
        case.call_and_validate()

    return run
