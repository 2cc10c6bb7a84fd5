// CUDA kernels for packed linear layers (`src/kernels/cuda/mod.rs`), the
// same arithmetic as the CPU kernels of `src/kernels`:
//
// 1. `plcc_quantize_rows`: each row of x (m x k, f32) to int8 with the scale
//    sx = max|x_row| / 127, q = round_ties_even(x * (127 / max|x_row|))
//    clamped to [-127, 127] (a NaN product gives 0; an all-zero or non-finite
//    row gives sx = 0 and q = 0), stored with row stride kw words of 4 int8
//    (k zero-padded to a multiple of 4).
// 2. `plcc_gemm_i8`: acc[i, j] = sum_k q[i, k] * w[j, k] exactly in i32 by
//    __dp4a on words of 4 int8, then y = (acc * sx) * sw + bias with every
//    operation rounded on its own (no fused multiply-add), as the CPU's
//    `finish` computes it.
//
// Compiled to PTX at build time (build.rs) without fast-math, so the division
// and the products round as IEEE f32 does on the CPU.

#define PLCC_QUANT_THREADS 256

extern "C" __global__ void plcc_quantize_rows(
    const float* __restrict__ x, int m, int k, int kw,
    int* __restrict__ q, float* __restrict__ sx)
{
    const int row = blockIdx.x;
    if (row >= m) return;
    const float* xr = x + (size_t)row * k;
    // The largest magnitude (fmaxf ignores NaN, as f32::max does).
    float mx = 0.0f;
    for (int c = threadIdx.x; c < k; c += blockDim.x) {
        mx = fmaxf(mx, fabsf(xr[c]));
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, offset));
    }
    __shared__ float warp_max[PLCC_QUANT_THREADS / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_max[warp] = mx;
    __syncthreads();
    mx = 0.0f;
    for (int w = 0; w < (int)(blockDim.x + 31) / 32; ++w) {
        mx = fmaxf(mx, warp_max[w]);
    }
    float scale = 0.0f, inv = 0.0f;
    if (mx > 0.0f && isfinite(mx)) {
        scale = __fdiv_rn(mx, 127.0f);
        inv = __fdiv_rn(127.0f, mx);
    }
    if (threadIdx.x == 0) sx[row] = scale;
    int* qr = q + (size_t)row * kw;
    for (int word = threadIdx.x; word < kw; word += blockDim.x) {
        unsigned packed = 0;
        for (int t = 0; t < 4; ++t) {
            const int c = word * 4 + t;
            int v = 0;
            if (c < k) {
                const float p = __fmul_rn(xr[c], inv);
                if (p == p) {
                    const float r = fminf(fmaxf(rintf(p), -127.0f), 127.0f);
                    v = (int)r;
                }
            }
            packed |= ((unsigned)v & 0xffu) << (8 * t);
        }
        qr[word] = (int)packed;
    }
}

// Output tile of a block, k words per shared-memory step, outputs per thread.
#define PLCC_BM 64
#define PLCC_BN 64
#define PLCC_BK 16
#define PLCC_THREADS 256
#define PLCC_TM (PLCC_BM / 16)
#define PLCC_TN (PLCC_BN / 16)

// a: m x kw words (activations), w: n x kw words (weights, zero-padded like
// a), sx: m, sw and bias: n, y: m x n. Block (x, y) computes the rows
// [64 y, 64 y + 64) and columns [64 x, 64 x + 64) of y; thread (tx, ty) of
// the 16 x 16 threads computes rows 64 y + ty + 16 i and columns
// 64 x + tx + 16 j for i, j < 4.
extern "C" __global__ void plcc_gemm_i8(
    const int* __restrict__ a, const float* __restrict__ sx,
    const int* __restrict__ w, const float* __restrict__ sw,
    const float* __restrict__ bias, float* __restrict__ y,
    int m, int n, int kw)
{
    __shared__ int a_tile[PLCC_BK][PLCC_BM + 1];
    __shared__ int w_tile[PLCC_BK][PLCC_BN + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int row0 = blockIdx.y * PLCC_BM, col0 = blockIdx.x * PLCC_BN;
    int acc[PLCC_TM][PLCC_TN];
    for (int i = 0; i < PLCC_TM; ++i)
        for (int j = 0; j < PLCC_TN; ++j) acc[i][j] = 0;

    for (int k0 = 0; k0 < kw; k0 += PLCC_BK) {
        for (int e = threadIdx.x; e < PLCC_BM * PLCC_BK; e += PLCC_THREADS) {
            const int r = e / PLCC_BK, c = e % PLCC_BK;
            const int gr = row0 + r, gc = k0 + c;
            a_tile[c][r] = (gr < m && gc < kw) ? a[(size_t)gr * kw + gc] : 0;
        }
        for (int e = threadIdx.x; e < PLCC_BN * PLCC_BK; e += PLCC_THREADS) {
            const int r = e / PLCC_BK, c = e % PLCC_BK;
            const int gr = col0 + r, gc = k0 + c;
            w_tile[c][r] = (gr < n && gc < kw) ? w[(size_t)gr * kw + gc] : 0;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < PLCC_BK; ++kk) {
            int av[PLCC_TM], wv[PLCC_TN];
#pragma unroll
            for (int i = 0; i < PLCC_TM; ++i) av[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < PLCC_TN; ++j) wv[j] = w_tile[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < PLCC_TM; ++i)
#pragma unroll
                for (int j = 0; j < PLCC_TN; ++j) acc[i][j] = __dp4a(av[i], wv[j], acc[i][j]);
        }
        __syncthreads();
    }

    for (int i = 0; i < PLCC_TM; ++i) {
        const int r = row0 + ty + 16 * i;
        if (r >= m) continue;
        const float s = sx[r];
        for (int j = 0; j < PLCC_TN; ++j) {
            const int c = col0 + tx + 16 * j;
            if (c >= n) continue;
            const float v = __fmul_rn(__fmul_rn(__int2float_rn(acc[i][j]), s), sw[c]);
            y[(size_t)r * n + c] = __fadd_rn(v, bias[c]);
        }
    }
}
