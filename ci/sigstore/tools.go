//go:build tools

// The cosign CLI (sigstore/cosign v2: the `sha256-<digest>.sig` and `.att` tags Kyverno and policy-controller
// read), built from its Go module by src/imagepipe/services/sigstore.py. A module of its own, apart from
// ci/interop, so cosign's dependencies never move oras's and crane's. This file only pins it in go.mod/go.sum.
package sigstore

import (
	_ "github.com/sigstore/cosign/v2/cmd/cosign"
)
