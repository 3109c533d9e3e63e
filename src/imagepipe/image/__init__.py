"""Images as values: references, platforms, the Containerfile, and an image's file tree (mounted, walked)."""
