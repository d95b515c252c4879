# `make deb` builds the Debian package on Debian 12 (README, "Running as a service"). It builds from a
# copy of the checkout's files in $(DEB_DIR)/src, so nothing is written into tracked paths, and leaves
# buildtail_<version>_<arch>.deb in $(DEB_DIR).
DEB_DIR ?= build/deb

.PHONY: deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	git ls-files -z --cached --others --exclude-standard \
		| tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc
	@ls -1 $(DEB_DIR)/*.deb
