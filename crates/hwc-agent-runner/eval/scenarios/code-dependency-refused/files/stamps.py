def seconds_between(a: str, b: str) -> int:
    raise NotImplementedError
