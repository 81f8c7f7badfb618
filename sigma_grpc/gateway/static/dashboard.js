// Signal history dashboard: plain JS over the service's own HTTP/JSON API (same origin only).
//
// Page parameters (all optional): symbol, type (a DecisionType name), days (stats window),
// pageSize (decisions per page, 1-200, default 25), refresh (polling period in seconds, default 15),
// view (`quality` for the signal-quality view), buckets (its time buckets: hour, day or week; by default
// hours for 1 day, weeks for 90 days and more, days otherwise). The signal-quality view's analytics are
// polled at most once a minute, whatever `refresh` says.
//
// Every value from the API reaches the DOM through textContent or attributes, never as HTML.
(() => {
  'use strict';

  const TOKEN_KEY = 'sigma.readerToken';
  const DEFAULT_PAGE_SIZE = 25;
  const MAX_PAGE_SIZE = 200; // ListExecutions takes at most 200 decision ids: one call per page
  const DEFAULT_REFRESH_S = 15;
  const CLOSED_PAGE_SIZE = 500;
  const CLOSED_MAX_PAGES = 10; // the R chart plots at most 5,000 closed signals
  const SYMBOL_RE = /^[A-Za-z0-9]{1,16}$/;
  const TYPES = ['DECISION_TYPE_SIGNAL', 'DECISION_TYPE_SKIP', 'DECISION_TYPE_RISK_REJECT'];
  const DAYS = ['1', '7', '30', '90', '365'];
  const VIEWS = ['decisions', 'quality'];
  const BUCKET_WIDTHS = { hour: 'BUCKET_WIDTH_HOUR', day: 'BUCKET_WIDTH_DAY', week: 'BUCKET_WIDTH_WEEK' };
  const QUALITY_MIN_REFRESH_S = 60;
  const TYPE_LABELS = {
    DECISION_TYPE_SIGNAL: 'Signal',
    DECISION_TYPE_SKIP: 'Skip',
    DECISION_TYPE_RISK_REJECT: 'Risk reject',
  };
  const TYPE_PLURALS = {
    DECISION_TYPE_SIGNAL: 'signals',
    DECISION_TYPE_SKIP: 'skips',
    DECISION_TYPE_RISK_REJECT: 'risk rejects',
  };
  const DIRECTIONS = {
    DIRECTION_LONG: ['Long', 'long'],
    DIRECTION_SHORT: ['Short', 'short'],
    DIRECTION_NONE: ['No direction', 'none'],
  };

  const $ = (selector, root = document) => root.querySelector(selector);

  // -- page parameters ------------------------------------------------------------------------------

  function intParam(params, name, low, high, fallback) {
    const text = params.get(name);
    if (text === null || !/^\d+$/.test(text)) return fallback;
    return Math.min(high, Math.max(low, Number(text)));
  }

  const params = new URLSearchParams(location.search);
  const PAGE_SIZE = intParam(params, 'pageSize', 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE);
  const REFRESH_S = intParam(params, 'refresh', 1, 3600, DEFAULT_REFRESH_S);

  const state = {
    symbol: SYMBOL_RE.test(params.get('symbol') || '') ? params.get('symbol') : '',
    type: TYPES.includes(params.get('type')) ? params.get('type') : '',
    days: DAYS.includes(params.get('days')) ? params.get('days') : '7',
    view: VIEWS.includes(params.get('view')) ? params.get('view') : 'decisions',
    buckets: Object.hasOwn(BUCKET_WIDTHS, params.get('buckets') || '') ? params.get('buckets') : '',
    measure: 'agreement', // the consensus measure of the win-rate chart
    quality: null, // the last GetSignalQuality answer shown
    gateAnalytics: null, // the last GetGateAnalytics answer shown
    qualityAt: 0, // when the analytics were last loaded (ms); 0: load them on the next refresh
    generation: 0, // bumped when the filters change: answers for older filters are dropped
    rows: [], // the loaded decisions, newest first
    executions: new Map(), // decision id -> its execution
    nextToken: '', // where "load more" goes on; '' once everything is loaded
    loaded: false,
    elements: new Map(), // decision id -> {el, sig}
    symbols: new Set(),
    refreshes: 0,
  };

  // -- formatting -----------------------------------------------------------------------------------

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric',
    month: 'short',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const clockFormat = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });

  /** A proto3 JSON timestamp as a string that sorts like the instant (nanosecond fraction). */
  function timeKey(ts) {
    const match = /^(.*?)(?:\.(\d+))?Z$/.exec(ts || '');
    if (!match) return ts || '';
    return `${match[1]}.${(match[2] || '').padEnd(9, '0')}Z`;
  }

  /** The list's order: (decidedAt, id), compared as strings; the list is newest first. */
  function rowKey(decision) {
    return `${timeKey(decision.decidedAt)} ${decision.id}`;
  }

  function count(value) {
    const n = Number(value || 0);
    return Number.isFinite(n) ? n : 0;
  }

  function percent(fraction) {
    return `${(Number(fraction || 0) * 100).toFixed(1)}%`;
  }

  /** A decimal string with trailing zeros dropped, keeping at least `min` decimals. */
  function trimDecimals(text, min) {
    const [whole, fraction = ''] = text.split('.');
    return `${whole}.${fraction.replace(/0+$/, '').padEnd(min, '0')}`;
  }

  /** An R-multiple with 2 to `decimals` decimals and its sign: +1.80R, −0.5125R. */
  function formatR(value, decimals = 4) {
    const n = Number(value || 0);
    const text = `${trimDecimals(Math.abs(n).toFixed(decimals), 2)}R`;
    if (n > 0) return `+${text}`;
    if (n < 0) return `\u2212${text}`;
    return text;
  }

  /** Whether a decimal string is zero ("0.00000000", "-0"). */
  function isZeroDecimal(text) {
    return /^[-+]?0*(\.0*)?$/.test(text);
  }

  /** A decimal string of USD with 2 to 8 decimals, digits grouped, sign first: +1,125.50 USD. */
  function formatUsd(text) {
    const match = /^([-+]?)(\d+)(?:\.(\d+))?$/.exec(String(text || '0'));
    if (!match) return `${text} USD`;
    const [, sign, whole, fraction = ''] = match;
    const grouped = whole.replace(/^0+(?=\d)/, '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const body = `${trimDecimals(`${grouped}.${fraction}`, 2)} USD`;
    if (isZeroDecimal(text)) return body;
    return sign === '-' ? `\u2212${body}` : `+${body}`;
  }

  /** A gate's or check's double (up to 6 significant digits), or a decimal string as given. */
  function formatNumber(value) {
    if (value === undefined || value === null) return '\u2014';
    if (typeof value === 'string' && /^-?\d+\.\d+$/.test(value)) {
      // Sizes and prices are exact decimals: 0.00012 must not show as 0.0001.
      return value.replace(/\.?0+$/, '');
    }
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    if (Number.isInteger(n)) return String(n);
    return String(Number(n.toPrecision(6)));
  }

  /** A fraction range as percentages: 45.4–84.8%. */
  function percentRange(interval) {
    const low = (Number(interval.low || 0) * 100).toFixed(1);
    const high = (Number(interval.high || 0) * 100).toFixed(1);
    return `${low}\u2013${high}%`;
  }

  /** A proto3 JSON Duration ("8100s", "1.5s") in words: 2 h 15 min, 3 d 4 h, 1.5 s. */
  function formatDuration(text) {
    const match = /^(\d+(?:\.\d+)?)s$/.exec(String(text || ''));
    if (!match) return String(text || '\u2014');
    const total = Number(match[1]);
    if (total < 10) return `${Number(total.toFixed(1))} s`;
    let rest = Math.round(total);
    const d = Math.floor(rest / 86400);
    rest -= d * 86400;
    const h = Math.floor(rest / 3600);
    rest -= h * 3600;
    const m = Math.floor(rest / 60);
    const sec = rest - m * 60;
    if (d) return h ? `${d} d ${h} h` : `${d} d`;
    if (h) return m ? `${h} h ${m} min` : `${h} h`;
    if (m) return sec ? `${m} min ${sec} s` : `${m} min`;
    return `${sec} s`;
  }

  function plural(n, one, many = `${one}s`) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function words(enumName, prefix) {
    const text = String(enumName || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function signOf(text) {
    if (isZeroDecimal(text)) return 0;
    return String(text).startsWith('-') ? -1 : 1;
  }

  // -- DOM helpers ----------------------------------------------------------------------------------

  /** An element with a class and text (textContent: never parsed as HTML). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setStatus(text, { error = false, action = null } = {}) {
    const status = $('#status');
    status.textContent = text;
    status.classList.toggle('error', error);
    if (action) {
      const button = el('button', '', action.label);
      button.type = 'button';
      button.addEventListener('click', action.run);
      status.append(' ', button);
    }
  }

  // -- the API, with the reader token ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const message = body && typeof body.message === 'string' && body.message ? body.message : `HTTP ${status}`;
      super(message);
      this.name = 'ApiError';
      this.status = status;
    }
  }

  class TokenNeeded extends Error {
    constructor() {
      super('a reader token is needed');
      this.name = 'TokenNeeded';
    }
  }

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  function writeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage disabled: the token lasts as long as the page */
    }
    memoryToken = token;
  }

  let memoryToken = '';
  let tokenPrompt = null; // the one open question for a token, shared by every waiting call
  let tokenDeclined = false;

  function currentToken() {
    return readToken() || memoryToken;
  }

  /** Wait for a token after a 401 answered the call made with `used` (empty: none). */
  function needToken(used) {
    const current = currentToken();
    if (current && current !== used) return Promise.resolve(); // replaced meanwhile: retry with it
    if (used) writeToken(''); // refused
    if (tokenDeclined) return Promise.reject(new TokenNeeded());
    if (!tokenPrompt) {
      tokenPrompt = askToken(used !== '').finally(() => {
        tokenPrompt = null;
      });
    }
    return tokenPrompt;
  }

  function askToken(refused) {
    return new Promise((resolve, reject) => {
      const dialog = $('#token-dialog');
      const form = $('#token-form');
      const input = $('#token-input');
      $('#token-message').textContent = refused
        ? 'The token was refused. Enter a reader token; it is kept in this tab only (sessionStorage).'
        : 'The API asks for a reader token. It is kept in this tab only (sessionStorage).';
      input.value = '';
      input.setCustomValidity('');
      let answered = false;
      const onSubmit = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!/^[\x21-\x7e]+$/.test(token)) {
          input.setCustomValidity('A token is printable ASCII without spaces.');
          input.reportValidity();
          return;
        }
        answered = true;
        writeToken(token);
        dialog.close();
      };
      const onInput = () => input.setCustomValidity('');
      const onClose = () => {
        form.removeEventListener('submit', onSubmit);
        input.removeEventListener('input', onInput);
        dialog.removeEventListener('close', onClose);
        if (answered) {
          resolve();
        } else {
          tokenDeclined = true;
          reject(new TokenNeeded());
        }
      };
      form.addEventListener('submit', onSubmit);
      input.addEventListener('input', onInput);
      dialog.addEventListener('close', onClose);
      dialog.showModal();
      input.focus();
    });
  }

  /** GET (or another method) on the API of this page's origin; the answer's JSON. */
  async function api(path, query = []) {
    const url = new URL(path, location.origin);
    for (const [name, value] of query) {
      if (value !== '' && value !== null && value !== undefined) url.searchParams.append(name, String(value));
    }
    for (;;) {
      const token = currentToken();
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(url, { headers, cache: 'no-store', credentials: 'same-origin' });
      if (response.status === 401) {
        await needToken(token);
        continue;
      }
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok) throw new ApiError(response.status, body);
      return body || {};
    }
  }

  // -- one operation at a time ----------------------------------------------------------------------

  let queue = Promise.resolve();

  /** Run `task` after the operations already queued (refreshes and "load more" never interleave). */
  function serial(task) {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  // -- statistics and charts ------------------------------------------------------------------------

  function setCard(id, value, sub, tone = 0) {
    const card = document.getElementById(id);
    const valueEl = $('.value', card);
    valueEl.textContent = value;
    valueEl.classList.toggle('positive', tone > 0);
    valueEl.classList.toggle('negative', tone < 0);
    $('.sub', card).textContent = sub;
  }

  function renderCards(totals) {
    const t = totals || {};
    const total = count(t.totalDecisions);
    const closed = count(t.closedCount);
    setCard('card-signals', String(count(t.signalCount)), `of ${total} decision${total === 1 ? '' : 's'}`);
    setCard(
      'card-winrate',
      closed ? percent(t.winRate) : '\u2014',
      `${count(t.winCount)} won · ${count(t.lossCount)} lost · ${closed} closed`,
    );
    const avg = Number(t.avgRMultiple || 0);
    setCard(
      'card-avgr',
      closed ? formatR(avg, 2) : '\u2014',
      `P&L ${formatUsd(t.totalPnl || '0')}`,
      closed ? Math.sign(avg) : 0,
    );
    setCard(
      'card-skiprate',
      total ? percent(t.skipRate) : '\u2014',
      `${count(t.skipCount)} skipped · ${count(t.riskRejectCount)} risk rejected`,
    );
    setCard('card-pending', String(count(t.pendingCount)), 'signals still open');
    renderClosedCards(t, closed);
  }

  /** The closed signals' figures: interval, profit factor, drawdown, averages, extremes, streaks, holding. */
  function renderClosedCards(t, closed) {
    const none = '\u2014';
    const wins = count(t.winCount);
    const losses = count(t.lossCount);
    const has = (value) => value !== undefined && value !== null;
    const interval = $('#card-winrate .interval');
    if (closed && t.winRateInterval) {
      interval.replaceChildren('95% interval ', el('span', 'nowrap', percentRange(t.winRateInterval)));
    } else {
      interval.replaceChildren();
    }
    if (closed && has(t.profitFactor)) {
      const factor = Number(t.profitFactor);
      const tone = factor > 1 ? 1 : factor < 1 ? -1 : 0;
      setCard('card-profit-factor', factor.toFixed(2), 'gross won \u00f7 gross lost', tone);
    } else {
      setCard('card-profit-factor', none, closed ? 'no losing signal' : 'nothing closed');
    }
    const drawdown = Number(t.maxDrawdownR || 0);
    setCard(
      'card-drawdown',
      closed ? formatR(-drawdown, 2) : none,
      'peak to trough of cumulative R',
      closed && drawdown > 0 ? -1 : 0,
    );
    setCard(
      'card-avg-win-loss',
      closed ? `${wins ? formatR(t.avgWinR, 2) : none} / ${losses ? formatR(t.avgLossR, 2) : none}` : none,
      `${plural(wins, 'win')} \u00b7 ${plural(losses, 'loss', 'losses')}`,
    );
    setCard(
      'card-best-worst',
      closed && has(t.bestR) && has(t.worstR) ? `${formatR(t.bestR)} / ${formatR(t.worstR)}` : none,
      'one signal, in R',
    );
    setCard(
      'card-streaks',
      closed ? `${count(t.longestWinStreak)} / ${count(t.longestLossStreak)}` : none,
      'wins / losses in a row',
    );
    setCard(
      'card-holding',
      closed && has(t.medianHoldingTime) ? formatDuration(t.medianHoldingTime) : none,
      'from decision to close',
    );
  }

  function cssColor(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  const charts = {
    r: { plot: null, key: '' },
    gates: { plot: null, key: '', names: [] },
  };

  function plotWidth(figure) {
    return Math.max(200, Math.floor($('.plot', figure).clientWidth));
  }

  function axisStyle() {
    const muted = cssColor('--muted', '#5b6470');
    const grid = cssColor('--border', '#d9dee4');
    return {
      stroke: muted,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      font: '11px system-ui, sans-serif',
    };
  }

  function showChart(figure, hasData) {
    $('.plot', figure).hidden = !hasData;
    $('.empty', figure).hidden = hasData;
  }

  /** Time axis labels in the browser's locale and zone: times within a day, dates beyond. */
  function timeTicks(u, splits, axisIdx, space, incr) {
    const span = u.scales.x.max - u.scales.x.min;
    let options = { hour: '2-digit', minute: '2-digit' };
    if (incr >= 86400) options = { day: 'numeric', month: 'short' };
    else if (span > 86400) options = { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
    const format = new Intl.DateTimeFormat(undefined, options);
    return splits.map((s) => format.format(new Date(s * 1000)));
  }

  function renderRChart(closed) {
    const figure = $('#chart-r');
    // Cumulative R in 1e-4 units (R is stored with 4 decimals): exact sums, no float drift.
    let units = 0;
    const xs = [];
    const ys = [];
    for (const decision of closed) {
      units += Math.round(Number(decision.outcomeRMultiple || 0) * 10000);
      xs.push(Date.parse(decision.outcomeClosedAt) / 1000);
      ys.push(units / 10000);
    }
    figure.dataset.points = ys.map((y) => y.toFixed(4)).join(',');
    $('.caption', figure).textContent = closed.length
      ? `${formatR(units / 10000)} over ${closed.length} closed signal${closed.length === 1 ? '' : 's'}`
      : '';
    const chart = charts.r;
    showChart(figure, closed.length > 0);
    if (!closed.length || typeof uPlot === 'undefined') {
      if (chart.plot) chart.plot.destroy();
      chart.plot = null;
      chart.key = '';
      return;
    }
    const key = JSON.stringify([xs, ys]);
    if (chart.plot && key === chart.key) return;
    chart.key = key;
    if (chart.plot) {
      chart.plot.setData([xs, ys]);
      return;
    }
    const accent = cssColor('--accent', '#2563eb');
    const opts = {
      width: plotWidth(figure),
      height: 220,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [
        {},
        {
          label: 'Cumulative R',
          stroke: accent,
          width: 2,
          points: { show: true, size: 5, fill: accent },
        },
      ],
      axes: [
        { ...axisStyle(), space: 64, values: timeTicks },
        { ...axisStyle(), size: 56, values: (u, splits) => splits.map((v) => formatR(v, 2)) },
      ],
    };
    chart.plot = new uPlot(opts, [xs, ys], $('.plot', figure));
  }

  function renderGateChart(failures) {
    const figure = $('#chart-gates');
    const list = failures || [];
    const names = list.map((f) => String(f.name));
    const counts = list.map((f) => count(f.count));
    figure.dataset.points = list.map((f, i) => `${names[i]}=${counts[i]}`).join(',');
    $('.caption', figure).textContent = list.length
      ? `most often: ${names[0]} (${counts[0]})`
      : '';
    const items = $('.gate-list', figure);
    items.replaceChildren(...list.map((f, i) => el('li', '', `${names[i]}: ${counts[i]}`)));
    const chart = charts.gates;
    showChart(figure, list.length > 0);
    if (!list.length || typeof uPlot === 'undefined') {
      if (chart.plot) chart.plot.destroy();
      chart.plot = null;
      chart.key = '';
      return;
    }
    const xs = names.map((_, i) => i);
    const key = JSON.stringify([names, counts]);
    if (chart.plot && key === chart.key) return;
    chart.key = key;
    const sameNames = JSON.stringify(names) === JSON.stringify(chart.names);
    chart.names = names;
    if (chart.plot && sameNames) {
      chart.plot.setData([xs, counts]);
      return;
    }
    if (chart.plot) chart.plot.destroy();
    const loss = cssColor('--loss', '#b42318');
    const longest = Math.max(...names.map((n) => n.length));
    const crowded = (u) =>
      Boolean(u.bbox) && u.bbox.width / (window.devicePixelRatio || 1) / names.length < longest * 7 + 10;
    const opts = {
      width: plotWidth(figure),
      height: 220,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: () => [-0.5, chart.names.length - 0.5] },
        y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] },
      },
      series: [
        {},
        {
          label: 'Failures',
          stroke: loss,
          fill: loss,
          width: 0,
          paths: uPlot.paths.bars({ size: [0.6, 64] }),
          points: { show: false },
        },
      ],
      axes: [
        {
          ...axisStyle(),
          grid: { show: false },
          splits: () => chart.names.map((_, i) => i),
          values: (u, splits) => splits.map((i) => chart.names[i] ?? ''),
          rotate: (u) => (crowded(u) ? -40 : 0),
          size: (u) => (u.bbox && crowded(u) ? Math.min(120, 16 + longest * 5) : 32),
        },
        {
          ...axisStyle(),
          size: 40,
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000],
          values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')),
        },
      ],
    };
    chart.plot = new uPlot(opts, [xs, counts], $('.plot', figure));
  }

  function resizeCharts() {
    for (const [id, chart] of [['#chart-r', charts.r], ['#chart-gates', charts.gates]]) {
      if (!chart.plot) continue;
      const width = plotWidth($(id));
      if (Math.abs(width - chart.plot.width) > 1) chart.plot.setSize({ width, height: 220 });
    }
  }

  /** The window's closed signals, oldest close first (by outcomeClosedAt, then id). */
  async function fetchClosed(gen, windowStart) {
    const closed = [];
    let token = '';
    for (let page = 0; page < CLOSED_MAX_PAGES; page++) {
      const answer = await api('/v1/decisions', [
        ['outcome', 'OUTCOME_CLOSED'],
        ['symbol', state.symbol],
        ['startTime', windowStart],
        ['pageSize', CLOSED_PAGE_SIZE],
        ['pageToken', token],
      ]);
      if (gen !== state.generation) return null;
      closed.push(...(answer.decisions || []));
      token = answer.nextPageToken || '';
      if (!token) break;
    }
    closed.sort((a, b) => {
      const ka = `${timeKey(a.outcomeClosedAt)} ${a.id}`;
      const kb = `${timeKey(b.outcomeClosedAt)} ${b.id}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    return closed;
  }

  async function refreshStats(gen) {
    const stats = await api('/v1/stats', [
      ['days', state.days],
      ['symbol', state.symbol],
    ]);
    if (gen !== state.generation) return;
    renderCards(stats.totals);
    for (const entry of stats.bySymbol || []) state.symbols.add(String(entry.symbol));
    renderSymbols();
    renderGateChart(stats.gateFailures);
    if (state.view !== 'decisions') return; // the R chart of the decisions view: drawn when it shows
    const closed = await fetchClosed(gen, stats.windowStart || '');
    if (closed === null || gen !== state.generation) return;
    renderRChart(closed);
  }

  function renderSymbols() {
    const list = $('#symbol-list');
    const sorted = [...state.symbols].sort();
    if (list.children.length === sorted.length) return;
    list.replaceChildren(
      ...sorted.map((symbol) => {
        const option = document.createElement('option');
        option.value = symbol;
        return option;
      }),
    );
  }

  // -- decisions ------------------------------------------------------------------------------------

  function filterQuery() {
    return [
      ['symbol', state.symbol],
      ['decisionType', state.type],
    ];
  }

  /** The executions of these decisions' signals, by decision id: one call (at most 200 ids). */
  async function fetchExecutions(decisions) {
    const ids = [...new Set(decisions.filter((d) => d.decisionType === 'DECISION_TYPE_SIGNAL').map((d) => d.id))];
    const found = new Map();
    if (!ids.length) return { ids, found };
    const answer = await api('/v1/executions', [...ids.map((id) => ['decisionIds', id]), ['pageSize', ids.length]]);
    for (const execution of answer.executions || []) {
      if (!found.has(execution.decisionId)) found.set(execution.decisionId, execution); // newest first
    }
    return { ids, found };
  }

  function applyExecutions(result) {
    for (const id of result.ids) {
      if (result.found.has(id)) state.executions.set(id, result.found.get(id));
      else state.executions.delete(id);
    }
  }

  function outcomeOf(decision) {
    if (decision.decisionType !== 'DECISION_TYPE_SIGNAL') return 'none';
    if (decision.outcomePnl === undefined || decision.outcomePnl === null) return 'pending';
    const sign = signOf(decision.outcomePnl);
    return sign > 0 ? 'win' : sign < 0 ? 'loss' : 'breakeven';
  }

  const OUTCOME_LABELS = { win: 'Win', loss: 'Loss', pending: 'Pending', breakeven: 'Breakeven' };

  function checkTable(caption, limitName, checks, limitField) {
    const table = el('table');
    table.append(el('caption', '', caption));
    const head = el('tr');
    for (const title of ['Name', 'Result', 'Value', limitName]) {
      const th = el('th', '', title);
      th.scope = 'col';
      head.append(th);
    }
    const thead = el('thead');
    thead.append(head);
    table.append(thead);
    const body = el('tbody');
    for (const check of checks) {
      const row = el('tr', check.passed ? 'check passed-row' : 'check failed-row');
      row.dataset.name = String(check.name);
      row.append(
        el('td', 'check-name', check.name),
        el('td', check.passed ? 'passed' : 'failed', check.passed ? 'passed' : 'failed'),
        el('td', 'num check-value', formatNumber(check.value)),
        el('td', 'num check-limit', formatNumber(check[limitField])),
      );
      body.append(row);
    }
    table.append(body);
    return table;
  }

  function executionText(execution) {
    const parts = [];
    if (execution.fillSize && execution.fillPrice) {
      parts.push(`${formatNumber(execution.fillSize)} @ ${formatNumber(execution.fillPrice)}`);
    }
    if (execution.dryRun) parts.push('dry run');
    return parts.length ? ` (${parts.join(', ')})` : '';
  }

  function buildRow(decision, execution) {
    const li = el('li', 'decision');
    const outcome = outcomeOf(decision);
    li.dataset.id = String(decision.id);
    li.dataset.type = String(decision.decisionType || '');
    li.dataset.outcome = outcome;
    li.dataset.symbol = String(decision.symbol || '');

    const head = el('div', 'row-head');
    head.append(el('span', 'symbol', decision.symbol));
    const direction = DIRECTIONS[decision.direction];
    if (direction) head.append(el('span', `chip direction ${direction[1]}`, direction[0]));
    head.append(el('span', 'chip type', TYPE_LABELS[decision.decisionType] || words(decision.decisionType, 'DECISION_TYPE_')));
    const time = el('time', 'decided-at');
    const decidedAt = new Date(decision.decidedAt);
    time.dateTime = String(decision.decidedAt || '');
    time.title = String(decision.decidedAt || '');
    time.textContent = Number.isNaN(decidedAt.getTime()) ? String(decision.decidedAt || '') : timeFormat.format(decidedAt);
    head.append(time);
    li.append(head);

    const line = el('div', 'outcome-line');
    if (outcome !== 'none') {
      line.append(el('span', `badge outcome ${outcome}`, OUTCOME_LABELS[outcome]));
    }
    if (outcome === 'win' || outcome === 'loss' || outcome === 'breakeven') {
      const tone = outcome === 'win' ? 'positive' : outcome === 'loss' ? 'negative' : '';
      line.append(el('span', `pnl ${tone}`.trim(), formatUsd(decision.outcomePnl)));
      const r = Number(decision.outcomeRMultiple || 0);
      line.append(el('span', `r ${r > 0 ? 'positive' : r < 0 ? 'negative' : ''}`.trim(), formatR(r)));
    }
    if (execution) {
      const box = el('span', 'execution', 'Execution ');
      const chip = el('span', 'chip exec-status', words(execution.status, 'EXECUTION_STATUS_'));
      chip.dataset.status = String(execution.status || '');
      if (execution.errorMessage) chip.title = String(execution.errorMessage);
      box.append(chip, executionText(execution));
      line.append(box);
    }
    if (line.childNodes.length) li.append(line);

    li.append(el('p', 'reasoning', decision.reasoning));

    const gates = decision.gates || [];
    const risks = decision.riskChecks || [];
    if (gates.length || risks.length) {
      const details = el('details', 'gates');
      const passed = gates.filter((g) => g.passed).length;
      let summary = `Gates: ${passed} of ${gates.length} passed`;
      if (risks.length) summary += ` · risk checks: ${risks.filter((c) => c.passed).length} of ${risks.length} passed`;
      details.append(el('summary', '', summary));
      if (gates.length) details.append(checkTable('Gates', 'Threshold', gates, 'threshold'));
      if (risks.length) details.append(checkTable('Risk checks', 'Limit', risks, 'limit'));
      li.append(details);
    }
    return li;
  }

  /** Show `rows` (newest first), reusing unchanged rows and keeping open disclosures open. */
  function renderRows(rows, { highlightNew }) {
    const list = $('#decisions');
    const wanted = new Set(rows.map((d) => d.id));
    for (const [id, entry] of state.elements) {
      if (!wanted.has(id)) {
        entry.el.remove();
        state.elements.delete(id);
      }
    }
    let previous = null;
    for (const decision of rows) {
      const execution = state.executions.get(decision.id) || null;
      const sig = JSON.stringify([decision, execution]);
      let entry = state.elements.get(decision.id);
      if (!entry) {
        entry = { el: buildRow(decision, execution), sig };
        if (highlightNew) {
          const fresh = entry.el;
          fresh.classList.add('fresh');
          fresh.addEventListener('animationend', () => fresh.classList.remove('fresh'), { once: true });
        }
        state.elements.set(decision.id, entry);
      } else if (entry.sig !== sig) {
        const open = Boolean($('details', entry.el)?.open);
        const replacement = buildRow(decision, execution);
        const details = $('details', replacement);
        if (details) details.open = open;
        entry.el.replaceWith(replacement);
        entry.el = replacement;
        entry.sig = sig;
      }
      const expectedNext = previous ? previous.nextElementSibling : list.firstElementChild;
      if (expectedNext !== entry.el) list.insertBefore(entry.el, expectedNext);
      previous = entry.el;
    }
    state.rows = rows;
    $('#decisions-empty').hidden = rows.length > 0 || !state.loaded;
    const more = $('#load-more');
    more.hidden = !state.nextToken;
    more.disabled = false;
    more.textContent = 'Load more';
  }

  /** Refresh the loaded decisions (and the first page on the first call), keeping later pages. */
  async function refreshList(gen) {
    const loadedCount = state.rows.length;
    const size = Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, loadedCount + PAGE_SIZE));
    const page = await api('/v1/decisions', [...filterQuery(), ['pageSize', loadedCount ? size : PAGE_SIZE]]);
    if (gen !== state.generation) return;
    const fresh = page.decisions || [];
    let executions = null;
    let failure = null;
    try {
      executions = await fetchExecutions(fresh);
    } catch (error) {
      failure = error; // the rows are still shown, with the execution statuses known before
    }
    if (gen !== state.generation) return;
    if (executions) applyExecutions(executions);
    const first = !state.loaded;
    const everything = !state.nextToken; // every row was loaded (or none yet)
    const truncated = Boolean(page.nextPageToken) && fresh.length > 0;
    let rows = fresh;
    if (everything && !(truncated && state.rows.length > fresh.length)) {
      // This page is the new list.
      state.nextToken = page.nextPageToken || '';
    } else {
      // Keep the old token (keyset: still valid) and every loaded row this page does not cover.
      if (!everything) {
        const boundary = rowKey(state.rows[state.rows.length - 1]);
        rows = fresh.filter((d) => rowKey(d) >= boundary);
      }
      if (truncated) {
        const oldest = rowKey(fresh[fresh.length - 1]);
        const seen = new Set(rows.map((d) => d.id));
        rows = rows.concat(state.rows.filter((d) => rowKey(d) < oldest && !seen.has(d.id)));
      }
    }
    state.loaded = true;
    renderRows(rows, { highlightNew: !first });
    if (failure) throw failure;
  }

  async function loadMore(gen) {
    if (!state.nextToken) return;
    const page = await api('/v1/decisions', [
      ...filterQuery(),
      ['pageSize', PAGE_SIZE],
      ['pageToken', state.nextToken],
    ]);
    if (gen !== state.generation) return;
    const added = page.decisions || [];
    let executions = null;
    let failure = null;
    try {
      executions = await fetchExecutions(added);
    } catch (error) {
      failure = error;
    }
    if (gen !== state.generation) return;
    if (executions) applyExecutions(executions);
    const seen = new Set(state.rows.map((d) => d.id));
    state.nextToken = page.nextPageToken || '';
    renderRows(state.rows.concat(added.filter((d) => !seen.has(d.id))), { highlightNew: false });
    if (failure) throw failure;
  }

  // -- the signal-quality view ----------------------------------------------------------------------

  const MEASURES = {
    agreement: { field: 'byAgreement', title: 'Agreement', percent: true },
    effectiveK: { field: 'byEffectiveK', title: 'Effective K', percent: false },
    traderCount: { field: 'byTraderCount', title: 'Traders', percent: false },
  };
  const BUCKET_UNITS = {
    BUCKET_WIDTH_HOUR: ['hour', 'hourly'],
    BUCKET_WIDTH_DAY: ['day', 'daily'],
    BUCKET_WIDTH_WEEK: ['week', 'weekly'],
  };
  const GATE_DIRECTIONS = {
    GATE_DIRECTION_MIN: ['below threshold', 'The value must reach the threshold: a value below it fails.'],
    GATE_DIRECTION_MAX: ['above threshold', 'The value must stay within the threshold: a value above it fails.'],
  };
  const QUALITY_HEIGHT = 220;
  const NEAR_MISS_HEIGHT = 170;

  /** Every uPlot of this view, by its figure: {plot, key, height}. */
  const qualityPlots = new Map();

  function bucketWidth() {
    if (state.buckets) return BUCKET_WIDTHS[state.buckets];
    if (state.days === '1') return 'BUCKET_WIDTH_HOUR';
    if (Number(state.days) >= 90) return 'BUCKET_WIDTH_WEEK';
    return 'BUCKET_WIDTH_DAY';
  }

  function qualityDue() {
    const period = Math.max(REFRESH_S, QUALITY_MIN_REFRESH_S) * 1000;
    return !state.qualityAt || Date.now() - state.qualityAt >= period;
  }

  /** Draw `data` into the figure's .plot unless the same `key` is drawn there already. */
  function plotInto(figure, key, height, makeOpts, data) {
    const entry = qualityPlots.get(figure);
    if (entry && entry.key === key) return;
    dropPlot(figure);
    if (typeof uPlot === 'undefined') return;
    const opts = { ...makeOpts(), width: plotWidth(figure), height };
    qualityPlots.set(figure, { plot: new uPlot(opts, data, $('.plot', figure)), key, height });
  }

  function dropPlot(figure) {
    const entry = qualityPlots.get(figure);
    if (entry) entry.plot.destroy();
    qualityPlots.delete(figure);
  }

  function resizeQualityCharts() {
    for (const [figure, entry] of qualityPlots) {
      const width = plotWidth(figure);
      if (Math.abs(width - entry.plot.width) > 1) entry.plot.setSize({ width, height: entry.height });
    }
  }

  /** A diagonal hatch in `color`, for the bars of buckets with too few closed signals. */
  function hatchPattern(ctx, color) {
    const ratio = window.devicePixelRatio || 1;
    const size = Math.max(4, Math.round(7 * ratio));
    const tile = document.createElement('canvas');
    tile.width = size;
    tile.height = size;
    const t = tile.getContext('2d');
    t.strokeStyle = color;
    t.lineWidth = 1.5 * ratio;
    t.beginPath();
    for (const offset of [-size, 0, size]) {
      t.moveTo(offset, size);
      t.lineTo(offset + size, 0);
    }
    t.stroke();
    return ctx.createPattern(tile, 'repeat');
  }

  /** Category axes: one label per index, rotated when they do not fit side by side. */
  function categoryAxis(labels) {
    const longest = Math.max(1, ...labels.map((l) => l.length));
    const crowded = (u) =>
      Boolean(u.bbox) && u.bbox.width / (window.devicePixelRatio || 1) / labels.length < longest * 7 + 10;
    return {
      ...axisStyle(),
      grid: { show: false },
      splits: () => labels.map((_, i) => i),
      values: (u, splits) => splits.map((i) => labels[i] ?? ''),
      rotate: (u) => (crowded(u) ? -40 : 0),
      size: (u) => (u.bbox && crowded(u) ? Math.min(110, 16 + longest * 5.5) : 32),
    };
  }

  const utcDate = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
  const utcDay = new Intl.DateTimeFormat(undefined, {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    timeZone: 'UTC',
  });
  const utcHour = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' });

  /** A bucket's start, in UTC (the buckets are UTC hours, days and weeks): for the axis and the table. */
  function bucketLabels(start, width) {
    const date = new Date(start);
    if (Number.isNaN(date.getTime())) return [String(start || ''), String(start || '')];
    if (width === 'BUCKET_WIDTH_HOUR') {
      return [utcHour.format(date), `${utcDay.format(date)}, ${utcHour.format(date)} UTC`];
    }
    const prefix = width === 'BUCKET_WIDTH_WEEK' ? 'week of ' : '';
    return [utcDate.format(date), `${prefix}${utcDay.format(date)}`];
  }

  function numberCell(text, className = '') {
    return el('td', `num ${className}`.trim(), text);
  }

  function toneOf(value) {
    return value > 0 ? 'positive' : value < 0 ? 'negative' : '';
  }

  function renderEquity(series, width) {
    const figure = $('#chart-equity');
    const closed = series.reduce((n, b) => n + count(b.closed), 0);
    const ys = series.map((b) => Number(b.cumulativeR || 0));
    const labels = series.map((b) => bucketLabels(b.start, width));
    const [unit, adjective] = BUCKET_UNITS[width] || ['bucket', ''];
    figure.dataset.buckets = String(series.length);
    figure.dataset.points = ys.map((y) => y.toFixed(4)).join(',');
    const buckets = plural(series.length, `${adjective} bucket`);
    $('.caption', figure).textContent = closed
      ? `${formatR(ys[ys.length - 1] || 0)} over ${plural(closed, 'closed signal')} · ${buckets} (UTC)`
      : '';
    showChart(figure, closed > 0);

    const rows = series.map((b, i) => {
      const bucketClosed = count(b.closed);
      const row = el('tr', b.insufficientData ? 'insufficient' : '');
      row.dataset.start = String(b.start || '');
      const start = el('td', 'bucket-start', labels[i][1]);
      start.title = String(b.start || '');
      const avg = Number(b.avgR || 0);
      const cumulative = Number(b.cumulativeR || 0);
      row.append(
        start,
        numberCell(String(count(b.signals))),
        numberCell(String(bucketClosed)),
        numberCell(bucketClosed ? percent(b.winRate) : '\u2014'),
        numberCell(bucketClosed ? formatR(avg, 2) : '\u2014', bucketClosed ? toneOf(avg) : ''),
        numberCell(formatR(cumulative, 2), toneOf(cumulative)),
      );
      return row;
    });
    $('#bucket-table tbody').replaceChildren(...rows);
    $('#bucket-table').dataset.unit = unit;

    if (!closed) {
      dropPlot(figure);
      return;
    }
    const xs = series.map((_, i) => i);
    const axisLabels = labels.map((l) => l[0]);
    const accent = cssColor('--accent', '#2563eb');
    plotInto(figure, JSON.stringify([axisLabels, ys]), QUALITY_HEIGHT, () => ({
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: () => (xs.length > 1 ? [0, xs.length - 1] : [-0.5, 0.5]) },
      },
      series: [
        {},
        { label: 'Cumulative R', stroke: accent, width: 2, points: { show: true, size: 5, fill: accent } },
      ],
      axes: [
        {
          ...axisStyle(),
          space: 56,
          incrs: [1, 2, 3, 4, 6, 7, 12, 14, 24, 28, 48, 56, 96, 168, 336, 720],
          values: (u, splits) => splits.map((i) => (Number.isInteger(i) ? axisLabels[i] ?? '' : '')),
        },
        { ...axisStyle(), size: 60, values: (u, splits) => splits.map((v) => formatR(v, 2)) },
      ],
    }), [xs, ys]);
  }

  function strengthLabel(bucket, measure) {
    if (bucket.outOfRange) return 'outside';
    const scale = (v) => (measure.percent ? Number((Number(v || 0) * 100).toFixed(2)) : Number(v || 0));
    const unit = measure.percent ? '%' : '';
    return `${formatNumber(scale(bucket.lower))}\u2013${formatNumber(scale(bucket.upper))}${unit}`;
  }

  function renderStrength() {
    const sq = state.quality;
    if (!sq) return;
    const figure = $('#chart-strength');
    const measure = MEASURES[state.measure];
    const minClosed = count(sq.minClosed);
    // Every range, and the out-of-range bucket when something fell there.
    const buckets = ((sq[measure.field] || {}).buckets || []).filter((b) => !b.outOfRange || count(b.closed) > 0);
    const model = buckets.map((b) => ({
      label: strengthLabel(b, measure),
      closed: count(b.closed),
      winRate: Number(b.winRate || 0),
      interval: b.winRateInterval || null,
      few: Boolean(b.insufficientData),
    }));
    const closed = model.reduce((n, b) => n + b.closed, 0);
    figure.dataset.measure = state.measure;
    figure.dataset.bars = String(model.filter((b) => b.closed > 0).length);
    $('.measure-name', figure).textContent = measure.title;
    $('.caption', figure).textContent = closed ? `${plural(closed, 'closed signal')}` : '';
    $('.few-note', figure).textContent =
      `Grey and hatched: fewer than ${minClosed} closed signals, too few to tell. ` +
      'Whiskers: the 95% interval of the win rate.';
    showChart(figure, closed > 0);

    const rows = buckets.map((b, i) => {
      const m = model[i];
      const row = el('tr', m.few ? 'insufficient' : '');
      row.dataset.label = m.label;
      row.dataset.insufficient = String(m.few);
      const name = el('td', 'bucket-name');
      name.append(el('span', 'label', m.label));
      if (m.few && m.closed) {
        const badge = el('span', 'badge few', 'too few');
        badge.title = `fewer than ${minClosed} closed signals`;
        name.append(badge);
      }
      const avg = Number(b.avgR || 0);
      row.append(
        name,
        numberCell(String(m.closed)),
        numberCell(m.closed ? percent(m.winRate) : '\u2014', 'win-rate'),
        numberCell(m.interval ? percentRange(m.interval) : '\u2014', 'interval'),
        numberCell(m.closed ? formatR(avg, 2) : '\u2014', m.closed ? toneOf(avg) : ''),
      );
      return row;
    });
    $('#strength-table tbody').replaceChildren(...rows);

    if (!closed) {
      dropPlot(figure);
      return;
    }
    const labels = model.map((b) => b.label);
    const xs = model.map((_, i) => i);
    const ys = model.map((b) => (b.closed ? b.winRate : null));
    const accent = cssColor('--accent', '#2563eb');
    const muted = cssColor('--muted', '#5b6470');
    const text = cssColor('--text', '#1b1f24');
    const draw = (u) => {
      const ctx = u.ctx;
      const ratio = window.devicePixelRatio || 1;
      const slot = xs.length > 1 ? Math.abs(u.valToPos(1, 'x', true) - u.valToPos(0, 'x', true)) : u.bbox.width / 2;
      const barWidth = Math.min(slot * 0.6, 64 * ratio);
      const base = u.valToPos(0, 'y', true);
      ctx.save();
      model.forEach((b, i) => {
        if (!b.closed) return;
        const center = u.valToPos(i, 'x', true);
        const top = u.valToPos(b.winRate, 'y', true);
        const left = center - barWidth / 2;
        if (b.few) {
          ctx.globalAlpha = 0.25;
          ctx.fillStyle = muted;
          ctx.fillRect(left, top, barWidth, base - top);
          ctx.globalAlpha = 1;
          ctx.fillStyle = hatchPattern(ctx, muted);
          ctx.fillRect(left, top, barWidth, base - top);
          ctx.strokeStyle = muted;
          ctx.lineWidth = ratio;
          ctx.strokeRect(left, top, barWidth, base - top);
        } else {
          ctx.fillStyle = accent;
          ctx.fillRect(left, top, barWidth, base - top);
        }
        if (b.interval) {
          const low = u.valToPos(Number(b.interval.low || 0), 'y', true);
          const high = u.valToPos(Number(b.interval.high || 0), 'y', true);
          const cap = Math.min(barWidth / 3, 8 * ratio);
          ctx.strokeStyle = text;
          ctx.lineWidth = 1.5 * ratio;
          ctx.beginPath();
          ctx.moveTo(center, low);
          ctx.lineTo(center, high);
          ctx.moveTo(center - cap, low);
          ctx.lineTo(center + cap, low);
          ctx.moveTo(center - cap, high);
          ctx.lineTo(center + cap, high);
          ctx.stroke();
        }
      });
      ctx.restore();
    };
    plotInto(figure, JSON.stringify([state.measure, model]), QUALITY_HEIGHT, () => ({
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: () => [-0.5, xs.length - 0.5] }, y: { range: () => [0, 1] } },
      series: [{}, { label: 'Win rate', paths: () => null, points: { show: false } }],
      axes: [
        categoryAxis(labels),
        {
          ...axisStyle(),
          size: 48,
          splits: () => [0, 0.25, 0.5, 0.75, 1],
          values: (u, splits) => splits.map((v) => `${Math.round(v * 100)}%`),
        },
      ],
      hooks: { draw: [draw] },
    }), [xs, ys]);
  }

  function renderSignalQuality(sq) {
    state.quality = sq;
    const width = sq.bucketWidth || bucketWidth();
    renderEquity(sq.timeSeries || [], width);
    renderStrength();
  }

  function nearMissLabel(bin) {
    const pct = (v) => formatNumber(Number((Number(v || 0) * 100).toFixed(2)));
    if (bin.upper === undefined || bin.upper === null) return `\u2265${pct(bin.lower)}%`;
    return `${pct(bin.lower)}\u2013${pct(bin.upper)}%`;
  }

  function renderNearMisses(gates) {
    const container = $('#near-misses');
    const binned = gates.filter((g) => (g.nearMisses || []).some((bin) => count(bin.count) > 0));
    const model = binned.map((g) => ({
      name: String(g.name),
      direction: String(g.direction || ''),
      labels: (g.nearMisses || []).map(nearMissLabel),
      counts: (g.nearMisses || []).map((bin) => count(bin.count)),
      passingSide: count(g.failedOnPassingSide),
      withoutValue: count(g.failedWithoutValue),
    }));
    const unbinned = gates.filter(
      (g) => count(g.failed) > 0 && !(g.nearMisses || []).some((bin) => count(bin.count) > 0),
    );
    $('#near-misses-empty').hidden = model.length > 0;
    const note = $('#near-misses-note');
    note.hidden = unbinned.length === 0;
    note.textContent = unbinned.length
      ? `Not binned: ${unbinned.map((g) => g.name).join(', ')}, whose failed values have no value, no ` +
        'threshold or no known failing side.'
      : '';
    const key = JSON.stringify(model);
    if (container.dataset.key === key) return;
    container.dataset.key = key;
    for (const figure of container.querySelectorAll('figure')) dropPlot(figure);
    const figures = model.map((g) => {
      const figure = el('figure', 'chart near-miss');
      figure.dataset.gate = g.name;
      figure.dataset.counts = g.counts.join(',');
      figure.dataset.bars = String(g.counts.filter((c) => c > 0).length);
      const caption = el('figcaption');
      const total = g.counts.reduce((a, b) => a + b, 0);
      const side = GATE_DIRECTIONS[g.direction];
      caption.append(el('strong', 'gate-name', g.name), ` ${plural(total, 'failed value')}`);
      if (side) caption.append(`, ${side[0]}`);
      figure.append(caption, el('div', 'plot'));
      const aside = [];
      if (g.passingSide) aside.push(`${g.passingSide} on the passing side`);
      if (g.withoutValue) aside.push(`${g.withoutValue} without a value`);
      if (aside.length) figure.append(el('p', 'note', `Not binned: ${aside.join(', ')}.`));
      const list = el('ol', 'visually-hidden');
      list.append(...g.labels.map((label, i) => el('li', '', `${label}: ${g.counts[i]}`)));
      figure.append(list);
      return figure;
    });
    container.replaceChildren(...figures);
    if (typeof uPlot === 'undefined') return;
    const loss = cssColor('--loss', '#b42318');
    const text = cssColor('--text', '#1b1f24');
    figures.forEach((figure, n) => {
      const g = model[n];
      const xs = g.labels.map((_, i) => i);
      const labelCounts = (u) => {
        const ctx = u.ctx;
        const ratio = window.devicePixelRatio || 1;
        ctx.save();
        ctx.fillStyle = text;
        ctx.font = `${Math.round(11 * ratio)}px system-ui, sans-serif`;
        ctx.textAlign = 'center';
        ctx.textBaseline = 'bottom';
        g.counts.forEach((c, i) => {
          if (c > 0) ctx.fillText(String(c), u.valToPos(i, 'x', true), u.valToPos(c, 'y', true) - 2 * ratio);
        });
        ctx.restore();
      };
      plotInto(figure, key, NEAR_MISS_HEIGHT, () => ({
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: false, range: () => [-0.5, xs.length - 0.5] },
          y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.25))] },
        },
        series: [
          {},
          {
            label: 'Failed values',
            stroke: loss,
            fill: loss,
            width: 0,
            paths: uPlot.paths.bars({ size: [0.7, 48] }),
            points: { show: false },
          },
        ],
        axes: [
          categoryAxis(g.labels),
          {
            ...axisStyle(),
            size: 36,
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000],
            values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')),
          },
        ],
        hooks: { draw: [labelCounts] },
      }), [xs, g.counts]);
    });
  }

  function renderGateAnalytics(ga) {
    state.gateAnalytics = ga;
    const gates = ga.gates || [];
    const skips = count(ga.skipsWithFailures);
    $('#gates-scope').textContent = `${plural(skips, 'skip')} with a failed gate`;
    const rows = gates.map((g) => {
      const row = el('tr', count(g.onlyFailure) > 0 ? 'blocker' : '');
      row.dataset.name = String(g.name);
      const direction = GATE_DIRECTIONS[g.direction];
      const fails = el('td', 'direction', direction ? direction[0] : '\u2014');
      fails.title = direction ? direction[1] : 'Not known from the recorded values.';
      // The decisions it alone blocked first: the column that must show on a phone.
      row.append(
        el('td', 'gate-name', g.name),
        numberCell(String(count(g.onlyFailure)), 'only-failure'),
        numberCell(String(count(g.failed))),
        numberCell(String(count(g.evaluated))),
        numberCell(percent(g.failureRate)),
        fails,
      );
      return row;
    });
    $('#gate-table tbody').replaceChildren(...rows);
    $('#gate-table').hidden = gates.length === 0;
    $('#gate-table-empty').hidden = gates.length > 0;

    renderNearMisses(gates);

    const combos = ga.failedTogether || [];
    $('#combos-scope').textContent = combos.length ? `top ${combos.length}` : '';
    $('#combo-table tbody').replaceChildren(
      ...combos.map((c) => {
        const row = el('tr');
        const names = (c.gates || []).map(String);
        row.dataset.gates = names.join(',');
        row.append(
          el('td', 'combo-gates', names.join(' + ')),
          numberCell(String(count(c.count))),
          numberCell(skips ? percent(count(c.count) / skips) : '\u2014'),
        );
        return row;
      }),
    );
    $('#combo-table').hidden = combos.length === 0;
    $('#combo-table-empty').hidden = combos.length > 0;
  }

  function describeQualityScope() {
    const [, adjective] = BUCKET_UNITS[bucketWidth()];
    const days = `Last ${state.days} day${state.days === '1' ? '' : 's'}`;
    const parts = [days, state.symbol || 'all symbols', `${adjective} buckets (UTC)`];
    const start = state.quality && state.quality.windowStart ? new Date(state.quality.windowStart) : null;
    if (start && !Number.isNaN(start.getTime())) parts.push(`since ${timeFormat.format(start)}`);
    $('#quality-scope').textContent = parts.join(' \u00b7 ');
  }

  /** The whole view's message when the window holds nothing to analyse (a new database, say). */
  function renderQualityEmpty() {
    const sq = state.quality;
    const ga = state.gateAnalytics;
    const notice = $('#quality-empty');
    const empty =
      Boolean(sq && ga) &&
      !(sq.timeSeries || []).some((b) => count(b.signals) > 0 || count(b.closed) > 0) &&
      (ga.gates || []).length === 0;
    const panel = $('#view-quality');
    panel.classList.toggle('is-empty', empty);
    notice.hidden = !empty;
    if (empty) {
      const where = state.symbol ? ` for ${state.symbol}` : '';
      notice.textContent =
        `Nothing to analyse yet: no signal and no gate was recorded in the last ${state.days} ` +
        `day${state.days === '1' ? '' : 's'}${where}. These charts fill in as hl-decide logs decisions ` +
        'and their outcomes are recorded.';
    }
    for (const part of panel.querySelectorAll('.quality-part')) part.hidden = empty;
  }

  function explain(error) {
    if (error instanceof ApiError && error.status === 501) {
      return 'this server does not serve it (HTTP 501): it needs a newer sigma-grpc';
    }
    return describe(error);
  }

  async function refreshQuality(gen) {
    const panel = $('#view-quality');
    const query = [
      ['days', state.days],
      ['symbol', state.symbol],
    ];
    const [quality, gates] = await Promise.allSettled([
      api('/v1/signal-quality', [...query, ['bucketWidth', bucketWidth()]]),
      api('/v1/gate-analytics', query),
    ]);
    if (gen !== state.generation) return;
    if (quality.status === 'fulfilled') renderSignalQuality(quality.value);
    if (gates.status === 'fulfilled') renderGateAnalytics(gates.value);
    describeQualityScope();
    renderQualityEmpty();
    const failures = [
      [quality, 'Signal quality'],
      [gates, 'Gate analytics'],
    ].filter(([result]) => result.status === 'rejected');
    const message = $('#quality-error');
    message.textContent = failures
      .map(([result, what]) => `${what} could not be loaded: ${explain(result.reason)}.`)
      .join(' ');
    message.hidden = failures.length === 0;
    panel.dataset.state = failures.length ? 'error' : 'ready';
    panel.dataset.loads = String(count(panel.dataset.loads) + 1);
    if (failures.length) throw failures[0][0].reason;
    state.qualityAt = Date.now();
  }

  function showView(view) {
    state.view = view;
    for (const name of VIEWS) {
      const selected = name === view;
      const tab = document.getElementById(`tab-${name}`);
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      document.getElementById(`view-${name}`).hidden = !selected;
    }
    $('#filter-type-label').hidden = view !== 'decisions';
    $('#filter-buckets-label').hidden = view !== 'quality';
    document.title = `${view === 'quality' ? 'Signal quality' : 'Signal history'} \u00b7 SigmaPilot`;
    document.body.dataset.view = view;
  }

  function switchView(view) {
    if (view === state.view) return;
    showView(view);
    syncUrl();
    if (view === 'quality') {
      state.qualityAt = 0;
      describeQualityScope();
    }
    refreshNow();
  }

  // -- refreshing -----------------------------------------------------------------------------------

  function describe(error) {
    if (error instanceof TokenNeeded) return 'a reader token is needed';
    if (error instanceof ApiError) return `${error.message} (HTTP ${error.status})`;
    return error && error.message ? error.message : String(error);
  }

  function reportErrors(what, results) {
    const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    if (!failures.length) {
      setStatus(`Updated ${clockFormat.format(new Date())} · refreshes every ${REFRESH_S} s`);
      return;
    }
    if (failures.some((e) => e instanceof TokenNeeded)) {
      setStatus('A reader token is needed.', {
        error: true,
        action: {
          label: 'Enter token',
          run: () => {
            tokenDeclined = false;
            refreshNow();
          },
        },
      });
      return;
    }
    setStatus(`${what} failed: ${describe(failures[0])}. Retrying every ${REFRESH_S} s.`, { error: true });
  }

  async function refresh() {
    const gen = state.generation;
    const tasks = [refreshStats(gen)];
    if (state.view === 'decisions') tasks.push(refreshList(gen));
    else if (qualityDue()) tasks.push(refreshQuality(gen));
    const results = await Promise.allSettled(tasks);
    if (gen !== state.generation) return;
    reportErrors(state.refreshes ? 'Refresh' : 'Loading', results);
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    document.body.dataset.state = 'ready';
  }

  let timer = null;
  let missedWhileHidden = false;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(tick, REFRESH_S * 1000);
  }

  async function tick() {
    if (tokenDeclined) return; // polling resumes from the status line's "Enter token"
    if (document.hidden) {
      missedWhileHidden = true; // refreshed when the tab shows again
      return;
    }
    await serial(refresh);
    schedule();
  }

  function refreshNow() {
    clearTimeout(timer);
    tick();
  }

  // -- filters --------------------------------------------------------------------------------------

  function describeScope() {
    const days = `last ${state.days} day${state.days === '1' ? '' : 's'}`;
    $('#stats-scope').textContent = state.symbol ? `${days} · ${state.symbol}` : days;
    const kind = state.type ? TYPE_PLURALS[state.type] : 'all decisions';
    $('#list-scope').textContent = state.symbol ? `${state.symbol} · ${kind}` : kind;
    describeQualityScope();
  }

  function syncUrl() {
    const next = new URLSearchParams(location.search);
    const set = (name, value) => (value ? next.set(name, value) : next.delete(name));
    set('symbol', state.symbol);
    set('type', state.type);
    set('days', state.days === '7' ? '' : state.days);
    set('view', state.view === 'decisions' ? '' : state.view);
    set('buckets', state.buckets);
    const query = next.toString();
    history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
  }

  function applyFilters() {
    const symbol = $('#filter-symbol').value.trim();
    const type = $('#filter-type').value;
    const days = $('#filter-days').value;
    const error = $('#filter-error');
    if (symbol && !SYMBOL_RE.test(symbol)) {
      error.textContent = 'A symbol is 1 to 16 letters or digits, as Hyperliquid names it (BTC, kPEPE).';
      error.hidden = false;
      return;
    }
    error.hidden = true;
    const nextType = TYPES.includes(type) ? type : '';
    const nextDays = DAYS.includes(days) ? days : '7';
    const buckets = $('#filter-buckets').value;
    const nextBuckets = Object.hasOwn(BUCKET_WIDTHS, buckets) ? buckets : '';
    const bucketsChanged = nextBuckets !== state.buckets;
    state.buckets = nextBuckets;
    if (symbol === state.symbol && nextType === state.type) {
      if (nextDays === state.days) {
        if (!bucketsChanged) return;
        // Only the time buckets of the signal-quality view.
        state.qualityAt = 0;
        describeScope();
        syncUrl();
        if (state.view === 'quality') refreshNow();
        return;
      }
      // Only the window: the loaded decisions stay.
      state.days = nextDays;
      state.qualityAt = 0;
      describeScope();
      syncUrl();
      if (state.view === 'quality') {
        refreshNow();
        return;
      }
      const gen = state.generation;
      serial(() => refreshStats(gen)).then(
        () => undefined,
        (error) => reportErrors('Loading the statistics', [{ status: 'rejected', reason: error }]),
      );
      return;
    }
    state.symbol = symbol;
    state.type = nextType;
    state.days = nextDays;
    state.generation += 1;
    state.rows = [];
    state.nextToken = '';
    state.loaded = false;
    state.executions.clear();
    state.elements.clear();
    state.quality = null;
    state.gateAnalytics = null;
    state.qualityAt = 0;
    $('#decisions').replaceChildren();
    $('#decisions-empty').hidden = true;
    $('#load-more').hidden = true;
    document.body.dataset.state = 'loading';
    setStatus('Loading…');
    describeScope();
    syncUrl();
    refreshNow();
  }

  // -- start ----------------------------------------------------------------------------------------

  function start() {
    $('#filter-symbol').value = state.symbol;
    $('#filter-type').value = state.type;
    $('#filter-days').value = state.days;
    $('#filter-buckets').value = state.buckets;
    showView(state.view);
    describeScope();
    $('#filters').addEventListener('submit', (event) => {
      event.preventDefault();
      applyFilters();
    });
    $('#filter-symbol').addEventListener('change', applyFilters);
    $('#filter-type').addEventListener('change', applyFilters);
    $('#filter-days').addEventListener('change', applyFilters);
    $('#filter-buckets').addEventListener('change', applyFilters);
    $('#strength-measure').addEventListener('change', () => {
      const measure = $('#strength-measure').value;
      state.measure = Object.hasOwn(MEASURES, measure) ? measure : 'agreement';
      renderStrength();
    });
    for (const name of VIEWS) {
      const tab = document.getElementById(`tab-${name}`);
      tab.addEventListener('click', () => switchView(name));
      tab.addEventListener('keydown', (event) => {
        if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) return;
        event.preventDefault();
        const index = VIEWS.indexOf(name);
        let next = index;
        if (event.key === 'ArrowLeft') next = (index + VIEWS.length - 1) % VIEWS.length;
        else if (event.key === 'ArrowRight') next = (index + 1) % VIEWS.length;
        else if (event.key === 'Home') next = 0;
        else next = VIEWS.length - 1;
        switchView(VIEWS[next]);
        document.getElementById(`tab-${VIEWS[next]}`).focus();
      });
    }
    $('#load-more').addEventListener('click', () => {
      const button = $('#load-more');
      button.disabled = true;
      button.textContent = 'Loading…';
      const gen = state.generation;
      serial(() => loadMore(gen)).then(
        () => undefined,
        (error) => {
          button.disabled = false;
          button.textContent = 'Load more';
          if (error instanceof TokenNeeded) reportErrors('Loading more', [{ status: 'rejected', reason: error }]);
          else setStatus(`Loading more failed: ${describe(error)}.`, { error: true });
        },
      );
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && missedWhileHidden) {
        missedWhileHidden = false;
        refreshNow();
      }
    });
    if (typeof ResizeObserver !== 'undefined') {
      let frame = 0;
      const observer = new ResizeObserver(() => {
        cancelAnimationFrame(frame);
        frame = requestAnimationFrame(resizeCharts);
      });
      observer.observe($('#chart-r'));
      observer.observe($('#chart-gates'));
      let qualityFrame = 0;
      const qualityObserver = new ResizeObserver(() => {
        cancelAnimationFrame(qualityFrame);
        qualityFrame = requestAnimationFrame(resizeQualityCharts);
      });
      qualityObserver.observe($('#view-quality'));
    }
    if (typeof uPlot === 'undefined') {
      for (const figure of document.querySelectorAll('.chart .empty')) figure.textContent = 'Charts unavailable.';
    }
    refreshNow();
  }

  start();
})();
