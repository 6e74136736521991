#!/usr/bin/env bash
# Build upstream cnitool offline from Debian packages: scripts/build-cnitool.sh OUT_DIR
#
#   golang-go                    the Go 1.19 toolchain
#   golang-github-appc-cni-dev   libcni and friends under /usr/share/gocode (GOPATH layout)
#   cnitool/cnitool.go           from the matching Debian source package golang-github-appc-cni
#
# The source package is fetched with `apt-get source` through a PRIVATE apt configuration (a
# deb-src line derived from the archive the installed -dev package came from, lists and caches
# under OUT_DIR): the machine's sources.list, lists and caches are never changed. The build is
# GOPATH mode with no module proxy, so nothing but Debian's packages is used.
#
# Writes OUT_DIR/cnitool and OUT_DIR/cnitool.version; a second run with the same -dev version
# reuses them. Exits 3 (with the reason on stderr) when a prerequisite is missing.
set -euo pipefail

out=${1:?usage: build-cnitool.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-cnitool: $1 missing ($2)" >&2; exit 3; }; }
need go golang-go
need dpkg-source dpkg-dev
pkg=golang-github-appc-cni-dev
version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || true
[ -n "$version" ] || { echo "build-cnitool: $pkg is not installed" >&2; exit 3; }
source_pkg=$(dpkg-query -W -f='${source:Package}' "$pkg")

if [ -x "$out/cnitool" ] && [ "$(cat "$out/cnitool.version" 2>/dev/null)" = "$source_pkg $version" ]; then
    echo "$out/cnitool"
    exit 0
fi

work="$out/work"
rm -rf "$work"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/parts" "$work/src"

# deb-src lines for the archive(s) that carry the installed version, e.g.
#   500 http://<mirror>/debian bookworm/main amd64 Packages  ->  deb-src http://<mirror>/debian bookworm main
apt-cache policy "$pkg" | awk -v ver="$version" '
    /^ \*\*\* / { inside = ($2 == ver); next }
    NF == 2 && $2 ~ /^-?[0-9]+$/ { inside = ($1 == ver); next }
    inside && $2 ~ /:\/\// && $NF == "Packages" { split($3, sc, "/"); print "deb-src " $2 " " sc[1] " " sc[2] }
' | sort -u > "$work/apt/sources.list"
[ -s "$work/apt/sources.list" ] || { echo "build-cnitool: no archive carries $pkg $version" >&2; exit 3; }

apt_private=(
    -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/parts"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o "APT::Sandbox::User=root"
)
echo "build-cnitool: fetching $source_pkg $version with a private apt configuration" >&2
apt-get "${apt_private[@]}" update -qq >&2 ||
    { echo "build-cnitool: apt-get update of the deb-src lists failed (no archive access?)" >&2; exit 3; }
(cd "$work/src" && apt-get "${apt_private[@]}" source -qq "$source_pkg=${version}" >&2) ||
    { echo "build-cnitool: apt-get source $source_pkg=$version failed" >&2; exit 3; }

tool=$(find "$work/src" -path '*/cnitool/cnitool.go' | head -n 1)
[ -n "$tool" ] || { echo "build-cnitool: cnitool/cnitool.go not in $source_pkg $version" >&2; exit 3; }

gopath="$work/gopath"
mkdir -p "$gopath/src/cnitool"
cp "$tool" "$gopath/src/cnitool/"
echo "build-cnitool: go build (GOPATH mode, /usr/share/gocode)" >&2
(cd "$gopath/src/cnitool" &&
    GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" \
        GOCACHE="$work/gocache" CGO_ENABLED=0 go build -o "$out/cnitool.new" .)
mv "$out/cnitool.new" "$out/cnitool"
echo "$source_pkg $version" > "$out/cnitool.version"
rm -rf "$work"
echo "$out/cnitool"
