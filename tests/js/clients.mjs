// The official `openai` and `ollama` npm packages against `dormant serve`.
// Usage: node clients.mjs http://127.0.0.1:PORT MODEL [RSS_SLACK_BYTES | nocheck]
// Prints TAP-style lines; exits 1 if any check fails.  Run by
// tests/test_clients.c inside `make test`.
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import assert from 'node:assert/strict';

const base = process.argv[2];
const model = process.argv[3] || 'tiny';
// RSS after an unload must be within this of the baseline; "nocheck" under
// AddressSanitizer, whose quarantine and shadow memory make RSS meaningless
const rssSlack = process.argv[4] === 'nocheck' ? null : Number(process.argv[4] || (1 << 20));
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const ollama = new Ollama({ host: base });

let n = 0, failed = 0;
async function check(name, fn) {
  n++;
  try {
    await fn();
    console.log(`ok ${n} - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${n} - ${name}\n  # ${String(e && e.stack || e).split('\n').join('\n  # ')}`);
  }
}

async function health() {
  const r = await fetch(`${base}/health`);
  assert.equal(r.status, 200);
  return r.json();
}

function stateOf(h, name) {
  return h.models.find((m) => m.name === name).state;
}

const greedy = { temperature: 0, max_tokens: 12 };
let chatText = '';

await check('openai: models.list', async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert.ok(ids.includes(model), `models: ${ids}`);
});

await check('openai: chat.completions.create', async () => {
  const r = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hello' }], ...greedy,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  chatText = r.choices[0].message.content;
});

await check('openai: chat.completions.create stream', async () => {
  const stream = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hello' }], ...greedy, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, chatText, 'streamed text equals the non-streamed (greedy) text');
  assert.ok(finish === 'stop' || finish === 'length');
  assert.ok(usage && usage.completion_tokens >= 1);
});

await check('openai: completions.create (and stream)', async () => {
  const r = await openai.completions.create({ model, prompt: 'Once upon a time', ...greedy });
  assert.equal(r.object, 'text_completion');
  const s = await openai.completions.create({ model, prompt: 'Once upon a time', ...greedy, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

await check('openai: embeddings.create (base64 by default, and float)', async () => {
  const a = await openai.embeddings.create({ model, input: ['first text', 'second text'] });
  assert.equal(a.data.length, 2);
  const dim = a.data[0].embedding.length;
  assert.ok(dim > 0);
  const norm = Math.sqrt(a.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `L2 norm ${norm}`);
  const b = await openai.embeddings.create({ model, input: 'first text', encoding_format: 'float' });
  assert.deepEqual(b.data[0].embedding, a.data[0].embedding);
});

await check('openai: unknown model is a 404 APIError', async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 404 && /not found/.test(e.message));
});

let genText = '';
await check('ollama: list, show, version', async () => {
  const l = await ollama.list();
  assert.ok(l.models.some((m) => m.name === model));
  const s = await ollama.show({ model });
  assert.equal(s.details.format, 'gguf');
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

await check('ollama: generate', async () => {
  const r = await ollama.generate({ model, prompt: 'Why is the sky blue?', options: { temperature: 0, num_predict: 10 } });
  assert.equal(r.done, true);
  assert.equal(r.eval_count, 10);
  assert.ok(r.total_duration > 0 && r.eval_duration > 0 && r.prompt_eval_count > 0);
  genText = r.response;
  const s = await ollama.generate({ model, prompt: 'Why is the sky blue?', stream: true, options: { temperature: 0, num_predict: 10 } });
  let text = '', last = null;
  for await (const part of s) { text += part.response; last = part; }
  assert.equal(text, genText);
  assert.equal(last.done, true);
});

await check('ollama: chat (and stream)', async () => {
  const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }];
  const r = await ollama.chat({ model, messages: msgs, options: { temperature: 0, num_predict: 8, seed: 1 } });
  assert.equal(r.message.role, 'assistant');
  const s = await ollama.chat({ model, messages: msgs, stream: true, options: { temperature: 0, num_predict: 8, seed: 1 } });
  let text = '';
  for await (const part of s) text += part.message.content;
  assert.equal(text, r.message.content);
});

await check('ollama: embed', async () => {
  const r = await ollama.embed({ model, input: ['a', 'b'] });
  assert.equal(r.embeddings.length, 2);
  assert.ok(r.embeddings[0].length > 0);
});

await check('ollama: ps while loaded', async () => {
  const p = await ollama.ps();
  const m = p.models.find((x) => x.name === model);
  assert.ok(m, 'the model is listed while loaded');
  assert.ok(m.size > 0);
  assert.equal(m.size_vram, 0);
  assert.ok(new Date(m.expires_at).getTime() > Date.now());
});

await check('ollama: keep_alive 0 unloads (ps empty, RSS back to baseline)', async () => {
  const first = await ollama.generate({ model, prompt: '', keep_alive: 0 });
  assert.equal(first.done_reason, 'unload');
  const before = (await health()).rss_bytes; // nothing of the model left
  assert.equal(stateOf(await health(), model), 'dormant');
  const l = await ollama.generate({ model, prompt: '', keep_alive: '5m' });
  assert.equal(l.done_reason, 'load');
  const loaded = await health();
  assert.equal(stateOf(loaded, model), 'ready');
  assert.ok(loaded.rss_bytes > before, 'loading costs memory');
  const r = await ollama.generate({ model, prompt: 'hello', keep_alive: 0, options: { num_predict: 4 } });
  assert.equal(r.done, true);
  const p = await ollama.ps();
  assert.ok(!p.models.some((x) => x.name === model), 'gone from ps');
  const after = await health();
  assert.equal(stateOf(after, model), 'dormant');
  if (rssSlack !== null)
    assert.ok(after.rss_bytes <= before + rssSlack,
      `RSS after unload ${after.rss_bytes} vs baseline ${before} (+${rssSlack} bytes slack)`);
});

console.log(`1..${n}`);
if (failed) console.log(`# ${failed} failed`);
process.exit(failed ? 1 : 0);
