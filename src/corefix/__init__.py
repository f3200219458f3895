"""corefix: find and undo the damage of broken coreference-substitution passes."""

__version__ = "0.1.0"

__all__ = ["Restorer", "__version__"]


def __getattr__(name):
    # Restorer pulls in torch and transformers: import it only when asked for.
    if name == "Restorer":
        from .model.predict import Restorer

        return Restorer
    raise AttributeError(name)
