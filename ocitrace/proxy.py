"""`ocitrace proxy` (filled in by the live-capture work)."""


def register(sub) -> None:
    pass
