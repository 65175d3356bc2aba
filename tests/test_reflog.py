"""The reflog line of a ref update is written while the ref lock is held.

Three real processes race 150 compare-and-swap updates each on one ref; every update
that won must have exactly one reflog line, in the order the ref moved: each line's
old id is the previous line's new id.  (Appended after the lock was released, 54 of
450 lines came out of order.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from itertools import pairwise

from tests.conftest import git

_RACER = textwrap.dedent("""
    import sys
    import time
    from gitexp.store.objects import RefStore

    git_dir, ref, ids_file, start, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ids = open(ids_file).read().split()[start:start + count]
    refs = RefStore(git_dir, lock_timeout=30)
    for new in ids:
        while True:  # retry on a lost race, as every gitexp writer does
            old = refs.read(ref)
            ident = f"Racer <r@example.com> {int(time.time())} +0000"
            if refs.compare_and_swap(ref, new, old, f"racer {new[:7]}", ident):
                break
""")


def test_concurrent_updates_leave_a_complete_ordered_reflog(repo, tmp_path):
    processes, per_process = 3, 150
    blobs = []
    for i in range(processes * per_process):
        path = tmp_path / f"blob-{i}"
        path.write_text(f"update {i}\n")
        blobs.append(str(path))
    ids = subprocess.run(
        ["git", "hash-object", "-w", "--stdin-paths"], input="\n".join(blobs) + "\n", cwd=repo,
        capture_output=True, text=True, check=True).stdout.split()
    assert len(set(ids)) == processes * per_process
    ids_file = tmp_path / "ids"
    ids_file.write_text("\n".join(ids))
    git_dir = str(repo / ".git")
    ref = "refs/gitexp/test/reflog-race"

    racers = [subprocess.Popen([sys.executable, "-c", _RACER, git_dir, ref, str(ids_file),
                                str(n * per_process), str(per_process)], stderr=subprocess.PIPE, text=True)
              for n in range(processes)]
    for racer in racers:
        _, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err

    lines = (repo / ".git" / "logs" / ref).read_text().splitlines()
    assert len(lines) == processes * per_process
    moves = [line.split(" ", 2)[:2] for line in lines]
    assert moves[0][0] == "0" * 40
    for (_, previous_new), (old, _) in pairwise(moves):
        assert old == previous_new
    assert sorted(new for _, new in moves) == sorted(ids)
    assert moves[-1][1] == (repo / ".git" / ref).read_text().strip()
    # git reads the same history
    assert git("rev-parse", f"{ref}@{{1}}", f"{ref}@{{{len(moves) - 1}}}", cwd=repo).split() == \
        [moves[-2][1], moves[0][1]]


def test_a_cancelled_update_leaves_no_reflog_line(repo):
    from gitexp.store.objects import RefStore

    git_dir = str(repo / ".git")
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    refs = RefStore(git_dir)
    ref = "refs/gitexp/test/cancelled"
    assert refs.compare_and_swap(ref, head, None, "first", "T <t@example.com> 0 +0000")

    def refuse():
        raise RuntimeError("refused while locked")

    try:
        refs.compare_and_swap(ref, tree, head, "second", "T <t@example.com> 0 +0000", check=refuse)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the check did not cancel the update")
    assert refs.read(ref) == head
    lines = (repo / ".git" / "logs" / ref).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0" * 40 + " " + head)
