// Chorus dashboard: polls this member's API every second and draws the topology, lag charts,
// alerts and events. Plain browser JavaScript, no framework, no build step, nothing loaded from
// anywhere but the member (its Content-Security-Policy forbids it).
'use strict';

(() => {
  const POLL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 2500;
  /** Lag history kept in the page: the last five minutes. */
  const WINDOW_MS = 5 * 60 * 1000;
  const SAMPLES_MAX = 600;
  const EVENTS_SHOWN_MAX = 200;
  const SERIES_CLASSES = 8;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    view: null,
    alerts: [],
    rules: null,
    /** member id -> [{t, entries, bytes, seconds}] */
    lag: new Map(),
    /** member id -> series class index, stable while the page lives. */
    colors: new Map(),
    events: [],
    eventsMember: null,
    lastSeq: 0,
    firstPoll: true,
    /** The leader whose lag history was last merged in. */
    historyFrom: undefined,
  };

  // ------------------------------------------------------------------ helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'class') node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      node.setAttribute(k, String(v));
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function formatBytes(n) {
    if (n < 1024) return `${Math.round(n)} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
    return `${(n / (1024 * 1024 * 1024)).toFixed(1)} GiB`;
  }

  function formatNumber(n, unit) {
    if (unit === 'bytes') return formatBytes(n);
    if (unit === 'seconds') return n >= 10 ? `${Math.round(n)} s` : `${n.toFixed(n >= 1 ? 1 : 2)} s`;
    return n >= 10000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n));
  }

  function clockTime(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
  }

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }

  function colorOf(id) {
    if (!state.colors.has(id)) state.colors.set(id, state.colors.size % SERIES_CLASSES);
    return `s${state.colors.get(id)}`;
  }

  async function getJson(path) {
    const res = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // ------------------------------------------------------------------ model

  function healthOf(member, view) {
    if (!member.reachable) return 'down';
    if (view.membersSource !== 'leader' || member.lagSeconds === null) return member.id === view.self.id ? 'ok' : 'unknown';
    if (member.progressing === false) return 'stalled';
    // Shown before the alert: a second behind is already worth a look.
    const threshold = Math.min(1, state.rules ? state.rules.lagSecondsMax : 1);
    if (member.lagSeconds > threshold) return 'lagging';
    if (state.alerts.some((a) => a.labels && a.labels.follower === member.id)) return 'lagging';
    return 'ok';
  }

  function recordLag(view) {
    if (view.membersSource !== 'leader') return;
    const now = Date.now();
    for (const m of view.members) {
      if (m.id === view.leaderId || m.lagEntries === null) continue;
      let series = state.lag.get(m.id);
      if (!series) {
        series = [];
        state.lag.set(m.id, series);
      }
      series.push({ t: now, entries: m.lagEntries, bytes: m.lagBytes || 0, seconds: m.lagSeconds || 0 });
      while (series.length > SAMPLES_MAX || (series.length > 0 && series[0].t < now - WINDOW_MS)) series.shift();
    }
    // Members no longer in the cluster fall out with their history.
    const ids = new Set(view.members.map((m) => m.id));
    for (const id of [...state.lag.keys()]) if (!ids.has(id)) state.lag.delete(id);
  }

  /** Merges the leader's recent samples (GET /v1/lag-history) before what the page measured. */
  function seedLag(history) {
    const cutoff = Date.now() - WINDOW_MS;
    for (const [id, points] of Object.entries(history.samples || {})) {
      const mine = state.lag.get(id) || [];
      const firstMine = mine.length > 0 ? mine[0].t : Number.POSITIVE_INFINITY;
      const older = points
        .filter((p) => p[0] < firstMine && p[0] >= cutoff)
        .map((p) => ({ t: p[0], entries: p[1], bytes: p[2], seconds: p[3] }));
      state.lag.set(id, [...older, ...mine].slice(-SAMPLES_MAX));
    }
  }

  function takeEvents(answer) {
    if (answer.member !== state.eventsMember || answer.lastSeq < state.lastSeq) {
      // Another member answers, or it restarted: its sequence numbers are its own.
      state.events = [];
      state.eventsMember = answer.member;
      state.lastSeq = 0;
    }
    const fresh = answer.events.filter((e) => e.seq > state.lastSeq);
    if (fresh.length === 0) return [];
    state.lastSeq = Math.max(state.lastSeq, ...fresh.map((e) => e.seq));
    state.events = [...fresh.reverse(), ...state.events].slice(0, EVENTS_SHOWN_MAX);
    return fresh;
  }

  // ------------------------------------------------------------------ rendering

  function renderSummary(view) {
    $('cluster-id').textContent = view.clusterId;
    const leader = $('leader-id');
    leader.textContent = view.leaderId === null ? 'none' : view.leaderId;
    leader.setAttribute('data-leader', view.leaderId === null ? '' : view.leaderId);
    $('term').textContent = String(view.term);
    $('commit-index').textContent = String(view.self.commitIndex);
    $('self-id').textContent = `${view.self.id} (${view.self.role})`;
    const note = $('view-note');
    if (view.membersSource === 'leader') {
      note.hidden = true;
    } else {
      note.hidden = false;
      note.textContent = view.leaderId === null
        ? 'No leader is known: members as this member sees them, without lag.'
        : `The leader ${view.leaderId} could not be asked: members as this member sees them, without lag.`;
    }
    const r = view.replication;
    if (r) {
      const set = r.synchronous_standby_names === '' ? 'no synchronous standby set' : `synchronous standby set "${r.synchronous_standby_names}" (now: ${r.standbys.join(', ') || 'none'}${r.satisfiable === false ? ', NOT satisfiable' : ''})`;
      $('replication-note').textContent = `synchronous_commit=${r.synchronous_commit}; ${set}.`;
    }
  }

  function memberCard(m, view, standbys) {
    const health = healthOf(m, view);
    const isLeader = m.id === view.leaderId;
    const lag = m.lagEntries === null
      ? 'lag unknown'
      : `lag ${m.lagEntries} entries · ${formatBytes(m.lagBytes || 0)} · ${(m.lagSeconds || 0).toFixed(2)} s`;
    return el('div', {
      class: 'member',
      'data-member': m.id,
      'data-role': m.role,
      'data-health': health,
      'data-voter': m.voter ? 'true' : 'false',
      'data-standby': standbys.has(m.id) ? 'true' : 'false',
    },
    el('div', { class: 'head' },
      el('span', { class: 'id', text: m.id }),
      el('span', {},
        el('span', { class: isLeader ? 'badge leader' : 'badge', text: m.role }),
        standbys.has(m.id) ? el('span', { class: 'badge standby', text: 'sync' }) : null)),
    el('div', { class: 'line' }, el('span', { class: `badge health-${health}`, text: health }), ` ${m.voter ? 'voter' : 'learner (no vote)'}`),
    el('div', { class: 'line', text: isLeader ? `last index ${view.self.role === 'leader' ? view.self.lastIndex : (m.matchIndex === null ? '?' : m.matchIndex)}` : lag }),
    el('div', { class: 'line', text: `client ${m.clientAddress || '?'} · peer ${m.peerAddress || '?'}` }));
  }

  function renderMembers(view) {
    const standbys = new Set((view.replication && view.replication.standbys) || []);
    const box = $('members');
    box.replaceChildren(...view.members.map((m) => memberCard(m, view, standbys)));
    renderTopology(view, standbys);
  }

  function renderTopology(view, standbys) {
    const root = $('topology');
    const width = 640;
    const height = 300;
    const members = view.members;
    const leader = members.find((m) => m.id === view.leaderId);
    const others = members.filter((m) => m !== leader);
    const pos = new Map();
    if (leader) {
      // The leader on the left, the others on an arc to the right.
      pos.set(leader.id, { x: 130, y: height / 2 });
      others.forEach((m, i) => {
        const angle = others.length === 1 ? 0 : -Math.PI / 3 + (i * (2 * Math.PI / 3)) / (others.length - 1);
        pos.set(m.id, { x: 130 + 360 * Math.cos(angle), y: height / 2 + 115 * Math.sin(angle) * (others.length === 1 ? 0 : 1) });
      });
    } else {
      members.forEach((m, i) => {
        const angle = (2 * Math.PI * i) / Math.max(1, members.length) - Math.PI / 2;
        pos.set(m.id, { x: width / 2 + 200 * Math.cos(angle), y: height / 2 + 105 * Math.sin(angle) });
      });
    }
    const nodes = [];
    if (leader) {
      const from = pos.get(leader.id);
      for (const m of others) {
        const to = pos.get(m.id);
        const health = healthOf(m, view);
        const cls = ['edge', m.voter ? '' : 'learner', health === 'down' ? 'down' : health === 'ok' || health === 'unknown' ? '' : 'lagging'].filter(Boolean).join(' ');
        nodes.push(svg('line', { class: cls, x1: from.x + 38, y1: from.y, x2: to.x - 38, y2: to.y, 'data-to': m.id }));
        const label = m.lagEntries === null ? '' : `${m.lagEntries} behind · ${(m.lagSeconds || 0).toFixed(1)} s`;
        if (label !== '') nodes.push(svg('text', { class: 'edge-label', x: (from.x + to.x) / 2, y: (from.y + to.y) / 2 - 6 }, label));
      }
    }
    for (const m of members) {
      const p = pos.get(m.id);
      const g = svg('g', {
        class: 'node',
        'data-member': m.id,
        'data-role': m.role,
        'data-health': healthOf(m, view),
        'data-standby': standbys.has(m.id) ? 'true' : 'false',
        transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
      });
      g.append(svg('circle', { r: 36 }));
      if (m.id === view.leaderId) g.append(svg('text', { class: 'crown', y: -44 }, 'LEADER'));
      g.append(svg('text', { class: 'name', y: -2 }, m.id));
      g.append(svg('text', { class: 'role', y: 15 }, m.voter ? m.role : `${m.role} · learner`));
      nodes.push(g);
    }
    root.replaceChildren(...nodes);
  }

  function renderChart(id, field, unit) {
    const root = $(id);
    const W = 360;
    const H = 170;
    const pad = { left: 46, right: 8, top: 10, bottom: 22 };
    const now = Date.now();
    const series = [...state.lag.entries()].filter(([, samples]) => samples.length > 0);
    let max = 0;
    for (const [, samples] of series) for (const s of samples) max = Math.max(max, s[field]);
    if (max <= 0) max = unit === 'seconds' ? 1 : unit === 'bytes' ? 1024 : 10;
    const x = (t) => pad.left + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - pad.left - pad.right);
    const y = (v) => H - pad.bottom - (v / max) * (H - pad.top - pad.bottom);
    const nodes = [];
    for (const f of [0, 0.5, 1]) {
      const yy = y(max * f);
      nodes.push(svg('line', { class: 'grid-line', x1: pad.left, x2: W - pad.right, y1: yy, y2: yy }));
      nodes.push(svg('text', { class: 'axis', x: pad.left - 4, y: yy + 3, 'text-anchor': 'end' }, formatNumber(max * f, unit)));
    }
    nodes.push(svg('text', { class: 'axis', x: pad.left, y: H - 6 }, '-5 min'));
    nodes.push(svg('text', { class: 'axis', x: W - pad.right, y: H - 6, 'text-anchor': 'end' }, 'now'));
    if (series.length === 0) {
      nodes.push(svg('text', { class: 'empty', x: (W + pad.left) / 2, y: H / 2 }, 'no lag samples yet (the leader\'s view)'));
    }
    for (const [member, samples] of series) {
      const points = samples.map((s) => `${x(s.t).toFixed(1)},${y(s[field]).toFixed(1)}`).join(' ');
      nodes.push(svg('polyline', { class: `series ${colorOf(member)}`, points, 'data-member': member }));
    }
    root.replaceChildren(...nodes);
  }

  function renderCharts() {
    renderChart('chart-entries', 'entries', 'entries');
    renderChart('chart-bytes', 'bytes', 'bytes');
    renderChart('chart-seconds', 'seconds', 'seconds');
    const legend = $('legend');
    legend.replaceChildren(...[...state.lag.keys()].map((id) => el('li', { 'data-member': id }, el('span', { class: `swatch ${colorOf(id)}` }), id)));
  }

  function renderAlerts() {
    const list = $('alerts');
    const count = $('alert-count');
    count.textContent = String(state.alerts.length);
    count.setAttribute('data-firing', state.alerts.length > 0 ? 'true' : 'false');
    if (state.alerts.length === 0) {
      list.replaceChildren(el('li', { class: 'empty', text: 'No active alerts.' }));
      return;
    }
    list.replaceChildren(...state.alerts.map((a) => el('li', { class: 'alert', 'data-rule': a.rule, 'data-severity': a.severity, 'data-alert-id': a.id },
      el('div', { class: 'what', text: `${a.severity.toUpperCase()} · ${a.rule}` }),
      el('div', { text: a.message }),
      el('div', { class: 'meta', text: `raised by ${a.member} · since ${clockTime(a.since)} (${ago(a.since)})` }))));
  }

  function renderEvents(fresh) {
    const list = $('events');
    $('events-source').textContent = state.eventsMember ? `as ${state.eventsMember} saw them` : '';
    if (state.events.length === 0) {
      list.replaceChildren(el('li', { class: 'empty', text: 'No events yet.' }));
      return;
    }
    const freshSeqs = new Set(state.firstPoll ? [] : fresh.map((e) => e.seq));
    list.replaceChildren(...state.events.map((e) => el('li', { class: freshSeqs.has(e.seq) ? 'event fresh' : 'event', 'data-kind': e.kind, 'data-seq': e.seq },
      el('time', { datetime: e.time, text: clockTime(e.time) }),
      el('span', { class: 'kind', 'data-kind': e.kind, text: e.kind }),
      el('span', { class: 'message', text: e.message }))));
  }

  function setConnection(ok, text) {
    const c = $('connection');
    c.setAttribute('data-state', ok ? 'live' : 'error');
    c.textContent = text;
  }

  // ------------------------------------------------------------------ polling

  async function poll() {
    const [view, alerts, events] = await Promise.allSettled([
      getJson('/v1/cluster'),
      getJson('/v1/alerts?scope=cluster'),
      getJson(`/v1/events?since=${state.lastSeq}&limit=${EVENTS_SHOWN_MAX}`),
    ]);
    if (alerts.status === 'fulfilled') {
      state.alerts = alerts.value.alerts;
      state.rules = alerts.value.rules;
      renderAlerts();
    }
    if (view.status === 'fulfilled' && view.value.leaderId !== null && view.value.leaderId !== state.historyFrom) {
      // Opened, or a new leader: what it measured before this page asked.
      try {
        seedLag(await getJson('/v1/lag-history'));
        state.historyFrom = view.value.leaderId;
      } catch {
        // the next poll tries again
      }
    }
    if (view.status === 'fulfilled') {
      state.view = view.value;
      recordLag(view.value);
      renderSummary(view.value);
      renderMembers(view.value);
      renderCharts();
    }
    if (events.status === 'fulfilled') {
      const fresh = takeEvents(events.value);
      if (fresh.length > 0 || state.firstPoll) renderEvents(fresh);
    }
    const failed = [view, alerts, events].filter((r) => r.status === 'rejected');
    if (failed.length === 0) setConnection(true, `live · ${new Date().toLocaleTimeString([], { hour12: false })}`);
    else setConnection(false, `member not answering (${failed[0].reason && failed[0].reason.message ? failed[0].reason.message : 'error'})`);
    state.firstPoll = false;
  }

  async function loop() {
    const started = Date.now();
    try {
      await poll();
    } catch (error) {
      setConnection(false, `error: ${error && error.message ? error.message : String(error)}`);
    }
    setTimeout(loop, Math.max(100, POLL_MS - (Date.now() - started)));
  }

  document.addEventListener('DOMContentLoaded', () => void loop());
})();
