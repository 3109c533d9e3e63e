//go:build tools

// sigstore's policy-controller: its admission webhook (cmd/webhook), built from its Go module by
// src/imagepipe/cluster/admission.py for the local cluster. A module of its own, apart from ci/sigstore,
// so the controller's older cosign (v2.5.0 here) never moves the CLI's. This file only pins it in
// go.mod/go.sum; go.mod repeats the module's two replace directives (a dependency's are not applied).
package admission

import (
	_ "github.com/sigstore/policy-controller/cmd/webhook"
)
