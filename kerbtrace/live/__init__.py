"""`kerbtrace live`: the analysis pipeline fed from a capture interface while it runs.

backend (dumpcap as a child, pcapng on a pipe) -> the same `analysis.Session` as `analyze` -> view
(terminal table or lines), JSON lines, and a pcapng ring of the packets read (ring).
"""
