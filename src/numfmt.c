/* numfmt.c: the text of a double: the shortest that reads back to the same bits, in Python's repr
 * style (what pandas writes). Mostly exact 128-bit integer arithmetic; printf plus strtod for what
 * that does not cover (subnormals, exponents beyond +-27, exact ties). */
#include "numfmt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "00" .. "99": two digits per division. */
static const char PAIRS[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                               "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                               "8081828384858687888990919293949596979899";

/* Write the 8 decimal digits of x < 10^8, leading zeros included, at o: 32-bit halves and pairs,
 * so a 17-digit number costs two 64-bit divisions rather than eight. */
static void put8(char *o, uint32_t x) {
  uint32_t hi = x / 10000, lo = x % 10000;
  memcpy(o, PAIRS + 2 * (hi / 100), 2);
  memcpy(o + 2, PAIRS + 2 * (hi % 100), 2);
  memcpy(o + 4, PAIRS + 2 * (lo / 100), 2);
  memcpy(o + 6, PAIRS + 2 * (lo % 100), 2);
}

/* Write n in decimal at o; returns the end. */
static char *put_uint(char *o, unsigned long long n) {
  char tmp[24];
  int k = 24;
  for (; n >= 100000000; n /= 100000000) put8(tmp + (k -= 8), (uint32_t)(n % 100000000));
  uint32_t x = (uint32_t)n;
  for (; x >= 100; x /= 100) memcpy(tmp + (k -= 2), PAIRS + 2 * (x % 100), 2);
  if (x >= 10) memcpy(tmp + (k -= 2), PAIRS + 2 * x, 2);
  else tmp[--k] = (char)('0' + x);
  memcpy(o, tmp + k, (size_t)(24 - k));
  return o + (24 - k);
}

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

/* Whether v, a k-digit candidate at distance dist / d from x = n / d (ad scaled by a power of
 * ten), reads back to ad = m * 2^e: |v - x| below half an ulp of ad scaled alike, x / 2m (a quarter
 * below a power of two), or equal to it with m even (ties to even). */
static int reads_back(uint64_t m, int at_pow2, int below, u128 dist, u128 n) {
  u128 w = (below && at_pow2 ? 4 : 2) * (u128)m * dist;
  return w < n || (w == n && !(m & 1));
}

/* The common case without printf or strtod, in exact integer arithmetic. x17 = ad * 10^(16-e10)
 * = n/d exactly, in [10^16, 10^17): q + r/d. The k-digit scalings for k = 15, 16 are x17 / 10^(17-k),
 * whose integer part and remainder come from q's last digits, so one product serves all three. For
 * each k the nearest integer v of x_k is the nearest k-digit decimal (an exact tie goes to the
 * slow path); the first that reads back is the shortest. 17 digits are taken as they are, as
 * printf's "%.16e" would be. Returns the number of digits written to digits (the first is
 * 10^*e10's), or 0 when it cannot tell. */
static int shortest_fast(double ad, char digits[24], int *e10_out) {
  uint64_t bits;
  memcpy(&bits, &ad, sizeof bits);
  uint64_t m = (bits & 0xFFFFFFFFFFFFFULL) | (1ULL << 52);
  int e = (int)(bits >> 52) - 1075; /* ad = m * 2^e, a normal double */
  int t = (e + 52) * 78913; /* 78913 / 2^18 is log10(2) to 1e-6: e10 within one, fixed below */
  int e10 = t >= 0 ? t >> 18 : -((-t + (1 << 18) - 1) >> 18), at_pow2 = m == 1ULL << 52;
  frac f;
  u128 q, r;
  for (int fixes = 0;; fixes++) {
    if (!scaled(m, e, 16 - e10, &f)) return 0;
    divide(&f, &q, &r);
    if (q >= 10000000000000000ULL && q < 100000000000000000ULL) break;
    if (fixes == 2) return 0; /* the estimate of e10 was one off: never twice */
    e10 += q >= 100000000000000000ULL ? 1 : -1;
  }
  u128 d = (u128)f.odd << f.sh;
  for (uint64_t scale = 100; scale >= 1; scale /= 10) { /* k = 15, 16, 17 */
    uint64_t qk = (uint64_t)q / scale;
    u128 dk = scale * d, rk = ((uint64_t)q % scale) * d + r, twice = 2 * rk; /* x_k = qk + rk/dk */
    if (twice == dk) return 0;
    int below = twice < dk; /* v = qk, below x_k, or qk + 1, above it */
    if (scale > 1 && !reads_back(m, at_pow2, below, below ? rk : dk - rk, f.n)) continue;
    int len = (int)(put_uint(digits, below ? qk : qk + 1) - digits);
    int p = 16 - e10 - (scale == 100 ? 2 : scale == 10); /* x_k = ad * 10^p */
    *e10_out = len - 1 - p; /* len = k + 1 when x_k rounded up to 10^k */
    return len;
  }
  return 0;
}

/* Python's repr of the decimal 0.d1d2...dn * 10^(exp+1) (digits without a sign, n >= 1), with
 * the sign when neg: plain notation for exponents -4..15, trailing zeros dropped, ".0" or an
 * exponent so that it reads back as a float. Returns the end of the text written at o. */
static char *put_repr(const char *digits, int nd, int exp, int neg, char *o) {
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  if (neg) *o++ = '-';
  if (exp < -4 || exp >= 16) {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, digits + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    put_exp(o, exp, 1);
    return o + strlen(o);
  }
  if (exp < 0) {
    *o++ = '0', *o++ = '.';
    for (int i = -1; i > exp; i--) *o++ = '0';
    memcpy(o, digits, (size_t)nd);
    o += nd;
  } else if (nd > exp + 1) { /* 12.5 */
    memcpy(o, digits, (size_t)exp + 1);
    o += exp + 1;
    *o++ = '.';
    memcpy(o, digits + exp + 1, (size_t)(nd - exp - 1));
    o += nd - exp - 1;
  } else { /* 1200.0 */
    memcpy(o, digits, (size_t)nd);
    memset(o + nd, '0', (size_t)(exp + 1 - nd));
    o += exp + 1;
    *o++ = '.', *o++ = '0';
  }
  *o = '\0';
  return o;
}

/* The same for a "%.Ne" text; returns the text's length. */
static size_t to_repr(const char *e, char out[32]) {
  const char *x = strchr(e, 'e');
  char digits[32];
  int nd = 0;
  for (const char *p = e; p < x; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  return (size_t)(put_repr(digits, nd, atoi(x + 1), e[0] == '-', out) - out);
}

size_t fmt_integer(long long v, char out[24]) {
  char *o = out;
  unsigned long long u = (unsigned long long)v;
  if (v < 0) *o++ = '-', u = 0 - u; /* LLONG_MIN's magnitude does not fit a long long */
  o = put_uint(o, u);
  *o = '\0';
  return (size_t)(o - out);
}

size_t fmt_double(double d, char out[32]) {
  if (!isfinite(d)) {
    strcpy(out, isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
    return strlen(out);
  }
  if (d == 0) {
    strcpy(out, signbit(d) ? "-0.0" : "0.0");
    return strlen(out);
  }
  /* The shortest of 1..17 significant digits that reads back to the same double. A normal double
   * that round-trips at 15 digits has no shorter text (a decimal of 15 digits or fewer maps to one
   * double, which prints back as that decimal), so normal ones start at 15 and subnormals at 1. */
  char digits[24];
  int e10, nd = fpclassify(d) == FP_SUBNORMAL ? 0 : shortest_fast(fabs(d), digits, &e10);
  if (nd) return (size_t)(put_repr(digits, nd, e10, d < 0, out) - out);
  /* Texts from one "%.24e" rounded by hand: one snprintf per value, not one per try. */
  char e25[48], cand[48];
  snprintf(e25, sizeof e25, "%.24e", d); /* 25 digits: rounding them again is rounding the value */
  for (int keep = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; keep <= 17; keep++) {
    round_digits(e25, keep, cand);
    double back = strtod(cand, NULL);
    if (memcmp(&back, &d, sizeof d) == 0) break;
  }
  return to_repr(cand, out);
}
