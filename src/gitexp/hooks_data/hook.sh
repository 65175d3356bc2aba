#!/bin/sh
# gitexp-hook @HOOK@ -- installed by `gitexp hooks install`, removed by `gitexp hooks uninstall`.
# Runs @HOOK@.local first if it exists (your previous hook, kept by `install --force`),
# then gitexp's part. Set GITEXP_SKIP_HOOKS=1 to skip gitexp's part once.
GITEXP_PYTHON='@PYTHON@'
if [ -x "$GITEXP_PYTHON" ] && "$GITEXP_PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("gitexp") is None)' 2>/dev/null; then
    exec "$GITEXP_PYTHON" -m gitexp hooks run @HOOK@ "$@"
fi
if command -v gitexp >/dev/null 2>&1; then
    exec gitexp hooks run @HOOK@ "$@"
fi
echo "gitexp: skipping the @HOOK@ hook: gitexp is not installed (not in $GITEXP_PYTHON, not on PATH)." >&2
echo "gitexp: reinstall gitexp, or remove the hook with 'gitexp hooks uninstall'." >&2
if [ -x "$0.local" ]; then
    exec "$0.local" "$@"
fi
exit 0
