// r3kernels: the native twin of src/kernels/reference.ts (scanTopK, matmulABt, accumulateBm25,
// topM, resetAt). Owns the hot loops and their argument checks; must not allocate, keep state
// between calls, or run off the calling thread. Semantics, tie order and error codes follow the
// reference exactly; see native/README.md for the ABI.

#include <napi.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace {

// Bumped whenever an exported signature or semantics changes; checked by src/kernels/binding.ts.
constexpr uint32_t kAbiVersion = 1;
// Log-score margin before scanTopK skips exp() (same constant as PRUNE_MARGIN_LOG in reference.ts).
constexpr double kPruneMarginLog = 1e-6;
constexpr const char* kArgCode = "ERR_KERNEL_ARG";
constexpr double kMaxU32 = 4294967295.0;

// ── dot product ──────────────────────────────────────────────────────────────────────────────
// Four independent 4-lane accumulators hide the add latency; at D = 100 the scan is then bound
// by memory bandwidth, not arithmetic (measured: wider AVX2 clones gained < 10%, so the build
// stays on the portable baseline ISA). GCC/Clang vector extensions also map to NEON on arm64.

#if defined(__GNUC__)
typedef float V4 __attribute__((vector_size(16)));

inline V4 Load4(const float* p) {
  V4 v;
  __builtin_memcpy(&v, p, sizeof v);  // unaligned load; typed arrays only guarantee 4-byte alignment
  return v;
}

inline float Dot(const float* __restrict a, const float* __restrict b, size_t n) {
  V4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  size_t j = 0;
  for (; j + 16 <= n; j += 16) {
    s0 += Load4(a + j) * Load4(b + j);
    s1 += Load4(a + j + 4) * Load4(b + j + 4);
    s2 += Load4(a + j + 8) * Load4(b + j + 8);
    s3 += Load4(a + j + 12) * Load4(b + j + 12);
  }
  for (; j + 4 <= n; j += 4) s0 += Load4(a + j) * Load4(b + j);
  V4 t = (s0 + s1) + (s2 + s3);
  float s = (t[0] + t[1]) + (t[2] + t[3]);
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}
#else
inline float Dot(const float* a, const float* b, size_t n) {
  float s = 0.f;
  for (size_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}
#endif

// ── bounded min-heap in the caller's output arrays ───────────────────────────────────────────
// Root = worst entry (lowest float32 score, then highest id); identical to reference.ts.

inline bool Worse(const uint32_t* ids, const float* sc, size_t i, size_t j) {
  return sc[i] < sc[j] || (sc[i] == sc[j] && ids[i] > ids[j]);
}

inline void Swap(uint32_t* ids, float* sc, size_t i, size_t j) {
  uint32_t ti = ids[i];
  ids[i] = ids[j];
  ids[j] = ti;
  float ts = sc[i];
  sc[i] = sc[j];
  sc[j] = ts;
}

void SiftDown(uint32_t* ids, float* sc, size_t i, size_t size) {
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= size) return;
    size_t r = l + 1;
    size_t c = (r < size && Worse(ids, sc, r, l)) ? r : l;
    if (!Worse(ids, sc, c, i)) return;
    Swap(ids, sc, i, c);
    i = c;
  }
}

// Offers (id, s) to a heap of capacity k holding `size` entries; returns the new size.
inline size_t Offer(uint32_t* ids, float* sc, size_t size, size_t k, uint32_t id, float s) {
  if (size < k) {
    size_t i = size;
    ids[i] = id;
    sc[i] = s;
    while (i > 0) {
      size_t p = (i - 1) / 2;
      if (!Worse(ids, sc, i, p)) break;
      Swap(ids, sc, i, p);
      i = p;
    }
    return size + 1;
  }
  if (s > sc[0] || (s == sc[0] && id < ids[0])) {
    ids[0] = id;
    sc[0] = s;
    SiftDown(ids, sc, 0, size);
  }
  return size;
}

// In-place heapsort: the worst entries move to the back, leaving the best first.
void SortHeap(uint32_t* ids, float* sc, size_t size) {
  for (size_t end = size; end > 1; --end) {
    Swap(ids, sc, 0, end - 1);
    SiftDown(ids, sc, 0, end - 1);
  }
}

// ── kernels (plain C++, no N-API) ────────────────────────────────────────────────────────────

size_t ScanTopK(const float* un, size_t D, const float* h, const float* w, size_t V, double alpha, size_t k,
                const uint8_t* skip, uint32_t* outIds, float* outScores) {
  if (k == 0) return 0;
  // s ≤ wMax·exp(alpha·(c−1)) for every row, so once the heap is full a row with
  // c < cMin = 1 + (log(sMin/wMax) − margin)/alpha cannot beat the minimum sMin: skip its exp().
  float wMax = -INFINITY;
  for (size_t v = 0; v < V; ++v)
    if (w[v] > wMax) wMax = w[v];
  double cMin = -INFINITY;
  size_t size = 0;
  const float* row = un;
  for (size_t v = 0; v < V; ++v, row += D) {
    if (skip[v] != 0) continue;
    double c = Dot(row, h, D);
    if (c < cMin) continue;
    float s = static_cast<float>(static_cast<double>(w[v]) * std::exp(alpha * (c - 1.0)));
    float before = size == k ? outScores[0] : NAN;
    size = Offer(outIds, outScores, size, k, static_cast<uint32_t>(v), s);
    if (size == k && !(outScores[0] == before)) {
      double sMin = outScores[0];
      cMin = (alpha > 0 && wMax > 0 && sMin > 0)
                 ? 1.0 + (std::log(sMin / static_cast<double>(wMax)) - kPruneMarginLog) / alpha
                 : -INFINITY;
    }
  }
  SortHeap(outIds, outScores, size);
  return size;
}

void MatmulABt(const float* a, const float* b, size_t m, size_t n, size_t k, float* out) {
  for (size_t i = 0; i < m; ++i) {
    const float* ai = a + i * k;
    float* oi = out + i * n;
    for (size_t j = 0; j < n; ++j) oi[j] = Dot(ai, b + j * k, k);
  }
}

// Same double arithmetic, in the same order, as reference.ts (built with -ffp-contract=off).
void AccumulateBm25(float* acc, const uint32_t* docs, size_t n, const uint32_t* docLen, double weight, double tf,
                    double prevTf, double k1, double b, double avgdl) {
  if (k1 <= 0) {
    // Strict mode: sat is the indicator t > 0, so the increment is the same for every doc.
    double inc = weight * ((tf > 0 ? 1.0 : 0.0) - (prevTf > 0 ? 1.0 : 0.0));
    if (inc != 0)
      for (size_t i = 0; i < n; ++i) acc[docs[i]] = static_cast<float>(acc[docs[i]] + inc);
    return;
  }
  // sat(t, L) = t·(k1+1) / (t + norm(L)), norm(L) = k1·(1−b) + (k1·b/avgdl)·L
  const double base = k1 * (1 - b);
  const double perLen = (k1 * b) / avgdl;
  const double scale = weight * (k1 + 1);
  for (size_t i = 0; i < n; ++i) {
    uint32_t d = docs[i];
    double norm = base + perLen * docLen[d];
    double hi = tf > 0 ? tf / (tf + norm) : 0;
    double lo = prevTf > 0 ? prevTf / (prevTf + norm) : 0;
    acc[d] = static_cast<float>(acc[d] + scale * (hi - lo));
  }
}

size_t TopM(const float* acc, const uint32_t* cand, size_t n, size_t m, uint32_t* outIds, float* outScores) {
  if (m == 0) return 0;
  size_t size = 0;
  for (size_t i = 0; i < n; ++i) size = Offer(outIds, outScores, size, m, cand[i], acc[cand[i]]);
  SortHeap(outIds, outScores, size);
  return size;
}

// ── argument checks: same order, classes and code as reference.ts ───────────────────────────
// Each returns false after throwing a pending JS exception; the caller then returns undefined.

bool Fail(napi_env env, bool range, const std::string& msg) {
  if (range)
    napi_throw_range_error(env, kArgCode, msg.c_str());
  else
    napi_throw_type_error(env, kArgCode, msg.c_str());
  return false;
}

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
};

template <typename T>
bool Typed(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type want,
           const char* typeName, View<T>* out) {
  Napi::Env env = info.Env();
  napi_value v = info[i];
  bool is = false;
  napi_typedarray_type type;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != want)
    return Fail(env, false, std::string(name) + " must be a " + typeName);
  out->data = static_cast<T*>(data);  // already offset by byteOffset (napi_get_typedarray_info)
  out->length = length;
  return true;
}

bool Finite(const Napi::CallbackInfo& info, size_t i, const char* name, double* out) {
  if (!info[i].IsNumber()) return Fail(info.Env(), false, std::string(name) + " must be a number");
  *out = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(*out)) return Fail(info.Env(), true, std::string(name) + " must be finite");
  return true;
}

bool Count(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* out) {
  if (!info[i].IsNumber()) return Fail(info.Env(), false, std::string(name) + " must be a number");
  double x = info[i].As<Napi::Number>().DoubleValue();
  if (!(x >= 0 && x <= kMaxU32 && std::floor(x) == x))
    return Fail(info.Env(), true, std::string(name) + " must be an integer in [0, 2^32)");
  *out = static_cast<size_t>(x);
  return true;
}

bool AtLeast(napi_env env, const char* name, size_t length, size_t needed) {
  if (length >= needed) return true;
  return Fail(env, true,
              std::string(name) + " has length " + std::to_string(length) + ", needs at least " + std::to_string(needed));
}

// Every id must index `length`; checked before any write so that a bad call mutates nothing.
bool IdsBelow(napi_env env, const char* name, const View<uint32_t>& ids, size_t length) {
  uint32_t max = 0;
  for (size_t i = 0; i < ids.length; ++i)
    if (ids.data[i] > max) max = ids.data[i];
  if (ids.length == 0 || max < length) return true;
  return Fail(env, true, std::string(name) + " holds id " + std::to_string(max) + " ≥ " + std::to_string(length));
}

#define F32(i, name, out) Typed<float>(info, i, name, napi_float32_array, "Float32Array", out)
#define U32(i, name, out) Typed<uint32_t>(info, i, name, napi_uint32_array, "Uint32Array", out)
#define U8(i, name, out) Typed<uint8_t>(info, i, name, napi_uint8_array, "Uint8Array", out)

// ── JS entry points ──────────────────────────────────────────────────────────────────────────

Napi::Value JsScanTopK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<float> un, h, w, outScores;
  View<uint8_t> skip;
  View<uint32_t> outIds;
  size_t D = 0, k = 0;
  double alpha = 0;
  if (!F32(0, "un", &un) || !Count(info, 1, "D", &D) || !F32(2, "h", &h) || !F32(3, "w", &w) ||
      !Finite(info, 4, "alpha", &alpha) || !Count(info, 5, "k", &k) || !U8(6, "skip", &skip) ||
      !U32(7, "outIds", &outIds) || !F32(8, "outScores", &outScores))
    return env.Undefined();
  const size_t V = w.length;
  if (!AtLeast(env, "un", un.length, V * D) || !AtLeast(env, "h", h.length, D) ||
      !AtLeast(env, "skip", skip.length, V) || !AtLeast(env, "outIds", outIds.length, k) ||
      !AtLeast(env, "outScores", outScores.length, k))
    return env.Undefined();
  size_t n = ScanTopK(un.data, D, h.data, w.data, V, alpha, k, skip.data, outIds.data, outScores.data);
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value JsMatmulABt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<float> a, b, out;
  size_t m = 0, n = 0, k = 0;
  if (!F32(0, "a", &a) || !F32(1, "b", &b) || !Count(info, 2, "m", &m) || !Count(info, 3, "n", &n) ||
      !Count(info, 4, "k", &k) || !F32(5, "out", &out))
    return env.Undefined();
  if (!AtLeast(env, "a", a.length, m * k) || !AtLeast(env, "b", b.length, n * k) ||
      !AtLeast(env, "out", out.length, m * n))
    return env.Undefined();
  MatmulABt(a.data, b.data, m, n, k, out.data);
  return env.Undefined();
}

Napi::Value JsAccumulateBm25(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<float> acc;
  View<uint32_t> docs, docLen;
  double weight = 0, tf = 0, prevTf = 0, k1 = 0, b = 0, avgdl = 0;
  if (!F32(0, "acc", &acc) || !U32(1, "docs", &docs) || !U32(2, "docLen", &docLen) ||
      !Finite(info, 3, "weight", &weight) || !Finite(info, 4, "tf", &tf) || !Finite(info, 5, "prevTf", &prevTf) ||
      !Finite(info, 6, "k1", &k1) || !Finite(info, 7, "b", &b) || !Finite(info, 8, "avgdl", &avgdl))
    return env.Undefined();
  if (tf < 0 || prevTf < 0) {
    Fail(env, true, "tf and prevTf must be ≥ 0");
    return env.Undefined();
  }
  if (k1 > 0 && !(avgdl > 0)) {
    Fail(env, true, "avgdl must be > 0 when k1 > 0");
    return env.Undefined();
  }
  if (k1 > 0 && (b < 0 || b > 1)) {
    Fail(env, true, "b must be in [0, 1] when k1 > 0");
    return env.Undefined();
  }
  if (!IdsBelow(env, "docs", docs, acc.length < docLen.length ? acc.length : docLen.length)) return env.Undefined();
  AccumulateBm25(acc.data, docs.data, docs.length, docLen.data, weight, tf, prevTf, k1, b, avgdl);
  return env.Undefined();
}

Napi::Value JsTopM(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<float> acc, outScores;
  View<uint32_t> cand, outIds;
  size_t m = 0;
  if (!F32(0, "acc", &acc) || !U32(1, "candidates", &cand) || !Count(info, 2, "m", &m) ||
      !U32(3, "outIds", &outIds) || !F32(4, "outScores", &outScores))
    return env.Undefined();
  if (!AtLeast(env, "outIds", outIds.length, m) || !AtLeast(env, "outScores", outScores.length, m) ||
      !IdsBelow(env, "candidates", cand, acc.length))
    return env.Undefined();
  size_t n = TopM(acc.data, cand.data, cand.length, m, outIds.data, outScores.data);
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value JsResetAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<float> acc;
  View<uint32_t> cand;
  if (!F32(0, "acc", &acc) || !U32(1, "candidates", &cand) || !IdsBelow(env, "candidates", cand, acc.length))
    return env.Undefined();
  for (size_t i = 0; i < cand.length; ++i) acc.data[cand.data[i]] = 0.f;
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("scanTopK", Napi::Function::New(env, JsScanTopK, "scanTopK"));
  exports.Set("matmulABt", Napi::Function::New(env, JsMatmulABt, "matmulABt"));
  exports.Set("accumulateBm25", Napi::Function::New(env, JsAccumulateBm25, "accumulateBm25"));
  exports.Set("topM", Napi::Function::New(env, JsTopM, "topM"));
  exports.Set("resetAt", Napi::Function::New(env, JsResetAt, "resetAt"));
  return exports;
}

}  // namespace

NODE_API_MODULE(r3kernels, Init)
