"""The Triton kernels of :mod:`metazoo.experimental.implicit_gemm`: each task's ``conv2d``, its
input gradient and its weight gradient as implicit GEMMs, the task being the grid's third axis.

Every kernel takes its tensors with all five strides (``(T, N, C, H, W)``, ``(T, Cout, Cin, kh,
kw)``), the geometry ``(SH, SW, PH, PW, DH, DW)``, and compile-time constants: the filter size
``KH, KW``, ``TAPS_OUTER`` (the reduction's order, below), the accumulator ``ACC`` and the
``tl.dot`` input precision ``PRECISION``, and the tile ``BLOCK_M x BLOCK_N`` with a reduction
step ``BLOCK_K``.

Each kernel has two reductions, chosen by ``TAPS_OUTER``:

* taps outer: for each filter tap, channel blocks of ``BLOCK_K``. A tile's addresses and masks
  are a row vector plus a channel vector, so index arithmetic is per row, not per element;
* flattened: (channel, tap) pairs as one reduction, for a layer with fewer channels than
  ``BLOCK_K`` (the first layer), where blocks of one tap would be mostly padding.

Only Triton builtins are called (no ``@triton.jit`` library helpers such as ``tl.zeros``), so
Triton's interpreter runs the kernels on CPU tensors without ``TRITON_INTERPRET``.
"""

import triton
import triton.language as tl

__all__ = ["convolution_kernel", "input_gradient_kernel", "weight_gradient_kernel"]


@triton.jit
def convolution_kernel(
    x, w, y, N, C, H, W, COUT, HO, WO,
    xs_t, xs_n, xs_c, xs_h, xs_w, ws_t, ws_o, ws_c, ws_h, ws_w, ys_t, ys_n, ys_o, ys_h, ys_w,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr, TAPS_OUTER: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    task = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # output pixels (n, p, q)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels
    n, p, q = rows // (HO * WO), (rows // WO) % HO, rows % WO
    row_ok, col_ok = rows < N * HO * WO, cols < COUT
    x_rows = x + task * xs_t + n * xs_n
    w_cols = w + task * ws_t + cols * ws_o
    acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=ACC)
    if TAPS_OUTER:
        for tap in range(KH * KW):
            i, j = tap // KW, tap % KW
            h, v = p * SH - PH + i * DH, q * SW - PW + j * DW
            inside = row_ok & (h >= 0) & (h < H) & (v >= 0) & (v < W)
            a_rows = x_rows + h * xs_h + v * xs_w
            for start in range(0, C, BLOCK_K):
                c = start + tl.arange(0, BLOCK_K)
                c_ok = c < C
                a_mask = inside[:, None] & c_ok[None, :]
                a = tl.load(a_rows[:, None] + (c * xs_c)[None, :], mask=a_mask, other=0.0)
                b_at = w_cols[None, :] + (c * ws_c + i * ws_h + j * ws_w)[:, None]
                b = tl.load(b_at, mask=c_ok[:, None] & col_ok[None, :], other=0.0)
                acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)
    else:
        for start in range(0, C * KH * KW, BLOCK_K):
            ks = start + tl.arange(0, BLOCK_K)  # (c, i, j)
            c, i, j = ks // (KH * KW), (ks // KW) % KH, ks % KW
            k_ok = ks < C * KH * KW
            h = p[:, None] * SH - PH + i[None, :] * DH
            v = q[:, None] * SW - PW + j[None, :] * DW
            a_mask = row_ok[:, None] & k_ok[None, :] & (h >= 0) & (h < H) & (v >= 0) & (v < W)
            a_at = x_rows[:, None] + (c * xs_c)[None, :] + h * xs_h + v * xs_w
            a = tl.load(a_at, mask=a_mask, other=0.0)
            b_at = w_cols[None, :] + (c * ws_c + i * ws_h + j * ws_w)[:, None]
            b = tl.load(b_at, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)
    out = y + task * ys_t + (n * ys_n + p * ys_h + q * ys_w)[:, None] + (cols * ys_o)[None, :]
    tl.store(out, acc.to(y.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def input_gradient_kernel(
    gy, w, gx, N, C, H, W, COUT, HO, WO,
    gys_t, gys_n, gys_o, gys_h, gys_w, ws_t, ws_o, ws_c, ws_h, ws_w,
    gxs_t, gxs_n, gxs_c, gxs_h, gxs_w,
    SH, SW, PH, PW, DH, DW,
    KH: tl.constexpr, KW: tl.constexpr, TAPS_OUTER: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    task = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # input pixels (n, h, w)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels
    n, h, v = rows // (H * W), (rows // W) % H, rows % W
    row_ok, col_ok = rows < N * H * W, cols < C
    gy_rows = gy + task * gys_t + n * gys_n
    w_cols = w + task * ws_t + cols * ws_c
    acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=ACC)
    # tap (i, j) of output pixel (p, q) reads input pixel (h, v) where p * SH = h + PH - i * DH
    if TAPS_OUTER:
        for tap in range(KH * KW):
            i, j = tap // KW, tap % KW
            hs, vs = h + PH - i * DH, v + PW - j * DW
            p, q = hs // SH, vs // SW
            hit = row_ok & (hs >= 0) & (vs >= 0) & (hs % SH == 0) & (vs % SW == 0)
            hit = hit & (p < HO) & (q < WO)
            a_rows = gy_rows + p * gys_h + q * gys_w
            for start in range(0, COUT, BLOCK_K):
                o = start + tl.arange(0, BLOCK_K)
                o_ok = o < COUT
                a_mask = hit[:, None] & o_ok[None, :]
                a = tl.load(a_rows[:, None] + (o * gys_o)[None, :], mask=a_mask, other=0.0)
                b_at = w_cols[None, :] + (o * ws_o + i * ws_h + j * ws_w)[:, None]
                b = tl.load(b_at, mask=o_ok[:, None] & col_ok[None, :], other=0.0)
                acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)
    else:
        for start in range(0, COUT * KH * KW, BLOCK_K):
            ks = start + tl.arange(0, BLOCK_K)  # (o, i, j)
            o, i, j = ks // (KH * KW), (ks // KW) % KH, ks % KW
            k_ok = ks < COUT * KH * KW
            hs = h[:, None] + PH - i[None, :] * DH
            vs = v[:, None] + PW - j[None, :] * DW
            p, q = hs // SH, vs // SW
            hit = (hs >= 0) & (vs >= 0) & (hs % SH == 0) & (vs % SW == 0) & (p < HO) & (q < WO)
            a_at = gy_rows[:, None] + (o * gys_o)[None, :] + p * gys_h + q * gys_w
            a = tl.load(a_at, mask=row_ok[:, None] & k_ok[None, :] & hit, other=0.0)
            b_at = w_cols[None, :] + (o * ws_o + i * ws_h + j * ws_w)[:, None]
            b = tl.load(b_at, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)
    out = gx + task * gxs_t + (n * gxs_n + h * gxs_h + v * gxs_w)[:, None] + (cols * gxs_c)[None, :]
    tl.store(out, acc.to(gx.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def weight_gradient_kernel(
    x, gy, parts, N, C, H, W, COUT, HO, WO,
    xs_t, xs_n, xs_c, xs_h, xs_w, gys_t, gys_n, gys_o, gys_h, gys_w,
    SH, SW, PH, PW, DH, DW, SPLIT,
    KH: tl.constexpr, KW: tl.constexpr, TAPS_OUTER: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    task = (tl.program_id(2) // SPLIT).to(tl.int64)
    split = tl.program_id(2) % SPLIT
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # output channels
    if TAPS_OUTER:  # one tap (i, j) and a block of input channels per program
        blocks = (C + BLOCK_N - 1) // BLOCK_N
        tap = tl.program_id(1) // blocks
        c = (tl.program_id(1) % blocks) * BLOCK_N + tl.arange(0, BLOCK_N)
        i, j = tap // KW, tap % KW
        col_ok = c < C
    else:  # a block of (c, i, j) columns
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        c, i, j = cols // (KH * KW), (cols // KW) % KH, cols % KW
        col_ok = cols < C * KH * KW
    row_ok = rows < COUT
    pixels = N * HO * WO
    share = (pixels + SPLIT - 1) // SPLIT  # this program's output pixels
    share = (share + BLOCK_K - 1) // BLOCK_K * BLOCK_K
    end = tl.minimum(split * share + share, pixels)
    gy_rows = gy + task * gys_t + rows * gys_o
    x_task = x + task * xs_t
    acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=ACC)
    for start in range(split * share, end, BLOCK_K):
        rs = start + tl.arange(0, BLOCK_K)  # output pixels (n, p, q)
        n, p, q = rs // (HO * WO), (rs // WO) % HO, rs % WO
        r_ok = rs < end
        a_at = gy_rows[:, None] + (n * gys_n + p * gys_h + q * gys_w)[None, :]
        a = tl.load(a_at, mask=row_ok[:, None] & r_ok[None, :], other=0.0)
        if TAPS_OUTER:
            h, v = p * SH - PH + i * DH, q * SW - PW + j * DW
            inside = r_ok & (h >= 0) & (h < H) & (v >= 0) & (v < W)
            b_at = (x_task + n * xs_n + h * xs_h + v * xs_w)[:, None] + (c * xs_c)[None, :]
            b = tl.load(b_at, mask=inside[:, None] & col_ok[None, :], other=0.0)
        else:
            h = p[:, None] * SH - PH + i[None, :] * DH
            v = q[:, None] * SW - PW + j[None, :] * DW
            inside = (h >= 0) & (h < H) & (v >= 0) & (v < W)
            b_at = x_task + (n * xs_n)[:, None] + (c * xs_c)[None, :] + h * xs_h + v * xs_w
            b = tl.load(b_at, mask=r_ok[:, None] & col_ok[None, :] & inside, other=0.0)
        acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=ACC)
    out = parts + ((task * SPLIT + split) * COUT + rows)[:, None] * (C * KH * KW)
    out += ((c * KH + i) * KW + j)[None, :]  # stored as (Cout, Cin, kh, kw)
    tl.store(out, acc, mask=row_ok[:, None] & col_ok[None, :])
