"""A script without ``if __name__ == "__main__":`` still runs a batch, in one process."""

from __future__ import annotations

import subprocess
import sys

BATCH = """
from mars_action.video.batch import run_batch
summary = run_batch(["a", "b", "c"], print, workers=2)
print("done", summary.count("done"))
"""


def run_script(path, text):
    path.write_text(text)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120)


def test_an_unguarded_script_runs_in_one_process_and_says_why(tmp_path):
    out = run_script(tmp_path / "unguarded.py", BATCH)
    assert out.returncode == 0, out.stderr
    assert "done 3" in out.stdout
    assert 'unguarded.py: no `if __name__ == "__main__":` guard' in out.stderr
    assert "bootstrapping" not in out.stderr


def test_a_guarded_script_gets_its_pool(tmp_path):
    guarded = "if __name__ == '__main__':\n" + "".join(
        f"    {line}\n" for line in BATCH.strip().splitlines())
    out = run_script(tmp_path / "guarded.py", guarded)
    assert out.returncode == 0, out.stderr
    assert "done 3" in out.stdout and "guard" not in out.stderr
