"""The host: its quirks and profile, emulation, git, podman's facts, whole-file writes."""
