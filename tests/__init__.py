import pytest

# The shared helpers' asserts explain their failures as the tests' own do (registered before
# tests.support is imported).
pytest.register_assert_rewrite("tests.support")
