import pytest

from tests.support.video_media import Library


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """The test videos, made once per test session (tests/support/video_media.py)."""
    return Library(tmp_path_factory.mktemp("videos"))
