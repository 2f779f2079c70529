/* Helper bodies for one floating type RF_T; included by _vecmath.h (see there).
 * RF_BLOCK is the number of output columns vecmat keeps in registers. */

/* max(row) (inlined into each caller, so vectorised for the caller's target) */
static inline RF_T RF_NAME(rf_row_max)(const RF_T *restrict row, ptrdiff_t n)
{
    RF_T top = row[0];
    for (ptrdiff_t j = 1; j < n; j++)
        top = row[j] > top ? row[j] : top;
    return top;
}

/* row = exp(row - top); returns sum(row), accumulated in 8 independent partial sums */
static inline RF_T RF_NAME(rf_exp_shift_sum)(RF_T *restrict row, RF_T top, ptrdiff_t n)
{
    RF_T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t j;
    for (j = 0; j < n; j++)
        row[j] = RF_EXP(row[j] - top);
    for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            part[l] += row[j + l];
    for (; j < n; j++)
        part[0] += row[j];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/* row = tanh(row + bias) */
static RF_CLONES void RF_NAME(rf_bias_tanh)(RF_T *restrict row, const RF_T *restrict bias,
                                            ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++)
        row[j] = RF_TANH(row[j] + bias[j]);
}

/* row = relu(row + bias); NaN stays NaN, as in torch.relu */
static RF_CLONES void RF_NAME(rf_bias_relu)(RF_T *restrict row, const RF_T *restrict bias,
                                            ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        RF_T v = row[j] + bias[j];
        row[j] = v < 0 ? 0 : v;
    }
}

/* row = softmax(row + bias): exp(row + bias - max) / sum */
static RF_CLONES void RF_NAME(rf_bias_softmax)(RF_T *restrict row, const RF_T *restrict bias,
                                               ptrdiff_t n)
{
    RF_T total;
    for (ptrdiff_t j = 0; j < n; j++)
        row[j] += bias[j];
    total = 1 / RF_NAME(rf_exp_shift_sum)(row, RF_NAME(rf_row_max)(row, n), n);
    for (ptrdiff_t j = 0; j < n; j++)
        row[j] *= total;
}

/* dz = (dh + grad) * f'(h);  db += dz, where f' is tanh's 1 - h^2 or, with `relu`,
 * relu's (h > 0).  dz may be dh itself (updated in place). */
#define RF_ACT_GRAD_LOOP(OUT, IN)                                           \
    for (ptrdiff_t j = 0; j < n; j++) {                                     \
        RF_T v = (IN[j] + grad[j]) * (relu ? (RF_T)(h[j] > 0) : 1 - h[j] * h[j]); \
        OUT[j] = v;                                                         \
        db[j] += v;                                                         \
    }

static RF_CLONES void RF_NAME(rf_act_grad)(RF_T *dz, const RF_T *dh,
                                           const RF_T *restrict grad, const RF_T *restrict h,
                                           RF_T *restrict db, ptrdiff_t n, int relu)
{
    if (dz == dh) {
        RF_T *restrict inout = dz;
        RF_ACT_GRAD_LOOP(inout, inout)
    } else {
        RF_T *restrict out = dz;
        const RF_T *restrict in = dh;
        RF_ACT_GRAD_LOOP(out, in)
    }
}
#undef RF_ACT_GRAD_LOOP

/* out = v^T A (+ out when accumulate): out[j] (+)= sum_k v[k] A[k, j]
 * A is (n_k, n_j) row-major with leading dimension lda.  Blocks of RF_BLOCK
 * outputs stay in registers while the k loop streams the rows of A. */
static RF_CLONES void RF_NAME(rf_vecmat)(const RF_T *restrict v, const RF_T *restrict a,
                                         ptrdiff_t n_k, ptrdiff_t n_j, ptrdiff_t lda,
                                         RF_T *restrict out, int accumulate)
{
    ptrdiff_t j0 = 0, j, k;
    for (; j0 + RF_BLOCK <= n_j; j0 += RF_BLOCK) {
        RF_T acc[RF_BLOCK];
        for (int l = 0; l < RF_BLOCK; l++)
            acc[l] = accumulate ? out[j0 + l] : 0;
        for (k = 0; k < n_k; k++) {
            const RF_T s = v[k];
            const RF_T *restrict row = a + k * lda + j0;
            for (int l = 0; l < RF_BLOCK; l++)
                acc[l] += s * row[l];
        }
        for (int l = 0; l < RF_BLOCK; l++)
            out[j0 + l] = acc[l];
    }
    if (j0 == n_j)
        return;
    if (!accumulate)
        for (j = j0; j < n_j; j++)
            out[j] = 0;
    for (k = 0; k < n_k; k++) {
        const RF_T s = v[k];
        const RF_T *restrict row = a + k * lda;
        for (j = j0; j < n_j; j++)
            out[j] += s * row[j];
    }
}

/* Softmax cross-entropy of one row of logits (bias already added) against
 * class `label`: returns the row's loss -log softmax(row)[label] as
 * log-sum-exp minus the label's logit, and overwrites the row with its
 * gradient scaled by `scale`: (softmax(row) - onehot(label)) * scale. */
static RF_CLONES double RF_NAME(rf_xent_row)(RF_T *restrict row, ptrdiff_t label, ptrdiff_t n,
                                             RF_T scale)
{
    RF_T top = RF_NAME(rf_row_max)(row, n), total;
    double loss = (double)top - (double)row[label];
    total = RF_NAME(rf_exp_shift_sum)(row, top, n);
    loss += log((double)total);
    total = scale / total;
    for (ptrdiff_t j = 0; j < n; j++)
        row[j] *= total;
    row[label] -= scale;
    return loss;
}

/* C = alpha op(A) op(B) + beta C for tiny row-major matrices, where a BLAS call
 * costs more than the arithmetic.  Same contract as BLAS gemm: C is (m, n),
 * op(X) is X or X^T by the flags, and C is not read when beta is 0. */
static void RF_NAME(rf_small_gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                                   ptrdiff_t k, RF_T alpha, const RF_T *a, ptrdiff_t lda,
                                   const RF_T *b, ptrdiff_t ldb, RF_T beta, RF_T *c,
                                   ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            RF_T sum = 0;
            for (ptrdiff_t l = 0; l < k; l++)
                sum += (trans_a ? a[l * lda + i] : a[i * lda + l])
                       * (trans_b ? b[j * ldb + l] : b[l * ldb + j]);
            c[i * ldc + j] = beta == 0 ? alpha * sum : alpha * sum + beta * c[i * ldc + j];
        }
    }
}
