"""What one answer to a bulk request means, for the request and for each item in it.

Jira validates the items of a bulk request one by one: a 202 lists the items accepted, those
rejected (with Jira's error text), and the issue keys that are not on the site. So the judgement is
data, one ``ItemVerdict`` per item sent, in the order sent, that the sink applies to its outbox rows
in one transaction:

- ``accepted``: the row leaves the outbox. Jira also calls an item accepted when it ignored it for
  an older updateSequenceNumber, and stores an item that names some unknown keys against the known
  ones. An accepted item whose keys are all unknown (Jira should have rejected it) leaves too:
  sending it again would not create the issues. Unknown keys are reported per item and in total
  (``unknown_issue_keys``) - a branch's ``UTF-8`` or a deleted project - never retried.
- ``dead``: a dead letter with Jira's error text (an item rejected; a request refused as a whole
  with Jira's own error list; a request too large even with one item).
- ``retry``: stays queued, the attempt counted, sent again after ``result.retry_after`` (Retry-After)
  or the delivery loop's backoff. Also an item a 202 did not mention: never taken as delivered.
- ``hold``: stays queued untouched: delivery pauses (``result.outcome`` ``unauthorized`` or
  ``not_found``, with a message saying what to fix), or the batch is split in two (``split``: a 413).

``result`` is the request's outcome in the delivery loop's words (``daemon.sinks.SendResult``).
Something other than Jira answering (an HTML page, a redirect to a login page, 407, a 2xx that is not
Jira's JSON) is ``not_compass`` with the ``Answer`` naming it (status, content type, page title):
retried, and the delivery loop pauses after a few in a row, as it does for Compass. Any answer this
module does not recognise as Jira's ends there too rather than as a dead letter, so a wrong
assumption about Jira's answers shows up as a named pause, not as lost builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from daemon.sinks import SendResult
from daemon.sinks.compass.transport import parse_retry_after
from daemon.sinks.jira.reply import Reply

__all__ = ["UNNAMED", "Fate", "ItemVerdict", "Kind", "Verdict", "item_key", "judge"]

Kind = Literal["builds", "deployments"]  # the two bulk endpoints
Fate = Literal["accepted", "dead", "retry", "hold"]
DETAIL_MAX = 2000  # characters of Jira's error text kept for a dead letter
# what a site admin ticks for each kind under Settings > Apps > OAuth credentials
_PERMISSION = {"builds": "Builds", "deployments": "Deployments"}
UNNAMED = "Jira's 202 neither accepted nor rejected it"  # a retry the sink bounds (``UNNAMED_MAX``)


@dataclass(frozen=True, slots=True)
class ItemVerdict:
    """The fate of one item sent; ``detail``: Jira's error text (dead) or why (retry, hold)."""

    fate: Fate
    detail: str = ""
    unknown_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """One answer judged: the request's ``result``, each item's verdict in the order sent, whether
    to send the items again at once as two requests (``split``), and the unknown issue keys."""

    result: SendResult
    items: tuple[ItemVerdict, ...]
    split: bool = False
    unknown_issue_keys: tuple[str, ...] = ()

    def count(self, fate: Fate) -> int:
        return sum(1 for item in self.items if item.fate == fate)


def _norm(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a buildNumber echoed as 1.0
    return unquote(str(value))  # a pipeline id echoed percent-encoded (or not)


def _key(*values: object) -> tuple[str, ...]:
    """Compared as text, normalised: a number Jira echoes as a string or a float, or an id it echoes
    percent-encoded or decoded, still names the same item."""
    return tuple(_norm(v) for v in values)


def item_key(kind: str, item: Mapping[str, Any]) -> tuple[str, ...]:
    """The identity Jira reports an item by: a build's (pipelineId, buildNumber), a deployment's
    (pipeline id, environment id, deploymentSequenceNumber)."""
    if kind == "builds":
        return _key(item.get("pipelineId"), item.get("buildNumber"))
    pipeline, environment = item.get("pipeline") or {}, item.get("environment") or {}
    return _key(pipeline.get("id"), environment.get("id"), item.get("deploymentSequenceNumber"))


def _answer_key(kind: str, key: object) -> tuple[str, ...] | None:
    if not isinstance(key, Mapping):
        return None
    if kind == "builds":
        return _key(key.get("pipelineId"), key.get("buildNumber"))
    return _key(key.get("pipelineId"), key.get("environmentId"), key.get("deploymentSequenceNumber"))


def _messages(data: Any) -> list[str] | None:
    """Jira's error text: ``ErrorMessages`` (``[{message}]``), or the gateway's and the token
    endpoint's forms (``{message}``, ``{errorMessages}``, ``{error, error_description}``); None when
    the body is none of these."""
    if isinstance(data, list) and data and all(isinstance(e, Mapping) and "message" in e for e in data):
        return [str(e["message"]) for e in data]
    if isinstance(data, Mapping):
        if isinstance(data.get("errorMessages"), list) and data["errorMessages"]:
            return [str(m) for m in data["errorMessages"]]
        if "message" in data:
            return [str(data["message"])]
        if "error" in data:
            return [": ".join(str(data[k]) for k in ("error", "error_description") if data.get(k))]
    return None


def _text(messages: Sequence[str]) -> str:
    return "; ".join(messages)[:DETAIL_MAX]


def _all(items: Sequence[object], fate: Fate, detail: str) -> tuple[ItemVerdict, ...]:
    return tuple(ItemVerdict(fate, detail) for _ in items)


def _someone_else(reply: Reply, items: Sequence[object], why: str) -> Verdict:
    """Not Jira's answer: kept and retried; the delivery loop pauses if it goes on."""
    answer = reply.answer()
    detail = f"{why}: {answer.describe()}; a proxy or a login page may be in the way"
    return Verdict(
        SendResult("not_compass", reply.status, detail, answer=answer), _all(items, "retry", detail)
    )


def _pause(
    reply: Reply, items: Sequence[object], outcome: Literal["unauthorized", "not_found"], why: str
) -> Verdict:
    return Verdict(SendResult(outcome, reply.status, why), _all(items, "hold", why))


def _retry(reply: Reply, items: Sequence[object], detail: str) -> Verdict:
    result = SendResult("retry", reply.status, detail, parse_retry_after(reply.retry_after))
    return Verdict(result, _all(items, "retry", detail))


def judge(reply: Reply, kind: str, items: Sequence[Mapping[str, Any]]) -> Verdict:
    """The one decision on what ``reply`` (to a bulk request of ``items`` of ``kind``) means."""
    if reply.status is None:
        return _retry(reply, items, reply.error or "no answer")
    if reply.stage == "token":
        return _judge_token(reply, items)
    status, answer = reply.status, reply.answer()
    messages = _messages(reply.data)
    jira_says = f"HTTP {status}: {_text(messages)}" if messages else answer.describe()
    if status == 202 and isinstance(reply.data, Mapping):
        return _per_item(reply, kind, items)
    if 200 <= status < 400 or status == 407:
        return _someone_else(reply, items, f"not Jira's answer to a bulk {kind} request")
    if status in (401, 403) and answer.html:
        return _someone_else(reply, items, f"HTTP {status} as a web page, not from Jira")
    if status == 401:
        if not reply.renewed:
            return _retry(reply, items, f"{jira_says} before a new token was tried")
        return _pause(
            reply,
            items,
            "unauthorized",
            f"credentials rejected ({jira_says}, also with a new token): check the client id and "
            f"secret and that the app has the {_PERMISSION.get(kind, kind)} permission",
        )
    if status == 403:
        permission = _PERMISSION.get(kind, kind)
        return _pause(
            reply,
            items,
            "unauthorized",
            f"Jira refused the {kind} ({jira_says}): the OAuth credentials lack the {permission} "
            f"permission; a Jira admin adds it under Settings > Apps > OAuth credentials",
        )
    if status == 404:
        return _pause(
            reply,
            items,
            "not_found",
            f"no {kind} endpoint there ({jira_says}): check the site's cloud id and the API address",
        )
    if status == 413:
        if len(items) > 1:
            detail = f"{jira_says}: {len(items)} {kind} are too many for one request; sent again in two"
            return Verdict(SendResult("retry", status, detail, 0.0), _all(items, "hold", detail), split=True)
        return Verdict(
            SendResult("rejected", status, jira_says),
            _all(items, "dead", f"too large for Jira even alone ({jira_says})"),
        )
    if status in (408, 425, 429) or status >= 500:
        return _retry(reply, items, jira_says)
    if messages is not None:  # 400 and the rest: the request refused as a whole, in Jira's words
        detail = f"Jira refused the request ({jira_says})"
        return Verdict(SendResult("rejected", status, detail), _all(items, "dead", detail))
    return _someone_else(reply, items, f"HTTP {status} without Jira's error list")


def _judge_token(reply: Reply, items: Sequence[object]) -> Verdict:
    """The token endpoint answered instead of handing out a token."""
    status = reply.status or 0
    answer = reply.answer()
    messages = _messages(reply.data)
    if status in (408, 425, 429) or status >= 500:
        return _retry(reply, items, f"token endpoint: {answer.describe()}")
    if messages is None or answer.html or 200 <= status < 400:
        return _someone_else(reply, items, "not an OAuth token answer")
    return _pause(
        reply,
        items,
        "unauthorized",
        f"the token endpoint refused the {'token request' if status == 400 else 'client credentials'} "
        f"(HTTP {status}: {_text(messages)}): check the client id and secret of the OAuth "
        "credentials made in Jira",
    )


def _per_item(reply: Reply, kind: str, items: Sequence[Mapping[str, Any]]) -> Verdict:
    """A 202: each item's fate from the lists in Jira's answer (any of them may be absent)."""
    data: Mapping[str, Any] = reply.data
    title = kind.title()
    named_accepted = [_answer_key(kind, k) for k in _list(data, f"accepted{title}")]
    named_rejected: list[tuple[tuple[str, ...] | None, str]] = []
    for entry in _list(data, f"rejected{title}"):
        if isinstance(entry, Mapping):
            errors = _messages(entry.get("errors")) or ["rejected without a reason"]
            named_rejected.append((_answer_key(kind, entry.get("key")), _text(errors)))
    sent = [item_key(kind, item) for item in items]
    if _by_position(sent, named_accepted, [k for k, _ in named_rejected]):
        # Jira named as many items as were sent, in words none of them matches: one list only, so
        # its order is the order sent (the bulk endpoints answer in the order of the request)
        named_accepted = list(sent) if named_accepted else []
        if named_rejected:
            named_rejected = [(k, why) for k, (_, why) in zip(sent, named_rejected, strict=True)]
    accepted = set(named_accepted)
    rejected = dict(named_rejected)
    unknown = tuple(str(k) for k in _list(data, "unknownIssueKeys"))
    unknown_set = set(unknown)
    verdicts: list[ItemVerdict] = []
    for item, key in zip(items, sent, strict=True):
        keys = [k for k in item.get("issueKeys") or () if isinstance(k, str)]
        missing = tuple(k for k in keys if k in unknown_set)
        if key in rejected:
            verdicts.append(ItemVerdict("dead", rejected[key], missing))
        elif key in accepted:
            note = "none of its issue keys is on the site" if keys and len(missing) == len(keys) else ""
            verdicts.append(ItemVerdict("accepted", note, missing))
        else:
            verdicts.append(ItemVerdict("retry", UNNAMED, missing))
    if items and all(v.fate == "retry" for v in verdicts):
        return _someone_else(reply, items, f"a 202 that names none of the {len(items)} {kind} sent")
    result = SendResult(
        "accepted",
        reply.status,
        f"{sum(v.fate == 'accepted' for v in verdicts)} accepted, "
        f"{sum(v.fate == 'dead' for v in verdicts)} rejected, {len(unknown)} unknown issue keys",
    )
    return Verdict(result, tuple(verdicts), unknown_issue_keys=unknown)


def _by_position(
    sent: list[tuple[str, ...]],
    accepted: list[tuple[str, ...] | None],
    rejected: list[tuple[str, ...] | None],
) -> bool:
    """Whether the answer is read by position: it names exactly as many items as were sent, all in
    one list, and none by a key that was sent."""
    named = accepted or rejected
    if (accepted and rejected) or len(named) != len(sent):
        return False
    return bool(sent) and not set(sent) & set(named)


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    return value if isinstance(value, list) else []
