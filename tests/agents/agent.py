#!/usr/bin/python3
"""Scripted XMPP agent for Frontdesk's integration tests.

A real XMPP client (slixmpp, from Debian's python3-slixmpp) standing in for
an agent's Gajim or Conversations, so the component is tested against a
client stack it does not share code with. Rust tests drive it over JSON
lines:

stdin, one command per line:
  {"cmd": "send", "to": J, "body": S, "id": S?, "request_receipt": B?,
   "markable": B?, "chatstate": S?, "type": "chat"?}
  {"cmd": "chatstate", "to": J, "state": "composing"}
  {"cmd": "receipt", "to": J, "id": S}          XEP-0184 <received/>
  {"cmd": "displayed", "to": J, "id": S}        XEP-0333 <displayed/>
  {"cmd": "presence", "show": "away"|null, "type": "unavailable"?}
  {"cmd": "subscribe", "to": J}
  {"cmd": "iq", "tag": S, "to": J, "type": "get", "ns": S, "name": "query"?}
  {"cmd": "raw", "xml": S}                      anything, even invalid
  {"cmd": "echo", "enabled": B, "prefix": S?, "reliable": B?}
                                                answer every chat message
                                                from a conversation address
                                                with prefix + its body (load
                                                tests: a tireless agent);
                                                reliable: ask for a receipt
                                                and send the same stanza
                                                again every 3 s until the
                                                gateway's receipt says it is
                                                stored (what an agent does
                                                with an unconfirmed message;
                                                fault tests); in echo mode
                                                receipt requests are answered
  {"cmd": "upload", "tag": S, "service": J, "to": J?, "filename": S,
   "data_b64" | "data_hex": S?, "size": N?, "content_type": S?,
   "id": S?}
                                                HTTP File Upload (XEP-0363) as
                                                Conversations does it: disco
                                                the service, request a slot
                                                (size defaults to the data's),
                                                PUT the data (if any), then
                                                send the GET URL to "to" (if
                                                given) as body and OOB URL
  {"cmd": "quit"}

stdout, one event per line, each with "ts" (receive time, Unix seconds):
  {"event": "ready", "jid": full JID}
  {"event": "message", "from", "to", "type", "id", "body", "nick",
   "chatstate", "receipt_request", "received", "displayed", "markable",
   "oob_url", "error_condition", "error_text"}
  {"event": "presence", "from", "to", "type", "show", "nick"}
  {"event": "iq", "tag", "type": "result"|"error", "condition",
   "children": [{"name", "ns", "attrs", "text"}...]}
  {"event": "upload", "tag", "type": "result"|"error"|"timeout",
   "stage": "disco"|"slot"|"put"|"sent", "advertised": B,
   "max_file_size": N|null, "condition", "put_url", "get_url",
   "put_status": N, "put_body": S}
  {"event": "disconnected"}
"""

import argparse
import asyncio
import base64
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

CLIENT = "jabber:client"
CHATSTATES = "http://jabber.org/protocol/chatstates"
RECEIPTS = "urn:xmpp:receipts"
MARKERS = "urn:xmpp:chat-markers:0"
NICK = "http://jabber.org/protocol/nick"
OOB = "jabber:x:oob"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DATA_FORMS = "jabber:x:data"
UPLOAD = "urn:xmpp:http:upload:0"


def emit(event):
    event["ts"] = time.time()
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def split(tag):
    if tag.startswith("{"):
        ns, name = tag[1:].split("}", 1)
        return ns, name
    return "", tag


def error_of(xml):
    err = xml.find("{%s}error" % CLIENT)
    if err is None:
        return None, None
    condition = None
    text = None
    for child in err:
        ns, name = split(child.tag)
        if ns == STANZAS and name == "text":
            text = child.text
        elif ns == STANZAS:
            condition = name
    return condition, text


class Agent(slixmpp.ClientXMPP):
    def __init__(self, jid, password, auto_authorize, address):
        super().__init__(jid, password)
        self.address = address
        self.quitting = False
        self.echo_prefix = None
        self.echo_reliable = False
        # (conversation address, stanza id) -> body of reliable echoes not
        # confirmed yet (ids are per conversation: m-<seq>).
        self.unconfirmed = {}
        self.done = asyncio.get_event_loop().create_future()
        self.auto_authorize = auto_authorize
        self.auto_subscribe = False
        self["feature_mechanisms"].unencrypted_plain = True
        self.register_handler(
            Callback("all messages", MatchXPath("{%s}message" % CLIENT), self.on_message)
        )
        self.register_handler(
            Callback("all presence", MatchXPath("{%s}presence" % CLIENT), self.on_presence)
        )
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("disconnected", self.on_disconnected)

    def start(self):
        self.connect(address=self.address, disable_starttls=True, use_ssl=False)

    def on_disconnected(self, _event):
        emit({"event": "disconnected"})
        if self.quitting:
            if not self.done.done():
                self.done.set_result(None)
        else:
            # The server went away (e.g. a restart in a test): come back, as
            # real clients do.
            asyncio.get_event_loop().call_later(0.3, self.start)

    def quit(self):
        self.quitting = True
        self.disconnect()
        # If we were not connected, there is no disconnected event to wait for.
        asyncio.get_event_loop().call_later(2, lambda: self.done.done() or self.done.set_result(None))

    async def on_start(self, _event):
        await self.get_roster()
        self.send_presence()
        emit({"event": "ready", "jid": str(self.boundjid)})

    def on_message(self, msg):
        xml = msg.xml
        event = {
            "event": "message",
            "from": msg["from"].full,
            "to": msg["to"].full,
            "type": xml.get("type", "normal"),
            "id": xml.get("id"),
            "body": None,
            "nick": None,
            "chatstate": None,
            "receipt_request": False,
            "received": None,
            "displayed": None,
            "markable": False,
            "oob_url": None,
        }
        for child in xml:
            ns, name = split(child.tag)
            if ns == CLIENT and name == "body":
                event["body"] = child.text or ""
            elif ns == NICK:
                event["nick"] = child.text
            elif ns == CHATSTATES:
                event["chatstate"] = name
            elif ns == RECEIPTS and name == "request":
                event["receipt_request"] = True
            elif ns == RECEIPTS and name == "received":
                event["received"] = child.get("id")
            elif ns == MARKERS and name == "markable":
                event["markable"] = True
            elif ns == MARKERS and name == "displayed":
                event["displayed"] = child.get("id")
            elif ns == OOB:
                url = child.find("{%s}url" % OOB)
                event["oob_url"] = url.text if url is not None else None
        condition, text = error_of(xml)
        event["error_condition"] = condition
        event["error_text"] = text
        emit(event)
        if event["received"] is not None:
            self.unconfirmed.pop((msg["from"].bare, event["received"]), None)
        # Only conversation addresses (a localpart): the component domain's
        # own notices are not chats, and answering them could loop.
        if (self.echo_prefix is not None and event["type"] == "chat"
                and event["body"] is not None and msg["from"].user):
            if event["receipt_request"] and event["id"]:
                # As Conversations and Gajim do for a contact they share
                # presence with.
                receipt = self.make_message(msg["from"], mtype="chat")
                ET.SubElement(receipt.xml, "{%s}received" % RECEIPTS, {"id": event["id"]})
                receipt.send()
            reply_id = "echo-%s" % (event["id"] or time.time())
            self.send_echo(msg["from"].bare, self.echo_prefix + event["body"], reply_id)

    def send_echo(self, to, body, reply_id, attempt=1):
        reply = self.make_message(to, body, mtype="chat")
        reply["id"] = reply_id
        if self.echo_reliable:
            ET.SubElement(reply.xml, "{%s}request" % RECEIPTS)
            self.unconfirmed[(to, reply_id)] = body
            # Two minutes of tries, then the agent gives up (and the test
            # that waits for the echo says so).
            if attempt < 40:
                asyncio.get_event_loop().call_later(3, self.resend_echo, to, reply_id, attempt + 1)
        reply.send()

    def resend_echo(self, to, reply_id, attempt):
        body = self.unconfirmed.get((to, reply_id))
        if body is not None and not self.quitting:
            emit({"event": "resent", "to": to, "id": reply_id, "attempt": attempt})
            self.send_echo(to, body, reply_id, attempt)

    def on_presence(self, pres):
        xml = pres.xml
        show = xml.find("{%s}show" % CLIENT)
        nick = xml.find("{%s}nick" % NICK)
        condition, _ = error_of(xml)
        emit({
            "event": "presence",
            "from": pres["from"].full,
            "to": pres["to"].full,
            "type": xml.get("type", "available"),
            "show": show.text if show is not None else None,
            "nick": nick.text if nick is not None else None,
            "error_condition": condition,
        })

    async def run_command(self, cmd):
        kind = cmd["cmd"]
        if kind == "send":
            msg = self.make_message(cmd["to"], cmd.get("body"), mtype=cmd.get("type", "chat"))
            if cmd.get("id"):
                msg["id"] = cmd["id"]
            if cmd.get("chatstate"):
                ET.SubElement(msg.xml, "{%s}%s" % (CHATSTATES, cmd["chatstate"]))
            if cmd.get("request_receipt"):
                ET.SubElement(msg.xml, "{%s}request" % RECEIPTS)
            if cmd.get("markable"):
                ET.SubElement(msg.xml, "{%s}markable" % MARKERS)
            msg.send()
        elif kind == "chatstate":
            msg = self.make_message(cmd["to"], mtype="chat")
            ET.SubElement(msg.xml, "{%s}%s" % (CHATSTATES, cmd["state"]))
            msg.send()
        elif kind == "receipt":
            msg = self.make_message(cmd["to"], mtype="chat")
            ET.SubElement(msg.xml, "{%s}received" % RECEIPTS, {"id": cmd["id"]})
            msg.send()
        elif kind == "displayed":
            msg = self.make_message(cmd["to"], mtype="chat")
            ET.SubElement(msg.xml, "{%s}displayed" % MARKERS, {"id": cmd["id"]})
            msg.send()
        elif kind == "presence":
            if cmd.get("type") == "unavailable":
                self.send_presence(ptype="unavailable")
            else:
                self.send_presence(pshow=cmd.get("show"))
        elif kind == "subscribe":
            self.send_presence(pto=cmd["to"], ptype="subscribe")
        elif kind == "iq":
            await self.run_iq(cmd)
        elif kind == "echo":
            self.echo_prefix = cmd.get("prefix", "") if cmd.get("enabled", True) else None
            self.echo_reliable = bool(cmd.get("reliable", False))
        elif kind == "upload":
            await self.run_upload(cmd)
        elif kind == "raw":
            self.send_raw(cmd["xml"])
        elif kind == "quit":
            self.quit()
        else:
            emit({"event": "bad_command", "cmd": cmd})

    async def run_iq(self, cmd):
        iq = self.make_iq(ito=cmd["to"], itype=cmd.get("type", "get"))
        ET.SubElement(iq.xml, "{%s}%s" % (cmd["ns"], cmd.get("name", "query")))
        event = {"event": "iq", "tag": cmd.get("tag"), "children": []}
        try:
            result = await iq.send(timeout=10)
            event["type"] = "result"
            for query in result.xml:
                for child in query:
                    ns, name = split(child.tag)
                    event["children"].append(
                        {"name": name, "ns": ns, "attrs": dict(child.attrib), "text": child.text}
                    )
        except IqError as e:
            event["type"] = "error"
            event["condition"], _ = error_of(e.iq.xml)
        except IqTimeout:
            event["type"] = "timeout"
        emit(event)


    async def run_upload(self, cmd):
        """XEP-0363 by hand (slixmpp's plugin needs aiohttp, which Debian's
        python3-slixmpp does not pull in); the PUT runs in a thread."""
        event = {"event": "upload", "tag": cmd.get("tag"), "advertised": False,
                 "max_file_size": None, "condition": None}
        data = None
        if cmd.get("data_b64"):
            data = base64.b64decode(cmd["data_b64"])
        elif cmd.get("data_hex"):
            data = bytes.fromhex(cmd["data_hex"])
        size = cmd.get("size", len(data) if data is not None else 0)
        try:
            event["stage"] = "disco"
            disco = self.make_iq_get(queryxmlns=DISCO_INFO, ito=cmd["service"])
            info = await disco.send(timeout=10)
            query = info.xml.find("{%s}query" % DISCO_INFO)
            for feature in query.findall("{%s}feature" % DISCO_INFO):
                if feature.get("var") == UPLOAD:
                    event["advertised"] = True
            for form in query.findall("{%s}x" % DATA_FORMS):
                fields = {f.get("var"): f.find("{%s}value" % DATA_FORMS)
                          for f in form.findall("{%s}field" % DATA_FORMS)}
                form_type = fields.get("FORM_TYPE")
                if form_type is not None and form_type.text == UPLOAD and fields.get("max-file-size") is not None:
                    event["max_file_size"] = int(fields["max-file-size"].text)
            event["stage"] = "slot"
            iq = self.make_iq(ito=cmd["service"], itype="get")
            attrs = {"filename": cmd["filename"], "size": str(size)}
            if cmd.get("content_type"):
                attrs["content-type"] = cmd["content_type"]
            ET.SubElement(iq.xml, "{%s}request" % UPLOAD, attrs)
            result = await iq.send(timeout=10)
            slot = result.xml.find("{%s}slot" % UPLOAD)
            event["put_url"] = slot.find("{%s}put" % UPLOAD).get("url")
            event["get_url"] = slot.find("{%s}get" % UPLOAD).get("url")
            if data is not None:
                event["stage"] = "put"
                status, body = await asyncio.get_event_loop().run_in_executor(
                    None, http_put, event["put_url"], data, cmd.get("content_type"))
                event["put_status"] = status
                event["put_body"] = body
                if status not in (200, 201):
                    event["type"] = "error"
                    emit(event)
                    return
                if cmd.get("to"):
                    event["stage"] = "sent"
                    msg = self.make_message(cmd["to"], event["get_url"], mtype="chat")
                    if cmd.get("id"):
                        msg["id"] = cmd["id"]
                    oob = ET.SubElement(msg.xml, "{%s}x" % OOB)
                    ET.SubElement(oob, "{%s}url" % OOB).text = event["get_url"]
                    msg.send()
            event["type"] = "result"
        except IqError as e:
            event["type"] = "error"
            event["condition"], event["error_text"] = error_of(e.iq.xml)
            err = e.iq.xml.find("{%s}error" % CLIENT)
            too_large = err.find("{%s}file-too-large" % UPLOAD) if err is not None else None
            if too_large is not None:
                event["max_file_size"] = int(too_large.find("{%s}max-file-size" % UPLOAD).text)
        except IqTimeout:
            event["type"] = "timeout"
        emit(event)


def http_put(url, data, content_type):
    request = urllib.request.Request(url, data=data, method="PUT")
    request.add_header("Content-Type", content_type or "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-auto-authorize", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    loop = asyncio.get_event_loop()
    agent = Agent(args.jid, args.password, not args.no_auto_authorize, (args.host, args.port))

    def read_stdin():
        for line in sys.stdin:
            line = line.strip()
            if line:
                cmd = json.loads(line)
                asyncio.run_coroutine_threadsafe(agent.run_command(cmd), loop)
        # stdin closed: the test is over.
        loop.call_soon_threadsafe(agent.quit)

    agent.start()
    threading.Thread(target=read_stdin, daemon=True).start()
    loop.run_until_complete(agent.done)


if __name__ == "__main__":
    main()
