"""oko: edge video analytics."""
