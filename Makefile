# `make deb` builds the Debian package on Debian 12 or 13 or Ubuntu 24.04 (README, "Running as a
# service"). It builds from a copy of the checkout's files in $(DEB_DIR)/src, so nothing is written into
# tracked paths, and leaves buildtail_<version>_<arch>.deb in $(DEB_DIR).
DEB_DIR ?= build/deb

# The binary package's version carries the distribution it was built on (0.2.0-1~deb12, 0.2.0-1~deb13,
# 0.2.0-1~ubuntu24.04): each build's venv is made with that release's Python, so packages from different
# releases can sit in one apt repository and never replace each other. Set DEB_SUFFIX to override it.
OS_ID := $(shell . /etc/os-release 2>/dev/null && echo "$$ID")
OS_VERSION_ID := $(shell . /etc/os-release 2>/dev/null && echo "$$VERSION_ID")
OS_CODENAME := $(shell . /etc/os-release 2>/dev/null && echo "$$VERSION_CODENAME")
DEB_SUFFIX ?= $(if $(OS_VERSION_ID),~$(subst debian,deb,$(OS_ID))$(OS_VERSION_ID))

.PHONY: deb
deb:
	@test -n "$(DEB_SUFFIX)" || { echo "make deb: no VERSION_ID in /etc/os-release; set DEB_SUFFIX (e.g. DEB_SUFFIX=~deb14)" >&2; exit 2; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	git ls-files -z --cached --others --exclude-standard \
		| tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C $(DEB_DIR)/src
	sed -i '1s/^\([^ ]*\) (\([^)]*\)) [^;]*;/\1 (\2$(DEB_SUFFIX)) $(or $(OS_CODENAME),unstable);/' \
		$(DEB_DIR)/src/debian/changelog
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc
	@ls -1 $(DEB_DIR)/*.deb

# The lock files the package's venv is installed from (debian/rules picks the one for the Python it
# builds with): every runtime dependency pinned with the hashes of its files on PyPI, one file per Python
# minor version because a dependency's versions and wheels can differ between them; build-py3XX.txt pins
# the build backend (pyproject's [build-system]) the same way. Refresh after changing the dependencies in
# pyproject.toml, then commit the result: `make lock` (needs uv: `pip install uv`, or UV=/path/to/uv).
LOCK_PYTHONS = 3.11 3.12 3.13
UV ?= uv
# PyPI itself, whatever index this machine's pip or uv is configured with: the locks name what a new
# machine downloads. uv reads the system's CA store, so a TLS-inspecting proxy's CA is trusted too.
LOCK_ARGS = --generate-hashes --python-platform linux --index-url https://pypi.org/simple \
	--no-config --native-tls --quiet --custom-compile-command "make lock"

.PHONY: lock
lock:
	mkdir -p requirements
	for v in $(LOCK_PYTHONS); do \
		n=$$(echo $$v | tr -d .); \
		$(UV) pip compile pyproject.toml $(LOCK_ARGS) --python-version $$v -o requirements/lock-py$$n.txt \
			|| exit 1; \
		python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
			| $(UV) pip compile - $(LOCK_ARGS) --python-version $$v -o requirements/build-py$$n.txt \
			|| exit 1; \
	done
