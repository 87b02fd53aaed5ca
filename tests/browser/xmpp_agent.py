#!/usr/bin/python3
"""A real XMPP agent for the browser tests, driven over stdin/stdout.

It logs in to the PBX's XMPP server as an ordinary agent account (slixmpp,
Debian's python3-slixmpp, run with /usr/bin/python3), announces itself
available, and relays what a person in Gajim or Dino would see and do as
JSON lines (protocol documented in agent.js):

  stdout: {"event":"ready"} | {"event":"message","from","body","id"}
          | {"event":"chatstate","from","state"} | {"event":"error","message"}
  stdin:  {"cmd":"send","to","body"} | {"cmd":"chatstate","to","state"}
          | {"cmd":"displayed","to","id"} | {"cmd":"quit"}

Environment: FRONTDESK_AGENT_JID, FRONTDESK_AGENT_PASSWORD,
FRONTDESK_XMPP_HOST (default 127.0.0.1), FRONTDESK_XMPP_PORT (default 5222),
FRONTDESK_XMPP_STARTTLS=1 to require STARTTLS (default: plain loopback, as
with a throwaway Prosody configured with c2s_require_encryption = false).
"""

import asyncio
import json
import os
import sys
import threading

from slixmpp import ClientXMPP


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Agent(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ("xep_0030", "xep_0085", "xep_0184", "xep_0199", "xep_0333"):
            self.register_plugin(plugin)
        # Acknowledge receipts like a desktop client does (XEP-0184).
        self["xep_0184"].auto_ack = True
        self["xep_0184"].auto_request = True
        self["feature_mechanisms"].unencrypted_plain = True
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("chatstate", self.on_chatstate)
        self.add_event_handler("failed_auth", lambda _e: self.fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))

    def fail(self, text):
        out({"event": "error", "message": text})
        os._exit(2)

    async def on_start(self, _event):
        self.send_presence()
        await self.get_roster()
        out({"event": "ready"})

    def on_message(self, msg):
        if msg["type"] == "error":
            out({"event": "error", "message": str(msg["error"]), "from": msg["from"].bare})
            return
        if msg["type"] in ("chat", "normal") and msg["body"]:
            out({"event": "message", "from": msg["from"].bare, "body": msg["body"], "id": msg["id"]})

    def on_chatstate(self, msg):
        out({"event": "chatstate", "from": msg["from"].bare, "state": msg["chat_state"]})

    def command(self, cmd):
        kind = cmd.get("cmd")
        if kind == "send":
            self.send_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
        elif kind == "chatstate":
            msg = self.make_message(mto=cmd["to"], mtype="chat")
            msg["chat_state"] = cmd["state"]
            msg.send()
        elif kind == "displayed":
            self["xep_0333"].send_marker(cmd["to"], cmd["id"], "displayed")
        elif kind == "quit":
            self.disconnect()
            self.loop.call_later(1, lambda: os._exit(0))


def main():
    jid = os.environ.get("FRONTDESK_AGENT_JID")
    password = os.environ.get("FRONTDESK_AGENT_PASSWORD")
    if not jid or not password:
        out({"event": "error", "message": "FRONTDESK_AGENT_JID and FRONTDESK_AGENT_PASSWORD must be set"})
        sys.exit(2)
    host = os.environ.get("FRONTDESK_XMPP_HOST", "127.0.0.1")
    port = int(os.environ.get("FRONTDESK_XMPP_PORT", "5222"))
    starttls = os.environ.get("FRONTDESK_XMPP_STARTTLS") == "1"

    agent = Agent(jid, password)
    loop = asyncio.get_event_loop()

    def read_stdin():
        for line in sys.stdin:
            line = line.strip()
            if line:
                loop.call_soon_threadsafe(agent.command, json.loads(line))
        # Test runner gone: leave.
        loop.call_soon_threadsafe(agent.command, {"cmd": "quit"})

    threading.Thread(target=read_stdin, daemon=True).start()
    agent.connect((host, port), force_starttls=starttls, disable_starttls=not starttls)
    loop.run_forever()


if __name__ == "__main__":
    main()
