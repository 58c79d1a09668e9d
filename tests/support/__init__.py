"""Plain helpers the test modules share, one module per concern (the fixtures live in the conftest.py files,
the fake servers in tests/fakes/). A test module imports from here, never from another test module."""
