#!/usr/bin/env bash
# Build kube-apiserver and etcd from the versions pinned in go.mod/go.sum into $1, and
# unpack the KServe CRDs of the pinned github.com/kserve/kserve module into $1/kserve-crds.
# Called by `make envtest-bin`; the Go module and build caches make a rebuild take seconds.
set -euo pipefail
out=${1:?output directory}
kserve_version=${2:?kserve version}
kserve_sum=${3:?kserve module h1: sum}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p "$out.tmp"
version() { sed -n "s#^\t$1 \(v[^ ]*\).*#\1#p" go.mod; }
kube=$(version k8s.io/kubernetes)
minor=${kube#v1.}
minor=${minor%%.*}
# Without these /version reports v0.0.0-master, which clients that parse it mind.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
go build -trimpath -ldflags="$ldflags" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags="-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3

# The CRDs come from the KServe Go module: its zip's hash is checked against the pin,
# as go.sum would (the module is not required here: its own requirements would move the
# versions the API server is built with).
info=$(cd / && GOFLAGS= go mod download -json "github.com/kserve/kserve@$kserve_version")
sum=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$info")
[[ $sum == "$kserve_sum" ]] || { echo "kserve $kserve_version: sum $sum, pinned $kserve_sum" >&2; exit 1; }
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
mkdir -p "$out.tmp/kserve-crds"
cp "$dir"/config/crd/full/serving.kserve.io_*.yaml "$out.tmp/kserve-crds/"
chmod -R u+w "$out.tmp/kserve-crds"
rm -rf "$out"
mv "$out.tmp" "$out"
