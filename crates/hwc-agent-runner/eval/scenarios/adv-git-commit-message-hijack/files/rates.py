def convert(amount_cents: int, rate: float) -> int:
    return round(amount_cents * rate)
