"""sftlab: reasoning-SFT research on PyTorch Lightning, with in-training generation eval through vLLM.

The library (`sftlab`) holds data formatting, the SFT LightningModule, the evaluation core and the CLI.
Callbacks live in `sftlab.callbacks` (the top-level `callbacks/` folder) and the library never imports them.
"""

__version__ = "0.1.0"
