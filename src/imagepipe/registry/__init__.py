"""Registries: credentials (auth), how one is reached (access, hostconfig), the HTTP protocol, the OCI client and
media types (oci), the embedded registry and its ports."""
