"""Daily token budgets for router keys."""


def remaining(budget: int, spent: int) -> int:
    """Tokens left today; never negative."""
    return max(0, budget - spent)
