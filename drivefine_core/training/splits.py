"""The validation logs: held out of SFT and of RL's training scenes, scored only to select RL's checkpoint."""

from __future__ import annotations

from collections.abc import Iterable


def last_logs(log_names: Iterable[str], n: int, where: str = "the RL scenes (after rl.max_samples)") -> list[str]:
    """The `n` last log names in sorted order: the validation logs. Deterministic, so a resumed run and the
    sft stage (which leaves them out too, sft.hold_out_validation_logs) hold out the same logs."""
    logs = sorted(set(log_names))
    if n >= len(logs) and n > 0:
        raise ValueError(f"rl.validation_logs={n}: {where} come from {len(logs)} logs; at least one must remain "
                         "for training")
    return logs[len(logs) - n:] if n else []
