"""The sandbox SDK: `banger.Sandbox` (and `banger.AsyncSandbox`), a VM seen as a place to
run commands and keep files, built on `banger.client.Client`. See docs/sdk.md."""
