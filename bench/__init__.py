"""colorbench: a benchmark and evaluation harness for automatic image colorization.

Subpackages: ``colorbench.methods`` (method registry), ``colorbench.metrics``, ``colorbench.datasets``,
``colorbench.reports``; this package holds the registry, colour conversion, runner, records and CLI.
"""

__version__ = "0.1.0"
