import sys, tomllib
KNOWN = {"name", "port", "workers"}
cfg = tomllib.load(open("app.toml", "rb"))
unknown = sorted(set(cfg) - KNOWN)
if unknown:
    sys.exit(f"app.toml: unknown key {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
if "port" not in cfg:
    sys.exit("app.toml: port is required")
print("app.toml OK")
