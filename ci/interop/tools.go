//go:build tools

// The registry clients of the interop tests (oras, crane) and the credential helper the credential-helper
// tests read a password from (docker-credential-pass, over Debian's pass), built from their Go modules by
// src/imagepipe/interop.py. This file only pins them in go.mod/go.sum.
package interop

import (
	_ "github.com/docker/docker-credential-helpers/pass/cmd"
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "oras.land/oras/cmd/oras"
)
