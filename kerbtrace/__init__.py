"""kerbtrace: explain ConfigMgr client approval from network captures.

Data flows one way: sources -> reassembly -> decoders -> exchanges -> checks -> reports.
"""

__version__ = "0.1.0"
