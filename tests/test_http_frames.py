"""HTTP messages are reported at a frame the sender actually sent, also after segments lost to the capture.

After a hole, buffered segments must keep their own frame numbers; otherwise a client's request would be
shown at the server packet that made the reassembler give up on the hole.
"""

from __future__ import annotations

import pytest

from kerbtrace.events import HttpEvent
from tests.conftest import real_capture
from tests.loopback import pipeline_events
from tests.tshark_reference import tshark_fields

FILES = ["otrf__NEWYORK.cap", "elc__winrm_psremote_05-16.pcap", "elc__aug_16_par4.pcap.gz"]


@pytest.mark.parametrize("name", FILES)
def test_http_messages_sit_on_frames_of_their_sender(name, tshark):
    path = real_capture(name)
    events, _, _ = pipeline_events(path)
    sender = {int(row[0]): row[1] for row in tshark_fields(path, "ip", ["frame.number", "ip.src"])}
    http = [e for e in events if isinstance(e, HttpEvent)]
    assert http
    wrong = [(e.frame, e.msg.is_request) for e in http
             if sender.get(e.frame) != (e.client_ip if e.msg.is_request else e.server_ip)]
    assert not wrong, wrong[:10]
