"""The state vocabulary: Compass's build and deployment states, Jenkins' and GoCD's results, and the
words other CI servers use for a result. This is the one place these words are written.

It lives at the bottom layer so that the parsers (which recognise a result in a file), the
configuration (which validates a ``state_map`` or ``result_map``), the event rules (which decide a
run's Compass state, in ``daemon/events.py`` and nowhere else) and the metrics (one series per
state) all read the same tuples. Only data here: the decision itself is the event rules'.
"""

from __future__ import annotations

__all__ = [
    "BUILD_STATES",
    "COMPASS_STATES",
    "DEFAULT_STATE_MAP",
    "DEPLOYMENT_STATES",
    "GOCD_RESULTS",
    "JENKINS_RESULTS",
    "RESULT_WORDS",
    "TERMINAL_STATES",
]

# A build event's states (Compass's CompassBuildEventState).
BUILD_STATES: tuple[str, ...] = (
    "IN_PROGRESS",
    "SUCCESSFUL",
    "CANCELLED",
    "FAILED",
    "ERROR",
    "TIMED_OUT",
    "UNKNOWN",
)
# What a run's state may be called in the configuration and in a result file: the build states.
COMPASS_STATES = BUILD_STATES
# A deployment event's states: no ERROR or TIMED_OUT, and ROLLED_BACK; PENDING is never sent.
DEPLOYMENT_STATES: tuple[str, ...] = (
    "IN_PROGRESS",
    "SUCCESSFUL",
    "CANCELLED",
    "FAILED",
    "ROLLED_BACK",
    "UNKNOWN",
)
# What a finished run's result may be mapped to: every state but IN_PROGRESS, and ROLLED_BACK (a
# deployment's own state; a build reports it as FAILED).
TERMINAL_STATES: tuple[str, ...] = (*(s for s in BUILD_STATES if s != "IN_PROGRESS"), "ROLLED_BACK")

# The results Jenkins writes (``<result>`` in build.xml, ``Finished: X`` in the console log).
JENKINS_RESULTS: tuple[str, ...] = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")
# Jenkins result -> Compass state, unless ``state_map`` says otherwise.
DEFAULT_STATE_MAP: dict[str, str] = {
    "SUCCESS": "SUCCESSFUL",
    "FAILURE": "FAILED",
    "UNSTABLE": "FAILED",
    "ABORTED": "CANCELLED",
    "NOT_BUILT": "CANCELLED",
}

# GoCD's JobResult, in lower case (a console's status lines); the common words below map them.
GOCD_RESULTS = frozenset({"passed", "failed", "cancelled", "unknown"})

# Other CI servers' words for a result (lower case) -> Compass state, unless a source's
# ``result_map`` says otherwise.
_WORDS: dict[str, tuple[str, ...]] = {
    "SUCCESSFUL": ("success", "successful", "succeeded", "passed", "pass", "ok", "green", "fixed"),
    "FAILED": ("failure", "failed", "fail", "broken", "red", "unstable"),
    "ERROR": ("error", "errored", "exception"),
    "CANCELLED": ("aborted", "cancelled", "canceled", "killed", "stopped", "skipped", "not_built"),
    "TIMED_OUT": ("timeout", "timed_out", "timedout", "timed out"),
}
RESULT_WORDS: dict[str, str] = {word: state for state, words in _WORDS.items() for word in words}
