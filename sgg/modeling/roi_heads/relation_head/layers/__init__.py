"""Building blocks shared by several relation heads (not heads themselves)."""
