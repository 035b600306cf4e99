/**
 * Dataset readers over temporary folders in the BEIR-like layout, plain and gzipped: streaming
 * corpus, queries with answers, qrels with a header, the train split, and errors that name files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCorpus, readQrels, readQueries } from '../../bench/lib/dataset.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'r3serve-dataset-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CORPUS = [
  '{"id": "d1", "title": "Café", "text": "One.\\nTwo."}',
  '',
  '{"_id": "d2", "title": "", "text": "Naïve 😀 text"}',
  '{"id": 3, "text": "numeric id"}',
].join('\r\n');

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('readCorpus', () => {
  it.each([false, true])('streams documents (gzip: %s)', async (gz) => {
    const body = `\ufeff${CORPUS}\n`;
    await writeFile(join(dir, gz ? 'corpus.jsonl.gz' : 'corpus.jsonl'), gz ? gzipSync(body) : body);
    expect(await collect(readCorpus(dir))).toEqual([
      { id: 'd1', title: 'Café', text: 'One.\nTwo.' },
      { id: 'd2', text: 'Naïve 😀 text' },
      { id: '3', text: 'numeric id' },
    ]);
  });

  it('handles multi-byte characters split across chunks', async () => {
    const text = 'é😀'.repeat(40_000); // ≫ one 64 KiB read chunk
    await writeFile(join(dir, 'corpus.jsonl'), JSON.stringify({ id: 'big', text }));
    const [doc] = await collect(readCorpus(dir));
    expect(doc.text).toBe(text);
  });

  it('names the missing file', async () => {
    await expect(collect(readCorpus(dir))).rejects.toMatchObject({
      code: 'DATASET_FILE_MISSING',
      path: join(dir, 'corpus.jsonl'),
    });
  });

  it('names file and line of a malformed record', async () => {
    await writeFile(join(dir, 'corpus.jsonl'), '{"id": "a", "text": "ok"}\n{"id": "b"}\n');
    await expect(collect(readCorpus(dir))).rejects.toMatchObject({ code: 'DATASET_LINE_INVALID', message: expect.stringContaining(':2:') });
  });

  it('rejects a corrupt gzip instead of hanging', async () => {
    await writeFile(join(dir, 'corpus.jsonl.gz'), Buffer.from('not gzip at all'));
    await expect(collect(readCorpus(dir))).rejects.toThrow();
  });
});

describe('readQueries', () => {
  it('reads answers when present, and the train split', async () => {
    await writeFile(join(dir, 'queries.jsonl'), '{"id": "q1", "text": "who?", "answers": ["A", "B"]}\n{"id": "q2", "text": "what?"}\n');
    await writeFile(join(dir, 'train_queries.jsonl.gz'), gzipSync('{"id": "t1", "text": "train q"}\n'));
    expect(await readQueries(dir)).toEqual([
      { id: 'q1', text: 'who?', answers: ['A', 'B'] },
      { id: 'q2', text: 'what?' },
    ]);
    expect(await readQueries(dir, 'train')).toEqual([{ id: 't1', text: 'train q' }]);
  });

  it('rejects answers that are not strings', async () => {
    await writeFile(join(dir, 'queries.jsonl'), '{"id": "q1", "text": "x", "answers": [1]}\n');
    await expect(readQueries(dir)).rejects.toMatchObject({ code: 'DATASET_LINE_INVALID' });
  });
});

describe('readQrels', () => {
  it('skips the header and keeps grades', async () => {
    await writeFile(join(dir, 'qrels.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td3\t0\n');
    const qrels = await readQrels(dir);
    expect([...qrels.keys()]).toEqual(['q1', 'q2']);
    expect([...qrels.get('q1')!]).toEqual([['d1', 1], ['d2', 2]]);
    expect(qrels.get('q2')!.get('d3')).toBe(0);
  });

  it('reads gzipped train qrels without a header', async () => {
    await writeFile(join(dir, 'train_qrels.tsv.gz'), gzipSync('t1\td9\t1\n'));
    expect((await readQrels(dir, 'train')).get('t1')!.get('d9')).toBe(1);
  });

  it('rejects a malformed line after the first', async () => {
    await writeFile(join(dir, 'qrels.tsv'), 'q\td\tscore\nq1\td1\n');
    await expect(readQrels(dir)).rejects.toMatchObject({ code: 'DATASET_LINE_INVALID' });
  });

  it('names the missing split file', async () => {
    await expect(readQrels(dir, 'train')).rejects.toMatchObject({ path: join(dir, 'train_qrels.tsv') });
  });
});
