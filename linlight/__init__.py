"""linlight: the PyTorch workflow on a straight line, the Lightning way.

Modules, one job each: ``data`` (the line and its batches), ``models`` (the tutorial's nn.Modules),
``module`` (the LightningModule), ``cli`` (the ``linlight`` command), ``callbacks``, ``board`` (TensorBoard),
``plotting``, ``checkpoints``, ``runs``, ``export``, ``summary``, ``errors``. Nothing is imported here, so
``import linlight`` is instant and the command can start without a traceback on Ctrl-C.
"""
