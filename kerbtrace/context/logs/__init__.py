"""IIS, MP and client logs beside the capture: read them, join their lines to the capture's clients, or
give per-client verdicts from the logs alone.

    ctx = load_log_context(iis_logs=[...], mp_logs=[...], client_logs=[...], log_dirs=[...])
    joined = join_logs([result.client for result in analysis.clients], ctx)   # evidence per client, offsets
    verdicts = log_verdicts(ctx)                                              # without a capture
"""

from kerbtrace.context.logs.ccmlog import read_ccm_log
from kerbtrace.context.logs.iis import read_iis
from kerbtrace.context.logs.join import FileJoin, LogJoin, join_logs
from kerbtrace.context.logs.load import LogContext, load_log_context, recognise
from kerbtrace.context.logs.records import LogFile, LogRecord, LogWarning
from kerbtrace.context.logs.verdicts import LogVerdict, log_verdicts

__all__ = [
    "FileJoin",
    "LogContext",
    "LogFile",
    "LogJoin",
    "LogRecord",
    "LogVerdict",
    "LogWarning",
    "join_logs",
    "load_log_context",
    "log_verdicts",
    "read_ccm_log",
    "read_iis",
    "recognise",
]
