from limits import MAX_BODY


def accepts(body: bytes) -> bool:
    return len(body) <= MAX_BODY
