//go:build tools

// Package tools only pins the command this wrapper module builds (see ../generate.sh).
package tools

import _ "go.etcd.io/etcd/server/v3"
