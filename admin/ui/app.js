// app.js: the wsproxy admin page. Polls /api/websocket/metrics and
// /api/websocket/stats every refresh (default 1 s, ?refresh=MS), keeps the
// last five minutes of points in memory and draws them with chart.js; pages
// through /api/websocket/connections with a kick button; Flush and Drain
// ask for the admin token. The token lives in this script's memory only
// (never in storage or cookies) and is sent as "Authorization: Bearer" on
// every admin call.
'use strict';
(() => {
  const params = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(200, Number(params.get('refresh')) || 1000);
  const SPAN_MS = 5 * 60 * 1000;
  const LEVELS = { normal: 0, elevated: 1, critical: 2 };
  const $ = id => document.getElementById(id);

  let token = '';
  const points = [];
  let prevShed = null, prevDropped = null, prevT = 0;
  let offset = 0, lastTotal = 0;
  const state = { refreshes: 0, lastRefreshAt: 0, metrics: null, stats: null, connections: null, points: 0 };
  window.wsproxyAdmin = state; // for tooling and tests; the token is not in it

  const charts = {};
  const mk = (id, names, opts) => { charts[id] = { chart: new LineChart($(id).querySelector('canvas'), Object.assign({ spanMs: SPAN_MS }, opts)), names }; };
  mk('chart-connections', () => ['connections']);
  mk('chart-messages', () => ['msgs/s']);
  mk('chart-bytes', () => ['bytes/s'], { unit: 'B' });
  mk('chart-latency', () => ['p50', 'p99'], { legend: true });
  mk('chart-shed', () => shedReasons(), { legend: true });
  mk('chart-heap', () => ['heap MB']);
  mk('chart-memlevel', () => ['level'], { step: true, max: 2 });
  mk('chart-dispatch', () => ['queued', 'dropped/s'], { legend: true });
  mk('chart-sources', () => sourceNames(), { step: true, max: 1, legend: true });

  let reasons = [], sources = [];
  function shedReasons() { return reasons; }
  function sourceNames() { return sources; }

  // call makes one admin request, with the held token if any.
  async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { status: 0, ok: false, data: { error: 'request failed: ' + e.message } };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    return { status: r.status, ok: r.ok, data };
  }

  // failure explains a refused or failed call; 401 and 403 say what to do.
  function failure(what, res) {
    const detail = res.data && res.data.error ? res.data.error : 'HTTP ' + res.status;
    if (res.status === 401) return `${what}: 401 Unauthorized — ${detail}. Enter the admin token (admin.token) and retry.`;
    if (res.status === 403) return `${what}: 403 Forbidden — ${detail}. Set admin.token on the server and enter it here.`;
    if (res.status === 0) return `${what}: ${detail}`;
    return `${what}: HTTP ${res.status} — ${detail}`;
  }

  function notice(text, status, ok) {
    const n = $('notice');
    n.hidden = false;
    n.textContent = text;
    n.className = ok ? 'ok' : 'error';
    n.dataset.status = String(status);
  }

  const fmt = (v, digits) => {
    if (typeof v !== 'number') return String(v);
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + 'M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 2 : digits);
  };
  function show(metric, value, text) {
    for (const el of document.querySelectorAll(`[data-metric="${metric}"]`)) {
      el.dataset.value = String(value);
      el.textContent = text === undefined ? fmt(value) : text;
    }
  }

  function record(m, s, t) {
    const shed = m.shed || {};
    const dropped = s.dataflow.dropped || 0;
    const v = {
      connections: m.connections,
      'msgs/s': m.throughput.messagesPerSecond,
      'bytes/s': m.throughput.bytesPerSecond,
      p50: m.latency.p50,
      p99: m.latency.p99,
      'heap MB': m.memory.heapMB,
      level: LEVELS[m.memory.level] ?? NaN,
      queued: s.dataflow.queued,
    };
    const dt = (t - prevT) / 1000;
    for (const r of Object.keys(shed)) if (!reasons.includes(r)) reasons.push(r);
    reasons.sort();
    if (prevShed && dt > 0) {
      for (const r of reasons) v[r] = Math.max(0, ((shed[r] || 0) - (prevShed[r] || 0)) / dt);
      v['dropped/s'] = Math.max(0, (dropped - prevDropped) / dt);
    }
    for (const src of s.dataflow.sources || []) {
      if (!sources.includes(src.name)) sources.push(src.name);
      v[src.name] = src.connected ? 1 : 0;
    }
    prevShed = shed; prevDropped = dropped; prevT = t;
    points.push({ t, v });
    while (points.length && points[0].t < t - SPAN_MS) points.shift();
    state.points = points.length;

    show('connections', m.connections);
    show('messagesPerSecond', m.throughput.messagesPerSecond);
    show('bytesPerSecond', m.throughput.bytesPerSecond);
    show('latencyP50', m.latency.p50, fmt(m.latency.p50, 3));
    show('latencyP99', m.latency.p99, fmt(m.latency.p99, 3));
    show('shedTotal', Object.values(shed).reduce((a, b) => a + b, 0));
    show('heapMB', m.memory.heapMB);
    show('memoryLevel', m.memory.level);
    show('dispatchQueue', s.dataflow.queued);
    show('dispatchDropped', dropped);
    const up = (s.dataflow.sources || []).filter(x => x.connected).length;
    show('sourcesUp', up, `${up}/${(s.dataflow.sources || []).length}`);
    for (const id in charts) charts[id].chart.draw(points, charts[id].names());
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  const since = ms => ms ? new Date(ms).toLocaleTimeString() : '–';

  function renderSources(list) {
    const body = $('sources').tBodies[0];
    body.replaceChildren();
    for (const s of list || []) {
      const tr = document.createElement('tr');
      tr.dataset.source = s.name;
      cell(tr, s.name); cell(tr, s.type);
      cell(tr, s.connected ? 'up' : 'down', s.connected ? 'up' : 'down');
      cell(tr, since(s.since)); cell(tr, fmt(s.received)); cell(tr, fmt(s.rejected)); cell(tr, fmt(s.dropped));
      cell(tr, s.lastError || '');
      body.appendChild(tr);
    }
  }

  async function loadConnections() {
    const size = Number($('page-size').value);
    const res = await call('GET', `/api/websocket/connections?offset=${offset}&limit=${size}`);
    const err = $('conn-error'), body = $('connections').tBodies[0];
    if (!res.ok) {
      err.hidden = false;
      err.textContent = failure('Connection list', res);
      err.dataset.status = String(res.status);
      body.replaceChildren();
      $('page-info').textContent = '–';
      return;
    }
    err.hidden = true;
    const page = res.data;
    state.connections = page;
    lastTotal = page.total;
    if (offset > 0 && offset >= page.total) { offset = Math.max(0, page.total - size); return loadConnections(); }
    body.replaceChildren();
    for (const c of page.connections) {
      const tr = document.createElement('tr');
      tr.dataset.id = c.id;
      cell(tr, c.id); cell(tr, c.remoteAddr); cell(tr, since(c.connectedAt)); cell(tr, c.state);
      cell(tr, fmt(c.messagesSent)); cell(tr, fmt(c.bytesSent)); cell(tr, String(c.queueDepth)); cell(tr, fmt(c.dropped));
      cell(tr, c.receivesAll ? 'all' : String((c.filters || []).length));
      const b = document.createElement('button');
      b.type = 'button'; b.textContent = 'Kick'; b.className = 'danger'; b.dataset.kick = c.id;
      cell(tr, '').appendChild(b);
      body.appendChild(tr);
    }
    const first = page.total === 0 ? 0 : offset + 1;
    $('page-info').textContent = `${first}–${offset + page.connections.length} of ${page.total}`;
    $('prev').disabled = offset === 0;
    $('next').disabled = offset + size >= page.total;
  }

  async function refresh() {
    const t = Date.now();
    const [m, s] = await Promise.all([call('GET', '/api/websocket/metrics'), call('GET', '/api/websocket/stats')]);
    if (m.ok && s.ok) {
      state.metrics = m.data; state.stats = s.data;
      record(m.data, s.data, t);
      renderSources(s.data.dataflow.sources);
      const h = $('health');
      h.dataset.state = s.data.health.status;
      h.textContent = 'health: ' + s.data.health.status + (s.data.health.reasons ? ' (' + s.data.health.reasons.join('; ') + ')' : '');
      $('refresh').textContent = 'updated ' + new Date(t).toLocaleTimeString();
    } else {
      const bad = m.ok ? s : m;
      $('health').dataset.state = 'unreachable';
      $('health').textContent = failure('Refresh', bad);
    }
    await loadConnections();
    state.refreshes++;
    state.lastRefreshAt = t;
  }

  async function loop() {
    try { await refresh(); } catch (e) { $('refresh').textContent = 'refresh failed: ' + e.message; }
    setTimeout(loop, REFRESH_MS);
  }

  // ask opens the confirmation dialog with the token field (pre-filled
  // with the held token); resolves to the values entered, or null.
  function ask(title, text, withWindow) {
    const d = $('ask');
    $('ask-title').textContent = title;
    $('ask-text').textContent = text;
    $('ask-token').value = token;
    $('ask-window').value = '';
    $('ask-window-row').hidden = !withWindow;
    d.returnValue = '';
    return new Promise(resolve => {
      d.addEventListener('close', () => {
        if (d.returnValue !== 'ok') return resolve(null);
        resolve({ token: $('ask-token').value.trim(), window: $('ask-window').value.trim() });
      }, { once: true });
      d.showModal();
      $('ask-token').focus();
    });
  }

  function hold(t) {
    token = t;
    $('token').value = t;
  }

  async function lever(title, text, withWindow, method, path, bodyFn, okText) {
    const a = await ask(title, text, withWindow);
    if (!a) return;
    hold(a.token);
    const res = await call(method, path, bodyFn ? bodyFn(a) : undefined);
    if (res.status === 401) hold(''); // a wrong token is not kept
    if (!res.ok) { notice(failure(title, res), res.status, false); return; }
    notice(okText(res.data), res.status, true);
    refresh();
  }

  $('flush').addEventListener('click', () => lever('Flush', 'Write every pending batch now?', false, 'POST', '/api/websocket/flush', null,
    d => `Flushed ${d.flushedConnections} connections, ${d.flushedMessages} frames.`));
  $('drain').addEventListener('click', () => lever('Drain', 'Stop accepting connections and close every client (1001) over the window? A drain is not undone: the node must be restarted.',
    true, 'POST', '/api/websocket/drain', a => (a.window ? { window: a.window } : {}),
    d => `Draining ${d.connections} connections over ${d.windowMs} ms.`));
  $('connections').addEventListener('click', e => {
    const id = e.target.dataset && e.target.dataset.kick;
    if (!id) return;
    lever('Kick', `Close connection ${id} with 1000 "Closed by administrator"?`, false, 'DELETE',
      '/api/websocket/connections/' + encodeURIComponent(id), null, d => `Closed ${d.id} with ${d.code}.`);
  });
  $('token').addEventListener('input', e => { token = e.target.value.trim(); });
  $('forget').addEventListener('click', () => { hold(''); notice('Token forgotten.', 0, true); });
  $('prev').addEventListener('click', () => { offset = Math.max(0, offset - Number($('page-size').value)); loadConnections(); });
  $('next').addEventListener('click', () => { if (offset + Number($('page-size').value) < lastTotal) offset += Number($('page-size').value); loadConnections(); });
  $('page-size').addEventListener('change', () => { offset = 0; loadConnections(); });

  loop();
})();
