'use strict';
// The agent side of the browser tests: a real agent client that receives
// offers and answers visitors, driven from the tests over JSON lines on a
// child process's stdin/stdout. The default child is the repository's
// scripted XMPP agent, `tests/agents/agent.py` (slixmpp, a real XMPP client
// logged in as a PBX agent, shared with the Rust integration tests);
// FRONTDESK_AGENT_CMD may name any other driver speaking the same lines.
//
// Lines the driver prints (agent.py's format; extra fields are ignored):
//   {"event":"ready"}
//   {"event":"message","from":JID,"id":ID,"body":TEXT|null,"chatstate":STATE|null,
//    "receipt_request":BOOL,"type":"chat"|"error"}
//   {"event":"chatstate","from":JID,"state":STATE}       (also accepted)
// Commands it reads:
//   {"cmd":"send","to":JID,"body":TEXT}   {"cmd":"chatstate","to":JID,"state":STATE}
//   {"cmd":"receipt","to":JID,"id":ID}    {"cmd":"displayed","to":JID,"id":ID}
//   {"cmd":"quit"}
// A message asking for a receipt (XEP-0184) is acknowledged at once, as a
// desktop client does; a read marker (XEP-0333) is only sent when a test says
// the agent read it.
//
// JIDs are compared bare: the visitor's per-conversation address on the agent
// side (e.g. visitor-7f3a…@chat.pbx.example.com) is what the tests call
// `conversationId`, because that is how an agent tells chats apart.

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const DEFAULT_TIMEOUT = Number(process.env.FRONTDESK_AGENT_TIMEOUT_MS || 20000);

const bare = (jid) => String(jid || '').split('/')[0];

/** One driver line -> the events the tests look at (message, chatstate, error, ready). */
function normalize(ev) {
  if (ev.event === 'chatstate') return [{ ...ev, from: bare(ev.from) }];
  if (ev.event !== 'message') return [ev];
  const from = bare(ev.from);
  if (ev.type === 'error') return [{ event: 'error', from, message: ev.error_text || ev.error_condition || 'error' }];
  const out = [];
  if (ev.body != null && ev.body !== '') {
    out.push({ event: 'message', from, full: ev.from, body: ev.body, id: ev.id, receipt_request: !!ev.receipt_request });
  }
  if (ev.chatstate) out.push({ event: 'chatstate', from, state: ev.chatstate });
  return out;
}

class Agent {
  constructor(child) {
    this.child = child;
    this.events = []; // every event received, in order
    this.waiters = [];
    this.seen = new Set(); // addresses already returned by nextOffer
    this.cursor = new Map(); // address -> index of the next unread event
    this.stderr = '';
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch (e) {
        return;
      }
      for (const e of normalize(ev)) {
        if (e.event === 'message' && e.receipt_request && e.id) this._cmd({ cmd: 'receipt', to: e.full, id: e.id });
        this.events.push(e);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    child.on('exit', (code) => {
      this.exited = code;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves with the first event (from index `from`) matching `pred`, or rejects after `timeout` ms. */
  waitFor(pred, { timeout = DEFAULT_TIMEOUT, from = 0, what = 'agent event' } = {}) {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; agent saw ${JSON.stringify(this.events.slice(-10))}; stderr: ${this.stderr}`));
      }, timeout);
      const check = () => {
        for (let i = from; i < this.events.length; i++) {
          if (pred(this.events[i])) {
            clearTimeout(deadline);
            resolve({ event: this.events[i], index: i });
            return;
          }
        }
        if (this.exited !== undefined) {
          clearTimeout(deadline);
          reject(new Error(`agent driver exited (${this.exited}): ${this.stderr}`));
          return;
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  /**
   * Next offer: the first message from a visitor address not returned before,
   * whose text contains `match` (e.g. the visitor's unique name) if given.
   * Returns { conversationId, body, id }.
   */
  async nextOffer({ match, timeout } = {}) {
    const { event, index } = await this.waitFor(
      (e) => e.event === 'message' && !this.seen.has(e.from) && (!match || String(e.body).includes(match)),
      { timeout, what: `an offer${match ? ' mentioning ' + JSON.stringify(match) : ''}` },
    );
    this.seen.add(event.from);
    this.cursor.set(event.from, index + 1);
    return { conversationId: event.from, body: event.body, id: event.id };
  }

  /** Next message from that visitor after the last one read, optionally containing `match`. */
  async nextMessage(conversationId, { match, timeout } = {}) {
    const from = this.cursor.get(conversationId) || 0;
    const { event, index } = await this.waitFor(
      (e) => e.event === 'message' && e.from === conversationId && (!match || String(e.body).includes(match)),
      { timeout, from, what: `a message from ${conversationId}${match ? ' containing ' + JSON.stringify(match) : ''}` },
    );
    this.cursor.set(conversationId, index + 1);
    return event;
  }

  /** Resolves when the visitor's chat state (typing) reaches `state`. */
  async nextChatState(conversationId, state, { timeout } = {}) {
    const from = this.cursor.get(conversationId) || 0;
    const { event } = await this.waitFor((e) => e.event === 'chatstate' && e.from === conversationId && e.state === state, {
      timeout,
      from,
      what: `chat state ${state} from ${conversationId}`,
    });
    return event;
  }

  /** Every message body received from that visitor so far. */
  messagesFrom(conversationId) {
    return this.events.filter((e) => e.event === 'message' && e.from === conversationId).map((e) => e.body);
  }

  /** Resolves with the first message or `gone` chat state from the visitor after index `from` (the "chat ended" notice). */
  async endNotice(conversationId, { from, timeout } = {}) {
    const { event } = await this.waitFor(
      (e) => e.from === conversationId && (e.event === 'message' || (e.event === 'chatstate' && e.state === 'gone')),
      { timeout, from: from ?? this.events.length, what: `an end-of-chat notice from ${conversationId}` },
    );
    return event;
  }

  mark() {
    return this.events.length;
  }

  _cmd(obj) {
    this.child.stdin.write(JSON.stringify(obj) + '\n');
  }

  async reply(conversationId, text) {
    this._cmd({ cmd: 'send', to: conversationId, body: text });
  }

  async typing(conversationId, state = 'composing') {
    this._cmd({ cmd: 'chatstate', to: conversationId, state });
  }

  async displayed(conversationId, id) {
    this._cmd({ cmd: 'displayed', to: conversationId, id });
  }

  async stop() {
    if (this.exited !== undefined) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    try {
      this._cmd({ cmd: 'quit' });
    } catch (e) {
      // stdin already closed
    }
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

/**
 * Starts the agent driver and waits until it is logged in and available.
 * Default driver: tests/agents/agent.py logged in as FRONTDESK_AGENT_JID with
 * FRONTDESK_AGENT_PASSWORD on FRONTDESK_XMPP_HOST (127.0.0.1):FRONTDESK_XMPP_PORT (5222).
 */
async function startAgent({ timeout = 30000 } = {}) {
  let child;
  if (process.env.FRONTDESK_AGENT_CMD) {
    child = spawn('sh', ['-c', process.env.FRONTDESK_AGENT_CMD], { stdio: ['pipe', 'pipe', 'pipe'] });
  } else {
    const env = (k, d) => {
      const v = process.env[k] || d;
      if (!v) throw new Error(`${k} must be set (or FRONTDESK_AGENT_CMD)`);
      return v;
    };
    // -B: no __pycache__ next to the script, in the source tree.
    child = spawn('/usr/bin/python3', [
      '-B',
      path.join(__dirname, '../agents/agent.py'),
      '--jid', env('FRONTDESK_AGENT_JID'),
      '--password', env('FRONTDESK_AGENT_PASSWORD'),
      '--host', env('FRONTDESK_XMPP_HOST', '127.0.0.1'),
      '--port', env('FRONTDESK_XMPP_PORT', '5222'),
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
  }
  const agent = new Agent(child);
  await agent.waitFor((e) => e.event === 'ready', { timeout, what: 'the agent driver to log in' });
  return agent;
}

module.exports = { startAgent, Agent, normalize };
