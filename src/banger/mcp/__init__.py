"""banger's MCP server (`banger mcp`): sandbox tools for MCP clients, on the official `mcp`
SDK. A client of bangerd like the CLI, through `banger.client.Client`; the CLI hands it
what it needs of its own (how to run a script in a guest over ssh)."""
