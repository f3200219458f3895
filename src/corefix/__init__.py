"""corefix: find and undo the damage of broken coreference-substitution passes.

    import corefix
    restorer = corefix.load()          # the model shipped with corefix (or corefix.load("runs/NAME/best"))
    print(restorer.restore(text).restored)
"""

__version__ = "0.1.0"

__all__ = ["Restorer", "load", "__version__"]


def load(path=None, **options):
    """A :class:`Restorer` for the model in ``path`` (None: the model shipped with corefix).

    ``options`` are :class:`corefix.model.options.InferenceOptions` fields
    (``precision=``, ``threshold=``, ``gaps=``, ``device=``, ...).
    """
    from .model.predict import Restorer

    return Restorer.from_pretrained(path, **options)


def __getattr__(name):
    # Restorer pulls in torch and transformers: import it only when asked for.
    if name == "Restorer":
        from .model.predict import Restorer

        return Restorer
    raise AttributeError(name)
