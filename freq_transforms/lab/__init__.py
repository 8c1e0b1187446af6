"""The lab: experiments run *on* the library, kept beside it as nnU-Net keeps its experiment planning outside the
network code. It may import the library; the library never imports it.

- :mod:`.phantoms`: synthetic MSD-layout datasets for the five tasks (tests, demo, first runs);
- :mod:`.runner`: run a bundle's own configs in-process or as a subprocess;
- :mod:`.records`: one run through a bundle's train and evaluate configs and the table of runs (the demo's; the
  grid with paired statistics is the trial);
- :mod:`.demo`: the main job on phantoms (FD against the plain UNet), table and figure;
- :mod:`.bench`: side-by-side speed and memory measurements;
- :mod:`.plots`: PNG figures; :mod:`.contrast`: intensity contrast of phantoms.
"""
