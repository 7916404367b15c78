"""The deep-supervision trainer (loop, ACT, losses, optimisers, checkpoints, evaluation, CLI).

`trm_core.train` is both this package and the public function `trm_core.train(cfg, report=None,
*, out_dir=None, resume_from=None)`: importing a submodule (trm_core.train.loop) rebinds the name
`trm_core.train` to this package, so the package itself is made callable and forwards to
`trm_core.train.loop.train`. Either way, `trm_core.train(cfg, report=fn)` trains.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, cfg, report=None, *, out_dir=None, resume_from=None, **kwargs):
        from trm_core.train.loop import train

        return train(cfg, report=report, out_dir=out_dir, resume_from=resume_from, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
