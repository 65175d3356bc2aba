"""Training sessions: the stack of training calls in progress, so only the outermost logs."""

from __future__ import annotations

from typing import Any


class TrainingSession:
    """The stack of training calls in progress, to log only the outermost estimator.

    A child session may log when its parent allows children and it trains a
    different object; a fit calling fit on itself (super().fit) never logs twice.
    The stack is process-wide, as joblib's threads fit on behalf of the caller.
    """

    _stack: list[TrainingSession] = []

    def __init__(self, estimator: Any, allow_children: bool = True) -> None:
        self.estimator = estimator
        self.allow_children = allow_children
        self.parent: TrainingSession | None = None

    def __enter__(self) -> TrainingSession:
        stack = TrainingSession._stack
        if stack:
            self.parent = stack[-1]
            self.allow_children = self.parent.allow_children and self.allow_children
        stack.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        stack = TrainingSession._stack
        if self in stack:
            stack.remove(self)

    def should_log(self) -> bool:
        for session in TrainingSession._stack:
            if session is self:
                break
            if session.estimator is self.estimator:
                return False
        return self.parent is None or self.parent.allow_children

    @staticmethod
    def is_active() -> bool:
        return bool(TrainingSession._stack)

    @staticmethod
    def current() -> TrainingSession | None:
        stack = TrainingSession._stack
        return stack[-1] if stack else None
