"""Interactive widgets for eoembed (UI layer)."""
