"""Merging two stores of N runs each (default 1,000): pull time and the read after the merge.

Two clones of one bare remote each log N runs through the real write path
(Client.create_run / log_batch / log_metric / set_terminated: one commit per run).
Clone A pushes; clone B then pulls, which fetches A's runs and merges the two
tracking branches without a worktree.  Timed:

* pull: fetch + merge (git merge-tree) + merge commit + ref update, and its parts;
* the in-process tree merge that stands in for git < 2.38;
* push of the merged branch (a fast-forward on the remote);
* reading after the merge: every run of the experiment via search_runs, cold
  (fresh process state: new Client, empty caches) and warm.

Usage:
    PYTHONPATH=src python benchmarks/bench_merge.py [--runs 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GITEXP_CAPTURE_CODE": "0",
}


def git(*args: str, cwd: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def log_runs(client, count: int, prefix: str) -> float:
    from gitexp.entities import Metric, Param

    found = client.get_experiment_by_name("bench")
    experiment_id = found.experiment_id if found else client.create_experiment("bench")
    start = time.perf_counter()
    for i in range(count):
        run = client.create_run(experiment_id, run_name=f"{prefix}-{i}")
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(f"p{k}", str(i * k)) for k in range(5)],
                         metrics=[Metric("loss", 1.0 / (s + 1), 0, s) for s in range(10)])
        client.log_metric(run_id, "accuracy", 0.5 + i / (2 * count))
        client.set_terminated(run_id)
    return time.perf_counter() - start


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs per store (default 1000)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.update(_ENV)

    import gitexp
    from gitexp.client import forget_stores
    from gitexp.store import sync as sync_mod

    figures: dict[str, float | int | str] = {"runs_per_store": args.runs}
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-merge-") as tmp:
        remote = os.path.join(tmp, "remote.git")
        git("init", "-q", "--bare", "-b", "main", remote, cwd=tmp)
        a_path, b_path = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        git("init", "-q", "-b", "main", a_path, cwd=tmp)
        with open(os.path.join(a_path, "train.py"), "w") as fh:
            fh.write("print('train')\n")
        git("add", "train.py", cwd=a_path)
        git("commit", "-q", "-m", "init", cwd=a_path)
        git("remote", "add", "origin", remote, cwd=a_path)
        git("push", "-q", "-u", "origin", "main", cwd=a_path)
        git("clone", "-q", remote, b_path, cwd=tmp)

        a, b = gitexp.Client(a_path), gitexp.Client(b_path)
        figures["log_a_s"] = log_runs(a, args.runs, "a")
        figures["log_b_s"] = log_runs(b, args.runs, "b")
        figures["push_a_s"], _ = timed(lambda: a.push(progress=False))

        # A copy of B, to time the parts of a pull on their own afterwards.
        b_copy = os.path.join(tmp, "b-copy")
        shutil.copytree(b_path, b_copy, symlinks=True)

        figures["pull_s"], pulled = timed(lambda: b.pull(progress=False))
        assert pulled.action == "merged" and pulled.new_runs == args.runs, pulled
        figures["push_merged_s"], pushed = timed(lambda: b.push(progress=False))
        assert pushed.action == "pushed"

        forget_stores()
        part = gitexp.Client(b_copy)._store
        local = part.branch.refs.read(part.branch.ref)
        # Fetch A's branch itself (the remote now holds B's merge, whose trees must not come along).
        figures["fetch_s"], _ = timed(lambda: git("fetch", "-q", a_path, "+gitexp:refs/remotes/a/gitexp",
                                                  cwd=b_copy))
        other = git("rev-parse", "a/gitexp", cwd=b_copy).strip()
        figures["merge_tree_git_s"], merged_tree = timed(
            lambda: sync_mod.merge_trees(part, local, other, "a/gitexp"))
        figures["merge_tree_in_process_s"], in_process_tree = timed(
            lambda: sync_mod.merge_trees_in_process(part, local, other, "a/gitexp"))
        assert merged_tree == in_process_tree

        forget_stores()
        cold = gitexp.Client(b_path)
        experiment_id = cold.get_experiment_by_name("bench").experiment_id
        figures["read_all_cold_s"], found = timed(lambda: cold.search_runs([experiment_id], max_results=100000))
        assert len(found) == 2 * args.runs, len(found)
        figures["read_all_warm_s"], _ = timed(lambda: cold.search_runs([experiment_id], max_results=100000))
        figures["read_one_run_s"], _ = timed(lambda: cold.get_run(found[0].info.run_id))
        # The post-commit hook's scan for runs to link, over the merged 2N runs.
        with open(os.path.join(b_path, "train.py"), "a") as fh:
            fh.write("# tuned\n")
        git("commit", "-q", "-am", "tune", cwd=b_path)
        figures["link_scan_first_s"], _ = timed(lambda: cold.link_runs_to_commit())
        figures["link_scan_again_s"], _ = timed(lambda: cold.link_runs_to_commit())
        figures["git"] = git("--version", cwd=tmp).strip()

    rows = [
        ("log N runs in clone A (one commit per run)", "log_a_s"),
        ("push A (N runs, to a bare remote on disk)", "push_a_s"),
        ("**gitexp pull** in B (fetch + merge + commit + ref)", "pull_s"),
        ("  of which: fetch (git fetch, alone)", "fetch_s"),
        ("  of which: merge trees, git merge-tree --write-tree", "merge_tree_git_s"),
        ("  instead: in-process tree merge (git < 2.38)", "merge_tree_in_process_s"),
        ("push the merged branch from B", "push_merged_s"),
        ("read after merge: search_runs, 2N runs, cold", "read_all_cold_s"),
        ("read after merge: search_runs, 2N runs, warm", "read_all_warm_s"),
        ("post-commit link scan over 2N runs, after the read (first / again)", "link_scan_first_s"),
    ]
    print(f"Merge of two stores of {args.runs} runs each ({figures['git']}, Python {sys.version.split()[0]})\n")
    print("| step | seconds |\n| --- | ---: |")
    for label, key in rows:
        value = f"{figures[key]:.3f}"
        if key == "link_scan_first_s":
            value += f" / {figures['link_scan_again_s']:.3f}"
        print(f"| {label} | {value} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
