/**
 * Generates the tiny random BERT-like ONNX model directories used by the encoder tests
 * (`sidr-a|b`, `splade-a|b`, `dense-a|b`). Builds ModelProto graphs by hand with `onnx-proto`;
 * seeded, so re-running it reproduces byte-identical files. Never downloads anything.
 * Usage: `npx tsx scripts/make-tiny-models.ts [targetDir]` (default `test/fixtures/models/`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { createRng as createSeededRng } from '../src/rcl/rng.ts';

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;

/** Hidden width of every tiny model (≤ 32 keeps the fixtures small). */
const HIDDEN_SIZE = 32;
/** Width of the one feed-forward layer. */
const INTERMEDIATE_SIZE = 64;
/** Longest sequence the position table covers, in tokens (= maxPassageLength). */
const MAX_POSITIONS = 128;
/** Longest query, in tokens including [CLS]/[SEP]. */
const MAX_QUERY_TOKENS = 32;
/** Dimensions kept by SiDR pooling besides the tokens present. */
const SIDR_TOP_K = 64;
/** ONNX opset: 17 is the first with LayerNormalization; IR version 8 matches onnx-proto 8. */
const OPSET = 17;
const IR_VERSION = 8;

type Kind = 'sidr' | 'splade' | 'dense';

interface Variant {
  name: string;
  kind: Kind;
  seed: number;
  /** Whether the graph takes `token_type_ids` (variant `a` does, `b` does not: both paths get tested). */
  typeIds: boolean;
  pooling?: 'mean' | 'cls';
}

const VARIANTS: Variant[] = [
  { name: 'sidr-a', kind: 'sidr', seed: 11, typeIds: true },
  { name: 'sidr-b', kind: 'sidr', seed: 12, typeIds: false },
  { name: 'splade-a', kind: 'splade', seed: 21, typeIds: true },
  { name: 'splade-b', kind: 'splade', seed: 22, typeIds: false },
  { name: 'dense-a', kind: 'dense', seed: 31, typeIds: true, pooling: 'mean' },
  { name: 'dense-b', kind: 'dense', seed: 32, typeIds: false, pooling: 'cls' },
];

// ---------------------------------------------------------------- vocabulary

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const PUNCT = Array.from('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const DIGITS = Array.from('0123456789');
const LETTERS = Array.from('abcdefghijklmnopqrstuvwxyz');
const CJK = Array.from('中文日本人大学');
const WORDS = `
the of and to in is it you that he was for on are with as his they be at one have this from or
had by hot word but what some we can out other were all there when up use your how said an each
she which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line turn cause much mean before move right
boy old too same tell does set three want air well also play small end put home read hand large
add even land here must big high such follow act why ask men change went light kind off need
house picture try us again animal point mother world near build self earth father head stand own
page should country found answer school grow study still learn plant cover food sun four between
state keep eye never last let thought city tree cross farm hard start might story saw far sea
draw left late run while press close night real life few north open seem together next white
children begin got walk example ease paper group always music those both mark often letter until
mile river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave song measure
door product black short class wind question happen complete ship area half rock order fire south
problem piece told knew pass since top whole king space heard best hour better true during hundred
five remember step early hold west ground interest reach fast verb sing listen six table travel
less morning ten simple several vowel toward war lay against pattern slow center love person money
system test check strong clear fact deep free un re dis pre
language among search index query document retrieval
model data text learn neural network vector score rank information paris france capital london
protein cell gene disease patient result method effect high cancer risk treatment
`.trim().split(/\s+/);
const SUFFIXES = `##s ##es ##ed ##ing ##ly ##er ##ers ##est ##ion ##tion ##ation ##al ##ment ##ness
##able ##ful ##less ##ity ##ize ##ive ##ous ##ic ##y ##en ##ism ##ist ##ance ##ence ##al ##ial`
  .trim().split(/\s+/);

/** The shared WordPiece vocabulary: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then pieces. */
function tinyVocab(): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (t: string): void => {
    if (!seen.has(t)) {
      seen.add(t);
      out.push(t);
    }
  };
  for (const list of [SPECIALS, PUNCT, DIGITS, LETTERS, CJK]) list.forEach(push);
  // Single-character continuations so any lower-case ASCII word splits into pieces, never [UNK].
  for (const c of [...LETTERS, ...DIGITS]) push(`##${c}`);
  WORDS.forEach(push);
  SUFFIXES.forEach(push);
  return out;
}

// ---------------------------------------------------------------- seeded weights

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function rng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

/** Normal(0, std) samples via Box–Muller, rounded to float32. */
function normal(next: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - next();
    const v = next();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

function filled(n: number, value: number): Float32Array {
  return new Float32Array(n).fill(value);
}

// ---------------------------------------------------------------- graph helpers

function floatTensor(name: string, dims: number[], data: Float32Array): ITensor {
  const bytes = new Uint8Array(data.length * 4);
  const view = new DataView(bytes.buffer);
  data.forEach((x, i) => view.setFloat32(i * 4, x, true)); // ONNX raw_data is little-endian
  return { name, dataType: onnx.TensorProto.DataType.FLOAT, dims, rawData: bytes };
}

function int64Tensor(name: string, dims: number[], data: number[]): ITensor {
  return { name, dataType: onnx.TensorProto.DataType.INT64, dims, int64Data: data };
}

function node(opType: string, input: string[], output: string[], attrs: Record<string, number | number[]> = {}): INode {
  const attribute = Object.entries(attrs).map(([name, v]) => {
    if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
    if (Number.isInteger(v) && name !== 'epsilon') return { name, type: onnx.AttributeProto.AttributeType.INT, i: v };
    return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v };
  });
  return { opType, input, output, name: `${opType}_${output[0]}`, attribute };
}

function io(name: string, elemType: number, dims: (string | number)[]): onnxProto.onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

// ---------------------------------------------------------------- the model

/**
 * One-layer, one-head BERT: embeddings (word + position [+ type]) → LayerNorm → self-attention
 * with the padding mask → FFN (tanh) → LayerNorm. Sparse kinds add the MLM head: dense + tanh +
 * LayerNorm, then a product with the transposed (tied) word-embedding matrix plus a bias.
 */
function buildModel(v: Variant, vocabSize: number): Uint8Array {
  const next = rng(v.seed);
  const H = HIDDEN_SIZE;
  const I = INTERMEDIATE_SIZE;
  const inits: ITensor[] = [];
  const w = (name: string, dims: number[], data: Float32Array): string => {
    inits.push(floatTensor(name, dims, data));
    return name;
  };
  const emb = w('word_embeddings', [vocabSize, H], normal(next, vocabSize * H, 0.35));
  w('position_embeddings', [MAX_POSITIONS, H], normal(next, MAX_POSITIONS * H, 0.1));
  if (v.typeIds) w('token_type_embeddings', [2, H], normal(next, 2 * H, 0.1));
  const sparse = v.kind !== 'dense';
  for (const ln of sparse ? ['ln_emb', 'ln_attn', 'ln_ffn', 'ln_head'] : ['ln_emb', 'ln_attn', 'ln_ffn']) {
    w(`${ln}_gamma`, [H], filled(H, 1));
    w(`${ln}_beta`, [H], filled(H, 0));
  }
  const xavier = Math.sqrt(1 / H);
  for (const m of ['wq', 'wk', 'wv', 'wo']) w(m, [H, H], normal(next, H * H, xavier));
  w('w_ffn1', [H, I], normal(next, H * I, xavier));
  w('b_ffn1', [I], normal(next, I, 0.02));
  w('w_ffn2', [I, H], normal(next, I * H, Math.sqrt(1 / I)));
  w('b_ffn2', [H], normal(next, H, 0.02));
  if (sparse) {
    w('w_head', [H, H], normal(next, H * H, xavier));
    w('b_head', [H], normal(next, H, 0.02));
    // SPLADE's log(1+relu) needs mostly negative logits to come out sparse, as trained ones do.
    w('out_bias', [vocabSize], v.kind === 'splade' ? filled(vocabSize, -4.5) : normal(next, vocabSize, 0.1));
  }
  w('attn_scale', [], new Float32Array([1 / Math.sqrt(H)]));
  w('f_one', [], new Float32Array([1]));
  w('mask_neg', [], new Float32Array([10000]));
  inits.push(int64Tensor('i_zero', [], [0]), int64Tensor('i_one', [], [1]), int64Tensor('axes_1', [1], [1]));

  const nodes: INode[] = [
    node('Gather', [emb, 'input_ids'], ['we']),
    node('Shape', ['input_ids'], ['ids_shape']),
    node('Gather', ['ids_shape', 'i_one'], ['seq_len'], { axis: 0 }),
    node('Range', ['i_zero', 'seq_len', 'i_one'], ['positions']),
    node('Gather', ['position_embeddings', 'positions'], ['pe']),
    node('Add', ['we', 'pe'], [v.typeIds ? 'x_wp' : 'x_emb']),
  ];
  if (v.typeIds) {
    nodes.push(node('Gather', ['token_type_embeddings', 'token_type_ids'], ['te']));
    nodes.push(node('Add', ['x_wp', 'te'], ['x_emb']));
  }
  const layerNorm = (x: string, ln: string, out: string): INode =>
    node('LayerNormalization', [x, `${ln}_gamma`, `${ln}_beta`], [out], { axis: -1, epsilon: 1e-12 });
  nodes.push(
    layerNorm('x_emb', 'ln_emb', 'x1'),
    node('MatMul', ['x1', 'wq'], ['q']),
    node('MatMul', ['x1', 'wk'], ['k']),
    node('MatMul', ['x1', 'wv'], ['v']),
    node('Transpose', ['k'], ['kt'], { perm: [0, 2, 1] }),
    node('MatMul', ['q', 'kt'], ['scores_raw']),
    node('Mul', ['scores_raw', 'attn_scale'], ['scores_scaled']),
    // Additive mask: (mask − 1)·1e4, so padded keys get ≈ −1e4 and vanish in the softmax.
    node('Cast', ['attention_mask'], ['mask_f'], { to: onnx.TensorProto.DataType.FLOAT }),
    node('Unsqueeze', ['mask_f', 'axes_1'], ['mask_3d']),
    node('Sub', ['mask_3d', 'f_one'], ['mask_m1']),
    node('Mul', ['mask_m1', 'mask_neg'], ['mask_bias']),
    node('Add', ['scores_scaled', 'mask_bias'], ['scores']),
    node('Softmax', ['scores'], ['attn'], { axis: -1 }),
    node('MatMul', ['attn', 'v'], ['ctx']),
    node('MatMul', ['ctx', 'wo'], ['attn_out']),
    node('Add', ['x1', 'attn_out'], ['x2']),
    layerNorm('x2', 'ln_attn', 'x3'),
    node('MatMul', ['x3', 'w_ffn1'], ['f0']),
    node('Add', ['f0', 'b_ffn1'], ['f1']),
    node('Tanh', ['f1'], ['f2']),
    node('MatMul', ['f2', 'w_ffn2'], ['f3']),
    node('Add', ['f3', 'b_ffn2'], ['f4']),
    node('Add', ['x3', 'f4'], ['x4']),
    layerNorm('x4', 'ln_ffn', v.kind === 'dense' ? 'last_hidden_state' : 'hidden'),
  );
  if (sparse) {
    nodes.push(
      node('MatMul', ['hidden', 'w_head'], ['h0']),
      node('Add', ['h0', 'b_head'], ['h1']),
      node('Tanh', ['h1'], ['h2']),
      layerNorm('h2', 'ln_head', 'h3'),
      node('Transpose', [emb], ['emb_t'], { perm: [1, 0] }),
      node('MatMul', ['h3', 'emb_t'], ['logits_raw']),
      node('Add', ['logits_raw', 'out_bias'], ['logits']),
    );
  }
  const INT64 = onnx.TensorProto.DataType.INT64;
  const inputs = [io('input_ids', INT64, ['batch', 'sequence']), io('attention_mask', INT64, ['batch', 'sequence'])];
  if (v.typeIds) inputs.push(io('token_type_ids', INT64, ['batch', 'sequence']));
  const output =
    v.kind === 'dense'
      ? io('last_hidden_state', onnx.TensorProto.DataType.FLOAT, ['batch', 'sequence', H])
      : io('logits', onnx.TensorProto.DataType.FLOAT, ['batch', 'sequence', vocabSize]);
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'r3serve/scripts/make-tiny-models.ts',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: { name: `tiny-${v.name}`, node: nodes, initializer: inits, input: inputs, output: [output] },
  });
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------- directory writer

function writeVariant(root: string, v: Variant, vocab: string[]): void {
  const dir = join(root, v.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), buildModel(v, vocab.length));
  writeFileSync(join(dir, 'vocab.txt'), vocab.join('\n') + '\n');
  const manifest = {
    kind: v.kind,
    vocabShift: 0,
    ...(v.kind === 'sidr' ? { topK: SIDR_TOP_K } : {}),
    maxQueryLength: MAX_QUERY_TOKENS,
    maxPassageLength: MAX_POSITIONS,
    ...(v.pooling ? { pooling: v.pooling } : {}),
    outputs: v.kind === 'dense' ? 'last_hidden_state' : 'logits',
    files: { query: 'model.onnx', passage: 'model.onnx' },
  };
  writeFileSync(join(dir, 'r3serve.json'), JSON.stringify(manifest, null, 2) + '\n');
  const config = {
    model_type: 'bert',
    hidden_size: HIDDEN_SIZE,
    vocab_size: vocab.length,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    intermediate_size: INTERMEDIATE_SIZE,
    max_position_embeddings: MAX_POSITIONS,
    type_vocab_size: 2,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

function main(): void {
  const root = process.argv[2] ?? join('test', 'fixtures', 'models');
  const vocab = tinyVocab();
  for (const v of VARIANTS) writeVariant(root, v, vocab);
  process.stdout.write(`wrote ${VARIANTS.length} models (vocab ${vocab.length}, hidden ${HIDDEN_SIZE}) to ${root}\n`);
}

main();
