"""Where builds come from: one runner per configured source, fed by file-system hints.

``watch`` turns inotify events into hints for the event loop; ``jenkins`` reads a Jenkins home,
``files`` any CI's log and result files. Every source turns what it reads into ``RunFacts`` for the
event rules; none of them knows about Compass.
"""
