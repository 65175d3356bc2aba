"""The git hook script `gitexp hooks install` writes (a template: see gitexp.hooks)."""
