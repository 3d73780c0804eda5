// The agent runner's approval page. Plain JavaScript, no framework, no
// request to anywhere but this runner (the CSP allows nothing else).
//
// Rules this file keeps (ADR 0012):
// - the token lives in memory and in sessionStorage (this tab only), is
//   sent as `Authorization: Bearer` and is never written anywhere else;
// - everything the model, a tool or a person wrote is put in the page as
//   text (textContent, text nodes), never parsed as HTML;
// - the API's errors are shown as they come (status, code, message).
'use strict';

(function () {
  const TOKEN_KEY = 'hwc-agent-runner.token';
  const ROLES = ['reader', 'requester', 'approver', 'admin'];
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const STATES = ['waiting_approval', 'queued', 'running', 'completed', 'failed', 'cancelled'];

  // How the timeline names an `approval.refused` event's reason.
  const REFUSALS = {
    role: 'their role is below approver',
    requester: 'they asked for this job',
    twice: 'they had approved this action already',
    wrong_action: 'the digest sent is not the waiting action\'s',
    expired: 'the request had expired',
    nothing_waiting: 'nothing was waiting',
  };

  const session = { token: null, me: null };
  // What the view on screen started: aborted and cleared when it changes.
  let page = { abort: new AbortController(), timers: [] };

  const $ = (id) => document.getElementById(id);

  // ---- small helpers ----------------------------------------------------

  /** An element; `props` sets attributes (`class`, `text`, `on*` listeners,
   *  `dataset`), `kids` are nodes or strings (strings become text). */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const enc = encodeURIComponent;
  const roleRank = (r) => ROLES.indexOf(r);

  function pad(n) { return String(n).padStart(2, '0'); }

  /** `2026-05-01 14:03:07 UTC` from unix ms (or seconds, for expiry times). */
  function when(t) {
    if (t === null || t === undefined || t === '') return '—';
    let ms = Number(t);
    if (!Number.isFinite(ms)) return String(t);
    if (ms < 1e11) ms *= 1000;
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  function clock(ms) {
    const d = new Date(ms);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  function badge(text, cls, testid) {
    return h('span', { class: `badge ${cls}`, 'data-testid': testid }, text);
  }
  const riskBadge = (risk, testid) => badge(risk || '?', `risk-${risk}`, testid);
  const stateBadge = (state, testid) => badge((state || '?').replace('_', ' '), `state-${state}`, testid);

  function code(text, testid) {
    return h('pre', { class: 'code', 'data-testid': testid }, text === null || text === undefined ? '' : String(text));
  }

  function facts(cls, rows) {
    const dl = h('dl', { class: cls });
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === '') continue;
      dl.append(h('dt', null, k), h('dd', null, v));
    }
    return dl;
  }

  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }

  // ---- the API ----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const e = body && typeof body === 'object' && body.error ? body.error : null;
      super(e && e.message ? e.message : (typeof body === 'string' && body ? body : `HTTP ${status}`));
      this.status = status;
      this.code = e ? e.code : null;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${session.token}`, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `the runner did not answer (${e.message})`);
    }
    const text = await resp.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON: keep the text */ }
    if (!resp.ok) {
      const err = new ApiError(resp.status, data);
      if (resp.status === 401 && session.me) signOut(`The runner no longer accepts this token: ${err.message}`);
      throw err;
    }
    return data;
  }

  /** The API's refusal as it came: status, code and message, verbatim. */
  function errorBox(e, lead) {
    const head = e.status ? `HTTP ${e.status}${e.code ? ` · ${e.code}` : ''}` : 'No answer';
    return h('div', { class: 'error', role: 'alert', 'data-testid': 'api-error' },
      h('b', null, lead ? `${lead} ${head}` : head), h('br'),
      h('span', { 'data-testid': 'api-error-message' }, e.message));
  }

  // ---- session ----------------------------------------------------------

  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function keepToken(t) {
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* memory only */ }
  }

  async function signIn(token) {
    session.token = token;
    try {
      session.me = await api('GET', '/agent/whoami');
    } catch (e) {
      session.token = null;
      session.me = null;
      throw e;
    }
    keepToken(token);
    const who = $('who');
    who.replaceChildren('Signed in as ', h('b', { 'data-testid': 'who-name' }, session.me.name),
      ` (${session.me.role})`);
    who.hidden = false;
    $('signout').hidden = false;
    $('nav').hidden = false;
  }

  function signOut(why) {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
    session.token = null;
    session.me = null;
    $('who').hidden = true;
    $('signout').hidden = true;
    $('nav').hidden = true;
    const err = $('login-error');
    err.hidden = !why;
    err.textContent = why || '';
    route();
  }

  function showLogin() {
    $('view').replaceChildren();
    $('login').hidden = false;
    $('token').value = '';
    $('token').focus();
  }

  // ---- views ------------------------------------------------------------

  function stopPage() {
    page.abort.abort();
    for (const t of page.timers) clearInterval(t);
    page = { abort: new AbortController(), timers: [] };
  }

  function route() {
    stopPage();
    if (!session.token) {
      showLogin();
      return;
    }
    $('login').hidden = true;
    const m = /^#\/jobs\/([^/?#]+)$/.exec(location.hash);
    if (m) showJob(decodeURIComponent(m[1]));
    else showJobs();
  }

  // The jobs list, refreshed every 5 s while it is shown.
  let jobsFilter = '';

  function showJobs() {
    const select = h('select', { id: 'state-filter', 'aria-label': 'State' },
      h('option', { value: '' }, 'all states'),
      STATES.map((s) => h('option', { value: s, selected: s === jobsFilter }, s.replace('_', ' '))));
    const table = h('div', { id: 'jobs', 'data-testid': 'jobs' }, h('p', { class: 'muted' }, 'Loading…'));
    const stamp = h('span', { class: 'muted', id: 'jobs-updated' });
    const count = h('span', { class: 'muted', id: 'jobs-waiting' });
    $('view').replaceChildren(h('section', { class: 'card' },
      h('div', { class: 'row' }, h('h1', null, 'Jobs'), count, h('span', { class: 'spacer' }),
        h('label', { for: 'state-filter', class: 'muted' }, 'Show'), select, stamp),
      table));
    const signal = page.abort.signal;
    async function load() {
      const q = jobsFilter ? `?state=${enc(jobsFilter)}&limit=200` : '?limit=200';
      try {
        const data = await api('GET', `/agent/jobs${q}`);
        if (signal.aborted) return;
        const jobs = data.jobs || [];
        const waiting = jobs.filter((j) => j.pending).length;
        count.textContent = waiting ? `· ${waiting} waiting for approval` : '';
        table.replaceChildren(jobsTable(jobs));
        stamp.textContent = `updated ${clock(Date.now())}`;
      } catch (e) {
        if (!signal.aborted) table.replaceChildren(errorBox(e));
      }
    }
    select.addEventListener('change', () => { jobsFilter = select.value; load(); });
    load();
    page.timers.push(setInterval(load, 5000));
  }

  function jobsTable(jobs) {
    if (!jobs.length) return h('p', { class: 'muted' }, 'No jobs.');
    return h('table', { class: 'jobs' },
      h('thead', null, h('tr', null, ['Job', 'State', 'Waiting for', 'Goal', 'Environment', 'Requester', 'Created']
        .map((t) => h('th', null, t)))),
      h('tbody', null, jobs.map((j) => {
        const p = j.pending;
        const waiting = p ? [riskBadge(p.risk), ' ', h('span', { class: 'mono' }, p.summary || p.tool),
          h('div', { class: 'muted' }, approvalsLine(p))] : '—';
        return h('tr', { class: p ? 'waiting' : null, 'data-job': j.id },
          h('td', null, h('a', { href: `#/jobs/${enc(j.id)}`, class: 'mono' }, j.id)),
          h('td', null, stateBadge(j.state)),
          h('td', null, waiting),
          h('td', { class: 'goal' }, j.spec.goal),
          h('td', null, j.spec.environment, h('div', { class: 'muted' }, j.spec.target)),
          h('td', null, j.requester),
          h('td', { class: 'muted' }, when(j.created_at)));
      })));
  }

  function approvalsLine(p) {
    const need = Number(p.approvals_needed) || 1;
    const by = p.approved_by || [];
    if (!by.length) return `needs ${need} approval${need > 1 ? 's' : ''}`;
    const more = need - by.length;
    return `approved by ${by.join(', ')}` +
      (more > 0 ? `; waiting for ${more} more from a different approver` : '');
  }

  // One job: its facts, the action waiting, the live timeline, the report.
  function showJob(id) {
    const signal = page.abort.signal;
    const head = h('section', { class: 'card', id: 'job-head' }, h('p', { class: 'muted' }, 'Loading…'));
    const pendingBox = h('div', { id: 'pending-box' });
    const reportBox = h('div', { id: 'report-box' });
    const live = h('span', { class: 'live', id: 'live', 'data-testid': 'live' }, 'connecting…');
    const list = h('ol', { class: 'timeline', id: 'timeline', 'data-testid': 'timeline' });
    $('view').replaceChildren(
      h('p', null, h('a', { href: '#/jobs' }, '← All jobs')),
      h('div', { class: 'job-grid' },
        h('div', null, head, pendingBox, reportBox),
        h('section', { class: 'card', id: 'timeline-card' },
          h('div', { class: 'row' }, h('h2', null, 'Timeline'), h('span', { class: 'spacer' }), live),
          list)));

    let job = null;
    let shownDigest = null;
    let approvalsEl = null;
    let outcome = null; // the last decision this page made, kept across redraws
    let reportShown = false;
    const evidence = []; // tool results so far: {seq, summary, exit_code, status}
    let evidenceEl = null;

    async function refresh() {
      try {
        job = await api('GET', `/agent/jobs/${enc(id)}`);
      } catch (e) {
        if (!signal.aborted) head.replaceChildren(errorBox(e));
        return;
      }
      if (signal.aborted) return;
      renderHead();
      renderPending();
      if (FINAL.has(job.state)) loadReport();
    }

    let refreshTimer = null;
    function refreshSoon() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 150);
    }

    function renderHead() {
      const mayCancel = !FINAL.has(job.state) && session.me &&
        (session.me.name === job.requester || session.me.role === 'admin');
      const cancelResult = h('div');
      const cancel = mayCancel ? h('button', {
        type: 'button', class: 'reject', 'data-testid': 'cancel',
        onclick: async () => {
          cancel.disabled = true;
          try {
            await api('POST', `/agent/jobs/${enc(id)}/cancel`);
            cancelResult.replaceChildren(h('div', { class: 'notice' }, 'Cancelled.'));
          } catch (e) {
            cancelResult.replaceChildren(errorBox(e, 'The runner refused:'));
          }
          cancel.disabled = false;
          refreshSoon();
        },
      }, 'Cancel job') : null;
      head.replaceChildren(
        h('div', { class: 'row' }, h('h1', { 'data-testid': 'job-goal' }, job.spec.goal),
          stateBadge(job.state, 'job-state'), h('span', { class: 'spacer' }), cancel),
        facts('facts wide', [
          ['Job', h('span', { class: 'mono' }, job.id)],
          ['Environment', job.spec.environment],
          ['Target host', job.spec.target],
          ['Requester', h('span', { 'data-testid': 'job-requester' }, job.requester)],
          ['Model', job.spec.model],
          ['Created', when(job.created_at)],
          ['Updated', when(job.updated_at)],
          ['Steps', `${job.steps} of ${job.spec.max_steps}`],
          ['Tokens', `${job.tokens} of ${job.spec.max_tokens}`],
          ['Error', job.error ? h('span', { class: 'error' }, job.error) : null],
        ]),
        cancelResult);
    }

    // What to show as "the exact command or diff" of an action.
    function exactly(p) {
      const a = p.arguments && typeof p.arguments === 'object' ? p.arguments : {};
      if (typeof a.patch === 'string') return ['Diff', a.patch];
      if (typeof a.command === 'string' && p.tool === 'shell') return ['Exact command', a.command];
      if (typeof a.content === 'string') return [`Content to write to ${a.path || '?'}`, a.content];
      return ['Action', p.summary];
    }

    function renderPending() {
      const p = job.pending;
      if (!p) {
        shownDigest = null;
        approvalsEl = null;
        pendingBox.replaceChildren(outcome
          ? h('section', { class: 'card', id: 'pending-none' }, h('h2', null, 'Approval'),
            h('div', { class: 'notice', 'data-testid': 'decision-ok' }, outcome),
            h('p', { class: 'muted' }, 'Nothing of this job is waiting for approval now.'))
          : '');
        return;
      }
      if (p.digest === shownDigest && approvalsEl) {
        // The same action: update who approved, keep what is being typed.
        approvalsEl.replaceChildren(approvalsContent(p));
        return;
      }
      shownDigest = p.digest;
      outcome = null;
      const [what, text] = exactly(p);
      const me = session.me || { name: '', role: 'reader' };
      const hints = [];
      if (me.name === job.requester) {
        hints.push(`You (${me.name}) asked for this job: the runner refuses a requester's approval of their own job; another approver must decide.`);
      } else if (roleRank(me.role) < roleRank('approver')) {
        hints.push(`Your role is ${me.role}: approving needs role approver or admin; the runner will refuse.`);
      }
      approvalsEl = h('div', { class: 'approvals', 'data-testid': 'approvals' }, approvalsContent(p));
      evidenceEl = h('div', { 'data-testid': 'evidence' }, evidenceContent());
      const comment = h('textarea', { id: 'comment', 'data-testid': 'comment', placeholder: 'Why you approve or reject (recorded in the audit; a rejection is told to the model)' });
      const result = h('div', { id: 'decision-result', 'data-testid': 'decision-result' });
      const approve = h('button', { type: 'button', class: 'approve', 'data-testid': 'approve' }, 'Approve this action');
      const reject = h('button', { type: 'button', class: 'reject', 'data-testid': 'reject' }, 'Reject');
      async function decide(kind) {
        approve.disabled = true;
        reject.disabled = true;
        result.replaceChildren(h('span', { class: 'muted' }, kind === 'approve' ? 'Approving…' : 'Rejecting…'));
        try {
          const body = kind === 'approve' ? { digest: p.digest, comment: comment.value } : { comment: comment.value };
          const r = await api('POST', `/agent/jobs/${enc(id)}/${kind}`, body);
          if (kind === 'reject') outcome = `Rejected by ${me.name}: the action will not run, and the model is told why.`;
          else if (r.granted) outcome = `Approved by ${me.name}: the action has its approvals and runs now.`;
          else outcome = `Approved by ${me.name}; ${r.standing && r.standing.more} more approval(s) needed, from a different approver.`;
          result.replaceChildren(h('div', { class: 'notice', 'data-testid': 'decision-ok' }, outcome));
        } catch (e) {
          result.replaceChildren(errorBox(e, 'The runner refused:'));
        }
        approve.disabled = false;
        reject.disabled = false;
        refreshSoon();
      }
      approve.addEventListener('click', () => decide('approve'));
      reject.addEventListener('click', () => decide('reject'));
      pendingBox.replaceChildren(h('section', { class: `card pending${p.risk === 'R3' ? ' risk-R3-box' : ''}`, id: 'pending', 'data-testid': 'pending' },
        h('div', { class: 'row' }, h('h2', null, 'Waiting for approval'), riskBadge(p.risk, 'pending-risk'),
          h('span', { class: 'muted' }, p.summary)),
        approvalsEl,
        facts('facts', [
          ['Action', `#${p.action} · tool ${p.tool}`],
          ['Risk class', h('span', null, riskBadge(p.risk), p.approvals_needed > 1
            ? ` needs ${p.approvals_needed} approvals from different approvers (never the requester)`
            : ' needs 1 approval (never the requester)')],
          ['Rule', h('code', { 'data-testid': 'pending-rule' }, p.rule || '(no rule matched: the environment\'s default)')],
          ['Why', h('span', { 'data-testid': 'pending-reason' }, p.reason)],
          ['Target', p.target],
          ['Expires', when(p.expires_at)],
          ['Digest', h('code', { 'data-testid': 'pending-digest' }, p.digest)],
        ]),
        h('h3', null, what), code(text, 'pending-command'),
        h('h3', null, 'Rollback plan'), code(p.rollback || '(none: this action has no rollback)', 'pending-rollback'),
        h('details', null, h('summary', null, 'All arguments, as they will run (the digest covers them)'),
          code(pretty(p.arguments), 'pending-arguments')),
        h('h3', null, 'Evidence so far'), evidenceEl,
        hints.map((t) => h('p', { class: 'hint', 'data-testid': 'hint' }, t)),
        h('div', { class: 'decide' },
          h('label', { for: 'comment' }, 'Comment'), comment,
          h('div', { class: 'row' }, approve, reject)),
        result));
    }

    function approvalsContent(p) {
      const by = p.approved_by || [];
      const need = Number(p.approvals_needed) || 1;
      if (!by.length) return h('span', { class: 'muted' }, `No approvals yet; ${need} needed.`);
      const more = need - by.length;
      return h('span', null, 'Approved first by ', h('b', { 'data-testid': 'approved-by' }, by.join(', ')),
        more > 0 ? `; waiting for ${more} more approval${more > 1 ? 's' : ''} from a different approver.` : '.');
    }

    function evidenceContent() {
      if (!evidence.length) return h('p', { class: 'muted' }, 'No tool results yet.');
      return h('ul', null, evidence.map((e) => h('li', null,
        h('button', { type: 'button', class: 'quiet mono', onclick: () => jump(e.seq) }, `[event ${e.seq}]`), ' ',
        h('span', { class: 'mono' }, e.summary || ''), ' ',
        h('span', { class: 'muted' }, e.exit_code !== undefined && e.exit_code !== null ? `exit ${e.exit_code}` : (e.status || '')))));
    }

    function jump(seq) {
      const li = $(`ev-${seq}`);
      if (!li) return;
      li.scrollIntoView({ block: 'center' });
      li.classList.remove('flash');
      void li.offsetWidth;
      li.classList.add('flash');
    }

    async function loadReport() {
      if (reportShown) return;
      let rep;
      try {
        rep = await api('GET', `/agent/jobs/${enc(id)}/report`);
      } catch (e) {
        if (e.status !== 409 && !signal.aborted) reportBox.replaceChildren(h('section', { class: 'card' }, errorBox(e)));
        return;
      }
      if (signal.aborted || reportShown) return;
      reportShown = true;
      const pct = Math.round((Number(rep.evidence_completeness) || 0) * 100);
      reportBox.replaceChildren(h('section', { class: 'card', id: 'report', 'data-testid': 'report' },
        h('div', { class: 'row' }, h('h2', null, 'Report'), h('span', { class: 'muted' }, `evidence completeness ${pct} %`)),
        h('p', { 'data-testid': 'report-summary' }, rep.summary),
        rep.error ? h('p', { class: 'error' }, rep.error) : null,
        (rep.findings || []).length
          ? [h('h3', null, 'Findings'), h('ul', { class: 'findings' }, rep.findings.map(finding))]
          : null,
        (rep.unknowns || []).length ? [h('h3', null, 'Still unknown'), h('ul', null, rep.unknowns.map((u) => h('li', null, u)))] : null,
        (rep.actions || []).length
          ? [h('h3', null, 'Actions'), h('ul', { class: 'actions', 'data-testid': 'report-actions' }, rep.actions.map(actionLine))]
          : null));
    }

    function actionLine(a) {
      const by = (a.approvers || []).join(', ');
      return h('li', null,
        h('div', null, riskBadge(a.risk), ' ', h('span', { class: 'mono' }, `#${a.id} ${a.summary}`)),
        h('div', { class: 'muted' }, `${a.verdict.replace('_', ' ')} · rule ${a.rule || 'none'}`,
          by ? ` · approved by ${by}` : '', ` · ${a.state}`),
        a.rollback ? h('div', { class: 'muted' }, 'rollback: ', h('span', { class: 'mono' }, a.rollback)) : null);
    }

    function finding(f) {
      const bad = f.invalid_evidence || [];
      const cites = (f.evidence || []).map((n) => (bad.includes(n)
        ? h('span', { class: 'muted', title: 'not a tool result of this job' }, `[event ${n}: not evidence] `)
        : h('button', { type: 'button', class: 'quiet mono', onclick: () => jump(n) }, `[event ${n}]`)));
      return h('li', null, f.text, ' ', cites);
    }

    // The live timeline.
    let lastSeq = 0;
    function onEvent(ev) {
      const seq = Number(ev.seq);
      if (!(seq > lastSeq)) return false; // already shown (a resumed stream)
      lastSeq = seq;
      const li = renderEvent(ev);
      list.append(li);
      const item = ev.data && ev.data.item;
      if (ev.type === 'item.completed' && item && item.action !== undefined) {
        evidence.push({ seq, summary: item.summary, exit_code: item.exit_code, status: item.status });
        if (evidenceEl) evidenceEl.replaceChildren(evidenceContent());
      }
      if (/^(job\.state|approval\.|policy\.decision|turn\.completed|report\.ready)/.test(ev.type)) refreshSoon();
      return ev.type === 'job.state' && FINAL.has(ev.data && ev.data.state);
    }

    function setLive(kind, text) {
      live.className = `live ${kind}`;
      live.textContent = text;
    }

    refresh();
    follow(id, signal, onEvent, setLive);
  }

  // One timeline entry, all of its text as text.
  function renderEvent(ev) {
    const d = ev.data || {};
    const type = String(ev.type || '');
    const group = type.split('.')[0];
    const item = d.item || {};
    const isEvidence = type === 'item.completed' && item.action !== undefined;
    const body = [];
    const line = (...kids) => body.push(h('div', null, kids));
    switch (type) {
      case 'job.created':
        line('Goal: ', d.goal);
        line(`Environment ${d.environment}, target ${d.target}, asked by ${d.requester}`);
        break;
      case 'job.state':
        line(stateBadge(d.state), d.by ? ` by ${d.by}` : '', d.action !== undefined ? ` (action #${d.action})` : '');
        if (d.error) body.push(h('div', { class: 'error' }, d.error));
        break;
      case 'turn.started':
        line(`Model turn ${d.step}`);
        break;
      case 'turn.completed': {
        const u = d.usage || {};
        line(`Turn ${d.step} answered by ${d.model || 'the model'}: ${u.prompt_tokens || 0} prompt + ${u.completion_tokens || 0} completion tokens${d.escalated ? ' (escalated)' : ''}`);
        break;
      }
      case 'turn.failed':
        body.push(h('div', { class: 'error' }, d.error));
        break;
      case 'item.started':
        line(`${item.type || 'item'} started: `, h('span', { class: 'mono' }, item.summary));
        break;
      case 'item.completed':
        if (item.type === 'reasoning' || item.type === 'agent_message') {
          line(item.type === 'reasoning' ? 'Reasoning: ' : 'Model: ', item.text);
        } else if (item.type === 'error') {
          body.push(h('div', { class: 'error' }, item.message));
        } else {
          line(h('span', { class: 'mono' }, item.summary), ` — ${item.status || ''}`,
            item.exit_code !== undefined && item.exit_code !== null ? `, exit ${item.exit_code}` : '');
          if (item.output) body.push(code(item.output, 'event-output'));
          if (item.changes && (!Array.isArray(item.changes) || item.changes.length)) body.push(code(pretty(item.changes)));
          if (item.output_hash) {
            line(h('span', { class: 'muted mono', title: `SHA-256 of the whole output: ${item.output_hash}` },
              `sha256 ${String(item.output_hash).slice(0, 16)}…`));
          }
        }
        break;
      case 'policy.decision':
        line(riskBadge(d.risk), ` ${d.verdict} · rule `, h('code', null, d.rule || 'none'), ' · ', h('span', { class: 'mono' }, d.summary));
        if (d.reason) line(h('span', { class: 'muted' }, d.reason));
        break;
      case 'approval.requested':
        line(`Action #${d.action} needs ${d.approvals} approval(s) (`, riskBadge(d.risk), `), until ${when(d.expires_at)}`);
        break;
      case 'approval.granted': {
        const s = d.standing || {};
        line(`Approved by ${d.by}`, s.state === 'granted' ? ': approvals complete' : `; ${s.more} more needed`);
        if (d.comment) line(h('span', { class: 'muted' }, '“', d.comment, '”'));
        break;
      }
      case 'approval.rejected':
        line(`Rejected by ${d.by}`);
        if (d.comment) line(h('span', { class: 'muted' }, '“', d.comment, '”'));
        break;
      case 'approval.refused': {
        const why = REFUSALS[(d.refusal || {}).refusal] || String((d.refusal || {}).refusal || 'refused');
        line(`Approval by ${d.by} refused: ${why}`);
        break;
      }
      case 'approval.expired':
        line(`The approval request of action #${d.action} expired`);
        break;
      case 'rollback.recorded':
        line(`Rollback of action #${d.action} recorded before it ran:`);
        body.push(code(d.rollback));
        break;
      case 'report.ready':
        line(`Report written: ${d.findings} finding(s), evidence completeness ${Math.round((Number(d.evidence_completeness) || 0) * 100)} %`);
        break;
      default:
        body.push(code(pretty(d)));
    }
    return h('li', {
      id: `ev-${ev.seq}`,
      class: `ev-${group}${isEvidence ? ' evidence' : ''}`,
      dataset: { seq: String(ev.seq), type },
    },
    h('div', { class: 'ev-head' },
      h('span', { class: 'ev-seq mono' }, `#${ev.seq}`),
      h('span', { class: 'ev-type' }, type),
      isEvidence ? h('span', { class: 'badge risk-R0' }, `evidence [event ${ev.seq}]`) : null,
      h('span', { class: 'ev-time', title: when(ev.at) }, clock(ev.at))),
    h('div', { class: 'ev-body' }, body));
  }

  // ---- the event stream -------------------------------------------------

  /** One SSE block (`id:`, `event:`, `data:` lines) or null (a comment). */
  function parseBlock(block) {
    let id = null;
    let type = 'message';
    const data = [];
    for (const raw of block.split(/\r\n|\n|\r/)) {
      if (!raw || raw.startsWith(':')) continue;
      const i = raw.indexOf(':');
      const field = i < 0 ? raw : raw.slice(0, i);
      let value = i < 0 ? '' : raw.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    return data.length ? { id, type, data: data.join('\n') } : null;
  }

  /** Reads a job's events with fetch (EventSource cannot send the token),
   *  resuming with Last-Event-ID after a drop, until the job's final state. */
  async function follow(id, signal, onEvent, setLive) {
    let last = 0;
    let wait = 500;
    while (!signal.aborted) {
      let finished = false;
      try {
        const headers = { Authorization: `Bearer ${session.token}`, Accept: 'text/event-stream' };
        if (last > 0) headers['Last-Event-ID'] = String(last);
        const resp = await fetch(`/agent/jobs/${enc(id)}/events`, { headers, signal, cache: 'no-store', credentials: 'omit' });
        if (!resp.ok) {
          const text = await resp.text();
          let d = text;
          try { d = JSON.parse(text); } catch (e) { /* text */ }
          throw new ApiError(resp.status, d);
        }
        setLive('on', last > 0 ? `live (resumed after event ${last})` : 'live');
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let m;
          while ((m = /\r\n\r\n|\n\n/.exec(buf))) {
            const block = parseBlock(buf.slice(0, m.index));
            buf = buf.slice(m.index + m[0].length);
            if (!block) continue;
            let ev;
            try { ev = JSON.parse(block.data); } catch (e) { continue; }
            const n = Number(block.id);
            if (n > last) last = n;
            wait = 500;
            if (onEvent(ev)) finished = true;
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
          setLive('off', `stream refused: HTTP ${e.status} ${e.message}`);
          if (e.status === 401) signOut(`The runner no longer accepts this token: ${e.message}`);
          return;
        }
      }
      if (finished) {
        setLive('done', 'ended: the job is finished');
        return;
      }
      if (signal.aborted) return;
      setLive('off', `connection lost; resuming after event ${last}…`);
      await sleep(wait, signal);
      wait = Math.min(wait * 2, 8000);
    }
  }

  // ---- start ------------------------------------------------------------

  function boot() {
    $('login-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = $('token').value.trim();
      const err = $('login-error');
      err.hidden = true;
      if (!token) return;
      const button = $('login-submit');
      button.disabled = true;
      try {
        await signIn(token);
        $('token').value = '';
        if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/jobs';
        else route();
      } catch (e) {
        err.textContent = `The runner refused this token: HTTP ${e.status} ${e.message}`;
        err.hidden = false;
      }
      button.disabled = false;
    });
    $('signout').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', route);
    const kept = storedToken();
    if (kept) {
      signIn(kept).then(route, () => signOut('The kept token was refused; sign in again.'));
    } else {
      route();
    }
  }

  boot();
}());
