"""verify's checks: registered by id and family (imagepipe.checks.catalog), run by the verifier; static checks read
the image's tree, runtime and production-path checks ask the running service."""
