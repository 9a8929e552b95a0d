"""``rlm mcp``: rlm as a Model Context Protocol server for coding agents.

The protocol is the official MCP Python SDK's (``mcp``: :class:`mcp.server.mcpserver.MCPServer`, its
stdio and streamable-HTTP transports); this package only maps rlm onto it:

- :mod:`.config`: the server's settings (:class:`~.config.McpConfig`) and how a call's arguments
  lower them;
- :mod:`.scope`: which paths a client may have read (its roots and the server's SOURCEs);
- :mod:`.progress`: run events -> MCP progress notifications;
- :mod:`.tools`: the ``ask``, ``ls`` and ``show`` tools;
- :mod:`.server`: the MCPServer, its tool schemas, and the stdio / HTTP entry points.

Nothing here is imported by ``rlm --help`` or any other command (the SDK costs ~0.3 s to import).
"""
