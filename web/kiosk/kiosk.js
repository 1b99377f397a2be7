/*
 * kiosk.js — the onecard self-service kiosk page (package web/kiosk).
 *
 * Flow: connect to the agent (pairing screen when this origin is not
 * allowed) → insert card → masked identity → choose a service (pay a bill,
 * load a benefit, certify eligibility) → amount → PIN (on-screen keypad,
 * or the reader's PIN pad when the agent has one) → receipt. Progress
 * stages come from the agent's progress events; every error code of the
 * kiosk API (docs/kiosk-api.md) has a Chinese and an English text.
 *
 * No framework and no build step. Personal data arrives masked from the
 * agent and is only ever put into the page with textContent. The PIN is
 * kept in an array of digits, shown as dots, sent once in the request and
 * dropped at once.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- texts

  var MESSAGES = {
    zh: {
      title: '社会保障卡自助服务',
      connConnecting: '正在连接', connOk: '读卡服务已连接', connDown: '读卡服务未连接', connPair: '等待配对',
      connectingTitle: '正在连接读卡服务…',
      unavailableTitle: '读卡服务未运行',
      unavailableText: '本机的读卡服务（onecard agent）没有响应。请联系工作人员。',
      unavailableRetry: '正在自动重试…',
      badAgent: '页面参数 agent 必须是本机地址（127.0.0.1:端口）。',
      retry: '重试', readAgain: '重新读卡', back: '返回', next: '下一步', confirm: '确认', done: '完成', print: '打印凭条',
      finish: '结束并退卡',
      pairTitle: '此页面尚未获准使用读卡器',
      pairText: '请工作人员在本机运行 “onecard agent pair”，然后输入显示的 6 位配对码。',
      pairDisabled: '本机读卡服务不接受配对。请工作人员把此页面的地址加入 kiosk.origins。',
      pairOrigin: '页面地址：{origin}',
      pairButton: '配对', pairCodeLabel: '配对码',
      insertTitle: '请插入社会保障卡', insertText: '芯片朝上，插入读卡器',
      takeCard: '请取走您的卡片', takeCardText: '感谢使用',
      busyReading: '正在读卡，请勿拔卡', busyPay: '正在缴费，请勿拔卡', busyLoad: '正在圈存，请勿拔卡',
      busyCertify: '正在认证，请勿拔卡',
      stageReading: '读卡', stageEnterPin: '输入密码', stageWriting: '写卡', stageSyncing: '上传中心',
      pinPadEnter: '请在密码键盘上输入密码，按“确认”键结束',
      dontRemove: '处理过程中请不要拔卡',
      holder: '持卡人', personId: '社会保障号码', cardNumber: '卡号', cardKind: '卡片',
      genKind: '第{n}代 · {suite}', genuine: '✓ 已验证真卡', publicOnly: '仅公开信息', nameUnavailable: '（姓名未读取）',
      chooseService: '请选择服务',
      svcPay: '缴费', svcPayText: '药店、医院费用从卡内扣款',
      svcLoad: '领取补贴', svcLoadText: '把已发放的补贴圈存到卡内',
      svcCertify: '资格认证', svcCertifyText: '待遇领取资格认证',
      amountPayTitle: '请输入缴费金额', amountLoadTitle: '请输入领取金额',
      payParty: '收款方：{merchant}　资金：{fund}', loadParty: '补贴项目：{programme}',
      confirmLoad: '确认领取', amountZero: '请输入大于 0 的金额',
      pinTitle: '请输入卡片密码',
      pinSummaryPay: '向 {merchant} 支付 ¥{amount}', pinSummaryCertify: '认证项目：{programme}',
      pinPrivacy: '请遮挡键盘输入；密码只发送给卡片，不会被保存',
      pinLabel: '已输入 {n} 位密码',
      keyClear: '清除', keyDel: '退格',
      receiptPay: '缴费成功', receiptLoad: '领取成功', receiptCertify: '认证成功',
      kind: '业务', kind_pay: '缴费', kind_load: '补贴圈存', kind_certify: '资格认证',
      amount: '金额', balance: '卡内余额', merchant: '收款方', programme: '项目', fund: '资金',
      cardNo: '卡号', terminal: '终端号', seq: '交易流水号', time: '交易时间', tac: '交易认证码 (TAC)',
      cardSignature: '卡片签名', signed: '已签名 (SM2)', notSigned: '无（二代卡）', pinVerified: '密码已验证',
      stateCardDone: '交易已写入卡片并记入本机日志，正在上传中心。',
      stateOther: '交易状态：{state}',
      errorTitle: '操作未完成',
      errorCode: '错误代码：{code}', errorNational: '国家接口返回码：{national}',
      footPrivacy: '个人信息已脱敏显示', footTerminal: '终端 {id}',
      screenReader: '{title}',

      errt_card_removed: '卡片已拔出', errt_outcome_unknown: '卡片已拔出', errt_no_card: '未检测到卡片',
      errt_pin_wrong: '密码错误', errt_pin_blocked: '密码已锁定', errt_insufficient_balance: '余额不足',
      errt_lost_card: '此卡已挂失', errt_busy: '读卡器忙', errt_reader_busy: '读卡器忙',
      errt_not_genuine: '卡片验证失败', errt_agent_unavailable: '读卡服务未连接', errt_not_authorised: '未获授权',

      err_malformed: '页面发送了无效的请求。请联系工作人员。',
      err_unknown_method: '读卡服务不支持此功能。请联系工作人员。',
      err_bad_request: '请求参数有误。请联系工作人员。',
      err_unauthorised: '此页面尚未获准使用读卡器，请先配对。',
      err_pairing_failed: '配对码错误或已过期，请向工作人员索取新的配对码。',
      err_pairing_disabled: '本机读卡服务不接受配对。',
      err_rate_limited: '操作太频繁，请稍候再试。',
      err_too_many_requests: '操作太频繁，请稍候再试。',
      err_shutting_down: '读卡服务正在关闭，请稍候。',
      err_busy: '读卡器正在处理另一项业务，请稍候再试。',
      err_reader_busy: '读卡器被其他程序占用，请稍候再试。',
      err_no_card: '未检测到卡片，请插入社会保障卡。',
      err_card_removed: '卡片已拔出，本次操作未完成。请重新插卡。',
      err_card_mute: '无法读取卡片：请确认芯片朝上，重新插卡。',
      err_reader_gone: '读卡器未连接，请联系工作人员。',
      err_unknown_reader: '找不到指定的读卡器，请联系工作人员。',
      err_ambiguous_reader: '有多个读卡器，请联系工作人员。',
      err_service_down: '智能卡服务未运行，请联系工作人员。',
      err_timeout: '卡片或读卡器没有响应，请重试。',
      err_pin_required: '请输入密码。',
      err_pin_format: '密码应为 4 到 12 位数字。',
      err_pin_wrong: '密码错误，还可以再试 {n} 次。',
      err_pin_blocked: '密码已锁定，请到服务柜台办理解锁。',
      err_pin_cancelled: '已取消密码输入。',
      err_pin_timeout: '密码输入超时，请重试。',
      err_pin_mismatch: '两次输入的新密码不一致。',
      err_insufficient_balance: '卡内余额不足，本次没有扣款。',
      err_lost_card: '此卡已挂失，不能使用。请到服务柜台办理。',
      err_not_genuine: '卡片验证失败，请勿继续使用此卡，并联系工作人员。',
      err_wrong_card: '插入的不是刚才那张卡，请插入原卡。',
      err_outcome_unknown: '交易过程中卡片被拔出，结果待确认。请重新插入同一张卡，系统会自动核对。',
      err_unsettled: '此卡有一笔待确认的交易，请重新插卡或到服务柜台处理。',
      err_not_authorised: '中心未授权本次领取（没有可领取的补贴或额度不足）。',
      err_no_psam: '终端安全模块（PSAM）不可用，请联系工作人员。',
      err_no_keys: '终端没有所需的密钥，请联系工作人员。',
      err_key_service: '中心密钥服务暂时不可用，请稍后再试。',
      err_journal: '交易日志无法写入，请联系工作人员。',
      err_journal_full: '交易日志已满，请联系工作人员。',
      err_card_error: '卡片拒绝了本次操作。',
      err_unavailable: '本终端未开通此业务。',
      err_internal: '系统内部错误，请联系工作人员。',
      err_agent_unavailable: '无法连接本机读卡服务。',
      err_disconnected: '与读卡服务的连接已断开。',
      err_unsupported: '此浏览器不支持本页面。',
      err_unknown: '操作失败（{code}）。'
    },
    en: {
      title: 'Social Security Card Self-Service',
      connConnecting: 'Connecting', connOk: 'Card service connected', connDown: 'Card service offline', connPair: 'Waiting for pairing',
      connectingTitle: 'Connecting to the card service…',
      unavailableTitle: 'The card service is not running',
      unavailableText: 'The card service on this machine (onecard agent) does not answer. Please ask a member of staff.',
      unavailableRetry: 'Retrying automatically…',
      badAgent: 'The page parameter agent must be a loopback address (127.0.0.1:PORT).',
      retry: 'Try again', readAgain: 'Read the card', back: 'Back', next: 'Next', confirm: 'OK', done: 'Done', print: 'Print receipt',
      finish: 'Finish',
      pairTitle: 'This page may not use the card reader yet',
      pairText: 'Ask staff to run “onecard agent pair” on this machine, then enter the 6-digit pairing code it shows.',
      pairDisabled: 'The card service does not pair pages. Staff must add this page’s address to kiosk.origins.',
      pairOrigin: 'Page address: {origin}',
      pairButton: 'Pair', pairCodeLabel: 'Pairing code',
      insertTitle: 'Please insert your social security card', insertText: 'Chip facing up, into the reader',
      takeCard: 'Please take your card', takeCardText: 'Thank you',
      busyReading: 'Reading the card — do not remove it', busyPay: 'Paying — do not remove the card',
      busyLoad: 'Loading — do not remove the card', busyCertify: 'Certifying — do not remove the card',
      stageReading: 'Reading', stageEnterPin: 'Enter PIN', stageWriting: 'Writing', stageSyncing: 'Syncing',
      pinPadEnter: 'Enter your PIN on the PIN pad and press OK',
      dontRemove: 'Please do not remove the card while it is being processed',
      holder: 'Holder', personId: 'Social security no.', cardNumber: 'Card no.', cardKind: 'Card',
      genKind: 'Generation {n} · {suite}', genuine: '✓ Genuine card', publicOnly: 'Public data only', nameUnavailable: '(name not read)',
      chooseService: 'Choose a service',
      svcPay: 'Pay a bill', svcPayText: 'Pharmacy or hospital bills, paid from the card',
      svcLoad: 'Load a benefit', svcLoadText: 'Load a subsidy granted to you onto the card',
      svcCertify: 'Certify eligibility', svcCertifyText: 'Annual eligibility certification for benefits',
      amountPayTitle: 'Enter the amount to pay', amountLoadTitle: 'Enter the amount to load',
      payParty: 'Payee: {merchant}   Fund: {fund}', loadParty: 'Programme: {programme}',
      confirmLoad: 'Load now', amountZero: 'Enter an amount above 0',
      pinTitle: 'Enter your card PIN',
      pinSummaryPay: 'Pay ¥{amount} to {merchant}', pinSummaryCertify: 'Certification for {programme}',
      pinPrivacy: 'Shield the keypad. The PIN goes to the card only and is never stored.',
      pinLabel: '{n} digits entered',
      keyClear: 'Clear', keyDel: 'Delete',
      receiptPay: 'Payment complete', receiptLoad: 'Benefit loaded', receiptCertify: 'Eligibility certified',
      kind: 'Service', kind_pay: 'Payment', kind_load: 'Benefit load', kind_certify: 'Eligibility certification',
      amount: 'Amount', balance: 'Card balance', merchant: 'Payee', programme: 'Programme', fund: 'Fund',
      cardNo: 'Card no.', terminal: 'Terminal', seq: 'Transaction no.', time: 'Time', tac: 'Transaction code (TAC)',
      cardSignature: 'Card signature', signed: 'Signed (SM2)', notSigned: 'None (2nd-generation card)', pinVerified: 'PIN verified',
      stateCardDone: 'Written on the card and in this terminal’s journal; being sent to the hub.',
      stateOther: 'Transaction state: {state}',
      errorTitle: 'Not completed',
      errorCode: 'Error code: {code}', errorNational: 'National interface code: {national}',
      footPrivacy: 'Personal data is shown masked', footTerminal: 'Terminal {id}',
      screenReader: '{title}',

      errt_card_removed: 'Card removed', errt_outcome_unknown: 'Card removed', errt_no_card: 'No card',
      errt_pin_wrong: 'Wrong PIN', errt_pin_blocked: 'PIN blocked', errt_insufficient_balance: 'Insufficient balance',
      errt_lost_card: 'Card reported lost', errt_busy: 'Reader busy', errt_reader_busy: 'Reader busy',
      errt_not_genuine: 'Card check failed', errt_agent_unavailable: 'Card service offline', errt_not_authorised: 'Not authorised',

      err_malformed: 'The page sent an invalid request. Please ask a member of staff.',
      err_unknown_method: 'The card service does not offer this function. Please ask a member of staff.',
      err_bad_request: 'The request was not valid. Please ask a member of staff.',
      err_unauthorised: 'This page may not use the card reader yet: pair it first.',
      err_pairing_failed: 'Wrong or expired pairing code. Ask staff for a new one.',
      err_pairing_disabled: 'The card service does not pair pages.',
      err_rate_limited: 'Too many requests. Please wait a moment.',
      err_too_many_requests: 'Too many requests. Please wait a moment.',
      err_shutting_down: 'The card service is stopping. Please wait.',
      err_busy: 'The reader is busy with another request. Please try again shortly.',
      err_reader_busy: 'Another program is using the card reader. Please try again shortly.',
      err_no_card: 'No card found. Please insert your social security card.',
      err_card_removed: 'The card was removed; the operation did not complete. Please insert the card again.',
      err_card_mute: 'The card cannot be read: insert it again, chip facing up.',
      err_reader_gone: 'The card reader is not connected. Please ask a member of staff.',
      err_unknown_reader: 'The card reader was not found. Please ask a member of staff.',
      err_ambiguous_reader: 'There are several card readers. Please ask a member of staff.',
      err_service_down: 'The smart card service is not running. Please ask a member of staff.',
      err_timeout: 'The card or the reader did not answer. Please try again.',
      err_pin_required: 'Please enter your PIN.',
      err_pin_format: 'The PIN has 4 to 12 digits.',
      err_pin_wrong: 'Wrong PIN: {n} tries left.',
      err_pin_blocked: 'The PIN is blocked. Please go to the service counter to unblock it.',
      err_pin_cancelled: 'PIN entry cancelled.',
      err_pin_timeout: 'PIN entry timed out. Please try again.',
      err_pin_mismatch: 'The new PINs do not match.',
      err_insufficient_balance: 'Insufficient balance on the card; nothing was charged.',
      err_lost_card: 'This card has been reported lost and cannot be used. Please go to the service counter.',
      err_not_genuine: 'The card failed the authenticity check. Do not use it; please ask a member of staff.',
      err_wrong_card: 'This is not the same card. Please insert the original card.',
      err_outcome_unknown: 'The card was removed during the transaction. Insert the same card again to confirm the outcome.',
      err_unsettled: 'An earlier transaction of this card is still being confirmed. Insert it again or go to the counter.',
      err_not_authorised: 'The hub did not authorise this load (no benefit granted, or not enough left).',
      err_no_psam: 'The terminal’s security module (PSAM) is not available. Please ask a member of staff.',
      err_no_keys: 'The terminal lacks the keys for this. Please ask a member of staff.',
      err_key_service: 'The hub’s key service is unavailable. Please try again later.',
      err_journal: 'The transaction journal cannot be written. Please ask a member of staff.',
      err_journal_full: 'The transaction journal is full. Please ask a member of staff.',
      err_card_error: 'The card refused the operation.',
      err_unavailable: 'This terminal does not offer this service.',
      err_internal: 'Internal error. Please ask a member of staff.',
      err_agent_unavailable: 'Cannot reach the card service on this machine.',
      err_disconnected: 'The connection to the card service was lost.',
      err_unsupported: 'This browser cannot run this page.',
      err_unknown: 'The operation failed ({code}).'
    }
  };

  // Error codes after which the card has to come back before anything
  // else: the page reads it again when it is inserted.
  var CARD_GONE = { card_removed: 1, outcome_unknown: 1, no_card: 1, card_mute: 1, wrong_card: 1 };
  var STAGES = ['reading', 'enter_pin', 'writing', 'syncing'];
  var IDLE_MS = 60000;
  var PIN_MAX = 12;
  var AMOUNT_DIGITS = 8;

  // ---------------------------------------------------------------- config

  var query = new URLSearchParams(window.location.search);

  function param(name, def) {
    var v = query.get(name);
    return v && /^[\x21-\x7e]{1,32}$/.test(v) ? v : def;
  }

  var cfg = {
    merchant: param('merchant', 'pharmacy-01'),
    fund: param('fund', 'medical'),
    programme: param('programme', 'subsidy-2026'),
    programmeFund: param('programmeFund', 'subsidy'),
    certify: param('certify', 'pension-2026'),
    certifyFund: param('certifyFund', 'pension'),
    reader: param('reader', '')
  };

  function isLoopbackHost(h) {
    return /^(127(\.\d{1,3}){3}|localhost|\[::1\]):\d{1,5}$/i.test(h);
  }

  // agentHost is where the agent listens: the page's own host when the
  // agent serves it, the "agent" parameter (loopback only: the page loads
  // a script from there), or the default port.
  function agentHost() {
    var p = query.get('agent');
    if (p) return isLoopbackHost(p) ? p : null;
    if (window.location.pathname.indexOf('/kiosk/') === 0 && isLoopbackHost(window.location.host)) {
      return window.location.host;
    }
    return '127.0.0.1:17300';
  }

  // ---------------------------------------------------------------- state

  var S = {
    lang: 'zh',
    oc: null,
    hello: null,
    lanes: [],
    identity: null,
    service: null,
    amount: '',       // digits, in fen
    pin: [],          // digits
    pairCode: [],
    busy: false,
    screen: null,
    stage: null,
    retry: null,
    retryTimer: null,
    idleTimer: null,
    lastError: null
  };

  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------- i18n

  function t(key, args) {
    var m = MESSAGES[S.lang][key];
    if (m == null) m = MESSAGES.zh[key];
    if (m == null) return key;
    return m.replace(/\{(\w+)\}/g, function (_, k) {
      return args && args[k] != null ? String(args[k]) : '';
    });
  }

  // setText shows message key (with args) in el and remembers it, so a
  // language switch can re-render it.
  function setText(el, key, args) {
    el.setAttribute('data-i18n', key);
    if (args) el.setAttribute('data-i18n-args', JSON.stringify(args));
    else el.removeAttribute('data-i18n-args');
    el.textContent = t(key, args);
  }

  // setPlain shows text that is not translated (data from the card).
  function setPlain(el, text) {
    el.removeAttribute('data-i18n');
    el.removeAttribute('data-i18n-args');
    el.textContent = text;
  }

  function applyI18n(root) {
    var els = root.querySelectorAll('[data-i18n]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var args = null;
      var raw = el.getAttribute('data-i18n-args');
      if (raw) { try { args = JSON.parse(raw); } catch (e) { args = null; } }
      el.textContent = t(el.getAttribute('data-i18n'), args);
    }
  }

  function setLang(lang) {
    S.lang = lang === 'en' ? 'en' : 'zh';
    document.documentElement.lang = S.lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('title') + ' · onecard';
    var b = $('lang');
    b.textContent = S.lang === 'zh' ? 'English' : '中文';
    b.lang = S.lang === 'zh' ? 'en' : 'zh-CN';
    applyI18n(document);
    renderPinDots();
    renderPairCode();
    try { window.localStorage.setItem('onecard.kiosk.lang', S.lang); } catch (e) { /* storage off */ }
  }

  function announce(text) {
    var live = $('live');
    live.textContent = '';
    window.setTimeout(function () { live.textContent = text; }, 30);
  }

  // ---------------------------------------------------------------- screens

  function show(name) {
    var secs = document.querySelectorAll('.screen');
    for (var i = 0; i < secs.length; i++) {
      secs[i].hidden = secs[i].getAttribute('data-screen') !== name;
    }
    S.screen = name;
    document.body.setAttribute('data-screen', name);
    var h = document.querySelector('#screen-' + name + ' h1');
    if (h) {
      h.setAttribute('tabindex', '-1');
      h.focus({ preventScroll: true });
      announce(h.textContent);
    }
    armIdle();
  }

  function setConn(state) {
    var c = $('conn');
    c.setAttribute('data-state', state);
    var key = { ok: 'connOk', down: 'connDown', pair: 'connPair' }[state] || 'connConnecting';
    setText(c.querySelector('[data-i18n]') || c.lastChild, key);
  }

  // armIdle returns to the start after a minute without a touch on the
  // screens that show a person's data or take input.
  function armIdle() {
    window.clearTimeout(S.idleTimer);
    var idleScreens = { services: 1, amount: 1, pin: 1, receipt: 1, error: 1 };
    if (!idleScreens[S.screen] || S.busy) return;
    S.idleTimer = window.setTimeout(function () {
      if (S.busy) return;
      clearPin();
      S.amount = '';
      if (S.identity && cardPresent()) showServices();
      else { S.identity = null; showInsert(); }
    }, IDLE_MS);
  }

  // ---------------------------------------------------------------- keypads

  function buildKeypad(el, onKey) {
    var keys = ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'clear', '0', 'del'];
    keys.forEach(function (k) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'key' + (k.length > 1 ? ' fn' : '');
      b.setAttribute('data-key', k);
      if (k.length > 1) setText(b, k === 'clear' ? 'keyClear' : 'keyDel');
      else b.textContent = k;
      b.addEventListener('click', function () { onKey(k); });
      el.appendChild(b);
    });
  }

  function edit(list, k, max) {
    if (k === 'clear') list.length = 0;
    else if (k === 'del') list.pop();
    else if (list.length < max) list.push(k);
  }

  // PIN

  function clearPin() {
    for (var i = 0; i < S.pin.length; i++) S.pin[i] = '';
    S.pin.length = 0;
    renderPinDots();
  }

  function pinKey(k) {
    edit(S.pin, k, PIN_MAX);
    $('pin-error').hidden = true;
    renderPinDots();
  }

  function renderPinDots() {
    var box = $('pin-dots');
    box.textContent = '';
    var n = Math.max(6, S.pin.length);
    for (var i = 0; i < n; i++) {
      var s = document.createElement('span');
      if (i < S.pin.length) s.className = 'filled';
      box.appendChild(s);
    }
    box.setAttribute('aria-label', t('pinLabel', { n: S.pin.length }));
    $('pin-ok').disabled = S.pin.length < 4;
  }

  // Pairing code

  function pairKey(k) {
    edit(S.pairCode, k, 6);
    $('pair-error').hidden = true;
    renderPairCode();
  }

  function renderPairCode() {
    var box = $('pair-code');
    box.textContent = '';
    for (var i = 0; i < 6; i++) {
      var s = document.createElement('span');
      if (i < S.pairCode.length) { s.className = 'filled'; s.textContent = S.pairCode[i]; }
      box.appendChild(s);
    }
    box.setAttribute('aria-label', t('pairCodeLabel') + ' ' + S.pairCode.join(' '));
    $('pair-ok').disabled = S.pairCode.length !== 6;
  }

  // Amount (cash-register entry: digits fill in from the fen end)

  function amountFen() {
    return S.amount ? parseInt(S.amount, 10) : 0;
  }

  function yuan(fen) {
    return (fen / 100).toFixed(2);
  }

  function amountKey(k) {
    var d = S.amount.split('');
    edit(d, k, AMOUNT_DIGITS);
    S.amount = d.join('').replace(/^0+/, '');
    renderAmount();
  }

  function renderAmount() {
    $('amount-value').textContent = yuan(amountFen());
    $('amount-ok').disabled = amountFen() <= 0;
    $('amount-error').hidden = true;
  }

  // ---------------------------------------------------------------- agent

  var clientPromise = null;

  function loadClient(host) {
    if (window.OneCard) return Promise.resolve();
    if (clientPromise) return clientPromise;
    clientPromise = new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = 'http://' + host + '/onecard-client.js';
      s.onload = function () {
        if (window.OneCard) resolve();
        else reject({ code: 'agent_unavailable' });
      };
      s.onerror = function () {
        s.parentNode.removeChild(s);
        clientPromise = null;
        reject({ code: 'agent_unavailable' });
      };
      document.head.appendChild(s);
    });
    return clientPromise;
  }

  function connect() {
    window.clearTimeout(S.retryTimer);
    var host = agentHost();
    if (!host) {
      setConn('down');
      show('unavailable');
      setText($('unavailable-retry'), 'badAgent');
      return;
    }
    setConn('connecting');
    if (S.screen !== 'unavailable') show('connecting');
    loadClient(host).then(function () {
      var oc = new window.OneCard({ url: 'ws://' + host + '/v1/ws' });
      oc.on('cardInserted', function (d) { if (S.oc === oc) onCardInserted(d); });
      oc.on('cardRemoved', function () { if (S.oc === oc) onCardRemoved(); });
      oc.on('readerAdded', function () { if (S.oc === oc) refreshLanes(); });
      oc.on('readerRemoved', function () { if (S.oc === oc) refreshLanes(); });
      oc.on('close', function () {
        if (S.oc !== oc) return;
        S.oc = null;
        unavailable();
      });
      S.oc = oc;
      return oc.connect();
    }).then(function (hello) {
      if (!hello.authorised) showPair(hello);
      else authorised(hello);
    }, function () {
      S.oc = null;
      unavailable();
    });
  }

  function unavailable() {
    S.busy = false;
    setConn('down');
    show('unavailable');
    setText($('unavailable-retry'), 'unavailableRetry');
    window.clearTimeout(S.retryTimer);
    S.retryTimer = window.setTimeout(connect, 3000);
  }

  function showPair(hello) {
    S.hello = hello;
    setConn('pair');
    S.pairCode = [];
    renderPairCode();
    setText($('pair-origin'), 'pairOrigin', { origin: hello.origin || window.location.origin });
    var canPair = hello.pairing !== false;
    setText(document.querySelector('#screen-pair .lead'), canPair ? 'pairText' : 'pairDisabled');
    $('pair-keypad').hidden = !canPair;
    $('pair-ok').hidden = !canPair;
    $('pair-code').hidden = !canPair;
    show('pair');
  }

  function doPair() {
    if (S.pairCode.length !== 6 || !S.oc) return;
    var code = S.pairCode.join('');
    S.pairCode = [];
    renderPairCode();
    S.oc.pair(code).then(function (hello) {
      authorised(hello);
    }, function (e) {
      var el = $('pair-error');
      setText(el, 'err_' + (MESSAGES.zh['err_' + e.code] ? e.code : 'pairing_failed'));
      el.hidden = false;
      announce(el.textContent);
    });
  }

  function authorised(hello) {
    S.hello = hello;
    setConn('ok');
    if (hello.terminalId) setText($('foot-terminal'), 'footTerminal', { id: hello.terminalId });
    refreshLanes().then(function () {
      if (cardPresent()) readCard();
      else showInsert();
    });
  }

  function refreshLanes() {
    if (!S.oc) return Promise.resolve();
    return S.oc.readers().then(function (r) {
      S.lanes = r.lanes || [];
    }, function () { /* keep the last known lanes */ });
  }

  function cardPresent() {
    for (var i = 0; i < S.lanes.length; i++) {
      var l = S.lanes[i];
      if ((!cfg.reader || l.name === cfg.reader) && l.cardPresent) return true;
    }
    return false;
  }

  function pinPad() {
    return !!(S.hello && S.hello.pinPad);
  }

  function onCardInserted(d) {
    if (d && d.mute) {
      if (!S.busy) showError({ code: 'card_mute' }, null);
      return;
    }
    refreshLanes().then(function () {
      var waiting = { insert: 1, error: 1, receipt: 1 };
      if (!S.busy && !S.identity && waiting[S.screen] && cardPresent()) readCard();
    });
  }

  function onCardRemoved() {
    refreshLanes().then(function () {
      if (cardPresent()) return;
      S.identity = null;
      clearPin();
      S.amount = '';
      var keep = { error: 1, receipt: 1, pair: 1, unavailable: 1, connecting: 1, busy: 1 };
      if (!S.busy && !keep[S.screen]) showInsert();
      else if (S.screen === 'insert') showInsert();
    });
  }

  // ---------------------------------------------------------------- flows

  function showInsert() {
    var taking = cardPresent();
    setText(document.querySelector('#screen-insert h1'), taking ? 'takeCard' : 'insertTitle');
    setText(document.querySelector('#screen-insert .lead'), taking ? 'takeCardText' : 'insertText');
    show('insert');
  }

  function laneParams(p) {
    if (cfg.reader) p.reader = cfg.reader;
    return p;
  }

  function startBusy(titleKey) {
    S.busy = true;
    S.stage = null;
    setText($('busy-title'), titleKey);
    var lis = $('stages').children;
    for (var i = 0; i < lis.length; i++) {
      lis[i].className = '';
      var stage = lis[i].getAttribute('data-stage');
      // enter_pin only with a PIN pad, syncing only when the agent reports
      // it (it has a hub).
      lis[i].hidden = (stage === 'enter_pin' && !pinPad()) || stage === 'syncing';
    }
    $('pinpad-hint').hidden = true;
    show('busy');
    progress({ stage: 'reading' });
  }

  function progress(st) {
    var idx = STAGES.indexOf(st.stage);
    if (idx < 0) return;
    S.stage = st.stage;
    var lis = $('stages').children;
    for (var i = 0; i < lis.length; i++) {
      var j = STAGES.indexOf(lis[i].getAttribute('data-stage'));
      lis[i].className = j < idx ? 'done' : (j === idx ? 'active' : '');
      if (j === idx) lis[i].hidden = false;
    }
    $('pinpad-hint').hidden = st.stage !== 'enter_pin';
    var li = $('stages').querySelector('[data-stage="' + st.stage + '"] [data-i18n]');
    if (li) announce(li.textContent);
  }

  function readCard() {
    if (S.busy || !S.oc) return;
    S.identity = null;
    startBusy('busyReading');
    S.oc.readIdentity(laneParams({}), progress).then(function (r) {
      S.busy = false;
      S.identity = r.identity;
      showServices();
    }, function (e) {
      S.busy = false;
      showError(e, readCard);
    });
  }

  function showServices() {
    var id = S.identity || {};
    if (id.name) setPlain($('id-name'), id.name);
    else setText($('id-name'), 'nameUnavailable');
    setPlain($('id-person'), id.person_id || '—');
    setPlain($('id-card'), id.card_number || '—');
    setText($('id-kind'), 'genKind', { n: id.generation || '?', suite: (id.suite || '').toUpperCase() });
    var badge = $('id-genuine');
    badge.className = 'badge ' + (id.genuine ? 'ok' : 'warn');
    setText(badge, id.genuine ? 'genuine' : 'publicOnly');
    show('services');
  }

  function chooseService(svc) {
    S.service = svc;
    clearPin();
    if (svc === 'certify') {
      if (pinPad()) runOp('certify');
      else showPin();
      return;
    }
    S.amount = '';
    renderAmount();
    setText($('amount-title'), svc === 'pay' ? 'amountPayTitle' : 'amountLoadTitle');
    if (svc === 'pay') setText($('amount-party'), 'payParty', { merchant: cfg.merchant, fund: cfg.fund });
    else setText($('amount-party'), 'loadParty', { programme: cfg.programme });
    setText($('amount-ok'), svc === 'pay' ? 'next' : 'confirmLoad');
    var presets = $('presets');
    presets.textContent = '';
    (svc === 'pay' ? [1000, 2000, 5000, 10000] : [10000, 20000, 50000]).forEach(function (fen) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'preset';
      b.setAttribute('data-fen', String(fen));
      b.textContent = '¥' + yuan(fen);
      b.addEventListener('click', function () { S.amount = String(fen); renderAmount(); });
      presets.appendChild(b);
    });
    show('amount');
  }

  function amountOK() {
    if (amountFen() <= 0) {
      var el = $('amount-error');
      setText(el, 'amountZero');
      el.hidden = false;
      return;
    }
    if (S.service === 'load') runOp('load');
    else if (pinPad()) runOp('pay');
    else showPin();
  }

  function showPin(errorKey, args) {
    if (S.service === 'pay') setText($('pin-summary'), 'pinSummaryPay', { amount: yuan(amountFen()), merchant: cfg.merchant });
    else setText($('pin-summary'), 'pinSummaryCertify', { programme: cfg.certify });
    var err = $('pin-error');
    if (errorKey) { setText(err, errorKey, args); err.hidden = false; } else err.hidden = true;
    renderPinDots();
    show('pin');
    if (errorKey) announce(err.textContent);
  }

  function pinOK() {
    if (S.pin.length < 4) return;
    runOp(S.service);
  }

  function runOp(kind) {
    if (S.busy || !S.oc) return;
    var p = laneParams({});
    if (kind === 'pay') {
      p.amount = amountFen(); p.merchant = cfg.merchant; p.fund = cfg.fund;
    } else if (kind === 'load') {
      p.amount = amountFen(); p.programme = cfg.programme; p.fund = cfg.programmeFund;
    } else {
      p.programme = cfg.certify; p.fund = cfg.certifyFund;
    }
    if (kind !== 'load' && !pinPad()) p.pin = S.pin.join('');
    clearPin();
    startBusy({ pay: 'busyPay', load: 'busyLoad', certify: 'busyCertify' }[kind]);
    var call = S.oc[kind](p, progress);
    p.pin = null;
    call.then(function (receipt) {
      S.busy = false;
      showReceipt(receipt);
    }, function (e) {
      S.busy = false;
      if (e.code === 'pin_wrong' && !pinPad()) {
        showPin('err_pin_wrong', { n: e.triesLeft == null ? '?' : e.triesLeft });
        return;
      }
      if (e.code === 'pin_format' && !pinPad()) {
        showPin('err_pin_format');
        return;
      }
      showError(e, function () { runOp(kind); });
    });
  }

  function row(dl, labelKey, value, field, big) {
    var dt = document.createElement('dt');
    setText(dt, labelKey);
    var dd = document.createElement('dd');
    dd.setAttribute('data-field', field);
    if (big) dd.className = 'big';
    if (value && value.key) setText(dd, value.key, value.args);
    else dd.textContent = value;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function cardTime(r) {
    var d = r.cardDate || '', tm = r.cardTime || '';
    if (d.length !== 8 || tm.length !== 6) return d + ' ' + tm;
    return d.slice(0, 4) + '-' + d.slice(4, 6) + '-' + d.slice(6) + ' ' + tm.slice(0, 2) + ':' + tm.slice(2, 4) + ':' + tm.slice(4);
  }

  function showReceipt(r) {
    var kind = r.kind === 'load' || r.kind === 'certify' ? r.kind : 'pay';
    setText($('receipt-title'), { pay: 'receiptPay', load: 'receiptLoad', certify: 'receiptCertify' }[kind]);
    var dl = $('receipt');
    dl.textContent = '';
    row(dl, 'kind', { key: 'kind_' + kind }, 'kind');
    if (kind !== 'certify') {
      row(dl, 'amount', '¥ ' + r.amountText, 'amount', true);
      row(dl, 'balance', '¥ ' + r.balanceText, 'balance');
    }
    if (r.merchant) row(dl, kind === 'pay' ? 'merchant' : 'programme', r.merchant, 'merchant');
    if (r.fund) row(dl, 'fund', r.fund, 'fund');
    if (r.holderName) row(dl, 'holder', r.holderName, 'holder');
    if (r.cardNumber) row(dl, 'cardNo', r.cardNumber, 'cardNumber');
    row(dl, 'terminal', r.terminalId, 'terminal');
    row(dl, 'seq', String(r.terminalSeq), 'seq');
    row(dl, 'time', cardTime(r), 'time');
    if (r.tac) row(dl, 'tac', r.tac, 'tac');
    if (kind === 'certify') row(dl, 'cardSignature', { key: r.cardSigned ? 'signed' : 'notSigned' }, 'signed');
    var st = $('receipt-state');
    if (r.state === 'card-done') setText(st, 'stateCardDone');
    else setText(st, 'stateOther', { state: r.state });
    show('receipt');
  }

  function showError(e, retry) {
    var code = (e && e.code) || 'internal';
    S.lastError = e;
    S.retry = null;
    if (CARD_GONE[code]) S.identity = null;
    var sec = $('screen-error');
    sec.setAttribute('data-code', code);
    setText($('error-title'), MESSAGES.zh['errt_' + code] ? 'errt_' + code : 'errorTitle');
    var key = MESSAGES.zh['err_' + code] ? 'err_' + code : 'err_unknown';
    setText($('error-message'), key, { code: code, n: e && e.triesLeft != null ? e.triesLeft : '?' });
    var codeEl = $('error-code');
    if (e && e.national) setText(codeEl, 'errorNational', { national: e.national });
    else setText(codeEl, 'errorCode', { code: code });
    var retryBtn = $('error-retry');
    if (CARD_GONE[code]) {
      // The card comes back: the page reads it when the agent reports it,
      // or when the holder taps "read the card".
      S.retry = readCard;
      setText(retryBtn, 'readAgain');
      retryBtn.hidden = false;
    } else {
      var canRetry = !!retry && !!(e && e.retriable);
      S.retry = canRetry ? retry : null;
      setText(retryBtn, 'retry');
      retryBtn.hidden = !canRetry;
    }
    show('error');
  }

  function errorBack() {
    if (S.identity && cardPresent()) showServices();
    else showInsert();
  }

  function done() {
    clearPin();
    S.amount = '';
    if (S.identity && cardPresent()) showServices();
    else showInsert();
  }

  function finish() {
    S.identity = null;
    clearPin();
    S.amount = '';
    showInsert();
  }

  function back() {
    if (S.screen === 'pin' && S.service === 'pay') { clearPin(); show('amount'); return; }
    clearPin();
    showServices();
  }

  // ---------------------------------------------------------------- wiring

  function onAction(ev) {
    var b = ev.target.closest('[data-action]');
    if (!b || b.disabled) return;
    switch (b.getAttribute('data-action')) {
      case 'reconnect': connect(); break;
      case 'pair': doPair(); break;
      case 'service': chooseService(b.getAttribute('data-service')); break;
      case 'amount-ok': amountOK(); break;
      case 'pin-ok': pinOK(); break;
      case 'back': back(); break;
      case 'done': done(); break;
      case 'finish': finish(); break;
      case 'print': window.print(); break;
      case 'error-back': errorBack(); break;
      case 'error-retry': if (S.retry) S.retry(); break;
    }
  }

  function onKeyDown(ev) {
    var keyFns = { pin: pinKey, amount: amountKey, pair: pairKey };
    var fn = keyFns[S.screen];
    armIdle();
    if (!fn) return;
    if (/^[0-9]$/.test(ev.key)) fn(ev.key);
    else if (ev.key === 'Backspace') fn('del');
    else if (ev.key === 'Escape' && S.screen !== 'pair') back();
    else if (ev.key === 'Enter') {
      var ok = { pin: 'pin-ok', amount: 'amount-ok', pair: 'pair-ok' }[S.screen];
      if (!$(ok).disabled) $(ok).click();
    } else return;
    ev.preventDefault();
  }

  function init() {
    buildKeypad($('pin-keypad'), pinKey);
    buildKeypad($('amount-keypad'), amountKey);
    buildKeypad($('pair-keypad'), pairKey);
    var lang = query.get('lang');
    if (lang !== 'zh' && lang !== 'en') {
      try { lang = window.localStorage.getItem('onecard.kiosk.lang'); } catch (e) { lang = null; }
    }
    setLang(lang || 'zh');
    $('lang').addEventListener('click', function () { setLang(S.lang === 'zh' ? 'en' : 'zh'); armIdle(); });
    document.addEventListener('click', function (ev) { armIdle(); onAction(ev); });
    document.addEventListener('keydown', onKeyDown);
    document.addEventListener('contextmenu', function (ev) { ev.preventDefault(); });
    connect();
  }

  // For tests and operators: the page's state, without personal data or
  // the PIN.
  window.onecardKiosk = {
    state: function () {
      return { screen: S.screen, busy: S.busy, stage: S.stage, lang: S.lang, authorised: !!(S.hello && S.hello.authorised),
        cardPresent: cardPresent(), error: S.lastError ? S.lastError.code : null };
    }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
