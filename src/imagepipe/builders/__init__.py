"""The builders' side: buildah's per-step timings and reproducible configs, the wheelhouse, kaniko (the executor in
podman, ci/kaniko.yaml, the cluster Job) and the parity comparison of the two builders' images."""
