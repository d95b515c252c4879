"""Synthetic Jenkins records shaped like the real ones, for the table-driven parser tests."""

from __future__ import annotations

FREESTYLE = b"""<?xml version='1.1' encoding='UTF-8'?>
<build>
  <actions>
    <hudson.model.CauseAction>
      <causeBag class="linked-hash-map">
        <entry>
          <hudson.model.Cause_-UserIdCause>
            <userId>admin</userId>
          </hudson.model.Cause_-UserIdCause>
          <int>1</int>
        </entry>
      </causeBag>
    </hudson.model.CauseAction>
    <hudson.plugins.git.util.BuildData plugin="git@5.2.0">
      <buildsByBranchName>
        <entry>
          <string>refs/remotes/origin/main</string>
          <hudson.plugins.git.util.Build>
            <marked plugin="git-client@4.0">
              <sha1>0123456789abcdef0123456789abcdef01234567</sha1>
              <branches class="singleton-set">
                <hudson.plugins.git.Branch>
                  <sha1 reference="../../../sha1"/>
                  <name>refs/remotes/origin/main</name>
                </hudson.plugins.git.Branch>
              </branches>
            </marked>
            <revision reference="../marked"/>
            <hudsonBuildNumber>42</hudsonBuildNumber>
          </hudson.plugins.git.util.Build>
        </entry>
      </buildsByBranchName>
      <lastBuild reference="../buildsByBranchName/entry/hudson.plugins.git.util.Build"/>
      <remoteUrls/>
    </hudson.plugins.git.util.BuildData>
  </actions>
  <queueId>17</queueId>
  <timestamp>1700000000000</timestamp>
  <startTime>1700000000005</startTime>
  <result>UNSTABLE</result>
  <duration>65432</duration>
  <charset>UTF-8</charset>
  <keepLog>false</keepLog>
  <displayName>release 1.2 &#x1b;[1m</displayName>
  <description>nightly &amp; manual</description>
  <builtOn>agent-7</builtOn>
  <workspace>/var/jenkins_home/ws/app</workspace>
  <hudsonVersion>2.440.1</hudsonVersion>
  <scm class="hudson.scm.NullChangeLogParser"/>
  <culprits class="com.google.common.collect.EmptyImmutableSortedSet"/>
</build>
"""

RUNNING_PIPELINE = b"""<?xml version="1.1" encoding="UTF-8"?>
<flow-build plugin="workflow-job@1400.v7fd111b_ec82f">
  <actions/>
  <queueId>1</queueId>
  <timestamp>1770000000000</timestamp>
  <startTime>1770000000003</startTime> <!-- hand edited -->
  <duration>0</duration>
  <charset>UTF-8</charset>
  <keepLog>false</keepLog>
  <execution class="org.jenkinsci.plugins.workflow.cps.CpsFlowExecution">
    <result>SUCCESS</result>
    <script>node { sh 'make' }</script>
    <done>false</done>
  </execution>
  <completed>false</completed>
  <checkouts class="hudson.util.PersistedList"/>
</flow-build>
"""

OLD_PIPELINE = b"""<?xml version='1.0' encoding='UTF-8'?>
<flow-build plugin="workflow-job@2.10">
  <actions/>
  <timestamp>1521734312841</timestamp>
  <startTime>1521734312842</startTime>
  <result>FAILURE</result>
  <duration>2241</duration>
  <execution class="org.jenkinsci.plugins.workflow.cps.CpsFlowExecution">
    <result>FAILURE</result>
  </execution>
</flow-build>
"""

MATRIX_PARENT_RUNNING = b"""<?xml version='1.0' encoding='UTF-8'?>
<matrix-build>
  <actions>
    <hudson.matrix.MatrixBuild_-RunPtr>
      <matrix-run><result>FAILURE</result></matrix-run>
    </hudson.matrix.MatrixBuild_-RunPtr>
  </actions>
  <timestamp>1359531807000</timestamp>
  <duration>0</duration>
</matrix-build>
"""

LEGACY_WINDOWS_1252 = (
    b"<?xml version='1.0' encoding='windows-1252'?>\n"
    b"<matrix-run>\n"
    b"  <actions/>\n"
    b"  <number>3</number>\n"
    b"  <result>ABORTED</result>\n"
    b"  <duration>3253844</duration>\n"
    b"  <charset>windows-1252</charset>\n"
    b"  <description>caf\xe9 \x80 build</description>\n"
    b"  <builtOn>amachine</builtOn>\n"
    b"</matrix-run>\n"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<build><result>&lol9;</result></build>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE build [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<build><description>&xxe;</description><result>SUCCESS</result></build>
"""

HOSTILE = {
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": EXTERNAL_ENTITY,
    "plain-doctype": b"<?xml version='1.1'?>\n<!DOCTYPE build>\n<build><result>SUCCESS</result></build>",
    "external-dtd": b'<!DOCTYPE build SYSTEM "http://example.invalid/evil.dtd"><build/>',
    "parameter-entity": (
        b'<!DOCTYPE build [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
        b"<build><result>SUCCESS</result></build>"
    ),
    "internal-entity": b'<!DOCTYPE build [<!ENTITY who "me">]><build><builtOn>&who;</builtOn></build>',
}
