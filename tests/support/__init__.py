"""What the test suites share: fakes of banger's adapters, the services and API wired on
them, and small builders of inputs. mypy --strict checks this package like src/."""
