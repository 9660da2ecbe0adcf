// dormant's dashboard: draws GET /api/events (Server-Sent Events, read with
// fetch so that an API key can go in a header), falling back to polling
// /health while the stream is unavailable.  No dependencies.  Everything the
// server or a model sends is shown with textContent, never parsed as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const NS = 'http://www.w3.org/2000/svg';
  const MAX_REQS = 50;
  const st = {
    key: null,            // the API key: this tab's memory only
    offset: 0,            // server clock - local clock, seconds
    maxRam: 0,
    winS: 15 * 60,
    samples: [],          // {t, rss, anon, file, cache}
    marks: [],            // lifecycle events {t, model, from, to, seconds, evict, error}
    models: new Map(),    // name -> status (models event or /health)
    history: new Map(),   // name -> [states seen, in order]
    reqs: [],
    live: false,
    pollTimer: 0,
    redraw: 0,
  };

  const now = () => Date.now() / 1000 + st.offset;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const sv = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  };
  const mib = (b) => b >= 1 << 30 ? (b / (1 << 30)).toFixed(2) + ' GiB' : (b / 1048576).toFixed(1) + ' MiB';
  const secs = (s) => s >= 10 ? s.toFixed(1) + ' s' : s >= 1 ? s.toFixed(2) + ' s' : (s * 1000).toFixed(0) + ' ms';
  const dur = (ms) => {
    if (ms < 0) return 'forever';
    const s = Math.round(ms / 1000);
    return s >= 3600 ? Math.floor(s / 3600) + 'h' + Math.floor(s % 3600 / 60) + 'm'
      : s >= 60 ? Math.floor(s / 60) + 'm' + (s % 60 ? (s % 60) + 's' : '') : s + 's';
  };
  const say = (text) => { $('msg').textContent = text; };
  const headers = (json) => {
    const h = {};
    if (st.key) h.Authorization = 'Bearer ' + st.key;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  };
  const schedule = () => {
    if (!st.redraw) st.redraw = requestAnimationFrame(() => { st.redraw = 0; render(); });
  };

  // ---- state from events ----
  function noteState(name, state) {
    const h = st.history.get(name) || [];
    if (h[h.length - 1] !== state) h.push(state);
    if (h.length > 40) h.splice(0, h.length - 40);
    st.history.set(name, h);
  }

  function setModels(list, polled) {
    const t = now();
    for (const m of list) {
      const old = st.models.get(m.name) || {};
      m.expires_at = m.expires_in_ms >= 0 ? t + m.expires_in_ms / 1000 : -1;
      st.models.set(m.name, polled ? Object.assign(old, m) : m);
      if (!st.history.has(m.name) || polled) noteState(m.name, m.state);
    }
  }

  function trim() {
    const from = now() - 60 * 60 - 60;
    while (st.samples.length && st.samples[0].t < from) st.samples.shift();
    while (st.marks.length && st.marks[0].t < from) st.marks.shift();
  }

  const on = {
    hello(d) { st.offset = d.t - Date.now() / 1000; st.maxRam = d.max_ram || 0; },
    memory(d) { st.maxRam = d.max_ram || 0; st.samples.push(d); trim(); },
    models(d) { setModels(d.models || [], false); },
    lifecycle(d) {
      st.marks.push(d);
      if (d.rss) {
        // the transition's own measurement: a load and unload quicker
        // than the sampler still shows its rise and its return
        const last = st.samples[st.samples.length - 1];
        st.samples.push({ t: d.t, rss: d.rss, anon: d.anon, file: d.file, cache: last ? last.cache : 0 });
        st.samples.sort((a, b) => a.t - b.t);
      }
      const m = st.models.get(d.model) || { name: d.model };
      m.state = d.to;
      if (d.to === 'failed') m.last_error = d.error;
      st.models.set(d.model, m);
      noteState(d.model, d.to);
      trim();
    },
    request(d) { st.reqs.unshift(d); st.reqs.length = Math.min(st.reqs.length, MAX_REQS); },
    dropped() {},
  };

  function dispatch(block) {
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (!data.length || !on[type]) return;
    try { on[type](JSON.parse(data.join('\n'))); } catch (e) { return; }
    schedule();
  }

  // ---- the event stream, or polling ----
  function setConn(mode) {
    const c = $('conn');
    c.textContent = mode === 'live' ? 'live (events)' : mode === 'polling' ? 'polling /health' : mode;
    c.className = 'pill ' + mode;
    c.dataset.mode = mode;
  }

  async function poll() {
    try {
      const r = await fetch('/health', { cache: 'no-store' });
      const h = await r.json();
      st.samples.push({ t: now(), rss: h.rss_bytes, anon: 0, file: 0, cache: 0 });
      setModels(h.models || [], true);
      trim();
      schedule();
    } catch (e) { setConn('offline'); }
  }
  function startPoll() {
    if (!st.pollTimer) { poll(); st.pollTimer = setInterval(poll, 1000); }
  }
  function stopPoll() { clearInterval(st.pollTimer); st.pollTimer = 0; }

  async function connect() {
    let retry = 3000;
    try {
      const r = await fetch('/api/events', { headers: headers(), cache: 'no-store' });
      if (r.status === 401) { askKey(); retry = 0; throw new Error('key'); }
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      st.samples = []; st.marks = []; // the stream replays what the server kept
      st.live = true; setConn('live'); stopPoll();
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) { dispatch(buf.slice(0, i)); buf = buf.slice(i + 2); }
      }
    } catch (e) { /* fall through to polling */ }
    st.live = false;
    setConn('polling');
    startPoll();
    if (retry) setTimeout(connect, retry);
  }

  function askKey() {
    $('keybox').hidden = false;
    $('key').focus();
    say('This server needs its API key for events and actions; meanwhile the page polls /health.');
  }
  $('keybox').addEventListener('submit', (e) => {
    e.preventDefault();
    st.key = $('key').value;
    $('key').value = '';
    $('keybox').hidden = true;
    say('');
    connect();
  });

  // ---- actions ----
  async function post(path, body) {
    const r = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body) });
    if (r.status === 401) askKey();
    return r;
  }
  async function act(verb, name) {
    say(verb + 'ing ' + name + ' ...');
    try {
      const r = await post('/api/' + verb, verb === 'load' ? { model: name, stream: false } : { model: name });
      const b = await r.json().catch(() => ({}));
      say(r.ok ? name + ': ' + (b.status || 'done') : name + ': ' + (typeof b.error === 'string' ? b.error : 'HTTP ' + r.status));
    } catch (e) { say(verb + ' failed: ' + e.message); }
    if (!st.live) poll();
  }

  $('play').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('play-out');
    const model = $('play-model').value;
    out.textContent = '';
    const body = { model, prompt: $('play-prompt').value, stream: true, options: { num_predict: 48 } };
    const ka = $('play-ka').value.trim();
    if (ka !== '') body.keep_alive = /^-?\d+$/.test(ka) ? Number(ka) : ka;
    try {
      const r = await post('/api/generate', body);
      if (!r.ok || !r.body) { const b = await r.json().catch(() => ({})); out.textContent = 'error: ' + (b.error || r.status); return; }
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i); buf = buf.slice(i + 1);
          if (!line.trim()) continue;
          const o = JSON.parse(line);
          if (o.error) out.textContent += '\n[error: ' + o.error + ']';
          else out.textContent += o.response || '';
        }
      }
    } catch (err) { out.textContent += '\n[' + err.message + ']'; }
  });

  $('win').addEventListener('change', () => { st.winS = Number($('win').value) * 60; render(); });

  // ---- drawing ----
  function renderChart() {
    const svg = $('chart');
    const W = Math.max(svg.clientWidth, 300), H = Math.max(svg.clientHeight, 200);
    const L = 64, R = 12, T = 48, B = 22;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.replaceChildren();
    const t1 = now(), t0 = t1 - st.winS;
    const pts = st.samples.filter((s) => s.t >= t0 - 5);
    let top = 0;
    for (const s of pts) top = Math.max(top, s.rss, s.cache || 0);
    const budgetShown = st.maxRam > 0 && st.maxRam < top * 4;
    if (budgetShown) top = Math.max(top, st.maxRam);
    top = Math.max(top * 1.15, 4 * 1048576);
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = (b) => H - B - (H - T - B) * b / top;
    // grid: 4 rows, time ticks per window
    for (let i = 0; i <= 4; i++) {
      const b = top * i / 4;
      svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: y(b), y2: y(b) }));
      svg.append(sv('text', { x: L - 6, y: y(b) + 4, 'text-anchor': 'end' }, mib(b)));
    }
    const step = st.winS <= 60 ? 15 : st.winS <= 300 ? 60 : st.winS <= 900 ? 180 : 600;
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const d = new Date((t - st.offset) * 1000);
      svg.append(sv('text', { x: x(t), y: H - 6, 'text-anchor': 'middle' },
        d.toTimeString().slice(0, step < 60 ? 8 : 5)));
    }
    if (pts.length) {
      // stacked: anonymous at the bottom, file-backed on it (sum: RSS);
      // a sample without the split (from /health) counts as anonymous
      const anon = (s) => s.anon || s.file ? s.anon : s.rss;
      const area = (lo, hi) => {
        let d = '';
        pts.forEach((s, i) => { d += (i ? 'L' : 'M') + x(s.t).toFixed(1) + ',' + y(hi(s)).toFixed(1); });
        for (let i = pts.length - 1; i >= 0; i--) d += 'L' + x(pts[i].t).toFixed(1) + ',' + y(lo(pts[i])).toFixed(1);
        return d + 'Z';
      };
      // the last sample holds until now
      const last = pts[pts.length - 1];
      if (last.t < t1) pts.push(Object.assign({}, last, { t: t1 }));
      svg.append(sv('path', { class: 'anon', d: area(() => 0, anon) }));
      svg.append(sv('path', { class: 'file', d: area(anon, (s) => anon(s) + (s.file || 0)) }));
      let c = '';
      pts.forEach((s, i) => { c += (i ? 'L' : 'M') + x(s.t).toFixed(1) + ',' + y(s.cache || 0).toFixed(1); });
      svg.append(sv('path', { class: 'cache', d: c }));
      $('now').textContent = 'RSS ' + mib(last.rss) + (last.cache ? ', page cache ' + mib(last.cache) : '');
    }
    if (budgetShown) {
      svg.append(sv('line', { class: 'budget', x1: L, x2: W - R, y1: y(st.maxRam), y2: y(st.maxRam) }));
      svg.append(sv('text', { x: W - R, y: y(st.maxRam) - 4, 'text-anchor': 'end' }, 'max_ram ' + mib(st.maxRam)));
    } else if (st.maxRam > 0) {
      svg.append(sv('text', { x: W - R, y: 12, 'text-anchor': 'end' }, 'max_ram ' + mib(st.maxRam) + ' (above the chart)'));
    }
    // lifecycle markers: a line at each load end, unload end, failure; a
    // label where one of three rows has room, else only a tooltip
    const rows = [-1e9, -1e9, -1e9];
    for (const m of st.marks) {
      if (m.t < t0) continue;
      let kind, label;
      if (m.to === 'ready') { kind = 'load'; label = m.model + ' loaded ' + secs(m.seconds); }
      else if (m.to === 'dormant' && m.from === 'unloading') { kind = 'unload'; label = m.model + (m.evict ? ' evicted ' : ' unloaded ') + secs(m.seconds); }
      else if (m.to === 'failed') { kind = 'fail'; label = m.model + ' failed'; }
      else continue;
      const mx = x(m.t), w = label.length * 6.2;
      const g = sv('g', { class: 'marker', 'data-kind': kind, 'data-model': m.model });
      g.append(sv('title', {}, label));
      g.append(sv('line', { class: 'mark ' + kind, x1: mx, x2: mx, y1: T - 6, y2: H - B }));
      const right = mx + 3 + w > W - R;
      const x0 = right ? mx - 3 - w : mx + 3;
      const r = rows.findIndex((end) => x0 > end + 6);
      if (r >= 0) {
        rows[r] = x0 + w;
        g.append(sv('text', { class: 'mlabel', x: right ? mx - 3 : mx + 3, y: T - 34 + 12 * r, 'text-anchor': right ? 'end' : 'start' }, label));
      }
      svg.append(g);
    }
  }

  function row(dl, k, v) { dl.append(el('dt', '', k), el('dd', '', v)); }

  function renderCards() {
    const box = $('cards');
    const t = now();
    box.replaceChildren();
    const sel = $('play-model');
    const chosen = sel.value;
    sel.replaceChildren();
    for (const [name, m] of st.models) {
      sel.append(el('option', '', name));
      const c = el('div', 'card');
      c.dataset.model = name;
      c.dataset.state = m.state || '';
      c.dataset.history = (st.history.get(name) || []).join(' ');
      const top = el('div', 'top');
      top.append(el('h3', '', name), el('span', 'state ' + (m.state || ''), m.state || '?'));
      c.append(top);
      if (m.state === 'loading') {
        const bar = el('div', 'bar'), fill = el('div');
        const total = m.progress_total || (m.progress && m.progress.total) || 0;
        const done = m.progress_done || (m.progress && m.progress.done) || 0;
        fill.style.width = (total ? Math.min(100, 100 * done / total) : 5) + '%';
        bar.append(fill);
        c.append(bar);
      }
      const dl = el('dl');
      row(dl, 'policy', (m.policy || '?') + (m.mode ? ', ' + m.mode : '') + (m.role && m.role !== 'generate' ? ', ' + m.role : ''));
      row(dl, 'keep-alive', m.keep_alive_ms === undefined ? '?' : m.keep_alive_ms === 0 ? 'unload after each request' : dur(m.keep_alive_ms));
      if (m.state === 'ready' && m.expires_at > 0) row(dl, 'unloads in', dur(Math.max(0, (m.expires_at - t) * 1000)));
      row(dl, 'memory', (m.bytes ? mib(m.bytes) + ' measured' : '-') + ' / ' + (m.est_bytes ? mib(m.est_bytes) + ' estimated' : '?'));
      row(dl, 'loads', (m.load_count || 0) + (m.last_load_s ? ', last ' + secs(m.last_load_s) : '') + (m.evict_count ? ', ' + m.evict_count + ' evicted' : ''));
      row(dl, 'TTFT', m.n_cold || m.n_warm ? 'cold ' + (m.n_cold ? secs(m.ttft_cold_s) : '-') + ', warm ' + (m.n_warm ? secs(m.ttft_warm_s) : '-') : '-');
      row(dl, 'queue', (m.in_use ? 'busy, ' : 'idle, ') + (m.queued || 0) + ' waiting');
      c.append(dl);
      if (m.last_error) c.append(el('div', 'err', m.last_error));
      const load = el('button', 'load', 'Load'), unload = el('button', 'unload', 'Unload');
      load.type = unload.type = 'button';
      load.addEventListener('click', () => act('load', name));
      unload.addEventListener('click', () => act('unload', name));
      const btns = el('div', 'top');
      btns.append(load, unload);
      c.append(btns);
      box.append(c);
    }
    if (chosen && st.models.has(chosen)) sel.value = chosen;
  }

  function renderReqs() {
    const tb = $('reqs').tBodies[0];
    tb.replaceChildren();
    for (const q of st.reqs) {
      const tr = el('tr');
      tr.append(el('td', '', new Date((q.t - st.offset) * 1000).toTimeString().slice(0, 8)),
        el('td', '', q.endpoint), el('td', '', q.model), el('td', q.status >= 400 ? 'bad' : '', q.status),
        el('td', '', q.prompt_tokens), el('td', '', q.gen_tokens),
        el('td', '', q.ttft_s ? secs(q.ttft_s) : '-'), el('td', '', q.tok_s ? q.tok_s.toFixed(1) : '-'));
      if (q.error) tr.title = q.error;
      tb.append(tr);
    }
  }

  function render() { renderChart(); renderCards(); renderReqs(); }

  // for tests and other tools: copies of what the page holds
  window.dormantDash = {
    samples: () => st.samples.map((s) => Object.assign({}, s)),
    marks: () => st.marks.map((m) => Object.assign({}, m)),
    history: (name) => (st.history.get(name) || []).slice(),
  };

  const w = new URLSearchParams(location.search).get('window');
  if (w && Number(w) > 0) { st.winS = Number(w) * 60; $('win').value = w; }
  setInterval(render, 1000);
  render();
  connect();
})();
