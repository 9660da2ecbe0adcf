// tests/js/dash.mjs BASE_URL SCREENSHOT.png — the dashboard of a running
// `dormant serve` (models "tiny": a synthetic model, "broken": a file that
// is not GGUF under a directory whose name holds markup; its checks run with
// DASH_BROKEN=1) in Debian's
// headless Chromium, driven by the pinned playwright-core.  Run by
// tests/test_dash.c; exits non-zero with a message on the first failure.
// With DASH_DEMO=1 it also makes a few more loads so that the screenshot
// (`make dashboard-shot`) shows a busier timeline.
import { chromium } from 'playwright-core';

const [base, shot] = process.argv.slice(2);
const fail = (msg) => { console.error('dash.mjs: ' + msg); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T = 30000;

async function api(path, body) {
  const r = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) fail(path + ' -> ' + r.status + ' ' + JSON.stringify(j));
  return j;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let step = 'start';
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const dialogs = [], problems = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // (a failed fetch is logged too: the broken model's load answers 500)
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push('console: ' + m.text());
  });

  step = 'open the page, events live';
  await page.goto(base + '/?window=1', { waitUntil: 'load' });
  await page.waitForSelector('#conn[data-mode="live"]', { timeout: T });
  await page.waitForSelector('.card[data-model="tiny"][data-state="dormant"]', { timeout: T });

  step = 'a keep_alive 0 request from outside the page';
  const gen = await api('/api/generate', { model: 'tiny', prompt: 'hello', stream: false, keep_alive: 0, options: { num_predict: 8 } });
  if (!gen.done) fail('generate did not finish');
  await page.waitForFunction(() => {
    const h = window.dormantDash.history('tiny').join(' ');
    return /dormant loading ready( unloading)? dormant/.test(h);
  }, null, { timeout: T });
  const hist = await page.$eval('.card[data-model="tiny"]', (c) => c.dataset.history);
  if (!/^dormant loading ready unloading dormant/.test(hist)) fail('card history: ' + hist);
  await page.waitForSelector('#chart g.marker[data-kind="load"][data-model="tiny"]', { timeout: T });
  await page.waitForSelector('#chart g.marker[data-kind="unload"][data-model="tiny"]', { timeout: T });
  const label = await page.$eval('#chart g.marker[data-kind="load"] title', (t) => t.textContent);
  if (!/^tiny loaded \d/.test(label)) fail('load marker label: ' + label);

  step = 'the timeline rises with the load and returns after the unload';
  const { marks, samples } = await page.evaluate(() => ({ marks: window.dormantDash.marks(), samples: window.dormantDash.samples() }));
  const m = (to) => marks.find((x) => x.model === 'tiny' && x.to === to);
  const loading = m('loading'), ready = m('ready'), dormant = marks.filter((x) => x.model === 'tiny' && x.to === 'dormant').pop();
  if (!loading || !ready || !dormant) fail('lifecycle marks missing: ' + JSON.stringify(marks));
  const at = (t) => samples.filter((s) => s.t <= t + 1e-6).pop();
  const base0 = at(loading.t).rss;
  const peak = Math.max(...samples.filter((s) => s.t >= loading.t && s.t <= dormant.t).map((s) => s.rss));
  const after = at(dormant.t).rss;
  const MiB = 1048576;
  console.log(`timeline: before ${(base0 / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, after ${(after / MiB).toFixed(1)} MiB`);
  if (!(peak > base0 + MiB)) fail('no rise in the timeline');
  if (!(after < peak - MiB) && !process.env.DASH_NO_RSS) fail('no return in the timeline');
  const anon = await page.$eval('#chart path.anon', (p) => p.getAttribute('d'));
  if (!anon || anon.length < 20) fail('the memory area is not drawn');

  if (await page.isVisible('#keybox')) fail('the API key box shows on a server without a key');

  step = 'the request list shows the request';
  await page.waitForFunction(() => [...document.querySelectorAll('#reqs tbody tr')].some((tr) => tr.textContent.includes('/api/generate') && tr.textContent.includes('tiny')), null, { timeout: T });

  step = 'the Load and Unload buttons';
  await page.click('.card[data-model="tiny"] button.load');
  await page.waitForSelector('.card[data-model="tiny"][data-state="ready"]', { timeout: T });
  let ps = await (await fetch(base + '/api/ps')).json();
  if (!ps.models.some((x) => x.name === 'tiny')) fail('/api/ps does not list tiny after Load');
  await page.click('.card[data-model="tiny"] button.unload');
  await page.waitForSelector('.card[data-model="tiny"][data-state="dormant"]', { timeout: T });
  ps = await (await fetch(base + '/api/ps')).json();
  if (ps.models.length) fail('/api/ps still lists a model after Unload: ' + JSON.stringify(ps));

  step = 'markup in an error message shows as text';
  if (process.env.DASH_BROKEN) await page.click('.card[data-model="broken"] button.load');
  if (process.env.DASH_BROKEN) {
    await page.waitForSelector('.card[data-model="broken"][data-state="failed"] .err', { timeout: T });
    const err = await page.$eval('.card[data-model="broken"] .err', (e) => e.textContent);
    if (!err.includes('<script>alert(1)</script>') || !err.includes('<img src=x onerror=alert(2)>'))
      fail('the error is not shown as text: ' + err);
  }
  const injected = await page.evaluate(() => document.querySelectorAll('#cards script, #cards img, main script').length);
  if (injected) fail('markup from an error message became elements');

  step = 'the playground';
  await page.selectOption('#play-model', 'tiny');
  await page.fill('#play-prompt', 'Once upon a time');
  await page.fill('#play-ka', '10s');
  await page.click('#play button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('play-out').textContent.length > 0, null, { timeout: T });
  await page.waitForSelector('.card[data-model="tiny"][data-state="ready"]', { timeout: T });

  if (process.env.DASH_DEMO) {
    step = 'demo traffic';
    for (const ka of [0, '3s', 0]) {
      await sleep(2500);
      await api('/api/generate', { model: 'tiny', prompt: 'again', stream: false, keep_alive: ka, options: { num_predict: 16 } });
    }
    await sleep(4000);
    await api('/api/generate', { model: 'tiny', prompt: 'and keep it', stream: false, keep_alive: '5m', options: { num_predict: 16 } });
    await page.fill('#play-ka', '5m');
    await page.click('#play button[type="submit"]');
    await sleep(1500);
  }
  await sleep(600);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  if (dialogs.length) fail('a dialog opened: ' + dialogs.join(', '));
  if (problems.length) fail(problems.join('\n'));
  console.log('dash.mjs: all checks passed' + (shot ? ', screenshot ' + shot : ''));
} catch (e) {
  fail(step + ': ' + e.message);
} finally {
  await browser.close();
}
