from __future__ import annotations

import random

import pytest

from parsers import LogFacts, parse_log, strip_console_notes

NOTE_OLD = b"\x1b[8mha:AAAAlh+LCAAAAAAAAP9b\x1b[0m"
NOTE_NEW = b"\x1b[8mha:////4PBfBFHkLZoRW7gaTsdU6KZlv1iBPEFricWlXN1Ub==\x1b[0m"


def _log(data: bytes) -> LogFacts:
    return parse_log(data, data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Started by user \x1b[8mha:AAAAlh+LCAAAAAAAAP9b\x1b[0mAdmin\n", b"Started by user Admin\n"),
        (NOTE_NEW + b"[Pipeline] node\n", b"[Pipeline] node\n"),
        (NOTE_OLD + NOTE_NEW + b"x", b"x"),
        (b"\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m", b"red bold green"),
        (b"no escapes\r\n", b"no escapes\r\n"),
        (b"\x1b[8mha:not base64!\x1b[0mtext", b"ha:not base64!text"),
        (b"\x1b[2Kclear line", b"\x1b[2Kclear line"),
        (b"", b""),
    ],
)
def test_strip_console_notes(data: bytes, expected: bytes) -> None:
    assert strip_console_notes(data) == expected


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (b"Started\nFinished: SUCCESS\n", "SUCCESS"),
        (b"Started\r\nFinished: FAILURE\r\n", "FAILURE"),
        (b"Finished: UNSTABLE\n", "UNSTABLE"),
        (b"x\nFinished: NOT_BUILT\n", "NOT_BUILT"),
        (b"Build was aborted\nAborted by admin\nFinished: ABORTED\n", "ABORTED"),
        (b"Finished: FAILURE\nmore output\nFinished: SUCCESS\n", "SUCCESS"),
        (b"Finished: SUCCESS\nFinished: FAILURE\n", "FAILURE"),
        (b"Started\nFinished: SUCCESS", None),
        (b"Finished: FAILURE\nFinished: SUCCESS", "FAILURE"),
        (b"Finished: SUCC\n", None),
        (b"Finished: success\n", None),
        (b"Finished: PASSED\n", None),
        (b"echo Finished: SUCCESS\n", None),
        (b"Finished:SUCCESS\n", None),
        (b"Finished: SUCCESS   \n", "SUCCESS"),
        (NOTE_NEW + b"Finished: SUCCESS\n", "SUCCESS"),
        (b"[2024-05-01T12:00:00.000Z] Finished: UNSTABLE\n", "UNSTABLE"),
        (b"", None),
        (b"\n\n\n", None),
    ],
    ids=[
        "success",
        "crlf",
        "unstable",
        "not-built",
        "aborted",
        "last-wins",
        "last-wins-2",
        "partial-last-line",
        "partial-last-line-earlier-wins",
        "truncated-word",
        "lowercase",
        "unknown-word",
        "not-at-line-start",
        "no-space",
        "trailing-space",
        "after-note",
        "timestamper-prefix",
        "empty",
        "blank-lines",
    ],
)
def test_finished_line(log: bytes, expected: str | None) -> None:
    assert _log(log).finished_result == expected


def test_tail_first_partial_line_is_ignored() -> None:
    head = b"Started by timer\nBuilding\n"
    assert parse_log(head, b"ed: FAILURE\nmore\n").finished_result is None
    # The window may start in the middle of "echo Finished: FAILURE".
    assert parse_log(head, b"Finished: FAILURE\nmore\n").finished_result is None
    assert parse_log(head, b"x\nFinished: FAILURE\n").finished_result == "FAILURE"


def test_tail_wins_over_head() -> None:
    head = b"Started\nFinished: FAILURE\nretrying\n"
    tail = b"ing\nFinished: SUCCESS\n"
    assert parse_log(head, tail).finished_result == "SUCCESS"


def test_identical_head_and_tail_keep_first_line() -> None:
    data = b"Finished: SUCCESS\n"
    assert parse_log(data, data).finished_result == "SUCCESS"


def test_large_log_head_and_tail_windows() -> None:
    body = b"".join(b"line %d of the build output\n" % i for i in range(20000))
    data = b"Started by user \x1b[8mha:AAAA\x1b[0mbob\n" + body + b"Finished: UNSTABLE\n"
    facts = parse_log(data[:65536], data[-65536:])
    assert facts == LogFacts(
        finished_result="UNSTABLE", timed_out=False, causes=("Started by user bob",), commit=None
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"Build timed out (after 3 minutes). Marking the build as aborted.\n", True),
        (b"Build timed out (after 1 minute). Marking the build as failed.\n", True),
        (b"Build timed out (after 10 minutes). Marking the build as failed.\r\n", True),
        (NOTE_NEW + b"Timeout has been exceeded\n", True),
        (b"Cancelling nested steps due to timeout\n", True),
        (b"[2024-05-01T12:00:00.000Z] Cancelling nested steps due to timeout\n", True),
        (b"Timeout set to expire in 10 min\n", False),
        (b"curl: (28) Connection timed out after 3000 milliseconds\n", False),
        (b"Build timed out (after 3 minutes). Marking the build as aborted.", False),
        (b"", False),
    ],
)
def test_timed_out(line: bytes, expected: bool) -> None:
    assert _log(b"Started by timer\n" + line).timed_out is expected


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            b"Started by user \x1b[8mha:AAAAlh+LCAAAAAAAAP9b\x1b[0mAdmin\nBuilding\n",
            ("Started by user Admin",),
        ),
        (b"Started by timer\r\nRunning as SYSTEM\r\n", ("Started by timer",)),
        (b"Started\n[Pipeline] Start of Pipeline\n", ("Started",)),
        (b"Branch indexing\nObtained Jenkinsfile\n", ("Branch indexing",)),
        (
            b'Started by upstream project "up" build number 3\noriginally caused by:\n'
            b' Started by upstream project "top" build number 9\n originally caused by:\n'
            b"  Started by user admin\nStarted by an SCM change\nRunning as SYSTEM\n",
            ('Started by upstream project "up" build number 3', "Started by an SCM change"),
        ),
        (
            b"Started by timer\nStarted by timer\nStarted by user x\n",
            ("Started by timer", "Started by user x"),
        ),
        (b"Started by timer\nBuilding\nStarted by user x\n", ("Started by timer",)),
        (b"Push event to branch main\nStarted by user x\nBuilding\n", ("Started by user x",)),
        (b"Building in workspace /w\nFinished: SUCCESS\n", ()),
        (b"Started by user adm", ()),
        (b"Starting things\n", ()),
        (b"[2024-05-01T12:00:00.000Z] Started by timer\n", ("Started by timer",)),
        (b"Started by user " + b"x" * 500 + b"\n", ("Started by user " + "x" * 184,)),
    ],
    ids=[
        "user-with-note",
        "crlf",
        "plain-started",
        "branch-indexing",
        "upstream-children-skipped",
        "deduplicated",
        "stops-at-output",
        "after-plugin-line",
        "none",
        "partial-line",
        "not-a-cause",
        "timestamper",
        "capped",
    ],
)
def test_causes(log: bytes, expected: tuple[str, ...]) -> None:
    assert _log(log).causes == expected


def test_causes_come_from_head_only() -> None:
    head = b"Started by timer\nBuilding\n"
    tail = b"xx\nStarted by user mallory\nFinished: SUCCESS\n"
    assert parse_log(head, tail).causes == ("Started by timer",)


SHA1 = "82de19a0a55e29e34cbab90b9b59e4aac379a155"
SHA2 = "a1a240daed379d7405c50438788dae02076ceebd"


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (f"Checking out Revision {SHA1} (refs/remotes/origin/main)\n", SHA1),
        (f"Checking out Revision {SHA1.upper()} (main)\r\n", SHA1),
        (f"Obtained Jenkinsfile from {SHA1}\n", SHA1),
        (f"Obtained Jenkinsfile from {SHA1}\nChecking out Revision {SHA2} (master)\n", SHA1),
        (f"Checking out Revision {SHA2} (master)\nObtained Jenkinsfile from {SHA1}\n", SHA1),
        (f"Checking out Revision {SHA2} (a)\nChecking out Revision {SHA1} (b)\n", SHA2),
        (f"[2024-05-01T12:00:00.000Z] Checking out Revision {SHA1} (main)\n", SHA1),
        (f"Checking out Revision {SHA1[:39]} (main)\n", None),
        (f"Checking out Revision {SHA1}0 (main)\n", None),
        (f"Obtained Jenkinsfile from {SHA1}ff\n", None),
        ("Obtained Jenkinsfile from git\n", None),
        (f"Checking out Revision {SHA1} (main)", None),
        ("", None),
    ],
    ids=[
        "checkout",
        "uppercase-crlf",
        "jenkinsfile",
        "jenkinsfile-preferred",
        "jenkinsfile-preferred-later",
        "first-checkout",
        "timestamper",
        "short-sha",
        "long-sha",
        "long-jenkinsfile-sha",
        "not-a-sha",
        "partial-line",
        "empty",
    ],
)
def test_commit(log: str, expected: str | None) -> None:
    assert _log(b"Started\n" + log.encode()).commit == expected


def test_commit_found_in_tail() -> None:
    head = b"Started\n" + b"noise\n" * 10
    tail = f"oise\nChecking out Revision {SHA1} (main)\nFinished: SUCCESS\n".encode()
    assert parse_log(head, tail).commit == SHA1


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00\x00Finished: SUCCESS\n",
        b"\x1b[8mha:" + b"A" * 100,
        b"\x1b[8mha:AAAA\x1b[0m" * 1000,
        b"\r\r\r\n\n\x00",
        "Started by user J\u00f6rg\nFinished: SUCCESS\n".encode("latin-1"),
    ],
)
def test_garbage_does_not_raise(data: bytes) -> None:
    assert isinstance(_log(data), LogFacts)


def test_latin1_user_is_replaced_not_fatal() -> None:
    facts = _log("Started by user J\u00f6rg\nFinished: SUCCESS\n".encode("latin-1"))
    assert facts.causes == ("Started by user J\ufffdrg",)
    assert facts.finished_result == "SUCCESS"


def test_random_bytes_never_raise() -> None:
    rng = random.Random(12345)
    alphabet = bytes(range(256)) + b"\n\n\n\r\x1b[8mha:0m Finished: SUCCESS Started by"
    for _ in range(2000):
        head = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        tail = (
            head if rng.random() < 0.3 else bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        )
        facts = parse_log(head, tail)
        assert facts.finished_result is None or facts.finished_result in {
            "SUCCESS",
            "UNSTABLE",
            "FAILURE",
            "NOT_BUILT",
            "ABORTED",
        }
