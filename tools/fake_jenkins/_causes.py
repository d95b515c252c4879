"""A build's cause, which Jenkins records twice: in build.xml's CauseAction and as the log's first line.

Keeping both forms in one object keeps them consistent: a run started "by user admin" shows that user
in the XML and as a hyperlink note in the log, and a matrix child refers to it as its upstream cause.
"""

from __future__ import annotations

from tools.fake_jenkins._console_notes import _console_note_user
from tools.fake_jenkins._formats import BRANCH_API
from tools.fake_jenkins._xml_text import _indent, _x


class _Cause:
    """One cause: its XStream form in CauseAction and its console lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.user: str | None = None
        if text.startswith("Started by user "):
            self.user = text[len("Started by user ") :]
            self.xml = (
                "<hudson.model.Cause_-UserIdCause>\n"
                f"  <userId>{_x(self.user)}</userId>\n"
                "</hudson.model.Cause_-UserIdCause>"
            )
        elif text == "Started by timer":
            self.xml = "<hudson.triggers.TimerTrigger_-TimerTriggerCause/>"
        elif text == "Started by an SCM change":
            self.xml = "<hudson.triggers.SCMTrigger_-SCMTriggerCause/>"
        elif text == "Branch indexing":
            self.xml = f'<jenkins.branch.BranchIndexingCause plugin="{BRANCH_API}"/>'
        elif text.startswith("Started by remote host "):
            self.xml = (
                "<hudson.model.Cause_-RemoteCause>\n"
                f"  <addr>{_x(text[len('Started by remote host ') :])}</addr>\n"
                "  <note></note>\n"
                "</hudson.model.Cause_-RemoteCause>"
            )
        else:
            self.xml = "<hudson.model.Cause_-UserIdCause/>"

    def console(self) -> bytes:
        if self.user is not None:
            return b"Started by user " + _console_note_user(self.user) + self.user.encode() + b"\n"
        return self.text.encode() + b"\n"

    def upstream(self, project: str, number: int) -> str:
        """An UpstreamCause pointing at ``project #number`` caused by this cause."""
        return (
            "<hudson.model.Cause_-UpstreamCause>\n"
            f"  <upstreamProject>{_x(project)}</upstreamProject>\n"
            f"  <upstreamUrl>job/{_x('/job/'.join(project.split('/')))}/</upstreamUrl>\n"
            f"  <upstreamBuild>{number}</upstreamBuild>\n"
            "  <upstreamCauses>\n" + _indent(self.xml, 4) + "\n  </upstreamCauses>\n"
            "</hudson.model.Cause_-UpstreamCause>"
        )
