/* numfmt.c: the text of a double: the shortest that reads back to the same bits, in Python's repr
 * style (what pandas writes). Exact integer arithmetic: 64-bit fixed point for the usual doubles,
 * 128-bit fractions for the others; printf plus strtod for what that does not cover (subnormals,
 * exponents beyond +-27, exact ties). */
#include "numfmt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The 8 decimal digits of x < 10^8 as ASCII bytes, the first digit in the lowest byte (the order
 * memcpy writes them on a little-endian machine): the two halves, four pairs and eight digits are
 * split in parallel lanes of one word, each division by 10^4, 100 and 10 a multiplication. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "digits8 lays digits out for a little-endian machine"
#endif
static inline uint64_t digits8(uint32_t x) {
  uint64_t y = (uint64_t)(x / 10000) | (uint64_t)(x % 10000) << 32;       /* 32-bit lanes < 10^4 */
  uint64_t z = ((y * 10486) >> 20) & 0x0000007F0000007FULL;                /* lane / 100, exact below 43,699 */
  y = z | (y - z * 100) << 16;                                             /* 16-bit lanes < 100 */
  z = ((y * 103) >> 10) & 0x000F000F000F000FULL;                           /* lane / 10, exact below 179 */
  y = z | (y - z * 10) << 8;                                               /* 8-bit lanes < 10 */
  return y + 0x3030303030303030ULL;
}

static const uint64_t P10[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
                                 100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
                                 1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
                                 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
                                 1000000000000000000ULL, 10000000000000000000ULL};

/* The number of decimal digits of v: log10 from its bit length (1233 / 4096 is log10(2) by excess),
 * fixed by one comparison. */
static int count_digits(uint64_t v) {
  if (v < 10) return 1;
  int t = ((64 - __builtin_clzll(v)) * 1233) >> 12;
  return t + (v >= P10[t]);
}

/* Write the lead <= 8 digits of x < 10^lead at o (room for 8 bytes). */
static void put_head(char *o, uint32_t x, int lead) {
  if (lead == 1) { /* 17 digits, the usual length of a double's: no word for one digit */
    *o = (char)('0' + x);
    return;
  }
  uint64_t w = digits8(x) >> (8 * (8 - lead));
  memcpy(o, &w, 8); /* the bytes past lead are overwritten or past the text */
}

/* Write the len decimal digits of v (1 <= len <= 20) at o, which has room for max(len, 8) bytes:
 * the leading 1 to 8, then 8 at a time, each word's digits split by divisions by constants.
 * Returns the end. */
static char *put_digits(char *o, uint64_t v, int len) {
  uint64_t w;
  if (len > 16) {
    uint64_t rest = v % 10000000000000000ULL;
    put_head(o, (uint32_t)(v / 10000000000000000ULL), len - 16);
    o += len - 16;
    w = digits8((uint32_t)(rest / 100000000));
    memcpy(o, &w, 8);
    w = digits8((uint32_t)(rest % 100000000));
    memcpy(o + 8, &w, 8);
    return o + 16;
  }
  if (len > 8) {
    put_head(o, (uint32_t)(v / 100000000), len - 8);
    o += len - 8;
    w = digits8((uint32_t)(v % 100000000));
    memcpy(o, &w, 8);
    return o + 8;
  }
  put_head(o, (uint32_t)v, len);
  return o + len;
}

/* Write n in decimal at o (room for 20 bytes); returns the end. */
static char *put_uint(char *o, unsigned long long n) { return put_digits(o, n, count_digits(n)); }

/* Write "e" and the exponent: "e-5", or "e+05" style (sign and two digits) when python_style. */
static void put_exp(char *o, int exp, int python_style) {
  *o++ = 'e';
  if (exp < 0) *o++ = '-', exp = -exp;
  else if (python_style) *o++ = '+';
  if (python_style && exp < 10) *o++ = '0';
  o = put_uint(o, (unsigned long long)exp);
  *o = '\0';
}

/* Round the digits of a "%.24e" text to `keep` significant digits, into out as "%.{keep-1}e"
 * would print them (one snprintf instead of one per precision). */
static void round_digits(const char *e25, int keep, char out[48]) {
  const char *p = e25;
  char sign = 0, digits[32];
  if (*p == '-') sign = *p++;
  int nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  int exp = atoi(p + 1);
  int up = digits[keep] > '5';
  if (digits[keep] == '5') { /* a tie rounds to even, as Python's repr does */
    int rest = 0;
    for (int i = keep + 1; i < nd; i++) rest |= digits[i] != '0';
    up = rest || (digits[keep - 1] - '0') % 2 == 1;
  }
  digits[keep] = '\0';
  for (int i = keep - 1; up && i >= 0; i--) {
    if (digits[i] == '9') digits[i] = '0';
    else digits[i]++, up = 0;
  }
  if (up) { /* 9.99..9 rounded up to 10.0..0 */
    memmove(digits + 1, digits, (size_t)keep);
    digits[0] = '1';
    digits[keep] = '\0';
    exp++;
  }
  char *o = out;
  if (sign) *o++ = sign;
  *o++ = digits[0];
  if (keep > 1) {
    *o++ = '.';
    memcpy(o, digits + 1, (size_t)keep - 1);
    o += keep - 1;
  }
  put_exp(o, exp, 0);
}

typedef unsigned __int128 u128; /* gcc and clang: exact products of a mantissa and a power of 5 */

/* 5^0 .. 5^27, all below 2^63. */
static const uint64_t P5[28] = {1ULL, 5ULL, 25ULL, 125ULL, 625ULL, 3125ULL, 15625ULL, 78125ULL, 390625ULL,
                                1953125ULL, 9765625ULL, 48828125ULL, 244140625ULL, 1220703125ULL,
                                6103515625ULL, 30517578125ULL, 152587890625ULL, 762939453125ULL,
                                3814697265625ULL, 19073486328125ULL, 95367431640625ULL, 476837158203125ULL,
                                2384185791015625ULL, 11920928955078125ULL, 59604644775390625ULL,
                                298023223876953125ULL, 1490116119384765625ULL, 7450580596923828125ULL};

/* m * 2^e * 10^p as the exact fraction n / (odd * 2^sh); 0 when it would not fit in 128 bits. */
typedef struct frac {
  u128 n;
  uint64_t odd; /* 1, or 5^-p */
  int sh;
} frac;

static int scaled(uint64_t m, int e, int p, frac *f) {
  if (p < -27 || p > 27) return 0;
  int s = e + p; /* 10^p = 5^p * 2^p */
  if (s > 64 || s < -64) return 0;
  f->n = p >= 0 ? (u128)m * P5[p] : m;
  f->odd = p >= 0 ? 1 : P5[-p];
  f->sh = s < 0 ? -s : 0;
  if (s > 0) f->n <<= s;
  return 1;
}

/* q = floor(n / d) and r = n - q * d: shifts alone for the usual d, a power of two. */
static void divide(const frac *f, u128 *q, u128 *r) {
  if (f->odd == 1) {
    *q = f->n >> f->sh;
    *r = f->n & (((u128)1 << f->sh) - 1);
    return;
  }
  u128 d = (u128)f->odd << f->sh;
  *q = f->n / d;
  *r = f->n - *q * d;
}

/* Whether the k-digit candidate for x17 = q + F / 2^64 (k = 17 - log10(scale)) reads back, as
 * shortest_fixed describes: 1 with it in *v, 0 when it does not, -1 for an exact tie. */
static inline int try_fixed(uint64_t q, uint64_t F, u128 h, int at_pow2, uint64_t scale, uint64_t *v) {
  u128 low = (u128)(q % scale) << 64 | F, half = (u128)(scale / 2) << 64; /* x17 - scale * floor */
  if (low == half) return -1;
  int below = low < half; /* the candidate is floor(x_k), below x17, or the next one above */
  u128 dist = below ? low : ((u128)scale << 64) - low;
  if ((below && at_pow2 ? dist << 1 : dist) >= h) return 0;
  *v = q / scale + !below;
  return 1;
}

/* The usual doubles, about 1e-11 to 1e14, in 64-bit words: scaled by 10^p (0 <= p <= 27) to 17
 * digits with a right shift 1 <= sh <= 63, x17 = m * 5^p / 2^sh is exactly q + F / 2^64. A k-digit
 * candidate, the nearest multiple of 10^(17-k), reads back to ad when its distance from x17 is below
 * half an ulp of ad scaled alike, h = 5^p / 2^(sh+1) (a quarter, below x17 at a power of two); 5^p
 * being odd, it never equals it. Returns the number of digits of the integer *digits (the first is
 * 10^*e10's), or 0 to leave the double to shortest_exact (out of range, an exact tie). */
static int shortest_fixed(uint64_t m, int e, int e10, int at_pow2, uint64_t *digits, int *e10_out) {
  uint64_t q = 0, F = 0;
  int p = 0, sh = 0;
  for (int fixes = 0;; fixes++) {
    p = 16 - e10, sh = -(e + p);
    if ((unsigned)p > 27 || (unsigned)sh - 1 > 62) return 0; /* 0 <= p <= 27, 1 <= sh <= 63 */
    u128 n = (u128)m * P5[p];
    uint64_t lo = (uint64_t)n, hi = (uint64_t)(n >> 64);
    q = hi << (64 - sh) | lo >> sh, F = lo << (64 - sh); /* 64-bit shifts: sh is in range */
    if (q >= P10[16] && q < P10[17]) break;
    if (fixes == 2) return 0; /* the estimate of e10 is one off: never twice */
    e10 += q >= P10[17] ? 1 : -1;
  }
  u128 h = (u128)(P5[p] >> sh >> 1) << 64 | P5[p] << (63 - sh); /* 5^p << (63 - sh) */
  /* 16 digits first: a 15-digit text that reads back is a 16-digit one (x10) that does, so the
   * nearest 16-digit one does too; not at a power of two, whose interval is lopsided. */
  uint64_t v = 0, v15;
  int k = 0, r;
  if (!at_pow2 && (r = try_fixed(q, F, h, at_pow2, 10, &v)) <= 0) {
    if (r < 0) return 0;
    k = 17;
  }
  if (!k) {
    if ((r = try_fixed(q, F, h, at_pow2, 100, &v15)) < 0) return 0;
    if (r) {
      v = v15, k = 15;
    } else if (!at_pow2) {
      k = 16; /* v is the 16-digit text */
    } else {
      if ((r = try_fixed(q, F, h, at_pow2, 10, &v)) < 0) return 0;
      k = r ? 16 : 17;
    }
  }
  if (k == 17) {
    if (F == 1ULL << 63) return 0;
    v = q + (F > 1ULL << 63); /* 17 digits always read back */
  }
  int len = k + (v >= P10[k]); /* k + 1 when the candidate rounded up to 10^k */
  *digits = v;
  *e10_out = len - 1 - (k - 1 - e10); /* len = k + 1 when the candidate rounded up to 10^k */
  return len;
}

/* Whether v, a k-digit candidate at distance dist / d from x = n / d (ad scaled by a power of
 * ten), reads back to ad = m * 2^e: |v - x| below half an ulp of ad scaled alike, x / 2m (a quarter
 * below a power of two), or equal to it with m even (ties to even). */
static int reads_back(uint64_t m, int at_pow2, int below, u128 dist, u128 n) {
  u128 w = (below && at_pow2 ? 4 : 2) * (u128)m * dist;
  return w < n || (w == n && !(m & 1));
}

/* The doubles shortest_fixed leaves, in exact 128-bit arithmetic. x17 = ad * 10^(16-e10) = n/d
 * exactly, in [10^16, 10^17): q + r/d. The k-digit scalings for k = 15, 16 are x17 / 10^(17-k),
 * whose integer part and remainder come from q's last digits, so one product serves all three. For
 * each k the nearest integer v of x_k is the nearest k-digit decimal (an exact tie goes to the
 * slow path); the first that reads back is the shortest. 17 digits are taken as they are, as
 * printf's "%.16e" would be. Returns the number of digits of the integer *digits (the first is
 * 10^*e10's), or 0 when it cannot tell. Out of line, as the rare path: fmt_double's usual one then
 * needs fewer registers saved. */
__attribute__((noinline)) static int shortest_exact(uint64_t m, int e, int e10, int at_pow2, uint64_t *digits,
                                                    int *e10_out) {
  frac f;
  u128 q, r;
  for (int fixes = 0;; fixes++) {
    if (!scaled(m, e, 16 - e10, &f)) return 0;
    divide(&f, &q, &r);
    if (q >= P10[16] && q < P10[17]) break;
    if (fixes == 2) return 0; /* the estimate of e10 was one off: never twice */
    e10 += q >= P10[17] ? 1 : -1;
  }
  u128 d = (u128)f.odd << f.sh;
  for (uint64_t scale = 100; scale >= 1; scale /= 10) { /* k = 15, 16, 17 */
    uint64_t qk = (uint64_t)q / scale;
    u128 dk = scale * d, rk = ((uint64_t)q % scale) * d + r, twice = 2 * rk; /* x_k = qk + rk/dk */
    if (twice == dk) return 0;
    int below = twice < dk; /* v = qk, below x_k, or qk + 1, above it */
    if (scale > 1 && !reads_back(m, at_pow2, below, below ? rk : dk - rk, f.n)) continue;
    *digits = below ? qk : qk + 1;
    int len = count_digits(*digits);
    int p = 16 - e10 - (scale == 100 ? 2 : scale == 10); /* x_k = ad * 10^p */
    *e10_out = len - 1 - p; /* len = k + 1 when x_k rounded up to 10^k */
    return len;
  }
  return 0;
}

/* The common case without printf or strtod: shortest_fixed, else shortest_exact. Returns the
 * number of digits of the integer *digits (the first is 10^*e10's), or 0 when neither can tell. */
static int shortest_fast(uint64_t bits, uint64_t *digits, int *e10_out) {
  uint64_t m = (bits & 0xFFFFFFFFFFFFFULL) | (1ULL << 52);
  int e = (int)(bits >> 52 & 0x7FF) - 1075; /* |d| = m * 2^e, a normal double */
  int t = (e + 52) * 78913; /* 78913 / 2^18 is log10(2) to 1e-6: e10 within one, fixed later */
  int e10 = t >= 0 ? t >> 18 : -((-t + (1 << 18) - 1) >> 18), at_pow2 = m == 1ULL << 52;
  int nd = shortest_fixed(m, e, e10, at_pow2, digits, e10_out);
  return nd ? nd : shortest_exact(m, e, e10, at_pow2, digits, e10_out);
}

/* Python's repr of the decimal 0.d1d2...dn * 10^(exp+1), the nd >= 1 digits those of v, with the
 * sign when neg: plain notation for exponents -4..15, trailing zeros dropped, ".0" or an exponent
 * so that it reads back as a float. Digits go straight to their place (out has room for 32 bytes):
 * where a point splits them, they are written one byte to the right and the integer part moved
 * back. Returns the end of the text written at o. */
static char *put_repr(uint64_t v, int nd, int exp, int neg, char *o) {
  for (; nd > 1 && v % 10 == 0; nd--) v /= 10;
  if (neg) *o++ = '-';
  if (exp < -4 || exp >= 16) {
    put_digits(o + 1, v, nd);
    o[0] = o[1];
    if (nd > 1) o[1] = '.';
    o += nd > 1 ? nd + 1 : 1;
    put_exp(o, exp, 1);
    return o + strlen(o);
  }
  if (exp < 0) {
    memcpy(o, "0.000000", 8); /* "0." and up to 3 zeros, as many as -exp - 1 */
    o = put_digits(o + 1 - exp, v, nd);
  } else if (nd > exp + 1) { /* 12.5 */
    put_digits(o + 1, v, nd);
    for (int i = 0; i <= exp; i++) o[i] = o[i + 1];
    o[exp + 1] = '.';
    o += nd + 1;
  } else { /* 1200.0 */
    o = put_digits(o, v, nd);
    memset(o, '0', (size_t)(exp + 1 - nd));
    o += exp + 1 - nd;
    *o++ = '.', *o++ = '0';
  }
  *o = '\0';
  return o;
}

/* The same for a "%.Ne" text (N <= 16); returns the text's length. */
static size_t to_repr(const char *e, char out[32]) {
  const char *x = strchr(e, 'e');
  uint64_t v = 0;
  int nd = 0;
  for (const char *p = e; p < x; p++)
    if (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p - '0'), nd++;
  return (size_t)(put_repr(v, nd, atoi(x + 1), e[0] == '-', out) - out);
}

size_t fmt_integer(long long v, char out[24]) {
  char *o = out;
  unsigned long long u = (unsigned long long)v;
  if (v < 0) *o++ = '-', u = 0 - u; /* LLONG_MIN's magnitude does not fit a long long */
  o = put_uint(o, u);
  *o = '\0';
  return (size_t)(o - out);
}

/* fmt_double for what shortest_fast leaves: zeros, infinities, NaN, subnormals, exact ties. Texts
 * from one "%.24e" rounded by hand: one snprintf per value, not one per try. */
__attribute__((noinline)) static size_t fmt_rare(double d, char out[32]) {
  if (!isfinite(d)) {
    strcpy(out, isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
    return strlen(out);
  }
  if (d == 0) {
    strcpy(out, signbit(d) ? "-0.0" : "0.0");
    return strlen(out);
  }
  char e25[48], cand[48];
  snprintf(e25, sizeof e25, "%.24e", d); /* 25 digits: rounding them again is rounding the value */
  for (int keep = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; keep <= 17; keep++) {
    round_digits(e25, keep, cand);
    double back = strtod(cand, NULL);
    if (memcmp(&back, &d, sizeof d) == 0) break;
  }
  return to_repr(cand, out);
}

size_t fmt_double(double d, char out[32]) {
  /* The shortest of 1..17 significant digits that reads back to the same double. A normal double
   * that round-trips at 15 digits has no shorter text (a decimal of 15 digits or fewer maps to one
   * double, which prints back as that decimal), so normal ones start at 15 and subnormals at 1. */
  uint64_t bits, digits;
  memcpy(&bits, &d, sizeof bits);
  unsigned biased = (unsigned)(bits >> 52 & 0x7FF); /* 0: zero or subnormal, 0x7FF: inf or NaN */
  int e10, nd = biased - 1 < 0x7FE ? shortest_fast(bits, &digits, &e10) : 0;
  if (nd) return (size_t)(put_repr(digits, nd, e10, (int)(bits >> 63), out) - out);
  return fmt_rare(d, out);
}
