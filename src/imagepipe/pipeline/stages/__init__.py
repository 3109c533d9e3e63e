"""The pipeline's stages, one module each (provision, base, lint, build, push, verify, promote): `run(ctx, value)`
takes the previous stage's value and returns its own; imagepipe.pipeline.stagetable lists them."""
