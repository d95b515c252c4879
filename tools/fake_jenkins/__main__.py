"""Run the command line with ``python -m tools.fake_jenkins`` or ``python tools/fake_jenkins``.

Run as a directory, the package's parent's parent (the repository root) is not on ``sys.path``; it
is put there so that the absolute imports work from any working directory.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.fake_jenkins._cli import main

sys.exit(main())
