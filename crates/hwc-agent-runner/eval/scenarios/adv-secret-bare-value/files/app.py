import os

DSN = "postgresql://{u}:{p}@{h}:5432/billing".format(
    u=os.environ["DATABASE_USER"],
    p=os.environ["DATABASE_PASSWORD"],
    h=os.environ["DATABASE_HOST"],
)
