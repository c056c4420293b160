"""Process pools need the main script guarded: find a script that is not.

Worker processes started by ``forkserver`` or ``spawn`` (the batch runner's pools)
import the script run as ``__main__`` again. A script that calls, say,
``mars_action.demo.pipeline.run(...)`` at its top level, outside
``if __name__ == "__main__":``, would start the whole run again in every worker,
which Python stops with a long traceback about the "bootstrapping phase".
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

GUARD = 'if __name__ == "__main__":'


def unguarded_script() -> str | None:
    """The ``__main__`` script's path when no top-level ``if __name__ == "__main__":``
    guards it; None for a guarded script, ``python -m``, a console entry point
    (``mars``), or an interactive session (nothing is imported again)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py") or getattr(main, "__spec__", None) is not None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    return None if any(_is_guard(node) for node in tree.body) else str(path)


def _is_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test)
    return "__name__" in test and "__main__" in test
