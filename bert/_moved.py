"""Old import paths of modules that moved into subpackages keep working.

`import bert.trainer`, `from bert import options` and `from bert.models import X` find the
module at its new home; both names then refer to the same module object (patching one
patches the other). Lazy: a moved module is imported when its old name is first used.
"""

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "bert.config": "bert.modeling.config",
    "bert.layers": "bert.modeling.layers",
    "bert.models": "bert.modeling.models",
    "bert.squad_export": "bert.serving",
    "bert.trainer": "bert.training.trainer",
    "bert.options": "bert.training.options",
    "bert.distribute": "bert.training.distribute",
    "bert.experiment": "bert.training.experiment",
    "bert.pretraining": "bert.tasks.pretraining",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name in MOVED and returns the module of its new name."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        # The import system is about to set __spec__ to the old name's: keep the module's own.
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # Executed already, under its new name.


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
