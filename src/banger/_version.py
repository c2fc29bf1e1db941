"""banger's version, in a module of its own so that layers below the SDK's front door
(`banger/__init__.py` names the client) can read it without importing that door."""

__version__ = "0.1.0"
