#!/usr/bin/env bash
# Both ends of every dependency range in pyproject.toml: one fresh virtual environment with the lowest
# versions the ranges allow (uv's --resolution lowest-direct: the direct dependencies at their lower
# bounds) and one with the highest, each running the tests that exercise those libraries. The main
# test run sees only whatever pip picked that day; this is what keeps the lower bounds true and shows
# a new release inside a range breaking the code before a user installs it.
#
#   tools/deps_ends.sh                  # needs uv on PATH (pip install uv), or UV=/path/to/uv
#   PYTHON=python3.12 tools/deps_ends.sh
#
# Any failure, pytest finding no tests included (exit 5), fails the script. mypy and ruff are not run
# here (tests/test_code_quality.py runs them in the main environment).
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-uv}
PYTHON=${PYTHON:-python3}

# The tests that touch the bounded libraries: watchdog (the watcher, the Jenkins source and the daemon
# end to end, an overflow and a reader thread that ends), aiohttp (the Compass and Jira transports, the
# GraphQL client, the Jira doctor and answers, the proxy middleware, a portal's answers, the metrics
# server), pydantic and PyYAML (the configuration, its Jira part and the deployment reachability), prometheus-client (the metrics), defusedxml and python-dateutil (the parsers and the
# file sources).
SUBSET=(
  tests/daemon/sources/test_watch.py
  tests/daemon/test_service_reader.py
  tests/e2e/test_inotify_overflow.py
  tests/daemon/sources/jenkins/test_jenkins_source.py
  tests/daemon/config/test_config.py
  tests/daemon/config/test_jira_config.py
  tests/daemon/config/test_reachability.py
  tests/daemon/test_jira_transport.py
  tests/daemon/test_jira_doctor.py
  tests/daemon/test_jira_answers.py
  tests/daemon/delivery/test_compass_transport.py
  tests/daemon/delivery/test_compass_graphql.py
  tests/daemon/delivery/test_sender.py
  tests/daemon/delivery/test_sender_portal.py
  tests/daemon/delivery/test_proxy.py
  tests/daemon/test_recovery.py
  tests/daemon/ops/test_metrics.py
  tests/daemon/sources/files/test_file_sources.py
  tests/parsers
  tests/e2e/test_jenkins_to_compass.py
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for end in lowest-direct highest; do
  venv="$work/$end"
  echo "== dependencies at the $end end"
  "$UV" venv --quiet --python "$PYTHON" "$venv"
  VIRTUAL_ENV="$venv" "$UV" pip install --quiet --resolution "$end" -e '.[test]'
  VIRTUAL_ENV="$venv" "$UV" pip freeze --quiet \
    | grep -iE '^(watchdog|aiohttp|pyyaml|python-dateutil|pydantic|defusedxml|prometheus-client)=='
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${SUBSET[@]}"
done
