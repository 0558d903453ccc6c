"""Material library (素材库): what guides send and share, targeted and counted."""
