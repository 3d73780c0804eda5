// The approval page in headless Chromium (Debian's chromium, driven by
// npm playwright-core), run by tests/page.rs against a runner it started
// with four jobs (see there). Every step is what an operator does: sign
// in with a token, read the action waiting, click. Exits non-zero with
// the failing step's message.
//
// Environment (set by tests/page.rs):
//   HWC_PAGE             JSON: {url, tokens: {alice, bob, carol, rita, root}, jobs: {a, b, c, d}}
//   HWC_PLAYWRIGHT_CORE  the playwright-core package directory
//   HWC_CHROMIUM         the chromium binary
//   HWC_SCREENSHOTS      optional: a directory for the docs' screenshots
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require(process.env.HWC_PLAYWRIGHT_CORE);

const cfg = JSON.parse(process.env.HWC_PAGE);
const { url, tokens, jobs } = cfg;
const shots = process.env.HWC_SCREENSHOTS || '';
const T = 20000;
const problems = []; // page errors and console errors: there must be none

function step(what) {
  process.stdout.write(`page: ${what}\n`);
}

function problem(what) {
  problems.push(what);
  process.stderr.write(`page: ${what}\n`);
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function text(page, selector) {
  const l = page.locator(selector).first();
  await l.waitFor({ timeout: T });
  return (await l.textContent()) || '';
}

/** Waits until `selector`'s text contains `want`; fails with what it was. */
async function waitText(page, selector, want) {
  try {
    await page.waitForFunction(([s, w]) => {
      const el = document.querySelector(s);
      return el && el.textContent.includes(w);
    }, [selector, want], { timeout: T });
  } catch (e) {
    const got = await page.locator(selector).first().textContent().catch(() => '(absent)');
    throw new Error(`${selector} never contained ${JSON.stringify(want)}; it is ${JSON.stringify(got)}`);
  }
}

/** A screenshot from the top of the page: the whole page, or down to the
 *  bottom of `until` (a selector). */
async function shot(page, name, until) {
  if (!shots) return;
  fs.mkdirSync(shots, { recursive: true });
  const file = path.join(shots, name);
  await page.evaluate(() => {
    if (document.activeElement) document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  let clip;
  if (until) {
    const box = await page.locator(until).boundingBox();
    clip = { x: 0, y: 0, width: 1280, height: Math.ceil(box.y + box.height + 16) };
  }
  await page.screenshot({ path: file, fullPage: true, clip });
  step(`screenshot ${file} (${fs.statSync(file).size} bytes)`);
}

/** A fresh tab signed in as `who`, on the jobs list. */
async function signedIn(browser, who) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problem(`${who}: page error: ${e.message}`));
  page.on('console', (m) => {
    // Chrome logs every 4xx answer to fetch; the refusals are expected.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      problem(`${who}: console error: ${m.text()}`);
    }
  });
  await page.goto(`${url}/`);
  check(page.url() === `${url}/ui/`, `/ redirects to /ui/ (at ${page.url()})`);
  await page.locator('#token').waitFor({ timeout: T });
  await page.fill('#token', tokens[who]);
  await page.click('#login-submit');
  await waitText(page, '[data-testid=who-name]', who);
  await page.locator('[data-testid=jobs] table').waitFor({ timeout: T });
  // The token is in this tab's session storage and nowhere else.
  const kept = await page.evaluate(() => ({
    session: Object.keys(sessionStorage),
    local: Object.keys(window.localStorage).length,
    cookie: document.cookie,
  }));
  check(kept.session.length === 1 && kept.local === 0 && kept.cookie === '',
    `token kept in sessionStorage only: ${JSON.stringify(kept)}`);
  return { ctx, page };
}

async function openJob(page, id) {
  await page.click(`a[href="#/jobs/${id}"]`);
  await waitText(page, '[data-testid=job-state]', '');
  await page.locator('[data-testid=timeline] li').first().waitFor({ timeout: T });
}

/** The API, as `who`, from node (to check what the page did). */
async function apiGet(who, p) {
  const r = await fetch(`${url}${p}`, { headers: { Authorization: `Bearer ${tokens[who]}` } });
  return r.json();
}

async function approveAndExpectRefusal(page, status, want) {
  await page.click('[data-testid=approve]');
  await waitText(page, '[data-testid=decision-result] [data-testid=api-error]', `HTTP ${status}`);
  await waitText(page, '[data-testid=decision-result] [data-testid=api-error-message]', want);
}

async function noInjectedMarkup(page, where) {
  const found = await page.evaluate(() => ({
    xss: window.__xss,
    imgs: document.querySelectorAll('#view img, #view script, #view iframe, #view i').length +
      [...document.querySelectorAll('#view b')].filter((b) => b.textContent === 'thanks').length,
  }));
  check(found.xss === undefined && found.imgs === 0,
    `${where}: untrusted text stayed text (window.__xss=${found.xss}, injected elements=${found.imgs})`);
}

async function r2Flow(browser) {
  step('alice (requester) signs in and sees the R2 action waiting');
  const alice = await signedIn(browser, 'alice');
  const row = alice.page.locator(`tr[data-job="${jobs.a}"]`);
  await row.waitFor({ timeout: T });
  check((await row.getAttribute('class')) === 'waiting', 'the waiting job is highlighted in the list');
  await waitText(alice.page, `tr[data-job="${jobs.a}"]`, 'kill -0 1');
  await shot(alice.page, 'approval-page-jobs.png', '[data-testid=jobs]');
  await openJob(alice.page, jobs.a);
  await waitText(alice.page, '[data-testid=pending-risk]', 'R2');
  await waitText(alice.page, '[data-testid=pending-rule]', 'signal-processes');
  await waitText(alice.page, '[data-testid=pending-command]', 'kill -0 1');
  await waitText(alice.page, '[data-testid=pending-rollback]', 'nothing to undo');
  await waitText(alice.page, '[data-testid=hint]', 'asked for this job');
  step('alice clicks approve and the API refusal is shown as it came');
  await approveAndExpectRefusal(alice.page, 403, 'has role requester; approving needs role approver or admin');
  await waitText(alice.page, '[data-testid=job-state]', 'waiting approval');
  await alice.ctx.close();

  step('bob (approver) approves with a comment; the live timeline shows the job finish');
  const bob = await signedIn(browser, 'bob');
  await openJob(bob.page, jobs.a);
  await waitText(bob.page, '[data-testid=pending-command]', 'kill -0 1');
  await waitText(bob.page, '[data-testid=live]', 'live');
  await bob.page.fill('[data-testid=comment]', 'signal 0 only checks that init exists');
  await shot(bob.page, 'approval-page-waiting.png', '#pending');
  await bob.page.click('[data-testid=approve]');
  await waitText(bob.page, '[data-testid=decision-ok]', 'Approved by bob');
  await bob.page.locator('[data-testid=timeline] li[data-type="approval.granted"]').waitFor({ timeout: T });
  await waitText(bob.page, '[data-testid=timeline] li[data-type="approval.granted"]', 'signal 0 only checks');
  await bob.page.locator('[data-testid=timeline] li[data-type="job.state"] .state-completed').waitFor({ timeout: T });
  await waitText(bob.page, '[data-testid=job-state]', 'completed');
  await waitText(bob.page, '[data-testid=live]', 'ended');
  await waitText(bob.page, '[data-testid=report]', 'Actions');
  await waitText(bob.page, '[data-testid=report]', 'bob');
  await shot(bob.page, 'approval-page-finished.png');
  const a = await apiGet('rita', `/agent/jobs/${jobs.a}`);
  check(a.state === 'completed', `job a completed: ${a.state}`);

  step('bob asked for the R3 job himself: his approval is refused');
  await bob.page.click('a[href="#/jobs"]');
  await openJob(bob.page, jobs.b);
  await waitText(bob.page, '[data-testid=pending-risk]', 'R3');
  await waitText(bob.page, '[data-testid=hint]', 'asked for this job');
  await approveAndExpectRefusal(bob.page, 403, 'asked for this job and may not approve its actions');
  await bob.ctx.close();
}

async function r3Flow(browser) {
  step('carol approves the R3 action first; the page shows her and waits for a second approver');
  const carol = await signedIn(browser, 'carol');
  await waitText(carol.page, `tr[data-job="${jobs.b}"]`, 'needs 2 approvals');
  await openJob(carol.page, jobs.b);
  await waitText(carol.page, '[data-testid=pending-command]', 'git push --force origin main');
  await waitText(carol.page, '[data-testid=approvals]', 'No approvals yet; 2 needed');
  await carol.page.fill('[data-testid=comment]', 'the branch was rewritten on purpose');
  await carol.page.click('[data-testid=approve]');
  await waitText(carol.page, '[data-testid=decision-ok]', '1 more approval(s) needed, from a different approver');
  await waitText(carol.page, '[data-testid=approved-by]', 'carol');
  await waitText(carol.page, '[data-testid=approvals]', 'waiting for 1 more approval from a different approver');
  await shot(carol.page, 'approval-page-r3.png', '#pending');
  step('carol approving again is refused');
  await approveAndExpectRefusal(carol.page, 403, 'has already approved this action');
  await waitText(carol.page, '[data-testid=job-state]', 'waiting approval');
  await carol.ctx.close();

  step('root, a different approver, sees who approved first and gives the second approval');
  const root = await signedIn(browser, 'root');
  await waitText(root.page, `tr[data-job="${jobs.b}"]`, 'approved by carol');
  await openJob(root.page, jobs.b);
  await waitText(root.page, '[data-testid=approved-by]', 'carol');
  await root.page.click('[data-testid=approve]');
  await waitText(root.page, '[data-testid=decision-ok]', 'Approved by root: the action has its approvals');
  await root.page.locator('[data-testid=timeline] li[data-type="job.state"] .state-completed').waitFor({ timeout: T });
  await waitText(root.page, '[data-testid=report]', 'carol, root');
  return root;
}

async function xssFlow(root) {
  step('a command, rollback and tool output with <script> and <img onerror> render as text');
  const page = root.page;
  await page.click('a[href="#/jobs"]');
  await waitText(page, `tr[data-job="${jobs.d}"] td.goal`, '<i>uptime</i>');
  await openJob(page, jobs.c);
  await waitText(page, '[data-testid=pending-command]', "<script>window.__xss=1</script>");
  await waitText(page, '[data-testid=pending-command]', '<img src=x onerror=window.__xss=2>');
  await waitText(page, '[data-testid=pending-rollback]', '<img src=x onerror="window.__xss=4">');
  await waitText(page, '[data-testid=pending-arguments]', '<script>');
  await noInjectedMarkup(page, 'the waiting action');
  step('root rejects it with a comment that is markup too');
  await page.fill('[data-testid=comment]', 'no <b>thanks</b> <img src=x onerror=window.__xss=5>');
  await page.click('[data-testid=reject]');
  await waitText(page, '[data-testid=decision-ok]', 'Rejected by root');
  await waitText(page, '[data-testid=timeline] li[data-type="approval.rejected"]', 'no <b>thanks</b>');
  await page.locator('[data-testid=timeline] li[data-type="job.state"] .state-completed').waitFor({ timeout: T });
  await noInjectedMarkup(page, 'the rejected action');
  await page.click('a[href="#/jobs"]');
  await openJob(page, jobs.d);
  await waitText(page, '[data-testid=job-goal]', '<i>uptime</i>');
  await waitText(page, '[data-testid=timeline] [data-testid=event-output]', '<img src=x onerror=window.__xss=3>');
  await waitText(page, '[data-testid=report]', '<script>window.__xss=6</script>');
  await noInjectedMarkup(page, 'tool output and the report');
  await root.ctx.close();
}

async function resumeFlow(browser) {
  step('the timeline resumes with Last-Event-ID after its stream drops');
  const rita = await signedIn(browser, 'rita');
  const seen = [];
  let first = true;
  await rita.page.route('**/agent/jobs/*/events', async (route) => {
    seen.push(route.request().headers()['last-event-id'] || null);
    if (!first) return route.continue();
    first = false;
    // The real stream of the finished job, cut after three events.
    const resp = await route.fetch();
    const body = (await resp.text()).split('\n\n').slice(0, 3).join('\n\n') + '\n\n';
    return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
  });
  await openJob(rita.page, jobs.d);
  await waitText(rita.page, '[data-testid=live]', 'ended');
  const stored = (await (await fetch(`${url}/agent/jobs/${jobs.d}/events`, {
    headers: { Authorization: `Bearer ${tokens.rita}`, Accept: 'application/json' },
  })).json()).events.map((e) => e.seq);
  const shown = await rita.page.$$eval('[data-testid=timeline] li', (l) => l.map((x) => Number(x.dataset.seq)));
  check(JSON.stringify(seen.slice(0, 2)) === JSON.stringify([null, '3']), `requests' Last-Event-ID: ${JSON.stringify(seen)}`);
  check(JSON.stringify(shown) === JSON.stringify(stored), `every event once, in order: shown ${shown}, stored ${stored}`);
  check(await rita.page.locator('[data-testid=approve]').count() === 0, 'a finished job offers no approval');
  await rita.ctx.close();
}

async function originFlow(browser) {
  step("another site's page cannot send state-changing requests to the runner");
  const target = `${url}/agent/jobs/${jobs.a}/cancel`;
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><form id=f method=post enctype="text/plain" action="${target}"><input name=x value=y></form>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await page.goto(`http://127.0.0.1:${evil.address().port}/`);
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url() === target, { timeout: T }),
      page.evaluate(() => document.getElementById('f').submit()),
    ]);
    const body = await resp.text();
    check(resp.status() === 403 && body.includes('origin_refused'), `cross-site POST refused: ${resp.status()} ${body}`);
    const sent = (await resp.request().allHeaders()).origin;
    check(sent === `http://127.0.0.1:${evil.address().port}`, `the browser sent its Origin (${sent})`);
  } finally {
    await ctx.close();
    evil.close();
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.HWC_CHROMIUM,
    args: ['--no-sandbox'],
  });
  try {
    await r2Flow(browser);
    const root = await r3Flow(browser);
    await xssFlow(root);
    await resumeFlow(browser);
    await originFlow(browser);
    check(problems.length === 0, `no page or console errors:\n${problems.join('\n')}`);
    step('all flows passed');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  process.stderr.write(`page: FAILED: ${e.stack || e}\n`);
  process.exit(1);
});
