/*
 * onecard-client.js — the browser client of the onecard kiosk API
 * (docs/kiosk-api.md). No framework, no build step; served by the agent at
 * http://127.0.0.1:17300/onecard-client.js and usable as a plain <script>
 * (window.OneCard) or a CommonJS module.
 *
 *   const oc = new OneCard();                       // ws://127.0.0.1:17300/v1/ws
 *   oc.on('cardInserted', ev => ...);
 *   const hello = await oc.connect();               // auth with a stored token
 *   if (!hello.authorised) await oc.pair(prompt('Pairing code'));
 *   const id = await oc.readIdentity({}, st => show(st.stage));
 *   const receipt = await oc.pay({amount: 1234, merchant: 'H001', pin});
 *
 * Every call returns a Promise; failures reject with a OneCardError
 * carrying the agent's classification: code, retriable, triesLeft,
 * cardRemoved, national (the national interface's return code).
 * The page's token (from pair) is kept in localStorage under
 * "onecard.token" (per origin, as the agent binds it to the origin).
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.OneCard = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var DEFAULT_URL = 'ws://127.0.0.1:17300/v1/ws';
  var TOKEN_KEY = 'onecard.token';

  /** OneCardError is a failed call. */
  function OneCardError(e) {
    var err = new Error(e.message || e.code);
    err.name = 'OneCardError';
    err.code = e.code;
    err.retriable = !!e.retriable;
    err.triesLeft = typeof e.triesLeft === 'number' ? e.triesLeft : null;
    err.cardRemoved = !!e.cardRemoved;
    err.national = e.national || 0;
    err.nationalMessage = e.nationalMessage || '';
    return err;
  }

  function storage() {
    try {
      return typeof localStorage !== 'undefined' ? localStorage : null;
    } catch (e) {
      return null; // storage disabled
    }
  }

  /**
   * new OneCard({url, WebSocket, tokenStore, timeout})
   *   url        agent endpoint (default ws://127.0.0.1:17300/v1/ws)
   *   timeout    ms before a call without answer fails (default 120000)
   *   tokenStore {get(), set(token)} (default localStorage)
   */
  function OneCard(opts) {
    opts = opts || {};
    this.url = opts.url || DEFAULT_URL;
    this.timeout = opts.timeout || 120000;
    this._WS = opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    var ls = storage();
    this.tokenStore = opts.tokenStore || {
      get: function () { return ls ? ls.getItem(TOKEN_KEY) : null; },
      set: function (t) { if (ls) { if (t) ls.setItem(TOKEN_KEY, t); else ls.removeItem(TOKEN_KEY); } }
    };
    this._ws = null;
    this._next = 1;
    this._pending = {};
    this._handlers = {};
    this.hello = null;
  }

  /** on(event, fn): readerAdded, readerRemoved, cardInserted, cardRemoved,
   *  readerError, close. Returns a function that removes the handler. */
  OneCard.prototype.on = function (event, fn) {
    var list = this._handlers[event] || (this._handlers[event] = []);
    list.push(fn);
    return function () {
      var i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  };

  OneCard.prototype._emit = function (event, data) {
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](data); } catch (e) { setTimeout(function () { throw e; }); }
    }
  };

  /**
   * connect() opens the connection, says hello and, when the page is not
   * on the agent's allowlist, presents the stored token. Resolves with
   * hello's result (authorised tells whether pair is still needed).
   * Rejects with code "agent_unavailable" when nothing answers: the agent
   * is not running, or the browser blocks loopback access (Chrome's Local
   * Network Access prompt or policy).
   */
  OneCard.prototype.connect = function () {
    var self = this;
    if (!self._WS) return Promise.reject(OneCardError({ code: 'unsupported', message: 'no WebSocket in this browser' }));
    if (self._ws && self._ws.readyState === 1) return Promise.resolve(self.hello);
    return new Promise(function (resolve, reject) {
      var ws;
      try {
        ws = new self._WS(self.url);
      } catch (e) {
        reject(OneCardError({ code: 'agent_unavailable', message: String(e), retriable: true }));
        return;
      }
      var opened = false;
      ws.onopen = function () {
        opened = true;
        self._ws = ws;
        self.call('hello').then(function (h) {
          var tok = self.tokenStore.get();
          if (h.authorised || !tok) return h;
          return self.call('auth', { token: tok }).then(function () {
            return self.call('hello');
          }, function (e) {
            if (e.code === 'unauthorised') { self.tokenStore.set(null); return h; }
            throw e;
          });
        }).then(function (h) { self.hello = h; resolve(h); }, reject);
      };
      ws.onmessage = function (m) { self._onMessage(m.data); };
      ws.onclose = function (ev) {
        self._ws = null;
        var err = OneCardError({ code: 'disconnected', message: 'connection to the agent closed (' + ev.code + ')', retriable: true });
        for (var id in self._pending) {
          if (Object.prototype.hasOwnProperty.call(self._pending, id)) {
            clearTimeout(self._pending[id].timer);
            self._pending[id].reject(err);
          }
        }
        self._pending = {};
        if (!opened) {
          reject(OneCardError({
            code: 'agent_unavailable', retriable: true,
            message: 'the onecard agent does not answer at ' + self.url +
              ': is it running (onecard agent), and does the browser allow this page to reach 127.0.0.1?'
          }));
        }
        self._emit('close', { code: ev.code, reason: ev.reason });
      };
      ws.onerror = function () { /* onclose follows */ };
    });
  };

  OneCard.prototype._onMessage = function (text) {
    var m;
    try { m = JSON.parse(text); } catch (e) { return; }
    if (m.event) {
      if (m.event === 'progress' && m.id != null && this._pending[m.id]) {
        var p = this._pending[m.id];
        if (p.onProgress) p.onProgress(m.data || {});
        return;
      }
      this._emit(m.event, m.data || {});
      return;
    }
    var pend = this._pending[m.id];
    if (!pend) return;
    delete this._pending[m.id];
    clearTimeout(pend.timer);
    if (m.error) pend.reject(OneCardError(m.error));
    else pend.resolve(m.result);
  };

  /** close() ends the connection. */
  OneCard.prototype.close = function () {
    if (this._ws) this._ws.close(1000);
  };

  /**
   * call(method, params, onProgress) sends a request. onProgress receives
   * {stage, reader} for stages reading, enter_pin, writing, syncing.
   */
  OneCard.prototype.call = function (method, params, onProgress) {
    var self = this;
    if (!self._ws || self._ws.readyState !== 1) {
      return Promise.reject(OneCardError({ code: 'disconnected', message: 'not connected: call connect() first', retriable: true }));
    }
    var id = self._next++;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        delete self._pending[id];
        reject(OneCardError({ code: 'timeout', message: method + ': no answer from the agent', retriable: true }));
      }, self.timeout);
      self._pending[id] = { resolve: resolve, reject: reject, onProgress: onProgress, timer: timer };
      var msg = { id: id, method: method };
      if (params) msg.params = params;
      self._ws.send(JSON.stringify(msg));
    });
  };

  /** pair(code) pairs this page with the code the operator got from the
   *  agent ('onecard agent pair') and keeps the token. */
  OneCard.prototype.pair = function (code) {
    var self = this;
    return self.call('pair', { code: String(code) }).then(function (r) {
      self.tokenStore.set(r.token);
      return self.call('hello');
    }).then(function (h) { self.hello = h; return h; });
  };

  // Convenience wrappers (see docs/kiosk-api.md for the parameters).
  var methods = ['status', 'readers', 'readIdentity', 'verifyPIN', 'changePIN', 'pay', 'load', 'certify', 'journalStatus', 'iReadCardBas'];
  methods.forEach(function (name) {
    OneCard.prototype[name] = function (params, onProgress) {
      return this.call(name, params || {}, onProgress);
    };
  });

  /** yuan(fen) formats an amount in fen as yuan, e.g. 1234 → "12.34". */
  OneCard.yuan = function (fen) {
    return (fen / 100).toFixed(2);
  };

  /** fen(yuan) parses "12.34" into 1234; NaN for anything else. */
  OneCard.fen = function (yuan) {
    var m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(yuan).trim());
    if (!m) return NaN;
    return parseInt(m[1], 10) * 100 + parseInt(((m[2] || '') + '00').slice(0, 2), 10);
  };

  OneCard.OneCardError = OneCardError;
  OneCard.DEFAULT_URL = DEFAULT_URL;
  return OneCard;
});
