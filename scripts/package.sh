#!/bin/sh
# Build the Debian package build/package/roomd_VERSION_ARCH.deb: a build of
# its own with Debian's hardening flags (dpkg-buildflags) and the Debian
# paths (/usr, /etc/roomd/rooms.ini as the default config), packed by CPack
# (packaging/CMakeLists.txt), then checked by lintian: any error fails the
# build; the warnings kept are listed with their reasons in
# docs/OPERATIONS.md, "Installing".
# usage: scripts/package.sh        (prints the .deb's path last)
# Set ROOMD_LINTIAN=0 to skip lintian (it is slow: about a minute).
set -eu
cd "$(dirname "$0")/.."

for tool in dpkg-buildflags dpkg-shlibdeps; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "package: $tool not found: apt-get install dpkg-dev (or run scripts/setup.sh)" >&2; exit 2; }
done

out=build/package
# Hardening: PIE, RELRO and BIND_NOW, stack protector, FORTIFY_SOURCE.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
export CFLAGS LDFLAGS

# Build type None: only the flags above, as Debian builds CMake projects.
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr \
	-DROOMD_DEFAULT_CONFIG=/etc/roomd/rooms.ini -DROOMD_TESTS=OFF >/dev/null
cmake --build "$out" -j "$(nproc)"
rm -f "$out"/roomd_*.deb
(cd "$out" && cpack -G DEB >/dev/null)
deb=$(ls "$out"/roomd_*.deb)

echo "=== $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{ print $1, $2, $6, $7, $8 }'

if [ "${ROOMD_LINTIAN:-1}" != 0 ]; then
	command -v lintian >/dev/null 2>&1 ||
		{ echo "package: lintian not found: apt-get install lintian (or run scripts/setup.sh)" >&2; exit 2; }
	echo "=== lintian"
	# --fail-on error: a warning is reported, and must be listed with its
	# reason in docs/OPERATIONS.md; an error fails.
	lintian --fail-on error --display-info "$deb"
	echo "=== lintian: no error"
fi
echo "$deb"
