// Published clients against dormant's RAG endpoints: the `openai` package's
// embeddings.create on an encoder (/v1/embeddings) and the `cohere-ai`
// package's v1 rerank (/v1/rerank).
// Usage: node rag.mjs http://127.0.0.1:PORT EMBED_MODEL RERANK_MODEL EXPECTED.json
// EXPECTED.json holds what `dormant embed --json` and `dormant rerank --json`
// (the C API) answered for the same inputs:
//   {texts, embed: {dim, prompt_tokens, embeddings}, embed_dims, embed_small: {...},
//    query, documents, rerank: {scores, prompt_tokens}}
// Prints TAP-style lines; exits 1 if any check fails.  Run by
// tests/test_clients.c inside `make test`.
import OpenAI from 'openai';
import { CohereClient, CohereError } from 'cohere-ai';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const [base, embModel, rrModel, expPath] = process.argv.slice(2);
const exp = JSON.parse(readFileSync(expPath, 'utf8'));
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const cohere = new CohereClient({ token: 'unused', environment: base, maxRetries: 0 });

// The server and the CLI run the same forward pass on the same batch of
// inputs; the values travel as float32 (base64) or as decimal text that reads
// back the same float (the CLI prints %.9g, the server %.17g of the float).
// The only differences left are from the order of float additions when the
// thread pool splits work differently: a few ulps of values of magnitude <= 1
// for unit vectors, a few ulps of the score for rerank.  1e-5 absolute is far
// above that and far below any real difference (the scores of different
// documents differ by 1e-3 or more, and a wrong vector is off by ~0.1).
const TOL = 1e-5;

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

function close(got, want, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= TOL, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

// The C API's order: score descending, ties by input order.
const order = exp.rerank.scores.map((s, i) => ({ s, i }))
  .sort((a, b) => (b.s - a.s) || (a.i - b.i)).map((x) => x.i);

let b64 = null;
await check('openai: embeddings.create on an encoder (base64, the package\'s default)', async () => {
  const r = await openai.embeddings.create({ model: embModel, input: exp.texts });
  assert.equal(r.object, 'list');
  assert.equal(r.model, embModel);
  assert.equal(r.data.length, exp.texts.length);
  r.data.forEach((d, i) => {
    assert.equal(d.object, 'embedding');
    assert.equal(d.index, i);
    close(d.embedding, exp.embed.embeddings[i], `embedding ${i}`);
  });
  assert.equal(r.usage.prompt_tokens, exp.embed.prompt_tokens);
  assert.equal(r.usage.total_tokens, exp.embed.prompt_tokens);
  b64 = r.data.map((d) => d.embedding);
});

await check('openai: embeddings.create encoding_format float equals base64', async () => {
  const r = await openai.embeddings.create({ model: embModel, input: exp.texts, encoding_format: 'float' });
  assert.deepEqual(r.data.map((d) => d.embedding), b64);
});

await check('openai: embeddings.create with dimensions (Matryoshka)', async () => {
  const r = await openai.embeddings.create({ model: embModel, input: exp.texts, dimensions: exp.embed_dims });
  assert.equal(r.data.length, exp.texts.length);
  r.data.forEach((d, i) => {
    assert.equal(d.embedding.length, exp.embed_dims);
    close(d.embedding, exp.embed_small.embeddings[i], `embedding ${i} cut to ${exp.embed_dims}`);
  });
});

await check('openai: embeddings.create of one string', async () => {
  const r = await openai.embeddings.create({ model: embModel, input: exp.texts[1], encoding_format: 'float' });
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].embedding.length, exp.embed.dim);
});

await check('openai: embeddings.create on the reranker is a 400 APIError', async () => {
  await assert.rejects(openai.embeddings.create({ model: rrModel, input: 'x' }),
    (e) => e.status === 400 && /rerank/.test(e.message));
});

await check('cohere-ai: rerank with topN and returnDocuments', async () => {
  const top = 3;
  const r = await cohere.rerank({
    model: rrModel, query: exp.query, documents: exp.documents, topN: top, returnDocuments: true,
  });
  assert.equal(r.results.length, top);
  r.results.forEach((x, k) => {
    assert.equal(x.index, order[k], `result ${k}: best first`);
    assert.ok(Math.abs(x.relevanceScore - exp.rerank.scores[x.index]) <= TOL,
      `score of document ${x.index}: ${x.relevanceScore} vs ${exp.rerank.scores[x.index]}`);
    assert.equal(x.document.text, exp.documents[x.index]);
  });
});

await check('cohere-ai: rerank of every document, none returned, objects as documents', async () => {
  const r = await cohere.rerank({
    model: rrModel, query: exp.query, documents: exp.documents.map((text) => ({ text })),
  });
  assert.deepEqual(r.results.map((x) => x.index), order);
  for (const x of r.results) {
    assert.equal(x.document, undefined);
    assert.ok(Math.abs(x.relevanceScore - exp.rerank.scores[x.index]) <= TOL);
  }
});

await check('cohere-ai: rerank on an unknown model is a 404 error', async () => {
  await assert.rejects(cohere.rerank({ model: 'no-such-model', query: 'q', documents: ['d'] }),
    (e) => e instanceof CohereError && e.statusCode === 404);
});

console.log(`1..${n}`);
if (failed) console.log(`# ${failed} failed`);
process.exit(failed ? 1 : 0);
