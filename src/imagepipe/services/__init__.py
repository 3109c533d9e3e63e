"""Services the pipeline starts for a run: the embedded registry, the signature server, a throw-away PostgreSQL with
its TLS certificates, the stand-ins for OpenAI and Better Auth's JWKS, and where containers reach the host."""
