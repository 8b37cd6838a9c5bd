"""The attack replays run against the session's platform (tests/conftest.py), the same one
the end-to-end tests use."""
