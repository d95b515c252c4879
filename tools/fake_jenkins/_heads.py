"""A branch job's head and metadata, as branch-api saves them in the branch job's config.xml.

The branch property's ``<branch>`` holds the SCM head (``<head class="...">``, its fields as XStream
writes them, the superclass's ``name`` first) and branch-api's ``<actions>``: scm-api's metadata
actions. The shapes follow the fields of the classes that are serialized:

- jenkinsci/scm-api-plugin 24df4bb455f2822fce3513d446facc649f1210e6,
  src/main/java/jenkins/scm/api/SCMHead.java (``name``),
  src/main/java/jenkins/scm/api/metadata/{PrimaryInstance,Object,Contributor}MetadataAction.java;
- jenkinsci/github-branch-source-plugin 57edfa33796a5e85a9342bdf816ad2223f1b560b,
  src/main/java/org/jenkinsci/plugins/github_branch_source/{PullRequest,Branch}SCMHead.java and
  GitHubTagSCMHead.java (a GitTagSCMHead: ``timestamp``);
- jenkinsci/bitbucket-branch-source-plugin 8fdcfe19f6096d94d45644af04035c6a9b1d707e,
  src/main/java/com/cloudbees/jenkins/plugins/bitbucket/{PullRequest,Branch}SCMHead.java and
  BitbucketTagSCMHead.java;
- jenkinsci/git-plugin add6e4dc74e64874e32f53fc90e8b8da3590afe5,
  src/main/java/jenkins/plugins/git/Git{Branch,Tag}SCMHead.java (the plain git branch source).

Only the elements a reader of heads needs are written (no ``origin``, no checkout strategy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tools.fake_jenkins._xml_text import _x

__all__ = ["Head"]

SCM_API = "scm-api@728.vc30dcf7a_0df5"
_CLASSES = {
    "github": {
        "branch": "org.jenkinsci.plugins.github_branch_source.BranchSCMHead",
        "pull_request": "org.jenkinsci.plugins.github_branch_source.PullRequestSCMHead",
        "tag": "org.jenkinsci.plugins.github_branch_source.GitHubTagSCMHead",
    },
    "bitbucket": {
        "branch": "com.cloudbees.jenkins.plugins.bitbucket.BranchSCMHead",
        "pull_request": "com.cloudbees.jenkins.plugins.bitbucket.PullRequestSCMHead",
        "tag": "com.cloudbees.jenkins.plugins.bitbucket.BitbucketTagSCMHead",
    },
    "git": {"branch": "jenkins.plugins.git.GitBranchSCMHead", "tag": "jenkins.plugins.git.GitTagSCMHead"},
}
_PLUGINS = {
    "github": "github-branch-source@1967.1970.vd86979736546",
    "bitbucket": "cloudbees-bitbucket-branch-source@937.3.6",
    "git": "git@5.8.1",
}


@dataclass(frozen=True, slots=True)
class Head:
    """What a branch job builds. ``number``/``title``/``target``/``source_branch``: a pull request's."""

    kind: Literal["branch", "pull_request", "tag"] = "branch"
    flavor: Literal["github", "bitbucket", "git"] = "github"
    primary: bool = False
    number: int = 1
    title: str | None = None
    target: str = "main"
    source_branch: str = "feature"
    url: str | None = None
    timestamp_ms: int = 1_765_000_000_000  # a tag's

    def head_xml(self, name: str, indent: str = "        ") -> str:
        cls = _CLASSES[self.flavor].get(self.kind)
        if cls is None:
            raise ValueError(f"a {self.flavor} branch source has no {self.kind} heads")
        lines = [f'<head class="{cls}" plugin="{_PLUGINS[self.flavor]}">', f"  <name>{_x(name)}</name>"]
        if self.kind == "tag":
            lines.append(f"  <timestamp>{self.timestamp_ms}</timestamp>")
        elif self.kind == "pull_request" and self.flavor == "github":
            lines += [
                "  <merge>false</merge>",
                f"  <number>{self.number}</number>",
                f"  <target>\n    <name>{_x(self.target)}</name>\n  </target>",
                "  <sourceOwner>acme</sourceOwner>",
                "  <sourceRepo>shop</sourceRepo>",
                f"  <sourceBranch>{_x(self.source_branch)}</sourceBranch>",
            ]
        elif self.kind == "pull_request":  # bitbucket: the number is a string, the title in the head
            lines += [
                "  <repoOwner>acme</repoOwner>",
                "  <repository>shop</repository>",
                f"  <branchName>{_x(self.source_branch)}</branchName>",
                "  <branchType>BRANCH</branchType>",
                f"  <number>{self.number}</number>",
                f"  <title>{_x(self.title or '')}</title>",
                f"  <target>\n    <name>{_x(self.target)}</name>\n  </target>",
            ]
        lines.append("</head>")
        return "".join(f"{indent}{line}\n" for line in "\n".join(lines).split("\n"))

    def actions_xml(self, indent: str = "        ") -> str:
        actions: list[str] = []
        if self.primary:
            actions.append(f'<jenkins.scm.api.metadata.PrimaryInstanceMetadataAction plugin="{SCM_API}"/>')
        if self.kind == "pull_request":
            actions.append(
                f'<jenkins.scm.api.metadata.ContributorMetadataAction plugin="{SCM_API}">\n'
                "  <contributor>jdoe</contributor>\n"
                "  <contributorDisplayName>J. Doe</contributorDisplayName>\n"
                "</jenkins.scm.api.metadata.ContributorMetadataAction>"
            )
        if self.title is not None or self.url is not None:
            meta = [f'<jenkins.scm.api.metadata.ObjectMetadataAction plugin="{SCM_API}">']
            if self.title is not None:
                meta.append(f"  <objectDisplayName>{_x(self.title)}</objectDisplayName>")
            meta.append("  <objectDescription/>")
            if self.url is not None:
                meta.append(f"  <objectUrl>{_x(self.url)}</objectUrl>")
            meta.append("</jenkins.scm.api.metadata.ObjectMetadataAction>")
            actions.append("\n".join(meta))
        if not actions:
            return f"{indent}<actions/>\n"
        body = "\n".join(actions)
        inner = "".join(f"{indent}  {line}\n" for line in body.split("\n"))
        return f"{indent}<actions>\n{inner}{indent}</actions>\n"
