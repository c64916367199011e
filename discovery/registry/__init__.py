"""Registry backends: where the `db` resources live between cycles."""
