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

/* OUT[j] = F(IN(j)) for j < n, where IN(j) is an expression in j.  With
 * libmvec and RF_PAD set (float), the last n % RF_PAD values go through one
 * padded SIMD call instead of scalar libm calls (at n_h = 5 the whole row is
 * such a tail); the padding lanes are computed on 0 and dropped. */
#if defined(RF_SIMD_MATH) && defined(RF_PAD)
#define RF_MAP(OUT, IN, F, n)                                               \
    do {                                                                    \
        ptrdiff_t body_ = (n) - (n) % RF_PAD, j;                            \
        for (j = 0; j < body_; j++) {                                       \
            RF_T z_ = IN(j);                                                \
            OUT[j] = F(z_);                                                 \
        }                                                                   \
        if (body_ < (n)) {                                                  \
            RF_T pad_[RF_PAD];                                              \
            for (int l = 0; l < RF_PAD; l++)                                \
                pad_[l] = body_ + l < (n) ? IN(body_ + l) : 0;              \
            for (int l = 0; l < RF_PAD; l++)                                \
                pad_[l] = F(pad_[l]);                                       \
            for (j = body_; j < (n); j++)                                   \
                OUT[j] = pad_[j - body_];                                   \
        }                                                                   \
    } while (0)
#else
#define RF_MAP(OUT, IN, F, n)                                               \
    do {                                                                    \
        for (ptrdiff_t j = 0; j < (n); j++) {                               \
            RF_T z_ = IN(j);                                                \
            OUT[j] = F(z_);                                                 \
        }                                                                   \
    } while (0)
#endif

/* row = exp(row - top); returns sum(row), accumulated in 8 independent partial sums */
static inline RF_T RF_NAME(rf_exp_shift_sum)(RF_T *restrict row, RF_T top, ptrdiff_t n)
{
    RF_T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t j;
#define RF_IN_SHIFTED(j) (row[j] - top)
    RF_MAP(row, RF_IN_SHIFTED, RF_EXP, n);
#undef RF_IN_SHIFTED
    for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            part[l] += row[j + l];
    for (; j < n; j++)
        part[0] += row[j];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
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

/* The activations.  Each is one pair (f, f'), with f' written in terms of the
 * output y = f(z) (what the backward pass keeps); adding one is a line here, a
 * case in the two dispatchers below and a name in _kernel_src/elman.pxi's Activation.
 *   tanh     f = tanh(z)              f' = 1 - y^2
 *   relu     f = max(z, 0)            f' = [y > 0]       (NaN stays NaN, as in torch.relu)
 *   sigmoid  f = 1 / (1 + exp(-z))    f' = y (1 - y)
 */
#define RF_F_TANH(z) RF_TANH(z)
#define RF_DF_TANH(y) (1 - (y) * (y))
#define RF_F_RELU(z) ((z) < 0 ? (RF_T)0 : (z))
#define RF_DF_RELU(y) ((RF_T)((y) > 0))
#define RF_F_SIGMOID(z) (1 / (1 + RF_EXP(-(z))))
#define RF_DF_SIGMOID(y) ((y) * (1 - (y)))

/* For an activation NAME: rf_bias_NAME, row = f(row + bias), and rf_grad_NAME,
 * dz = (dh + grad) * f'(y); db += dz (dz may be dh itself, updated in place). */
#define RF_GRAD_LOOP(OUT, IN, DF)                                           \
    for (ptrdiff_t j = 0; j < n; j++) {                                     \
        RF_T v = (IN[j] + grad[j]) * DF(y[j]);                              \
        OUT[j] = v;                                                         \
        db[j] += v;                                                         \
    }
#define RF_DEFINE_ACTIVATION(NAME, F, DF)                                                   \
static RF_CLONES void RF_NAME(rf_bias_##NAME)(RF_T *restrict row, const RF_T *restrict bias, \
                                              ptrdiff_t n)                                 \
{                                                                                           \
    RF_MAP(row, RF_IN_BIASED, F, n);                                                        \
}                                                                                           \
static RF_CLONES void RF_NAME(rf_grad_##NAME)(RF_T *dz, const RF_T *dh,                     \
                                              const RF_T *restrict grad,                    \
                                              const RF_T *restrict y, RF_T *restrict db,    \
                                              ptrdiff_t n)                                 \
{                                                                                           \
    if (dz == dh) {                                                                         \
        RF_T *restrict inout = dz;                                                          \
        RF_GRAD_LOOP(inout, inout, DF)                                                      \
    } else {                                                                                \
        RF_T *restrict out = dz;                                                            \
        const RF_T *restrict in = dh;                                                       \
        RF_GRAD_LOOP(out, in, DF)                                                           \
    }                                                                                       \
}

#define RF_IN_BIASED(j) (row[j] + bias[j])
RF_DEFINE_ACTIVATION(tanh, RF_F_TANH, RF_DF_TANH)
RF_DEFINE_ACTIVATION(relu, RF_F_RELU, RF_DF_RELU)
RF_DEFINE_ACTIVATION(sigmoid, RF_F_SIGMOID, RF_DF_SIGMOID)

/* row = f(row + bias) for activation `act` (an RF_ACT_* code) */
static inline void RF_NAME(rf_bias_act)(int act, RF_T *row, const RF_T *bias, ptrdiff_t n)
{
    switch (act) {
    case RF_ACT_RELU: RF_NAME(rf_bias_relu)(row, bias, n); break;
    case RF_ACT_SIGMOID: RF_NAME(rf_bias_sigmoid)(row, bias, n); break;
    default: RF_NAME(rf_bias_tanh)(row, bias, n); break;
    }
}

/* dz = (dh + grad) * f'(y); db += dz, for activation `act` */
static inline void RF_NAME(rf_act_grad)(int act, RF_T *dz, const RF_T *dh, const RF_T *grad,
                                        const RF_T *y, RF_T *db, ptrdiff_t n)
{
    switch (act) {
    case RF_ACT_RELU: RF_NAME(rf_grad_relu)(dz, dh, grad, y, db, n); break;
    case RF_ACT_SIGMOID: RF_NAME(rf_grad_sigmoid)(dz, dh, grad, y, db, n); break;
    default: RF_NAME(rf_grad_tanh)(dz, dh, grad, y, db, n); break;
    }
}
#undef RF_DEFINE_ACTIVATION
#undef RF_IN_BIASED
#undef RF_GRAD_LOOP
#undef RF_F_TANH
#undef RF_DF_TANH
#undef RF_F_RELU
#undef RF_DF_RELU
#undef RF_F_SIGMOID
#undef RF_DF_SIGMOID

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

/* -- gated cells (torch's gate order) ------------------------------------------
 * One batch row of one step.  Sigmoid is 1 / (1 + exp(-z)), as RF_F_SIGMOID. */

#define RF_SIGMOID(z) (1 / (1 + RF_EXP(-(z))))
/* the inputs of RF_MAP below, by the local names they read */
#define RF_IN_A(j) (a[j])
#define RF_IN_I(j) (gi[j])
#define RF_IN_F(j) (gf[j])
#define RF_IN_G(j) (gg[j])
#define RF_IN_O(j) (go[j])
#define RF_IN_C(j) (c[j])
#define RF_IN_GI(j) (gi[j])
#define RF_IN_GZ(j) (gz[j])
#define RF_IN_GN(j) (gn[j])

/* LSTM step, on hidden units [0, n) of a row whose four gate blocks lie gs apart
 * (gs = H for a whole row; a column panel of the thread team passes n < H).  a: on
 * entry x W_ih^T + h W_hh^T for gates i, f, g, o; bias (b_ih + b_hh, gate blocks gs
 * apart) may be NULL.  On return a holds the activated gates, c = f c_prev + i g and
 * m = o tanh(c) (the new h, before any projection). */
static RF_CLONES void RF_NAME(rf_lstm_cell)(RF_T *restrict a, const RF_T *restrict bias,
                                            const RF_T *restrict c_prev, RF_T *restrict c,
                                            RF_T *restrict m, ptrdiff_t n, ptrdiff_t gs)
{
    RF_T *gi = a, *gf = a + gs, *gg = a + 2 * gs, *go = a + 3 * gs;   /* based on a */
    if (bias)
        for (int k = 0; k < 4; k++)
            for (ptrdiff_t j = 0; j < n; j++)
                a[k * gs + j] += bias[k * gs + j];
    if (gs == n) {
        RF_MAP(a, RF_IN_A, RF_SIGMOID, 2 * n);
    } else {
        RF_MAP(gi, RF_IN_I, RF_SIGMOID, n);
        RF_MAP(gf, RF_IN_F, RF_SIGMOID, n);
    }
    RF_MAP(gg, RF_IN_G, RF_TANH, n);
    RF_MAP(go, RF_IN_O, RF_SIGMOID, n);
    for (ptrdiff_t j = 0; j < n; j++)
        c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
    RF_MAP(m, RF_IN_C, RF_TANH, n);
    for (ptrdiff_t j = 0; j < n; j++)
        m[j] *= go[j];
}

/* LSTM step backward, on hidden units [0, n) with gate blocks gs apart (as
 * rf_lstm_cell).  a: the activated gates; c, c_prev: the cells; dm: the gradient
 * reaching m = o tanh(c); dc: on entry the gradient reaching c from the next step, on
 * return the one reaching c_prev.  da (gate blocks gs apart): the gradients of the
 * gates' pre-activations. */
static RF_CLONES void RF_NAME(rf_lstm_cell_grad)(const RF_T *restrict a, const RF_T *restrict c,
                                                 const RF_T *restrict c_prev,
                                                 const RF_T *restrict dm, RF_T *restrict dc,
                                                 RF_T *restrict da, ptrdiff_t n, ptrdiff_t gs)
{
    const RF_T *restrict gi = a, *restrict gf = a + gs, *restrict gg = a + 2 * gs,
               *restrict go = a + 3 * gs;
    RF_T *dao = da + 3 * gs;                                         /* based on da */
    /* tanh(c) goes through da's o block first */
    RF_MAP(dao, RF_IN_C, RF_TANH, n);
    for (ptrdiff_t j = 0; j < n; j++) {
        RF_T tc = dao[j], i = gi[j], f = gf[j], g = gg[j], o = go[j];
        RF_T d = dc[j] + dm[j] * o * (1 - tc * tc);
        da[j] = d * g * i * (1 - i);
        da[gs + j] = d * c_prev[j] * f * (1 - f);
        da[2 * gs + j] = d * i * (1 - g * g);
        dao[j] = dm[j] * tc * o * (1 - o);
        dc[j] = d * f;
    }
}

/* GRU step, on hidden units [0, n) of rows whose three gate blocks lie gs apart (gs
 * = H for a whole row, as rf_lstm_cell).  gi: x W_ih^T for r, z, n; gh: h_prev
 * W_hh^T; the biases (gate blocks gs apart) may be NULL.  On return gi holds the
 * activated r, z, n, hn = h_prev W_hn^T + b_hn, and h = (1 - z) n + z h_prev. */
static RF_CLONES void RF_NAME(rf_gru_cell)(RF_T *restrict gi, const RF_T *restrict gh,
                                           const RF_T *restrict b_ih, const RF_T *restrict b_hh,
                                           const RF_T *restrict h_prev, RF_T *restrict hn,
                                           RF_T *restrict h, ptrdiff_t n, ptrdiff_t gs)
{
    RF_T *gz = gi + gs, *gn = gi + 2 * gs;                           /* based on gi */
    for (int k = 0; k < 2; k++)
        for (ptrdiff_t j = k * gs; j < k * gs + n; j++)
            gi[j] += gh[j] + (b_ih ? b_ih[j] : 0) + (b_hh ? b_hh[j] : 0);
    if (gs == n) {
        RF_MAP(gi, RF_IN_GI, RF_SIGMOID, 2 * n);
    } else {
        RF_MAP(gi, RF_IN_GI, RF_SIGMOID, n);
        RF_MAP(gz, RF_IN_GZ, RF_SIGMOID, n);
    }
    for (ptrdiff_t j = 0; j < n; j++) {
        hn[j] = gh[2 * gs + j] + (b_hh ? b_hh[2 * gs + j] : 0);
        gn[j] += (b_ih ? b_ih[2 * gs + j] : 0) + gi[j] * hn[j];
    }
    RF_MAP(gn, RF_IN_GN, RF_TANH, n);
    for (ptrdiff_t j = 0; j < n; j++)
        h[j] = (1 - gz[j]) * gn[j] + gz[j] * h_prev[j];
}

/* GRU step backward, on hidden units [0, n) with gate blocks gs apart.  gates: the
 * activated r, z, n; hn, h_prev as saved; g: on entry the gradient reaching h, on
 * return its direct share g z (the caller adds dgh W_hh).  dgi, dgh (gate blocks gs
 * apart): the gradients of x W_ih^T + b_ih and of h_prev W_hh^T + b_hh. */
static RF_CLONES void RF_NAME(rf_gru_cell_grad)(const RF_T *restrict gates,
                                                const RF_T *restrict hn,
                                                const RF_T *restrict h_prev, RF_T *restrict g,
                                                RF_T *restrict dgi, RF_T *restrict dgh,
                                                ptrdiff_t n, ptrdiff_t gs)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        RF_T r = gates[j], z = gates[gs + j], nn = gates[2 * gs + j], d = g[j];
        RF_T dan = d * (1 - z) * (1 - nn * nn);
        RF_T dar = dan * hn[j] * r * (1 - r);
        RF_T daz = d * (h_prev[j] - nn) * z * (1 - z);
        dgi[j] = dgh[j] = dar;
        dgi[gs + j] = dgh[gs + j] = daz;
        dgi[2 * gs + j] = dan;
        dgh[2 * gs + j] = dan * r;
        g[j] = d * z;
    }
}
#undef RF_IN_A
#undef RF_IN_I
#undef RF_IN_F
#undef RF_IN_G
#undef RF_IN_O
#undef RF_IN_C
#undef RF_IN_GI
#undef RF_IN_GZ
#undef RF_IN_GN
#undef RF_SIGMOID

#undef RF_MAP
