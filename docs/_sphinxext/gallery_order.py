"""Order of the examples in the gallery: from first use to extending skcl."""

from pathlib import Path

#: File names in reading order; an example not listed here comes last, by name.
ORDER = [
    "plot_monthly_loop.py",
    "plot_compare_strategies.py",
    "plot_low_lr_finish.py",
    "plot_grid_search.py",
    "plot_pipeline_scaler.py",
    "plot_resume_saved_model.py",
    "plot_hashed_token_stream.py",
    "plot_custom_module.py",
    "plot_custom_regularizer.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        position = ORDER.index(name) if name in ORDER else len(ORDER)
        return (position, name)

    def __repr__(self):
        # sphinx-gallery caches the configuration by this representation
        return f"<{type(self).__name__}>"
