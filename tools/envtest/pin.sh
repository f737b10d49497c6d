#!/usr/bin/env bash
# Regenerate go.mod/go.sum for a Kubernetes (and matching etcd) version:
#   tools/envtest/pin.sh v1.36.3 v3.6.8
# k8s.io/kubernetes cannot be required as-is: its go.mod replaces every staging module
# (k8s.io/api, k8s.io/apiserver, ...) with a path under ./staging/src. This module
# replaces each of them with the published v0.Y.Z of the same name instead, reading the
# list from kubernetes' own go.mod so a version bump needs no hand edit.
set -euo pipefail
kube=${1:?kubernetes version, e.g. v1.36.3}
etcd=${2:?etcd version, e.g. v3.6.8}
cd "$(dirname "$0")"
staging=v0.${kube#v1.}
kube_mod=$(go mod download -json "k8s.io/kubernetes@$kube" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
{
	echo 'module shipyard/tools/envtest'
	echo
	grep -m1 '^go ' "$kube_mod" # the Go version Kubernetes itself needs
	echo
	echo 'replace ('
	# The sample-* staging modules are examples, not published and not needed.
	sed -n 's#^\t\(k8s.io/[a-z-]*\) => ./staging/src/.*#\1#p' "$kube_mod" | grep -v '^k8s.io/sample-' |
		while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
	echo ')'
} >go.mod
rm -f go.sum
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$kube" "go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
