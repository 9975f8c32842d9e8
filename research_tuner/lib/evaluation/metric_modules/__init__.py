"""The registry's metrics as Hugging Face `evaluate` modules, one file each: `evaluate.load(<path of a file here>)`
loads one offline, and metrics.py computes every score through them. Each module only adapts a function of this
package to evaluate's interface, so the formulas have one home (text_overlap.py, embedding.py, shared/sections.py).
"""

from importlib import resources


def module_path(name: str) -> str:
    """The file of the evaluate module `name`, as evaluate.load takes it."""
    return str(resources.files(__name__).joinpath(f"{name}.py"))
