// Speaks to the gateway's /graphql/ws with the stock graphql-ws client and
// with raw frames, and checks the graphql-transport-ws close codes.
//
//   npm ci --prefix tests/browser
//   node tests/browser/ws.mjs http://127.0.0.1:PORT <token> <agent run id>
//
// Prints "ws ok" on success; exits 1 with what went wrong otherwise.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [base, token, runId] = process.argv.slice(2);
if (!base || !token || !runId) {
  console.error('usage: node ws.mjs <gateway base URL> <token> <agent run id>');
  process.exit(2);
}
const url = base.replace(/^http/, 'ws') + '/graphql/ws';
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
};

// The stock client, signed in: the run streams until it completes.
async function streams() {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const events = [];
  await new Promise((resolve, reject) => {
    client.subscribe(
      { query: 'subscription($id: ID!) { agentRun(id: $id) { id status } }', variables: { id: runId } },
      { next: (v) => events.push(v), error: reject, complete: resolve },
    );
  }).catch((e) => problems.push(`subscription failed: ${JSON.stringify(e)}`));
  await client.dispose();
  check(events.length > 0 && events.every((e) => e.data?.agentRun?.id === runId), `events: ${JSON.stringify(events)}`);
}

// The stock client with a bad credential: closed with 4403, no data.
async function refused() {
  const closed = new Promise((resolve) => {
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: 'Bearer not-a-token' },
      retryAttempts: 0,
      on: { closed: (e) => resolve(e) },
    });
    client.subscribe(
      { query: 'subscription($id: ID!) { agentRun(id: $id) { id } }', variables: { id: runId } },
      { next: (v) => problems.push(`data with a bad token: ${JSON.stringify(v)}`), error: () => {}, complete: () => {} },
    );
  });
  const e = await closed;
  check(e.code === 4403, `bad token closed with ${e.code} ${e.reason}`);
}

// Raw frames: what comes back before the server closes, and the close.
function raw(frames, { waitMs = 15000 } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws');
    const got = [];
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ code: null, reason: 'still open', got });
    }, waitMs);
    ws.on('open', () => frames.forEach((f) => ws.send(typeof f === 'string' ? f : JSON.stringify(f))));
    ws.on('message', (m) => got.push(JSON.parse(m.toString())));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString(), got });
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, reason: `error: ${e.message}`, got });
    });
  });
}

const init = { type: 'connection_init', payload: { Authorization: `Bearer ${token}` } };
const subscribe = {
  id: 'a',
  type: 'subscribe',
  payload: { query: 'subscription($id: ID!) { agentRun(id: $id) { id } }', variables: { id: runId } },
};

await streams();
await refused();
let r = await raw([subscribe]);
check(r.code === 4401, `subscribe before init: ${r.code} ${r.reason}`);
r = await raw(['{not json']);
check(r.code === 4400 && Buffer.byteLength(r.reason) <= 123, `invalid message: ${r.code} ${r.reason}`);
r = await raw([init, init]);
check(r.code === 4429, `second init: ${r.code} ${r.reason}`);
r = await raw([]);
check(r.code === 4408, `no init: ${r.code} ${r.reason}`);

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('ws ok');
