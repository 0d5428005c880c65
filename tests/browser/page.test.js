#!/usr/bin/env node
// page.test.js - the page at GET / in a real browser: Debian's headless chromium driven by
// playwright-core (npm, no bundled browser), against the real gru-serve on a free loopback port.
//
// Environment (tests/browser.cmake sets them):
//   GRU_SERVE         gru-serve binary                 GRU_MODELS   the shipped models directory
//   GRU_PYTHON        python3 with numpy (only to make tiny stand-in models when none are shipped)
//   GRU_BROWSER_OUT   where the screenshots go (default: ./browser-out)
//   GRU_CHROMIUM      the browser (default /usr/bin/chromium)
// Exit status: 0 all passed, 1 a check failed, 77 skipped (no chromium, no node_modules, no models).
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const SKIP = 77;
const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const CHROMIUM = process.env.GRU_CHROMIUM || '/usr/bin/chromium';
const GRU_SERVE = process.env.GRU_SERVE || path.join(ROOT, 'build', 'server', 'gru-serve');
const GRU_MODELS = process.env.GRU_MODELS || path.join(ROOT, 'models');
const GRU_PYTHON = process.env.GRU_PYTHON || 'python3';
const OUT = path.resolve(process.env.GRU_BROWSER_OUT || 'browser-out');
const TIMEOUT = 20000;

const EN_TEXT = 'the food was cold but the staff were lovely';
const ZH_TEXT = '我上周去北京玩了';

function skip(why) {
  console.log('SKIP: ' + why);
  process.exit(SKIP);
}

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  skip('playwright-core is not installed: run `npm ci` in tests/browser (make test does)');
}
if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' is missing: apt-get install chromium (tools/install-deps.sh test)');
if (!fs.existsSync(GRU_SERVE)) skip(GRU_SERVE + ' is not built');

/* ---------- checks ---------- */
let passed = 0;
let failed = 0;
function check(cond, what, detail) {
  if (cond) {
    passed++;
    console.log('ok   ' + what);
  } else {
    failed++;
    console.log('FAIL ' + what + (detail !== undefined ? ': ' + (typeof detail === 'string' ? detail : JSON.stringify(detail)) : ''));
  }
  return cond;
}

/* ---------- models ---------- */
function modelDirs(root) {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).sort().map((d) => path.join(root, d))
    .filter((d) => fs.existsSync(path.join(d, 'config.json')))
    .map((dir) => ({ dir, name: path.basename(dir), cfg: JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) }));
}
function pickModels() {
  const shipped = modelDirs(GRU_MODELS);
  let en = shipped.find((m) => m.cfg.tokenizer && m.cfg.tokenizer.kind === 'word');
  let zh = shipped.find((m) => m.cfg.tokenizer && m.cfg.tokenizer.kind === 'char');
  if (en && zh) return { en, zh };
  // A language without a shipped model (yet): a small random stand-in from tests/e2e/tiny_model.py.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gru-browser-models-'));
  const code = 'import sys; sys.path.insert(0, sys.argv[1]); import tiny_model as t; ' +
    't.write(sys.argv[2] + "/tiny-en", "word", hidden=24, seed=1, languages=["en"]); ' +
    't.write(sys.argv[2] + "/tiny-zh", "char", hidden=16, layers=2, seed=2, languages=["zh"])';
  const r = spawnSync(GRU_PYTHON, ['-c', code, path.join(ROOT, 'tests', 'e2e'), tmp], { encoding: 'utf8' });
  if (r.status !== 0) skip('no shipped ' + (en ? 'Chinese' : 'English') + ' model in ' + GRU_MODELS + ', and no stand-in: ' + (r.stderr || r.error));
  const tiny = modelDirs(tmp);
  if (!en) { en = tiny[0]; console.log('note: no shipped English (word) model in ' + GRU_MODELS + ': using a tiny random stand-in'); }
  if (!zh) { zh = tiny[1]; console.log('note: no shipped Chinese (char) model in ' + GRU_MODELS + ': using a tiny random stand-in'); }
  return { en, zh, tmp };
}

/* ---------- the server ---------- */
function startServer(models, extra) {
  return new Promise((resolve, reject) => {
    const args = ['--host', '127.0.0.1', '--port', '0', '--http-threads', '2', '--workers', '1'].concat(extra || []);
    for (const m of models) args.push('--model', m.name + '=' + m.dir);
    const proc = spawn(GRU_SERVE, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
    let log = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('gru-serve did not start:\n' + log)); }, 15000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on \S+ port (\d+)/.exec(log);
      if (m && !proc.port) {
        proc.port = Number(m[1]);
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); if (!proc.port) reject(new Error('gru-serve exited (' + code + '):\n' + log)); });
    proc.log = () => log;
  });
}
function request(port, method, p, body, headers) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...(headers || {}) };
    if (data) { h['Content-Type'] = 'application/json'; h['Content-Length'] = data.length; }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, timeout: 30000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    if (data) req.write(data);
    req.end();
  });
}
async function apiJson(port, body, route) {
  const r = await request(port, 'POST', route || '/v1/sentiment', body);
  return JSON.parse(r.body.toString('utf8'));
}
async function waitReady(port) {
  for (let i = 0; i < 500; i++) {
    try { if ((await request(port, 'GET', '/readyz')).status === 200) return; } catch (e) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('gru-serve never became ready');
}

/* ---------- page helpers ---------- */
async function analyzeWith(page, { text, model, how }) {
  const before = await page.getAttribute('body', 'data-done');
  if (model !== undefined) await page.selectOption('#model', model);
  await page.fill('#text', text);
  if (how === 'click') await page.click('#analyze');
  else await page.press('#text', 'Enter');
  await page.waitForFunction((b) => document.body.dataset.done !== b && document.body.dataset.state !== 'loading', before, { timeout: TIMEOUT });
  return page.getAttribute('body', 'data-state');
}
function saturationOrder(full, gi, gate, min) {
  const M = full.gates[gi][gate], n = M.length, H = M[0].length, bounded = gate === 'reset' || gate === 'update';
  const units = [];
  for (let u = 0; u < H; u++) {
    let k = 0;
    for (let t = 0; t < n; t++) { const v = M[t][u]; if (bounded ? v < 0.1 || v > 0.9 : Math.abs(v) > 0.9) k++; }
    units.push({ u, sat: k / n });
  }
  return units.filter((x) => x.sat >= min - 1e-9).sort((a, b) => b.sat - a.sat || a.u - b.u).map((x) => x.u);
}

/* Checks one analyzed text against the API's own answer for the same request. */
async function checkResult(page, port, text, model, tag) {
  const api = await apiJson(port, { text, model, gates: 'summary', trajectory: true });
  const cols = await page.$$eval('#heatmap .tok-col', (els) => els.map((e) => e.querySelector('.tok').textContent));
  check(cols.length === api.tokens.length, tag + ': one heatmap column per token (' + api.tokens.length + ')', { page: cols.length, api: api.tokens.length });
  check(JSON.stringify(cols) === JSON.stringify(api.tokens), tag + ': the columns are the API tokens in order', { page: cols, api: api.tokens });
  const cellsPerCol = await page.$$eval('#heatmap .tok-col', (els) => els.map((e) => e.querySelectorAll('.cell').length));
  check(cellsPerCol.every((c) => c === 2 * api.gates.length), tag + ': each column has mean reset and mean update rows for every layer and direction', cellsPerCol);
  const first = await page.$$eval('#heatmap .tok-col:first-of-type .cell', (els) => els.map((e) => e.textContent));
  check(first[0] === api.gates[0].reset[0].toFixed(2) && first[1] === api.gates[0].update[0].toFixed(2),
    tag + ': the first column shows the API\'s mean r and z', { page: first, api: [api.gates[0].reset[0], api.gates[0].update[0]] });
  const label = (await page.textContent('#label')).trim();
  check(label === api.label, tag + ': the label is shown (' + api.label + ')', label);
  const probs = await page.textContent('#probs');
  check(Object.values(api.probabilities).every((p) => probs.includes(p.toFixed(3))), tag + ': every probability is shown', probs);
  const lines = await page.$$eval('#trajectory svg.traj path.traj-line', (els) => els.map((e) => ({ n: Number(e.dataset.points), d: e.getAttribute('d') })));
  if (Array.isArray(api.trajectory)) {
    check(lines.length === Object.keys(api.probabilities).length && lines.every((l) => l.n === api.tokens.length && (l.d.match(/[ML]/g) || []).length === api.tokens.length),
      tag + ': the trajectory is drawn, one line per label through every token', lines.map((l) => l.n));
  }
  return api;
}

/* The attributions of an analyzed text against POST /v1/explain: the signed row under the
 * heatmap, the top tokens in words, the original text highlighted by offsets, and a click on a
 * token drawing the trajectory without it. */
async function checkExplain(page, port, text, model, tag, withoutWord) {
  await page.waitForFunction(() => document.body.dataset.explain !== 'loading', null, { timeout: TIMEOUT });
  const ex = await apiJson(port, { text, model, gates: 'none', trajectory: true, truncate: true }, '/v1/explain');
  check((await page.getAttribute('body', 'data-explain')) === 'done', tag + ': the page asked /v1/explain');
  const cells = await page.$$eval('#heatmap .tok-col .acell', (els) => els.map((e) => [Number(e.dataset.delta), e.textContent]));
  check(cells.length === ex.attributions.length && cells.every((c, i) => Math.abs(c[0] - ex.attributions[i].delta) < 1e-6 &&
      c[1].replace('−', '-').replace('+', '') === ex.attributions[i].delta.toFixed(2).replace('-0.00', '0.00').replace(/^0\.00$/, '0.00') ||
      Math.abs(Number(c[1].replace('−', '-')) - ex.attributions[i].delta) < 0.006),
    tag + ': one attribution cell per token with the API\'s delta (signed)', { page: cells.slice(0, 4), api: ex.attributions.slice(0, 4).map((a) => a.delta) });
  const colours = await page.$$eval('#heatmap .tok-col .acell', (els) => els.map((e) => e.style.backgroundColor));
  const top = ex.ranking[0], bottomSign = ex.attributions.find((a) => Math.sign(a.delta) !== Math.sign(ex.attributions[top].delta));
  check(!bottomSign || colours[top] !== colours[bottomSign.index], tag + ': opposite effects get different colours');
  const why = await page.$$eval('#why li', (els) => els.map((e) => e.textContent));
  const a0 = ex.attributions[top];
  check(why.length >= 1 && why[0].includes(withoutWord) && why[0].includes(a0.token) &&
      why[0].includes(ex.probabilities[ex.target].toFixed(2) + ' → ' + a0.p_without.toFixed(2)),
    tag + ': the top token in words (' + withoutWord + ' ' + a0.token + ': ' + ex.target + ' ' + ex.probabilities[ex.target].toFixed(2) + ' → ' + a0.p_without.toFixed(2) + ')', why);
  const spans = await page.$$eval('#orig .tk', (els) => els.map((e) => [Number(e.dataset.i), e.textContent]));
  const cps = Array.from(text);
  check(spans.length === ex.offsets.length && spans.every(([i, s]) => s === cps.slice(ex.offsets[i][0], ex.offsets[i][1]).join('')),
    tag + ': the original text is highlighted token by token through the offsets', spans.slice(0, 5));
  await page.click('#heatmap .tok-col[data-i="' + top + '"]');
  const wo = await page.$eval('#trajectory path.traj-without', (e) => [e.dataset.without, Number(e.dataset.points)]).catch(() => null);
  if (Array.isArray(ex.trajectory)) {
    check(wo && wo[0] === String(top) && wo[1] === ex.tokens.length - 1, tag + ': a click on a token draws the trajectory without it', wo);
    const lines = await page.$$('#trajectory svg.traj path.traj-line');
    check(lines.length === Object.keys(ex.probabilities).length, tag + ': over the original trajectory', lines.length);
  }
  const sel = await page.$$eval('#orig .tk.sel', (els) => els.map((e) => e.dataset.i));
  check(sel.length === 1 && sel[0] === String(top), tag + ': the selected token is highlighted in the original text', sel);
  const insp = await page.textContent('#inspector');
  check(insp.includes(a0.p_without.toFixed(3)), tag + ': the inspector says the probability without the token', insp.slice(-160));
  return ex;
}

/* ---------- the test ---------- */
async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const models = pickModels();
  const server = await startServer([models.en, models.zh]);
  const port = server.port;
  const base = 'http://127.0.0.1:' + port;
  let context;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gru-chromium-'));
  try {
    await waitReady(port);

    // The route itself: headers, ETag revalidation, /index.html, HEAD.
    const page0 = await request(port, 'GET', '/');
    const srcBytes = fs.readFileSync(path.join(ROOT, 'web', 'index.html'));
    check(page0.status === 200 && page0.headers['content-type'] === 'text/html; charset=utf-8', 'GET / is text/html; charset=utf-8', [page0.status, page0.headers['content-type']]);
    check(Buffer.compare(page0.body, srcBytes) === 0, 'GET / serves web/index.html byte for byte');
    const csp = page0.headers['content-security-policy'] || '';
    check(/default-src 'none'/.test(csp) && /script-src 'sha256-[A-Za-z0-9+/]+=*'/.test(csp) && /connect-src 'self'/.test(csp) && !/unsafe/.test(csp),
      'a strict Content-Security-Policy (hashes, no unsafe-inline)', csp);
    check(page0.headers['cache-control'] === 'no-cache' && /^"[0-9a-f]{16}"$/.test(page0.headers.etag || ''), 'Cache-Control no-cache with a strong ETag', [page0.headers['cache-control'], page0.headers.etag]);
    const again = await request(port, 'GET', '/index.html', undefined, { 'If-None-Match': page0.headers.etag });
    check(again.status === 304 && again.body.length === 0, 'If-None-Match with the ETag answers 304', again.status);
    const head = await request(port, 'HEAD', '/');
    check(head.status === 200 && head.body.length === 0, 'HEAD / answers 200 without a body', head.status);
    check(!/https?:\/\/(?!127\.0\.0\.1)/.test(srcBytes.toString('utf8').replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')), 'the page names no external URL');

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-quic'],
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      colorScheme: 'light',
      locale: 'en-US',
    });
    const page = context.pages()[0] || (await context.newPage());
    const problems = [];
    const foreign = [];
    context.on('console', (m) => {
      // The browser itself logs every non-2xx fetch: the 422 (empty text) and 401 (no key) steps.
      if (/^Failed to load resource: .* status of (422|401)\b/.test(m.text())) return;
      if (m.type() === 'error' || m.type() === 'warning') problems.push('console ' + m.type() + ': ' + m.text());
    });
    context.on('weberror', (e) => problems.push('page error: ' + e.error().message));
    context.on('request', (r) => { if (!r.url().startsWith('http://127.0.0.1:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));
    });

    await page.goto(base + '/', { waitUntil: 'load' });
    await page.waitForFunction(() => document.body.dataset.models, null, { timeout: TIMEOUT });
    const options = await page.$$eval('#model option', (els) => els.map((e) => e.value));
    const listed = JSON.parse((await request(port, 'GET', '/v1/models')).body.toString()).models.map((m) => m.name);
    check(JSON.stringify(options) === JSON.stringify(['auto'].concat(listed)), 'the model picker lists "auto", then GET /v1/models', { options, listed });
    check((await page.$eval('#model', (e) => e.value)) === 'auto', '"auto" is selected by default');

    // English, analyzed with Enter in the text box.
    let state = await analyzeWith(page, { text: EN_TEXT, model: models.en.name, how: 'enter' });
    check(state === 'done', 'English: Enter in the text box analyzes', state);
    const en = await checkResult(page, port, EN_TEXT, models.en.name, 'English');
    const raw = JSON.parse(await page.textContent('#raw-json'));
    check(JSON.stringify(raw) === JSON.stringify(en), 'the page shows the API answer it used, unchanged');
    check((await page.textContent('#raw-curl')).startsWith("curl -s 'http://127.0.0.1:" + port + "/v1/sentiment'"), 'the page shows the equivalent curl command');

    // Keyboard: Tab from the Analyze button reaches the token columns; arrows move; the inspector follows.
    await page.focus('#analyze');
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => !!(document.activeElement && document.activeElement.classList.contains('tok-col')));
    }
    check(reached, 'Tab reaches the token columns');
    await page.keyboard.press('ArrowRight');
    const focusedIdx = await page.evaluate(() => document.activeElement.dataset.i);
    const insp = await page.textContent('#inspector');
    check(focusedIdx === '1' && insp.includes('Token 2 of ' + en.tokens.length) && insp.includes(en.tokens[1]), 'ArrowRight moves to the next token and the inspector shows its numbers', [focusedIdx, insp.slice(0, 80)]);
    check(insp.includes(en.gates[0].reset[1].toFixed(3)) && insp.includes(en.gates[0].update[1].toFixed(3)), 'the inspector shows the token\'s r and z', insp.slice(0, 200));

    // Hover shows a token's numbers too (focus elsewhere, so the screenshot shows one selection).
    await page.evaluate(() => document.activeElement.blur());
    const hoverIdx = Math.min(3, en.tokens.length - 1);
    await page.hover('#heatmap .tok-col[data-i="' + hoverIdx + '"]');
    const insp2 = await page.textContent('#inspector');
    check(insp2.includes('Token ' + (hoverIdx + 1) + ' of'), 'hovering a column shows that token', insp2.slice(0, 80));
    await checkExplain(page, port, EN_TEXT, models.en.name, 'English', 'without');
    await page.screenshot({ path: path.join(OUT, 'desktop-en.png'), fullPage: true });

    // The colour scale can be stretched to the text's own range; the columns stay.
    await page.check('#stretch');
    const lo = await page.textContent('#ramp-lo');
    const allVals = en.gates.flatMap((g) => g.reset.concat(g.update));
    check(lo.startsWith(Math.min(...allVals).toFixed(2)) && (await page.$$('#heatmap .tok-col')).length === en.tokens.length,
      'stretching the colours relabels the legend with the text\'s lowest value', lo);
    await page.uncheck('#stretch');

    // Full matrices on demand, filtered and sorted by saturation.
    await page.click('#full summary');
    await page.waitForFunction(() => document.body.dataset.full === 'done' || document.body.dataset.full === 'error', null, { timeout: TIMEOUT });
    const full = await apiJson(port, { text: EN_TEXT, model: models.en.name, gates: 'full' });
    const H = full.gates[0].update[0].length;
    let units = await page.getAttribute('#matrix', 'data-units');
    check(units === String(H), 'full matrices: every hidden unit shown by default (' + H + ')', units);
    check((await page.getAttribute('#matrix', 'data-tokens')) === String(en.tokens.length), 'full matrices: one column per token');
    await page.selectOption('#m-sort', 'sat-desc');
    // The threshold that keeps closest to half of the units (0 when every unit is alike).
    let min = 0;
    let best = H;
    for (let m = 5; m <= 100; m += 5) {
      const k = saturationOrder(full, 0, 'update', m / 100).length;
      if (k > 0 && k < H && Math.abs(k - H / 2) < best) { best = Math.abs(k - H / 2); min = m; }
    }
    await page.$eval('#m-min', (e, v) => { e.value = String(v); e.dispatchEvent(new Event('input', { bubbles: true })); }, min);
    const want = saturationOrder(full, 0, 'update', min / 100);
    const order = await page.getAttribute('#matrix', 'data-order');
    check(order === want.join(','), 'full matrices: units with saturation >= ' + min + '% (' + want.length + ' of ' + H + '), most saturated first, as computed from the API',
      { page: order, want: want.join(',') });
    await page.check('input[name=m-gate][value=reset]');
    const wantR = saturationOrder(full, 0, 'reset', min / 100);
    check((await page.getAttribute('#matrix', 'data-order')) === wantR.join(','), 'full matrices: switching to the reset gate re-filters');
    await page.$eval('#m-min', (e) => { e.value = '0'; e.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.check('input[name=m-gate][value=update]');
    await page.focus('#matrix');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    const ro = await page.textContent('#m-readout');
    check(/^Unit \d+, token 2 /.test(ro), 'full matrices: the arrow keys read values', ro);
    await page.screenshot({ path: path.join(OUT, 'desktop-en-full.png'), fullPage: true });

    // Chinese, analyzed with the button; the open full panel follows the new text.
    state = await analyzeWith(page, { text: ZH_TEXT, model: models.zh.name, how: 'click' });
    check(state === 'done', 'Chinese: the Analyze button analyzes', state);
    const zh = await checkResult(page, port, ZH_TEXT, models.zh.name, 'Chinese');
    await page.waitForFunction((n) => document.querySelector('#matrix').dataset.tokens === String(n), zh.tokens.length, { timeout: TIMEOUT }).catch(() => {});
    check((await page.getAttribute('#matrix', 'data-tokens')) === String(zh.tokens.length), 'Chinese: the open full panel reloads for the new text');
    const cjk = spawnSync('fc-list', [':lang=zh', 'family'], { encoding: 'utf8' });
    if (!cjk.stdout || !cjk.stdout.trim()) console.log('note: no Chinese font installed (fonts-noto-cjk): the screenshots show boxes for the Chinese text');
    await page.hover('#heatmap .tok-col[data-i="' + (zh.tokens.length - 1) + '"]');
    await page.screenshot({ path: path.join(OUT, 'desktop-zh.png'), fullPage: true });
    // "auto": the server picks the model by the text's language; the page says which one answered.
    const autoApi = await apiJson(port, { text: ZH_TEXT, model: 'auto' });
    state = await analyzeWith(page, { text: ZH_TEXT, model: 'auto', how: 'enter' });
    const autoMeta = await page.textContent('#pred-meta');
    check(state === 'done' && autoMeta.includes('model ' + autoApi.model + ' (chosen by language)'),
      'auto: the page names the model the server chose (' + autoApi.model + ')', autoMeta);
    await checkResult(page, port, ZH_TEXT, autoApi.model, 'auto');
    check((await page.textContent('#raw-curl')).includes('"model":"auto"'), 'auto: the curl command asks for "auto"');
    // Unknown tokens: Chinese read by the English model; the count is shown, and a notice when
    // the model knew none of the tokens.
    const unkApi = await apiJson(port, { text: ZH_TEXT, model: models.en.name });
    state = await analyzeWith(page, { text: ZH_TEXT, model: models.en.name, how: 'enter' });
    const unkMeta = await page.textContent('#pred-meta');
    check(state === 'done' && Number.isInteger(unkApi.unknown_tokens) &&
      (unkApi.unknown_tokens ? unkMeta.includes('(' + unkApi.unknown_tokens + ' unknown to the model)') : !unkMeta.includes('unknown')),
      'unknown tokens: the page shows the API\'s count (' + unkApi.unknown_tokens + ')', unkMeta);
    const allUnknown = unkApi.unknown_tokens === unkApi.tokens.length;
    check((await page.isVisible('#unknown')) === allUnknown, 'unknown tokens: the notice shows exactly when no token was known (' + allUnknown + ')');
    const marked = await page.$$eval('#heatmap .tok.unk', (els) => els.length);
    check(marked === unkApi.unknown_tokens, 'unknown tokens: each one is marked in the heatmap', marked);

    // An API error is shown, not swallowed: empty text -> 422 empty_text.
    const apiErr = JSON.parse((await request(port, 'POST', '/v1/sentiment', { text: '' })).body.toString()).error;
    state = await analyzeWith(page, { text: '', how: 'enter' });
    const errBox = await page.$('#error');
    const errText = errBox ? await errBox.textContent() : '';
    check(state === 'error' && (await errBox.isVisible()) && errText.includes('422') && errText.includes(apiErr.code) && errText.includes(apiErr.message),
      'an API error is shown: HTTP 422 ' + apiErr.code + ' with its message', errText);
    check(await page.$eval('#results', (e) => e.hidden), 'no stale result is left next to the error');
    await page.screenshot({ path: path.join(OUT, 'desktop-error.png'), fullPage: false });

    // 375 px: readable, no page-wide horizontal scrolling (the token strip scrolls by itself).
    await page.setViewportSize({ width: 375, height: 812 });
    state = await analyzeWith(page, { text: EN_TEXT, model: models.en.name, how: 'enter' });
    if (await page.$eval('#full', (e) => e.open)) await page.click('#full summary');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(state === 'done' && overflow <= 0, '375 px: the page does not scroll sideways', overflow);
    const small = await page.evaluate(() => {
      const fs = [...document.querySelectorAll('#heatmap .tok, #label, #probs span, #inspector p')].map((e) => parseFloat(getComputedStyle(e).fontSize));
      return Math.min(...fs);
    });
    check(small >= 12, '375 px: text stays at least 12 px', small);
    await page.focus('#heatmap .tok-col[data-i="1"]');
    await page.screenshot({ path: path.join(OUT, 'mobile-375.png'), fullPage: true });
    state = await analyzeWith(page, { text: ZH_TEXT, model: models.zh.name, how: 'click' });
    await page.screenshot({ path: path.join(OUT, 'mobile-375-zh.png'), fullPage: true });
    await page.click('#full summary');
    await page.waitForFunction(() => document.body.dataset.full === 'done', null, { timeout: TIMEOUT });
    const mOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(mOverflow <= 0, '375 px: the full matrices do not widen the page', mOverflow);
    await page.screenshot({ path: path.join(OUT, 'mobile-375-full.png'), fullPage: true });

    // A server with an API key: the page itself is public; the API's 401 is shown, and the key
    // typed into the page unlocks it.
    const keyed = await startServer([models.en], ['--api-key', 'browser-test-key']);
    try {
      await waitReady(keyed.port);
      const page2 = await context.newPage();
      await page2.setViewportSize({ width: 1280, height: 900 });
      await page2.goto('http://127.0.0.1:' + keyed.port + '/');
      await page2.waitForFunction(() => document.body.dataset.models, null, { timeout: TIMEOUT });
      const e401 = await page2.textContent('#error');
      check((await page2.getAttribute('body', 'data-models')) === 'error' && e401.includes('401') && e401.includes('unauthorized') && (await page2.$eval('#auth', (e) => e.open)),
        'with --api-key: the 401 is shown and the API key field opens', e401);
      await page2.fill('#apikey', 'browser-test-key');
      await page2.press('#apikey', 'Tab');
      await page2.waitForFunction(() => document.body.dataset.models === 'ready', null, { timeout: TIMEOUT });
      state = await analyzeWith(page2, { text: EN_TEXT, how: 'enter' });
      check(state === 'done' && (await page2.$$('#heatmap .tok-col')).length === en.tokens.length, 'with the key typed in, the page analyzes');
      await page2.close();
    } finally {
      keyed.kill('SIGTERM');
    }

    // Chinese labels: a browser whose language is Chinese gets the page in Chinese; the switch
    // turns every label to English and back.
    const zhBrowser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    try {
      const zctx = await zhBrowser.newContext({ locale: 'zh-CN', viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
      zctx.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push('zh console ' + m.type() + ': ' + m.text()); });
      zctx.on('weberror', (e) => problems.push('zh page error: ' + e.error().message));
      const zp = await zctx.newPage();
      await zp.goto(base + '/', { waitUntil: 'load' });
      await zp.waitForFunction(() => document.body.dataset.models, null, { timeout: TIMEOUT });
      const zlabels = await zp.evaluate(() => [document.body.dataset.lang, document.documentElement.lang, document.querySelector('h1').textContent,
        document.querySelector('#analyze').textContent, document.querySelector('#pred-h').textContent, document.querySelector('#lang').value]);
      check(zlabels[0] === 'zh' && zlabels[1] === 'zh-CN' && /[\u4e00-\u9fff]/.test(zlabels[2]) && zlabels[3] === '分析' && zlabels[4] === '预测' && zlabels[5] === 'zh',
        'Chinese browser: the page starts in Chinese', zlabels);
      state = await analyzeWith(zp, { text: ZH_TEXT, model: models.zh.name, how: 'enter' });
      check(state === 'done', 'Chinese browser: the analysis runs', state);
      await checkExplain(zp, port, ZH_TEXT, models.zh.name, 'Chinese page', '去掉');
      const zt = await zp.evaluate(() => [document.querySelector('#why h3').textContent, document.querySelector('#attr-hint').textContent,
        document.querySelector('#score').textContent, document.querySelector('#pred-meta').textContent, document.querySelector('#heatmap .h-attr').textContent,
        document.querySelector('#legend li').textContent]);
      check(zt[0] === '逐一去除：对 p(' + JSON.parse((await request(port, 'POST', '/v1/explain', { text: ZH_TEXT, model: models.zh.name })).body.toString()).target + ') 影响最大的词元' && zt[1].includes('去掉它') && zt[2].startsWith('概率') && zt[3].includes('个词元') && zt[4].startsWith('去掉它') && zt[5].includes('更新门'),
        'Chinese browser: the labels and explanations are Chinese', zt);
      // No English sentence left in the visible labels of the prediction and the strip.
      const leftovers = await zp.evaluate(() => [...document.querySelectorAll('#pred-card h2, #pred-card h3, #results h2, #results .hint, #results .ramp-ticks, #inspector p, #form label, #form .hint')]
        .map((e) => e.textContent).filter((x) => /\b(the|token|tokens|without|probability|Analyze|Model|Text)\b/.test(x)));
      check(leftovers.length === 0, 'Chinese browser: no English label left', leftovers);
      await zp.screenshot({ path: path.join(OUT, 'desktop-zh-labels.png'), fullPage: true });
      await zp.selectOption('#lang', 'en');
      const back = await zp.evaluate(() => [document.querySelector('h1').textContent, document.querySelector('#analyze').textContent,
        document.querySelector('#why h3').textContent, document.documentElement.lang]);
      check(back[0] === "What the GRU's gates do, token by token" && back[1] === 'Analyze' && back[2].startsWith('Leave one out') && back[3] === 'en',
        'the switch turns the page to English (static and computed labels)', back);
      await zp.selectOption('#lang', 'zh');
      check((await zp.textContent('#analyze')) === '分析', 'and back to Chinese');
      await zctx.close();
    } finally {
      await zhBrowser.close();
    }

    check(problems.length === 0, 'no console errors, page errors or CSP violations', problems);
    check(foreign.length === 0, 'the page loads nothing from elsewhere', foreign);
    console.log('screenshots: ' + OUT);
  } finally {
    if (context) await context.close().catch(() => {});
    server.kill('SIGTERM');
    await new Promise((r) => { server.once('exit', r); setTimeout(r, 5000); });
    fs.rmSync(userDataDir, { recursive: true, force: true });
    if (models.tmp) fs.rmSync(models.tmp, { recursive: true, force: true });
  }
}

main().then(() => {
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
}, (e) => {
  console.log('FAIL ' + (e && e.stack || e));
  console.log(passed + ' passed, ' + (failed + 1) + ' failed');
  process.exit(1);
});
