//go:build tools

// The four Kubernetes components of the test cluster, built from the k8s.io/kubernetes module by
// src/imagepipe/cluster/binaries.py. This file only pins them in go.mod/go.sum.
package cluster

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)
