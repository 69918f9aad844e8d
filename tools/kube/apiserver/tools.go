//go:build tools

// Package tools only pins the command this wrapper module builds (see ../generate.sh).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
