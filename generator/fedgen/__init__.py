"""fedgen: render NVIDIA FLARE federations into validated GitOps repositories for GKE."""

__version__ = "0.1.0"
