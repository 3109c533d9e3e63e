"""One module per verb besides the pipeline's stages (as pipx keeps its commands): each has
`run(ctx) -> exit code`. The stage table (imagepipe.pipeline.stagetable) lists them."""
