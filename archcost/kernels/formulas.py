"""The formulas both backends compute, written once as plain Python on scalars and array elements.

Each backend compiles them itself: the cpu kernels wrap a formula with
``numba.njit(inline="always")``, the CUDA kernels with
``cuda.jit(device=True, inline="always")``; either way Numba inlines it into the calling kernel,
so the compiled loop is the one it would be with the formula written out in place. This module
imports only ``math`` and numpy: nothing here loads numba (let alone ``numba.cuda``), and the
numba-cuda simulator runs the functions as they are.

Rules for a formula: only what both targets compile (``math``, ``min``/``max``, ``int``/``float``,
``np.float32(constant)``, array indexing and ``.shape``, ``range`` loops), and no calls to
another formula (Numba would meet a plain Python function there). Float literals are float64, as
they were in both backends' kernels, so a formula computes in the precision the kernels always
did. On the cpu each call of an inlined formula that takes an array adds a reference-count
increment and decrement of it, which Numba does not always prune (it did not around the bilinear
sample's branches: called once per channel, the cpu kernel ran 2x slower); ``grid_sample_span``
therefore takes a span of outputs, a whole row on the cpu.

Group norm's formulas work on an (N, C, S) view (S: the positions), one call per (sample, group)
or, for the param gradients, per channel.

Per-column formulas (layer norm, LRN, softmax) work on the ``(A, C, B)`` view of
``adapters.axis_view``: one call reduces over the ``C`` channels of column ``(a, b)``; the cpu
kernels loop over columns, the CUDA kernels run one thread per column.

Numba's on-disk cache of a cpu kernel is keyed on the kernel's own source file, not on the
formulas it inlines: archcost/kernels/cpu/__init__.py therefore stamps the cache with this file's
hash and clears it when the hash changes (otherwise the cpu kernels would go on running an old
formula after an edit here).
"""

import math

import numpy as np

# Activation codes: the kernels take an int, not a string.
ACTIVATION_CODES = {
    "relu": 0, "relu6": 1, "leaky_relu": 2, "elu": 3, "sigmoid": 4,
    "tanh": 5, "gelu": 6, "silu": 7, "hardswish": 8, "hardsigmoid": 9,
}


def activation(v, code, slope):
    """Activation ``code`` (``ACTIVATION_CODES``) of ``v``; ``slope`` is leaky_relu's negative
    slope and elu's alpha."""
    # relu and relu6 stay in the input's float32, as the cpu kernel always had them: with float64
    # constants here the cpu kernel ran relu 6x and leaky_relu 2x slower.
    if code == 0:
        return v if v > 0 else np.float32(0.0)
    if code == 1:
        return min(max(v, np.float32(0.0)), np.float32(6.0))
    if code == 2:
        return v if v > 0 else v * slope
    if code == 3:
        return v if v > 0 else slope * (math.exp(v) - 1.0)
    if code == 4:
        return 1.0 / (1.0 + math.exp(-v))
    if code == 5:
        return math.tanh(v)
    if code == 6:
        return 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))
    if code == 7:
        return v / (1.0 + math.exp(-v))
    if code == 8:
        return v * min(max(v + 3.0, 0.0), 6.0) / 6.0
    return min(max(v + 3.0, 0.0), 6.0) / 6.0


def layer_norm_column(x, gamma, beta, eps, out, a, b):
    """Normalise column (a, b) of x (A, C, B) over C into out; statistics in float64."""
    c_ = x.shape[1]
    mean = 0.0
    for c in range(c_):
        mean += x[a, c, b]
    mean /= c_
    var = 0.0
    for c in range(c_):
        d = x[a, c, b] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / c_ + eps)
    for c in range(c_):
        out[a, c, b] = (x[a, c, b] - mean) * inv * gamma[c] + beta[c]


def lrn_column(x, out, size, alpha, beta, k, a, b):
    """PyTorch's LocalResponseNorm of column (a, b) of x (A, C, B): channel c divided by
    ``(k + alpha / size * sum of squares over c - size//2 .. c + (size-1)//2) ** beta``,
    the window clipped to the channels."""
    c_ = x.shape[1]
    lo_off = size // 2
    hi_off = (size - 1) // 2
    for c in range(c_):
        total = 0.0
        for j in range(max(c - lo_off, 0), min(c + hi_off + 1, c_)):
            v = x[a, j, b]
            total += v * v
        out[a, c, b] = x[a, c, b] / (k + alpha / size * total) ** beta


def softmax_column(x, out, a, b):
    """Softmax of column (a, b) of x (A, C, B) over C into out (shifted by the column's max)."""
    c_ = x.shape[1]
    top = -math.inf
    for c in range(c_):
        top = max(top, x[a, c, b])
    total = 0.0
    for c in range(c_):
        e = math.exp(x[a, c, b] - top)
        out[a, c, b] = e
        total += e
    for c in range(c_):
        out[a, c, b] = out[a, c, b] / total


def max_window(x, n, c, hs, ws, kh, kw):
    """Max of x[n, c] (an NCHW map) over the kh x kw window whose top-left tap is (hs, ws),
    clipped to the map: padding never enters a max."""
    best = -math.inf
    for ih in range(max(hs, 0), min(hs + kh, x.shape[2])):
        for iw in range(max(ws, 0), min(ws + kw, x.shape[3])):
            v = x[n, c, ih, iw]
            if v > best:
                best = v
    return best


def avg_window(x, n, c, hs, ws, kh, kw, pb, pr, count_include_pad, total):
    """Average of x[n, c] over the kh x kw window at (hs, ws), divided as PyTorch does: with
    ``count_include_pad`` by the window's cells inside the padded map (``pb``, ``pr``: bottom and
    right padding; a ceil-mode window hanging past them counts fewer), else by those inside the
    map. ``total`` is the sum's start, a zero whose type the sum keeps (the cpu passes float32)."""
    h_, w_ = x.shape[2], x.shape[3]
    he = min(hs + kh, h_ + pb)
    we = min(ws + kw, w_ + pr)
    h0, h1 = max(hs, 0), min(he, h_)
    w0, w1 = max(ws, 0), min(we, w_)
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            total += x[n, c, ih, iw]
    if count_include_pad:
        divisor = (he - hs) * (we - ws)
    else:
        divisor = (h1 - h0) * (w1 - w0)
    return total / divisor


def maxout_value(x, a, c, b, pieces):
    """Max over j < pieces of x[a, c * pieces + j, b] for x (A, C * pieces, B)."""
    first = c * pieces
    top = x[a, first, b]
    for j in range(1, pieces):
        v = x[a, first + j, b]
        if v > top:
            top = v
    return top


def grid_target(k, size, align_corners):
    """The k-th of ``size`` target coordinates in [-1, 1] (torch's linspace_from_neg_one)."""
    if size <= 1:
        return 0.0
    if align_corners:
        return -1.0 + 2.0 * k / (size - 1)
    return (2.0 * k + 1.0) / size - 1.0


def grid_sample_span(x, grid, out, n, i, j0, j1, c0, c1, align_corners):
    """out[n, c0:c1, i, j0:j1] = x[n, c0:c1] (an NCHW map) sampled bilinearly at the grid points
    grid[n, i, j0:j1] (normalised (x, y) in [-1, 1], torch's grid_sample with zero padding):
    coordinates and weights in float64, corners outside the map read as zero. A span lets each
    backend choose its grain: the cpu a whole row of points (each point's weights serve all
    channels), a CUDA thread one output element."""
    h_, w_ = x.shape[2], x.shape[3]
    for j in range(j0, j1):
        gx = float(grid[n, i, j, 0])
        gy = float(grid[n, i, j, 1])
        if align_corners:  # torch's grid_sampler_unnormalize
            u = (gx + 1.0) * (w_ - 1) / 2.0
            v = (gy + 1.0) * (h_ - 1) / 2.0
        else:
            u = ((gx + 1.0) * w_ - 1.0) / 2.0
            v = ((gy + 1.0) * h_ - 1.0) / 2.0
        # Every corner outside (or a NaN point): zero, decided before any int conversion.
        if not (u > -1.0 and u < w_ and v > -1.0 and v < h_):
            for c in range(c0, c1):
                out[n, c, i, j] = 0.0
            continue
        fu = math.floor(u)
        fv = math.floor(v)
        p0 = int(fu)
        q0 = int(fv)
        du = u - fu
        dv = v - fv
        for c in range(c0, c1):
            total = 0.0
            if q0 >= 0:
                if p0 >= 0:
                    total += (1.0 - dv) * (1.0 - du) * x[n, c, q0, p0]
                if p0 + 1 < w_:
                    total += (1.0 - dv) * du * x[n, c, q0, p0 + 1]
            if q0 + 1 < h_:
                if p0 >= 0:
                    total += dv * (1.0 - du) * x[n, c, q0 + 1, p0]
                if p0 + 1 < w_:
                    total += dv * du * x[n, c, q0 + 1, p0 + 1]
            out[n, c, i, j] = total


# --- training: derivatives and per-column backward formulas ----------------------------------
# Added for the backward kernels. Each returns or accumulates in float64 (``float()`` of each
# float32 element first); a backward kernel ADDS into its input gradient (``dx[...] += ...``).


def activation_grad_from_output(y, code, slope):
    """d(activation)/d(input) of activation ``code`` from its OUTPUT ``y``, for the fns whose
    output is kept: relu, relu6, leaky_relu (slope >= 0), elu (alpha = slope >= 0), sigmoid, tanh.
    As PyTorch's backward from the result: relu is 0 at 0, relu6 is 1 only strictly inside (0, 6),
    leaky_relu is ``slope`` and elu ``y + alpha`` (= alpha * exp(x)) where y <= 0. NaN for the
    other codes (their derivative is not a function of the output)."""
    t = float(y)
    if code == 0:
        return 1.0 if t > 0.0 else 0.0
    if code == 1:
        return 1.0 if (t > 0.0 and t < 6.0) else 0.0
    if code == 2:
        return 1.0 if t > 0.0 else float(slope)
    if code == 3:
        return 1.0 if t > 0.0 else t + float(slope)
    if code == 4:
        return t * (1.0 - t)
    if code == 5:
        return 1.0 - t * t
    return math.nan


def activation_grad_from_input(v, code, slope):
    """d(activation)/d(input) of activation ``code`` at input ``v``, every code, with PyTorch's
    values at the kinks: relu 0 at 0; relu6 1 only inside (0, 6); leaky_relu and elu take the
    negative branch at 0; hardswish is 0 below -3, x/3 + 1/2 on [-3, 3], 1 above; hardsigmoid 1/6
    strictly inside (-3, 3). gelu is the exact (erf) one: Phi(x) + x phi(x). The sigmoid of
    sigmoid and silu is formed without overflow on either side."""
    x = float(v)
    if code == 0:
        return 1.0 if x > 0.0 else 0.0
    if code == 1:
        return 1.0 if (x > 0.0 and x < 6.0) else 0.0
    if code == 2:
        return 1.0 if x > 0.0 else float(slope)
    if code == 3:
        return 1.0 if x > 0.0 else float(slope) * math.exp(x)
    if code == 4 or code == 7:
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        if code == 4:
            return s * (1.0 - s)
        return s * (1.0 + x * (1.0 - s))
    if code == 5:
        t = math.tanh(x)
        return 1.0 - t * t
    if code == 6:
        return 0.5 * (1.0 + math.erf(x * 0.7071067811865476)) + x * math.exp(-0.5 * x * x) * 0.3989422804014327
    if code == 8:
        if x < -3.0:
            return 0.0
        if x <= 3.0:
            return x / 3.0 + 0.5
        return 1.0
    return 1.0 / 6.0 if (x > -3.0 and x < 3.0) else 0.0


def layer_norm_train_column(x, gamma, beta, eps, out, mean_out, invstd_out, a, b):
    """``layer_norm_column`` that also keeps its statistics: mean_out[a, b] and
    invstd_out[a, b] = 1 / sqrt(biased variance + eps) (float64 sums)."""
    c_ = x.shape[1]
    mean = 0.0
    for c in range(c_):
        mean += x[a, c, b]
    mean /= c_
    var = 0.0
    for c in range(c_):
        d = x[a, c, b] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / c_ + eps)
    for c in range(c_):
        out[a, c, b] = (x[a, c, b] - mean) * inv * gamma[c] + beta[c]
    mean_out[a, b] = mean
    invstd_out[a, b] = inv


def layer_norm_grad_column(x, gamma, mean, invstd, dy, dx, a, b):
    """dx[a, :, b] += the layer norm's input gradient of column (a, b), from the kept statistics:
    with g = dy * gamma and xh = (x - mean) * invstd, dx = invstd * (g - mean(g) - xh * mean(g xh))."""
    c_ = x.shape[1]
    m = float(mean[a, b])
    inv = float(invstd[a, b])
    sg = 0.0
    sgx = 0.0
    for c in range(c_):
        g = float(dy[a, c, b]) * float(gamma[c])
        sg += g
        sgx += g * (float(x[a, c, b]) - m) * inv
    sg /= c_
    sgx /= c_
    for c in range(c_):
        g = float(dy[a, c, b]) * float(gamma[c])
        dx[a, c, b] += inv * (g - sg - (float(x[a, c, b]) - m) * inv * sgx)


def group_norm_group(x, gamma, beta, eps, out, mean_out, invstd_out, n, g):
    """Group norm of group g of sample n of x (N, C, S) (S: the flattened positions), G =
    mean_out.shape[1] groups of C / G consecutive channels: float64 mean and biased variance over
    the group's channels and positions; out = (x - mean) * invstd * gamma[c] + beta[c]; keeps
    mean_out[n, g] and invstd_out[n, g] = 1 / sqrt(var + eps)."""
    s_ = x.shape[2]
    per = x.shape[1] // mean_out.shape[1]
    m = per * s_
    total = 0.0
    for c in range(g * per, (g + 1) * per):
        for s in range(s_):
            total += x[n, c, s]
    mean = total / m
    sq = 0.0
    for c in range(g * per, (g + 1) * per):
        for s in range(s_):
            d = x[n, c, s] - mean
            sq += d * d
    inv = 1.0 / math.sqrt(sq / m + eps)
    for c in range(g * per, (g + 1) * per):
        scale = inv * gamma[c]
        shift = float(beta[c])
        for s in range(s_):
            out[n, c, s] = (x[n, c, s] - mean) * scale + shift
    mean_out[n, g] = mean
    invstd_out[n, g] = inv


def group_norm_grad_group(x, gamma, mean, invstd, dy, dx, n, grp):
    """dx[n, group grp] += the group norm's input gradient, from the kept statistics: with
    g = dy * gamma[c] and xh = (x - mean) * invstd over the group, invstd * (g - mean(g) -
    xh * mean(g xh)). x, dy, dx (N, C, S); mean, invstd (N, G)."""
    s_ = x.shape[2]
    per = x.shape[1] // mean.shape[1]
    m = per * s_
    mu = float(mean[n, grp])
    inv = float(invstd[n, grp])
    sg = 0.0
    sgx = 0.0
    for c in range(grp * per, (grp + 1) * per):
        w = float(gamma[c])
        for s in range(s_):
            g = float(dy[n, c, s]) * w
            sg += g
            sgx += g * (float(x[n, c, s]) - mu) * inv
    sg /= m
    sgx /= m
    for c in range(grp * per, (grp + 1) * per):
        w = float(gamma[c])
        for s in range(s_):
            xh = (float(x[n, c, s]) - mu) * inv
            dx[n, c, s] += inv * (float(dy[n, c, s]) * w - sg - xh * sgx)


def group_norm_param_channel(x, dy, mean, invstd, dgamma, dbeta, want_gamma, want_beta, c):
    """Channel c's group-norm param gradients over (n, s) of x, dy (N, C, S), WRITTEN where
    wanted: dgamma[c] = sum dy * xh (xh with its (n, group)'s mean and invstd (N, G)),
    dbeta[c] = sum dy; float64 sums."""
    n_, c_, s_ = x.shape
    grp = c // (c_ // mean.shape[1])
    sd = 0.0
    st = 0.0
    for n in range(n_):
        mu = float(mean[n, grp])
        inv = float(invstd[n, grp])
        for s in range(s_):
            g = float(dy[n, c, s])
            sd += g * (float(x[n, c, s]) - mu) * inv
            st += g
    if want_gamma:
        dgamma[c] = sd
    if want_beta:
        dbeta[c] = st


def lrn_train_column(x, out, scale, size, alpha, beta, k, a, b):
    """``lrn_column`` that also keeps scale[a, c, b] = k + alpha / size * (sum of squares over
    channel c's window)."""
    c_ = x.shape[1]
    lo_off = size // 2
    hi_off = (size - 1) // 2
    for c in range(c_):
        total = 0.0
        for j in range(max(c - lo_off, 0), min(c + hi_off + 1, c_)):
            v = x[a, j, b]
            total += v * v
        s = k + alpha / size * total
        scale[a, c, b] = s
        out[a, c, b] = x[a, c, b] / s ** beta


def lrn_grad_column(x, scale, dy, dx, size, alpha, beta, a, b):
    """dx[a, :, b] += the LRN input gradient of column (a, b). Channel c's window holds
    j in [c - size//2, c + (size-1)//2], so channel j is in the windows of
    c in [j - (size-1)//2, j + size//2]:
    dx_j = dy_j s_j^-beta - (2 alpha beta / size) x_j sum_c dy_c x_c s_c^(-beta-1)."""
    c_ = x.shape[1]
    lo_off = size // 2
    hi_off = (size - 1) // 2
    coef = 2.0 * alpha * beta / size
    for j in range(c_):
        total = 0.0
        for c in range(max(j - hi_off, 0), min(j + lo_off + 1, c_)):
            total += float(dy[a, c, b]) * float(x[a, c, b]) * float(scale[a, c, b]) ** (-beta - 1.0)
        dx[a, j, b] += float(dy[a, j, b]) * float(scale[a, j, b]) ** (-beta) - coef * float(x[a, j, b]) * total


def softmax_grad_column(y, dy, dx, a, b):
    """dx[a, :, b] += y * (dy - sum(dy * y)) over column (a, b) of the kept softmax output y."""
    c_ = y.shape[1]
    total = 0.0
    for c in range(c_):
        total += float(y[a, c, b]) * float(dy[a, c, b])
    for c in range(c_):
        dx[a, c, b] += float(y[a, c, b]) * (float(dy[a, c, b]) - total)


def softmax_cross_entropy_column(x, label, probs, a, b):
    """Softmax of logits column (a, b) of x (A, C, B) into probs; returns -log probs[label] in
    float64 (log-sum-exp of the shifted logits minus the label's shifted logit)."""
    c_ = x.shape[1]
    top = -math.inf
    for c in range(c_):
        top = max(top, float(x[a, c, b]))
    total = 0.0
    for c in range(c_):
        total += math.exp(float(x[a, c, b]) - top)
    for c in range(c_):
        probs[a, c, b] = math.exp(float(x[a, c, b]) - top) / total
    return math.log(total) - (float(x[a, label, b]) - top)


def cross_entropy_grad_column(probs, label, dx, weight, a, b):
    """dx[a, :, b] += (probs - onehot(label)) * weight (weight: 1 / the number of positions)."""
    c_ = probs.shape[1]
    for c in range(c_):
        hot = 1.0 if c == label else 0.0
        dx[a, c, b] += (float(probs[a, c, b]) - hot) * weight
