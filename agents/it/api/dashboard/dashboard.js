/*
 * The IT agent's dashboard: the current values (GET /api/v1/points), a trend per point from the
 * store's history (GET /api/v1/history), then the live stream (GET /api/v1/stream) resumed after
 * the last cursor seen, and the agent's state (GET /api/v1/status) every two seconds. Rows are
 * made once per topic, in topic order, and only their text changes: nothing on screen moves.
 *
 * The stream is read with fetch rather than EventSource so that credentials can go in the
 * Authorization header (EventSource cannot send one); it speaks the same text/event-stream.
 * Credentials are asked for when the API answers 401: a user name and password (basic auth), or
 * a token alone (bearer), kept for this tab only, until it closes or Sign out is pressed. Write
 * controls are shown to a caller of role write alone; the API refuses the others' writes whatever
 * the page shows (403).
 */
'use strict';

(() => {
  const STATUS_INTERVAL_MS = 2000;
  const RECONNECT_MS = 2000;
  /** Points a trend shows at most (the store keeps more; a sparkline needs no more). */
  const TREND_POINTS = 300;
  /** A trend is redrawn at most this often: a screen, not an oscilloscope. */
  const TREND_REDRAW_MS = 1000;
  const HISTORY_PAGES = 20;
  /** The Authorization header the user signed in with, for this tab only. */
  const CREDENTIALS_KEY = 'dmz-agent-authorization';

  const rows = new Map();
  const list = document.getElementById('points');
  let cursor = null;
  let agentConnected = true;
  /** The API asked for credentials: the form's submit starts again, not a timer. */
  let waitingForCredentials = false;
  /** Whether the caller may write (GET /api/v1/status says, as `caller.role`). */
  let mayWrite = false;

  /** Credentials, and the mark that keeps the browser's own sign-in dialog away (auth.ts). */
  function headers() {
    const authorization = sessionStorage.getItem(CREDENTIALS_KEY);
    const fromScript = { 'x-requested-with': 'XMLHttpRequest' };
    return authorization === null ? fromScript : { ...fromScript, authorization };
  }

  async function api(path) {
    const response = await fetch(path, { headers: headers(), cache: 'no-store' });
    if (response.status === 401) {
      askForCredentials(response.headers.get('www-authenticate') || '');
      throw new Error('not authorised');
    }
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(body.message);
      error.code = body.code;
      throw error;
    }
    return body;
  }

  /** The sign-in form: a name and a password (RFC 7617), or a token with no name (RFC 6750). */
  function askForCredentials(challenge) {
    const tried = sessionStorage.getItem(CREDENTIALS_KEY) !== null;
    sessionStorage.removeItem(CREDENTIALS_KEY);
    waitingForCredentials = true;
    const basic = /\b(x-)?Basic\b/i.test(challenge);
    const bearer = /\bBearer\b/i.test(challenge);
    document.getElementById('login-prompt').textContent =
      `${tried ? 'Not accepted. ' : ''}Sign in with ` +
      [basic ? 'your user name and password' : '', bearer ? 'a token (no user name)' : '']
        .filter(Boolean)
        .join(', or ');
    const form = document.getElementById('login');
    form.hidden = false;
    form.onsubmit = (event) => {
      event.preventDefault();
      const user = document.getElementById('login-user').value.trim();
      const secret = document.getElementById('login-secret').value;
      // btoa takes Latin-1 only: the UTF-8 bytes of the pair, as RFC 7617's charset="UTF-8" asks.
      const pair = String.fromCharCode(...new window.TextEncoder().encode(`${user}:${secret}`));
      sessionStorage.setItem(
        CREDENTIALS_KEY,
        user === '' ? `Bearer ${secret.trim()}` : `Basic ${window.btoa(pair)}`,
      );
      document.getElementById('login-secret').value = '';
      form.hidden = true;
      waitingForCredentials = false;
      void start();
    };
  }

  // ---- rows -------------------------------------------------------------------------------

  function element(tag, className, parent) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (parent) parent.appendChild(node);
    return node;
  }

  function rowFor(topic) {
    let row = rows.get(topic);
    if (row !== undefined) return row;
    const node = element('div', 'row point');
    node.setAttribute('role', 'row');
    node.dataset.topic = topic;
    const topicCell = element('span', 'topic', node);
    const slash = topic.indexOf('/');
    element('span', 'agent', topicCell).textContent = topic.slice(0, slash + 1);
    element('span', 'name', topicCell).textContent = topic.slice(slash + 1);
    const value = element('span', 'value', node);
    const valueText = element('span', 'figure', value);
    const unit = element('span', 'unit', value);
    const quality = element('span', 'quality', node);
    const badge = element('span', 'badge', quality);
    const reason = element('span', 'reason', quality);
    const time = element('span', 'time', node);
    const timeText = element('span', 'clock', time);
    const gaps = element('span', 'gaps', time);
    const trend = element('div', 'trend', node);
    for (const cell of node.children) cell.setAttribute('role', 'cell');
    row = {
      node,
      valueText,
      unit,
      badge,
      reason,
      timeText,
      gaps,
      trend,
      times: [],
      values: [],
      decimals: 0,
      plot: null,
      drawnAt: 0,
    };
    rows.set(topic, row);
    // Topic order, always: a new topic takes its place, and no row ever moves after that.
    const after = [...rows.keys()].sort().indexOf(topic) + 1;
    const next = [...rows.keys()].sort()[after];
    list.insertBefore(node, next === undefined ? null : rows.get(next).node);
    document.getElementById('empty').hidden = true;
    document.getElementById('count-topics').textContent = String(rows.size);
    return row;
  }

  function formatValue(row, value) {
    if (typeof value === 'number') {
      // As many decimals as the point has shown (up to 3), kept: a figure never changes width.
      const text = String(value);
      const decimals = text.includes('.') ? Math.min(3, text.length - text.indexOf('.') - 1) : 0;
      row.decimals = Math.max(row.decimals, decimals);
      return value.toFixed(row.decimals);
    }
    if (typeof value === 'boolean') return value ? 'ON' : 'OFF';
    if (Array.isArray(value)) return `[${value.length}]`;
    return String(value);
  }

  function clock(iso) {
    const date = new Date(iso);
    const pad = (number, size = 2) => String(number).padStart(size, '0');
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }

  function showPoint(point) {
    const row = rowFor(point.topic);
    row.valueText.textContent = formatValue(row, point.value);
    if (point.unit !== undefined) row.unit.textContent = point.unit;
    row.node.dataset.quality = point.quality;
    row.badge.dataset.quality = point.quality;
    row.badge.textContent = point.quality.toUpperCase();
    row.reason.textContent = point.reason || '';
    row.reason.title = point.reason || '';
    row.timeText.textContent = clock(point.sourceTime);
    if (typeof point.gaps === 'number') showGaps(row, point.gaps);
    if (point.writable !== undefined) row.writable = point.writable;
    if (mayWrite && row.writable !== undefined && row.control === undefined)
      addWriteControl(row, point.topic, row.writable);
    if (typeof point.value === 'number') addToTrend(row, point);
  }

  /** A setpoint field and a button; the OT agent's answer (done, or refused and why) shows beside it. */
  function addWriteControl(row, topic, type) {
    const form = element('form', 'control', row.node.querySelector('.topic'));
    const input = element('input', '', form);
    input.name = 'value';
    input.setAttribute('aria-label', `new value for ${topic}`);
    if (type === 'boolean') {
      input.type = 'checkbox';
    } else {
      input.type = type === 'number' ? 'number' : 'text';
      input.step = 'any';
      input.required = true;
    }
    const button = element('button', '', form);
    button.type = 'submit';
    button.textContent = 'Write';
    const outcome = element('span', 'outcome', form);
    outcome.setAttribute('role', 'status');
    form.onsubmit = async (event) => {
      event.preventDefault();
      const value =
        type === 'boolean' ? input.checked : type === 'number' ? Number(input.value) : input.value;
      button.disabled = true;
      outcome.dataset.status = 'pending';
      outcome.textContent = 'writing…';
      try {
        const response = await fetch('/api/v1/writes', {
          method: 'POST',
          headers: { ...headers(), 'content-type': 'application/json' },
          body: JSON.stringify({ topic, value }),
        });
        const body = await response.json();
        outcome.dataset.status = body.status || 'refused';
        outcome.textContent =
          body.status === 'done'
            ? `DONE: ${body.message}`
            : `${(body.status || 'refused').toUpperCase()}: ${body.message} (${body.code})`;
      } catch (error) {
        outcome.dataset.status = 'failed';
        outcome.textContent = `FAILED: ${error.message}`;
      } finally {
        button.disabled = false;
      }
    };
    row.control = form;
  }

  function showGaps(row, gaps) {
    row.gapCount = gaps;
    row.gaps.textContent = gaps > 0 ? `${gaps} gap${gaps === 1 ? '' : 's'}` : '';
    let total = 0;
    for (const each of rows.values()) total += each.gapCount || 0;
    const counter = document.getElementById('count-gaps');
    counter.textContent = String(total);
    counter.classList.toggle('alert', total > 0);
  }

  function addToTrend(row, point) {
    row.times.push(Date.parse(point.sourceTime) / 1000);
    row.values.push(point.value);
    if (row.times.length > TREND_POINTS) {
      row.times.splice(0, row.times.length - TREND_POINTS);
      row.values.splice(0, row.values.length - TREND_POINTS);
    }
    scheduleTrend(row);
  }

  function scheduleTrend(row) {
    if (row.pending) return;
    row.pending = true;
    const wait = Math.max(0, TREND_REDRAW_MS - (Date.now() - row.drawnAt));
    setTimeout(() => requestAnimationFrame(() => drawTrend(row)), wait);
  }

  function drawTrend(row) {
    row.pending = false;
    row.drawnAt = Date.now();
    if (typeof uPlot === 'undefined' || row.times.length < 2) return;
    const width = Math.max(60, Math.floor(row.trend.clientWidth));
    const data = [row.times.slice(), row.values.slice()];
    if (row.plot === null || row.plotWidth !== width) {
      if (row.plot !== null) row.plot.destroy();
      row.plotWidth = width;
      row.plot = new uPlot(
        {
          width,
          height: 44,
          cursor: { show: false },
          legend: { show: false },
          select: { show: false },
          axes: [{ show: false }, { show: false }],
          scales: { x: { time: true } },
          series: [{}, { stroke: '#58a6ff', width: 2, points: { show: false } }],
        },
        data,
        row.trend,
      );
    } else {
      row.plot.setData(data);
    }
  }

  window.addEventListener('resize', () => {
    for (const row of rows.values()) scheduleTrend(row);
  });

  // ---- state ------------------------------------------------------------------------------

  function setState(node, state, text) {
    node.dataset.state = state;
    node.querySelector('.value').textContent = text;
  }

  const CONSUMER_STATES = { live: 'good', replaying: 'uncertain', opening: 'uncertain', offline: 'bad' };
  /** From best to worst: an OT agent shows the worst of its consumers' states. */
  const PEER_ORDER = ['live', 'replaying', 'opening', 'offline'];

  async function pollStatus() {
    try {
      const status = await api('/api/v1/status');
      agentConnected = true;
      const { agent } = status;
      showCaller(status.caller);
      document.getElementById('agent-name').textContent = agent.name;
      document.title = `${agent.name} · dmz-agent dashboard`;
      const relay = agent.relay;
      setState(
        document.getElementById('relay-state'),
        relay.connected ? 'good' : 'bad',
        relay.connected ? 'CONNECTED' : 'DISCONNECTED',
      );
      const peers = document.getElementById('peer-states');
      let dropped = 0;
      // One pill per OT agent: the worst state of the consumers that read from it.
      const byPeer = new Map();
      for (const consumer of (agent.it && agent.it.consumers) || []) {
        dropped += consumer.droppedNotices;
        const state = relay.connected ? consumer.state : 'offline';
        const known = byPeer.get(consumer.from);
        if (known === undefined || PEER_ORDER.indexOf(state) > PEER_ORDER.indexOf(known.state)) {
          byPeer.set(consumer.from, { state, lastError: consumer.lastError });
        }
      }
      for (const [peer, { state, lastError }] of byPeer) {
        let pill = peers.querySelector(`[data-peer="${CSS.escape(peer)}"]`);
        if (pill === null) {
          pill = element('div', 'state', peers);
          pill.dataset.peer = peer;
          element('span', 'label', pill).textContent = peer;
          element('span', 'value', pill);
        }
        setState(pill, CONSUMER_STATES[state] || 'bad', state.toUpperCase());
        pill.title = lastError || '';
      }
      const droppedNode = document.getElementById('count-dropped');
      droppedNode.textContent = String(dropped);
      droppedNode.classList.toggle('alert', dropped > 0);
      document.getElementById('updated-at').textContent = clock(agent.updatedAt);
      banner(
        relay.connected
          ? ''
          : `Relay disconnected since ${clock(relay.since)}: values shown are the last received`,
      );
    } catch (error) {
      agentConnected = false;
      setState(document.getElementById('relay-state'), 'bad', 'UNKNOWN');
      banner(
        waitingForCredentials
          ? 'Sign in to see live values (any shown here are the last received)'
          : `The agent does not answer (${error.message}): values shown are the last received`,
      );
    }
  }

  /** Who is signed in; write controls come and go with the role (a reload may change it). */
  function showCaller(caller) {
    const next = caller.role === 'write';
    if (next !== mayWrite) {
      mayWrite = next;
      for (const [topic, row] of rows) {
        if (!mayWrite && row.control !== undefined) {
          row.control.remove();
          row.control = undefined;
        } else if (mayWrite && row.writable !== undefined && row.control === undefined)
          addWriteControl(row, topic, row.writable);
      }
    }
    const who = document.getElementById('caller');
    who.hidden = caller.user === null;
    document.getElementById('sign-out').hidden = caller.user === null;
    who.textContent = caller.user === null ? '' : `${caller.user} · ${caller.role.toUpperCase()}`;
  }

  function banner(text) {
    const node = document.getElementById('banner');
    node.hidden = text === '';
    node.textContent = text;
    document.body.classList.toggle('stale', text !== '');
  }

  // ---- data -------------------------------------------------------------------------------

  async function loadValues() {
    const current = await api('/api/v1/points');
    for (const point of current.points) showPoint({ ...point });
    // Trends from the history held, without counting into the figures shown.
    let since = '';
    for (let page = 0; page < HISTORY_PAGES; page++) {
      const history = await api(`/api/v1/history?limit=10000${since === '' ? '' : `&since=${since}`}`);
      for (const entry of history.entries) {
        if (entry.kind !== 'point' || typeof entry.value !== 'number') continue;
        const row = rows.get(entry.topic);
        if (row === undefined) continue;
        if (Date.parse(entry.sourceTime) / 1000 >= (row.times.at(-1) ?? 0)) addToTrend(row, entry);
      }
      if (!history.more || history.cursor === null) break;
      since = history.cursor;
    }
    cursor = current.cursor;
  }

  function handleEvent(type, id, data) {
    if (id !== '') cursor = id;
    if (type === 'point') showPoint(JSON.parse(data));
    else if (type === 'gap') {
      const gap = JSON.parse(data);
      const row = rows.get(gap.topic);
      if (row !== undefined) showGaps(row, (row.gapCount || 0) + 1);
    }
  }

  async function follow() {
    for (;;) {
      try {
        const url = `/api/v1/stream${cursor === null ? '' : `?since=${cursor}`}`;
        const response = await fetch(url, { headers: headers(), cache: 'no-store' });
        if (response.status === 410) {
          // The store restarted after a crash: its cursors are new. Start again from its values.
          cursor = null;
          await loadValues();
          continue;
        }
        if (!response.ok || response.body === null) throw new Error(`stream answered ${response.status}`);
        await readEvents(response.body.getReader());
      } catch {
        // The agent restarts or the network blinks: the status poll says so; resume shortly.
      }
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  /** text/event-stream (WHATWG HTML 9.2.6): fields until a blank line make one event. */
  async function readEvents(reader) {
    const decoder = new TextDecoder();
    let buffer = '';
    let type = 'message';
    let id = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length > 0) handleEvent(type, id, data.join('\n'));
          type = 'message';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
  }

  // Sign out: the credentials leave the tab, and the page starts again from nothing (no values,
  // no stream, the form), so whoever sits down at a shared screen next must sign in as themselves.
  document.getElementById('sign-out').onclick = () => {
    sessionStorage.removeItem(CREDENTIALS_KEY);
    window.location.reload();
  };

  let started = false;
  async function start() {
    await pollStatus();
    if (started || !agentConnected) {
      if (!started && !waitingForCredentials) setTimeout(start, RECONNECT_MS);
      return;
    }
    started = true;
    setInterval(pollStatus, STATUS_INTERVAL_MS);
    try {
      await loadValues();
    } catch {
      cursor = null;
    }
    void follow();
  }

  void start();
})();
