"""Supply chain: signatures (GPG simple signing), the SBOM (CycloneDX), SLSA provenance, OCI referrers, the trust
policy, and the image inventory the SBOM and the vulnerability check both read."""
