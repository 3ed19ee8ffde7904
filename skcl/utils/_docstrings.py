"""Docstring sharing, the imbalanced-learn way: a substitution decorator."""

__all__ = ["Substitution"]


class Substitution:
    """Decorate a function or class to fill ``{name}`` fields of its docstring.

    Parameters
    ----------
    **fields : str
        Text to insert for each ``{name}``; the text's first line is inserted
        as is and later lines keep their own indentation.
    """

    def __init__(self, **fields):
        self.fields = {name: text.strip("\n") for name, text in fields.items()}

    def __call__(self, obj):
        if obj.__doc__:  # None under python -OO
            doc = obj.__doc__
            for name, text in self.fields.items():
                doc = doc.replace("{" + name + "}", text.lstrip())
            obj.__doc__ = doc
        return obj
