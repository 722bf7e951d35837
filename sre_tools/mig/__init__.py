"""MIG layouts in NVIDIA mig-parted's config format: model, validation, read-only comparison."""
