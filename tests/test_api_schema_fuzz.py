"""The web API fuzzed from its own ``/openapi.json`` with schemathesis (issue 18).

Every operation the schema describes gets a bounded number of generated requests,
schema-valid ones and schema-violating ones (schemathesis's positive and negative
modes), sent to the app in process (ASGI). The checks:

- no 5xx answer (``not_a_server_error``);
- every answer is declared in the schema: its status code, its content type, its
  headers and its body (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``).

Left out, with reasons:

- ``positive_data_acceptance`` (a schema-valid request must get a 2xx): the API
  documents 4xx answers to schema-valid requests that a schema cannot express: a
  picture with no digit (422), bytes that are not an image (400), exactly one of
  ``image`` and ``pixels`` (422).
- ``negative_data_rejection`` (a schema-violating request must get a 4xx): FastAPI
  validates with pydantic's lax mode, which by design accepts ``0`` for ``false``
  and ``"3"`` for ``3``; schemathesis counts those as accepted invalid data.

After the fuzzing, the server still answers a normal request correctly.
Examples per operation: ``CNNLAB_SCHEMA_EXAMPLES`` (default 25).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
)

from cnnlab.preprocess import to_model_input  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from cnnlab.zoo import small_cnn  # noqa: E402

EXAMPLES = int(os.environ.get("CNNLAB_SCHEMA_EXAMPLES", "25"))

MODEL = small_cnn(seed=0)  # untrained: the API's contract does not depend on accuracy
MODEL.class_names = [str(i) for i in range(10)]
APP = create_app(MODEL, source="schema fuzz")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx2")
CALLS: dict[str, int] = {}  # requests sent per operation (printed with -s)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    key = f"{case.method} {case.path}"
    CALLS[key] = CALLS.get(key, 0) + 1
    case.call_and_validate(excluded_checks=[positive_data_acceptance,
                                            negative_data_rejection])


def test_server_still_answers_correctly_after_the_fuzzing():
    if CALLS:
        print(f"\nschemathesis requests: {sum(CALLS.values())} over {len(CALLS)} operations: "
              + ", ".join(f"{k} {v}" for k, v in sorted(CALLS.items())))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    client = TestClient(APP)
    raw = np.zeros((28, 28), np.uint8)
    raw[6:22, 12:16] = 255  # a "1"
    r = client.post("/api/predict", json={"pixels": raw.tolist(), "prepare": False,
                                          "include_maps": False})
    assert r.status_code == 200, r.text
    expected = MODEL.predict(to_model_input(raw))[0]
    np.testing.assert_allclose(r.json()["probabilities"], expected, rtol=1e-5, atol=1e-7)
    assert client.get("/api/model").json()["name"] == MODEL.name
