"""neurodeploy: spiking networks from PyTorch onto Loihi-class chips, checked bit for bit.

The pipeline: float model (torch) -> quantizer -> integer netlist -> exporters,
simulator, Lava backend, mapper -> report. Everything after the quantizer works
from the netlist alone, without torch.
"""

__version__ = "0.1.0"
