"""What the displays share."""

from __future__ import annotations


def check_matplotlib_support(caller_name: str) -> None:
    """Raise an ``ImportError`` naming ``caller_name`` when matplotlib is missing.

    scikit-learn's displays do this with ``check_matplotlib_support``, which
    recent scikit-learn releases no longer export publicly; this is the same
    check, with the same message.

    Parameters
    ----------
    caller_name : str
        The function that needs matplotlib, named in the message.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{caller_name} requires matplotlib. You can install matplotlib with "
            "`pip install matplotlib` (or the extra: `pip install skinfluence[plot]`)."
        ) from exc
