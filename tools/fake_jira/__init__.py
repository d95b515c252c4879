"""A local fake of Jira Software Cloud's builds and deployments APIs, for tests.

``FakeJira`` runs an aiohttp server on 127.0.0.1 (random port) in a background thread, as
``tools.fake_compass`` does, and stands in for api.atlassian.com as an on-premises client sees it::

    with FakeJira(known_projects=["OPS"]) as jira:
        token = post(jira.base_url + "/oauth/token", client-credentials grant)
        post(jira.bulk_url("builds"), body, Authorization: Bearer <token>)

- ``POST /oauth/token``: the client-credentials grant, as a form or as JSON; a token that expires
  after ``token_ttl_s`` (or at ``expire_tokens()``), answered with ``access_token``, ``token_type``
  and ``expires_in`` (the last two are assumptions: Atlassian's plugin read only the first);
- ``POST /jira/{builds|deployments}/0.1/cloud/{cloudId}/bulk``: 401 without a live bearer token,
  429 with ``Retry-After`` over ``limit_per_minute``, 400 with ``[{message}]`` for a request
  malformed as a whole, else 202 with ``accepted…``, ``rejected…`` (an item's own problems, or only
  unknown issue keys) and ``unknownIssueKeys``. Each body is checked against the shared reference
  schemas when they sit next to the checkout, else by a structural check (``_validation``), and
  each answer the fake gives against the schemas' response shapes (``AnswerShapeError`` otherwise);
- ``GET /_edge/tenant_info``: the cloudId;
- ``permissions``: the kinds the credentials may send; another kind's bulk request gets 403 after
  the token is checked (what Jira answers then is an assumption: unverified);
- ``interpose(status, body, ...)``: the next requests to the bulk (or token) endpoint get that
  answer instead, as from a proxy's block page, a login redirect or an outage.

Like Jira, an item whose updateSequenceNumber is not above the stored one is accepted but not
stored (``stored(kind)``).
"""

from __future__ import annotations

from tools.fake_jira._server import (
    BULK_PATH,
    TENANT_INFO_PATH,
    TOKEN_PATH,
    AnswerShapeError,
    FakeJira,
    Interposed,
    Submission,
)
from tools.fake_jira._validation import SCHEMA_PATHS, Problems, check_answer, check_body, schemas_present

__all__ = [
    "BULK_PATH",
    "SCHEMA_PATHS",
    "TENANT_INFO_PATH",
    "TOKEN_PATH",
    "AnswerShapeError",
    "FakeJira",
    "Interposed",
    "Problems",
    "Submission",
    "check_answer",
    "check_body",
    "schemas_present",
]
