"""A process-wide setting held while any block wanting it runs (federation/process_wide.py): the
first block in applies it, the last out restores it, whichever ends first."""

import threading

import pytest

from federation.process_wide import HeldSetting


class Setting:
    def __init__(self) -> None:
        self.value, self.applied = "default", 0

    def apply(self):
        if self.value == "wanted":  # already as wanted (set by something else): left so
            return None
        previous, self.value = self.value, "wanted"
        self.applied += 1
        return lambda: setattr(self, "value", previous)


def test_nested_blocks_apply_once_and_restore_at_the_outer_end():
    setting = Setting()
    held = HeldSetting(setting.apply)
    with held.held():
        with held.held():
            assert setting.value == "wanted"
        assert setting.value == "wanted"
    assert (setting.value, setting.applied) == ("default", 1)


def test_the_last_block_out_restores_whichever_began_first():
    setting = Setting()
    held = HeldSetting(setting.apply)
    entered, release, seen = threading.Event(), threading.Event(), []

    def later_block():
        with held.held():
            entered.set()
            release.wait(5)
            seen.append(setting.value)

    worker = threading.Thread(target=later_block)
    with held.held():
        worker.start()
        assert entered.wait(5)
    assert setting.value == "wanted"  # the first block ended, the second still runs
    release.set()
    worker.join()
    assert seen == ["wanted"] and setting.value == "default"


def test_a_failing_block_restores_it():
    setting = Setting()
    held = HeldSetting(setting.apply)
    with pytest.raises(RuntimeError), held.held():
        raise RuntimeError("the write failed")
    assert setting.value == "default"


def test_a_setting_already_as_wanted_is_left_as_it_is():
    setting = Setting()
    setting.value = "wanted"
    held = HeldSetting(setting.apply)
    with held.held():
        pass
    assert (setting.value, setting.applied) == ("wanted", 0)
