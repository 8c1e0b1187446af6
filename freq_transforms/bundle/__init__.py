"""Everything about a MONAI bundle: its settings schema and checks, reading its configs, overrides, paths and input
size, building the collection from ``bundle_source/``, releasing it, the FD overlay of any bundle, and inference.

Bundle configs call into this subpackage (``freq_transforms.bundle.settings.Settings`` ...); it sits above
:mod:`freq_transforms.networks`, :mod:`freq_transforms.data` and :mod:`freq_transforms.handlers`, and below the
command line (:mod:`freq_transforms.cli`), the trial and the lab.
"""
