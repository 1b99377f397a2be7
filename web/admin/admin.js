// onecard hub operator page. Reads the hub's read-only JSON API
// (/admin/api/overview, /admin/api/hourly) and renders it; the hourly
// chart is an inline SVG drawn here. Every value goes into the page as
// text (textContent), never as markup.
(function () {
  'use strict';

  var SVG = 'http://www.w3.org/2000/svg';
  var API = 'api/';
  var TOKEN_KEY = 'onecard.admin.token';
  var state = { loaded: false, error: '', day: '', terminals: 0, discrepancies: 0, bars: 0, total: 0 };

  // The operator token arrives once in the fragment (#token=...), is kept
  // in this tab's sessionStorage and removed from the address bar.
  function token() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); } catch (e) { /* storage off */ }
      history.replaceState(null, '', location.pathname + location.search);
    }
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function getJSON(path) {
    var headers = { 'Accept': 'application/json' };
    var t = token();
    if (t) headers['Authorization'] = 'Bearer ' + t;
    return fetch(API + path, { headers: headers, credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status));
        return body;
      });
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function fen(v) {
    var neg = v < 0; if (neg) v = -v;
    var s = Math.floor(v / 100) + '.' + ('0' + (v % 100)).slice(-2);
    return (neg ? '-' : '') + s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function ago(sec) {
    if (sec < 0) sec = 0;
    if (sec < 90) return sec + ' s';
    if (sec < 5400) return Math.round(sec / 60) + ' min';
    if (sec < 172800) return Math.round(sec / 3600) + ' h';
    return Math.round(sec / 86400) + ' d';
  }

  function fill(tableId, rows, cols, emptyText) {
    var tb = document.querySelector('#' + tableId + ' tbody');
    tb.textContent = '';
    if (!rows.length) {
      var tr = el('tr', null, 'empty');
      var td = el('td', emptyText);
      td.colSpan = document.querySelectorAll('#' + tableId + ' thead th').length;
      tr.appendChild(td); tb.appendChild(tr);
      return;
    }
    rows.forEach(function (row) {
      var tr = el('tr', null, row._cls || '');
      cols.forEach(function (c) {
        var v = c(row);
        var td = el('td', v.text, v.cls);
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
  }

  function T(text, cls) { return { text: text, cls: cls || '' }; }
  function N(text) { return { text: text, cls: 'num' }; }

  function renderHub(o) {
    var box = document.getElementById('hub');
    box.textContent = '';
    var pays = 0, payAmt = 0;
    o.merchants.forEach(function (m) { pays += m.Count; payAmt += m.Amount; });
    var loads = 0, loadAmt = 0;
    o.programmes.forEach(function (p) { loads += p.Loads; loadAmt += p.Loaded; });
    var online = o.terminals.filter(function (t) { return t.connected; }).length;
    var items = [
      ['Terminals connected', online + ' / ' + o.terminals.length],
      ['Payments', pays + ' · ¥' + fen(payAmt)],
      ['Loads', loads + ' · ¥' + fen(loadAmt)],
      ['Discrepancies', o.discrepancies.length]
    ];
    if (o.hub) items.push(['Posted since start', o.hub.accepted + ' (' + o.hub.rejected + ' rejected)']);
    items.forEach(function (it) {
      var c = el('div', null, 'card');
      c.appendChild(el('div', it[1], 'v'));
      c.appendChild(el('div', it[0], 'k'));
      box.appendChild(c);
    });
  }

  function renderOverview(o) {
    renderHub(o);
    fill('terminals', o.terminals, [
      function (t) { return T(t.no); },
      function (t) { return T(t.name); },
      function (t) { return T(t.state, 'state-' + t.state); },
      function (t) { return t.connected ? T('online', 'online') : T('offline', 'offline'); },
      function (t) { return N(t.acked_seq); },
      function (t) { return T(new Date(t.last_ack).toLocaleString()); },
      function (t) { return t.connected ? T('connected') : T(ago(t.since_seconds)); },
      function (t) { return T(t.key); }
    ], 'no terminals registered');

    var merchants = o.merchants.slice();
    if (merchants.length) {
      var n = 0, s = 0;
      merchants.forEach(function (m) { n += m.Count; s += m.Amount; });
      merchants.push({ Merchant: 'total', Fund: '', Count: n, Amount: s, _cls: 'total' });
    }
    fill('merchants', merchants, [
      function (m) { return T(m.Merchant); }, function (m) { return T(m.Fund); },
      function (m) { return N(m.Count); }, function (m) { return N(fen(m.Amount)); }
    ], 'no payments on this day');
    fill('programmes', o.programmes, [
      function (p) { return T(p.Programme); }, function (p) { return T(p.Fund); },
      function (p) { return N(fen(p.Funded)); }, function (p) { return N(fen(p.Granted)); },
      function (p) { return N(fen(p.Loaded)); }, function (p) { return N(p.Loads); }
    ], 'no programme activity on this day');
    fill('reconciliation', o.reconciliation, [
      function (t) { return T(t.TerminalNo); },
      function (t) { return N(t.Posted.PayCount); }, function (t) { return N(fen(t.Posted.PayAmount)); },
      function (t) { return N(t.Posted.LoadCount); }, function (t) { return N(fen(t.Posted.LoadAmount)); },
      function (t) { return N(t.Posted.CertifyCount); },
      function (t) { return !t.Submitted ? T('none', 'muted') : (t.Match ? T('match', 'online') : T('MISMATCH', 'mismatch')); }
    ], 'nothing posted on this day');
    fill('discrepancies', o.discrepancies, [
      function (d) { return T(d.kind, 'bad'); }, function (d) { return T(d.terminal); },
      function (d) { return T(d.card); }, function (d) { return T(d.detail, 'detail'); },
      function (d) { return T((d.records || []).join(' '), 'detail'); }
    ], 'none');
    var badge = document.getElementById('disc-count');
    badge.textContent = String(o.discrepancies.length);
    badge.className = 'badge' + (o.discrepancies.length ? ' bad' : '');
    state.terminals = o.terminals.length;
    state.discrepancies = o.discrepancies.length;
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // renderChart draws 24 stacked bars (pay, load, certify) per card-time hour.
  function renderChart(h) {
    var W = 960, H = 220, L = 40, R = 10, Tp = 10, B = 24;
    var box = document.getElementById('chart');
    box.textContent = '';
    var max = 0;
    h.hours.forEach(function (x) { max = Math.max(max, x.pay + x.load + x.certify); });
    var top = max <= 4 ? 4 : Math.ceil(max / 4) * 4;
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'transactions per hour', preserveAspectRatio: 'none' });
    var plotH = H - Tp - B, plotW = W - L - R, slot = plotW / 24, bw = slot * 0.7;
    for (var g = 0; g <= 4; g++) {
      var y = Tp + plotH - plotH * g / 4;
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: y, y2: y, 'class': g ? 'grid' : 'axis' }));
      root.appendChild(svg('text', { x: L - 4, y: y + 3, 'text-anchor': 'end' }, top * g / 4));
    }
    var bars = 0;
    h.hours.forEach(function (x, i) {
      var base = Tp + plotH, cx = L + slot * i + (slot - bw) / 2;
      [['pay', x.pay], ['load', x.load], ['certify', x.certify]].forEach(function (part) {
        if (!part[1]) return;
        var bh = plotH * part[1] / top;
        base -= bh;
        var r = svg('rect', { x: cx.toFixed(1), y: base.toFixed(1), width: bw.toFixed(1), height: bh.toFixed(1), 'class': 'bar ' + part[0], 'data-hour': i, 'data-count': part[1] });
        r.appendChild(svg('title', {}, ('0' + i).slice(-2) + ':00 ' + part[0] + ' ' + part[1]));
        root.appendChild(r);
        bars++;
      });
      if (i % 2 === 0) root.appendChild(svg('text', { x: (L + slot * i + slot / 2).toFixed(1), y: H - 8, 'text-anchor': 'middle' }, ('0' + i).slice(-2)));
    });
    box.appendChild(root);
    state.bars = bars;
    state.total = h.total;
  }

  function today() {
    var d = new Date(Date.now() + 8 * 3600 * 1000); // China Standard Time
    return d.toISOString().slice(0, 10).replace(/-/g, '');
  }

  function load(day) {
    state.loaded = false;
    state.day = day;
    var err = document.getElementById('error');
    return Promise.all([getJSON('overview?day=' + day), getJSON('hourly?day=' + day)]).then(function (res) {
      renderOverview(res[0]);
      renderChart(res[1]);
      err.hidden = true;
      state.error = '';
      document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    }).catch(function (e) {
      state.error = e.message;
      err.textContent = 'Cannot load: ' + e.message;
      err.hidden = false;
    }).then(function () { state.loaded = true; });
  }

  function start() {
    token();
    var q = new URLSearchParams(location.search);
    var day = q.get('day');
    if (!/^\d{8}$/.test(day || '')) day = today();
    var input = document.getElementById('day');
    input.value = day;
    document.getElementById('dayform').addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!/^\d{8}$/.test(input.value)) return;
      history.replaceState(null, '', location.pathname + '?day=' + input.value);
      load(input.value);
    });
    load(day);
    setInterval(function () { if (state.loaded) load(input.value); }, 15000);
  }

  window.onecardAdmin = { state: function () { return JSON.parse(JSON.stringify(state)); }, reload: function () { return load(state.day); } };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
