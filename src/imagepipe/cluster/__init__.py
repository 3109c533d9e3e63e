"""A single-node Kubernetes for the CI half, built here from upstream parts: the four components from the
k8s.io/kubernetes Go module (binaries.py), Debian's etcd, containerd, runc and CNI plugins, one CA
(pki.py), pure config builders (configs.py), and the processes in a namespace of their own (local.py)."""
