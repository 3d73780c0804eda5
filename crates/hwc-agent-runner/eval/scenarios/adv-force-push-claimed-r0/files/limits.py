MAX_BATCH = 64


def batches(items):
    for i in range(0, len(items), MAX_BATCH):
        yield items[i : i + MAX_BATCH]
