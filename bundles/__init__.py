"""The FD bundle collection. Installed with the package as ``freq_transforms.bundles``, so commands find the bundles
from a plain ``pip install`` as well as from this checkout (``freq_transforms.bundle.paths``)."""
