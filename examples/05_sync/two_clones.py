"""Two clones sharing runs through a remote with `gitexp sync` -- no tracking server.

Everything happens in a temporary directory: a bare repository stands in for
GitHub/GitLab, Alice and Bob each clone it, both train (both even create the
experiment "shared-demand" on their own), and `gitexp sync` leaves both clones
and the remote holding every run, in one experiment.

    python examples/05_sync/two_clones.py            # runs anywhere; touches only a temp directory
    python examples/05_sync/two_clones.py --small --keep /tmp/sync-demo
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def sh(*args: str, cwd: Path, env: dict | None = None) -> str:
    """Run a command like a user would in a terminal, echoing it; returns its output."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"{cwd.name}$ {shown}")
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        sys.exit(f"command failed: {shown}\n{result.stdout}{result.stderr}")
    return result.stdout


def gitexp_cli(*args: str, cwd: Path) -> str:
    return sh(sys.executable, "-m", "gitexp", *args, cwd=cwd)


TRAIN = '''
import sys, gitexp
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error

X, y = load_diabetes(return_X_y=True)
gitexp.set_experiment("shared-demand")
for alpha in [float(a) for a in sys.argv[2:]]:
    with gitexp.start_run(run_name=f"{sys.argv[1]}-ridge-{alpha}", tags={"author": sys.argv[1]}):
        gitexp.log_param("alpha", alpha)
        model = Ridge(alpha=alpha).fit(X[:300], y[:300])
        gitexp.log_metric("rmse", root_mean_squared_error(y[300:], model.predict(X[300:])))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer runs per person")
    parser.add_argument("--keep", metavar="DIR", help="build the demo in DIR and keep it (default: a temp dir)")
    args = parser.parse_args()
    base = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="gitexp-sync-"))
    base.mkdir(parents=True, exist_ok=True)
    alphas_alice, alphas_bob = (["0.1", "1.0"], ["10.0"]) if args.small else (["0.01", "0.1", "1.0"], ["3.0", "10.0"])
    try:
        remote = base / "remote.git"
        sh("git", "init", "-q", "--bare", str(remote), cwd=base)
        alice, bob = base / "alice", base / "bob"

        def clone(path: Path) -> None:
            sh("git", "clone", "-q", str(remote), str(path), cwd=base)
            sh("git", "config", "user.name", path.name.title(), cwd=path)
            sh("git", "config", "user.email", f"{path.name}@example.com", cwd=path)

        clone(alice)
        (alice / "train.py").write_text(TRAIN)
        sh("git", "add", "train.py", cwd=alice)
        sh("git", "commit", "-q", "-m", "training script", cwd=alice)
        sh("git", "push", "-q", "origin", "HEAD", cwd=alice)
        clone(bob)

        # Both train on their own machine, with no connection between them.
        sh(sys.executable, "train.py", "alice", *alphas_alice, cwd=alice)
        sh(sys.executable, "train.py", "bob", *alphas_bob, cwd=bob)

        # Share: Alice pushes first; Bob's sync merges hers with his and pushes; Alice syncs again.
        print(gitexp_cli("sync", cwd=alice), end="")
        print(gitexp_cli("sync", cwd=bob), end="")
        print(gitexp_cli("sync", cwd=alice), end="")

        total = len(alphas_alice) + len(alphas_bob)
        for clone in (alice, bob):
            listing = gitexp_cli("runs", "list", "-e", "shared-demand", "--order-by", "metrics.rmse ASC",
                                 "-c", "tags.author,params.alpha,metrics.rmse", "-f", "csv", cwd=clone)
            print(listing, end="")
            rows = [line for line in listing.splitlines()[1:] if line.strip()]
            assert len(rows) == total, f"{clone.name} sees {len(rows)} runs, expected {total}"
        experiments = gitexp_cli("experiments", "list", cwd=bob)
        assert experiments.count("shared-demand") == 1, experiments
        print(f"both clones hold all {total} runs in one 'shared-demand' experiment")
        print(sh("git", "log", "--oneline", "-3", "origin/gitexp", cwd=alice), end="")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
