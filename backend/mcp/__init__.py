"""The MCP server of the todo app, in the folder the image contract names `mcp/`.

The official MCP SDK imports as `mcp` too, and /app (uvicorn's working directory) comes first on sys.path,
so this folder would hide the SDK. Instead of renaming the folder (the contract fixes it), this package makes
itself the union of both: its __path__ is [this folder, the SDK's folder] and it runs the SDK's own
__init__ in this namespace, so `from mcp import Client` and `from mcp.server.mcpserver import MCPServer` keep
working. Our modules (todo_server) have names the SDK does not use; tests/test_mcp.py checks that there is
no overlap and that the official client talks to this server.
"""

import importlib.machinery
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))


def _sdk_spec() -> importlib.machinery.ModuleSpec:
    for entry in sys.path:
        spec = importlib.machinery.PathFinder.find_spec("mcp", [entry or os.getcwd()])
        if spec is None or not spec.origin or not spec.submodule_search_locations:
            continue
        if os.path.dirname(os.path.abspath(spec.origin)) != _here:
            return spec
    raise ImportError("the MCP SDK is not installed: pip install -r requirements.txt (package 'mcp')")


_sdk = _sdk_spec()
_locations = list(_sdk.submodule_search_locations or [])  # never empty: _sdk_spec checked it
__path__ = [_here, *_locations]  # noqa: F821 - a package's own __path__
SDK_DIR = _locations[0]
# The SDK's loader, not open(): in the image the SDK is sourceless bytecode (__init__.pyc).
exec(_sdk.loader.get_code("mcp"), globals())  # type: ignore[union-attr]  # noqa: S102 - the SDK's own __init__
