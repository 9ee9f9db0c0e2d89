"""renderer.cpus.torch_threads sets torch's intra-op threads for a block and puts them back."""

from __future__ import annotations

import pytest
import torch

from renderer.cpus import torch_threads


def test_threads_hold_inside_the_block_and_are_restored_after_it() -> None:
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with torch_threads(wanted):
        assert torch.get_num_threads() == wanted
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(wanted):
        raise RuntimeError("the block fails")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"), torch_threads(0):
        pass
