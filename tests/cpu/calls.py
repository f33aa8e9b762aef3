"""Which of ``kernels.c``'s kernels ran: a spy on ``elmo_lm.cpu.kernels`` for tests to import."""

from __future__ import annotations

from collections import Counter

import pytest

from elmo_lm.cpu import kernels


def spy_kernels(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts, per function of ``kernels.KERNELS``, the calls that ran in C (those that did not
    answer None or False); callers reach them through the module, so the spy sees every one."""
    ran: Counter = Counter()
    for name in kernels.KERNELS:
        real = getattr(kernels, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            result = _real(*args, **kwargs)
            if result is not None and result is not False:
                ran[_name] += 1
            return result

        monkeypatch.setattr(kernels, name, spy)
    return ran
