"""`python3 KIT/doctor`: the entry point doctor.sh runs in a bundle."""

import importlib
import os
import sys

if __name__ == "__main__":
    if not __package__:
        # Run as a folder, Python puts the folder itself first on sys.path; its parent (the kit) makes the
        # folder importable as a package, so its modules' relative imports work.
        folder = os.path.dirname(os.path.abspath(__file__))
        sys.path[0] = os.path.dirname(folder)
        run = importlib.import_module(f"{os.path.basename(folder)}.run")
    else:
        run = importlib.import_module(".run", __package__)
    sys.exit(run.main())
