"""Storage: the git object layer, the tracking branch, journals and the GitStore."""
