"""The command-line tools; the chain (chain.pipeline) starts them by file, found through this package."""
