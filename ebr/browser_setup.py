"""Make sure Debian's Chromium (browser tests) and nginx (the shipped nginx configuration, run for
real) are there; install them when we may.

Playwright cannot download its own browsers on this network, so the tests drive
/usr/bin/chromium. As root (CI, fresh machines) both are installed with apt-get; otherwise the
command says what to run and those tests report themselves skipped with that reason. Installing
nginx does not start it here: the test starts its own, on free ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"
PACKAGES = ["chromium", "poppler-utils", "fonts-dejavu-core", "nginx-light"]


def main() -> int:
    missing_browser = not os.path.exists(CHROMIUM)
    missing_tools = shutil.which("pdftoppm") is None or not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
    if not (missing_browser or missing_tools):
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"browser_setup: run 'sudo apt-get install {' '.join(PACKAGES)}' for the browser and nginx tests",
              file=sys.stderr)
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                            env=env, check=False)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
