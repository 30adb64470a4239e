"""
The git adapter: `DulwichWorkspace` and the parts it is made of, one job each.

* `index`: the index file codec (read, patch in place, refuse what git could not commit);
* `trees`: flat trees and the tree patcher;
* `scan`: the working-tree scanner and writer;
* `diff`: the unified-diff renderer;
* `merge`: the three-way hunk logic;
* `turns`: the three-way turn model (ownership, Approve and Reject plans, the diff shown);
* `workspace`: the turn transactions on a repository, the only part that reads and writes one.
"""

from __future__ import annotations

from voicecoder.adapters.git.workspace import CHECKPOINT_PREFIX, TURN_END_PREFIX, DulwichWorkspace

__all__ = ["CHECKPOINT_PREFIX", "TURN_END_PREFIX", "DulwichWorkspace"]
