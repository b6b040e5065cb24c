"""GKE JobSet manifests for Cloud TPU slices (jobset.py), their validation (schema.py)."""
