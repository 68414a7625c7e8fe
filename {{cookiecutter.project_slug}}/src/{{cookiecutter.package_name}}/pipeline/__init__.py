"""The DVC pipeline: prepare → train → evaluate → export (see dvc.yaml at the repository root)."""
