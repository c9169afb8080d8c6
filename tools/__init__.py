"""Developer tools: not shipped in the image, not imported by `app`."""
