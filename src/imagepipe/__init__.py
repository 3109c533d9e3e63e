"""imagepipe: build the backend image with buildah (or kaniko), push it, verify it with podman, promote it."""
